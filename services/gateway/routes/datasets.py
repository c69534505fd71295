"""Datasets, dataset items, runs and run items, kept by the evals service:
`/api/public/v2/datasets[/{name}]`, the legacy v1 `/api/public/datasets[/{name}[/runs[/{run}]]]`,
`/api/public/dataset-items[/{id}]` and `/api/public/dataset-run-items`.

Dataset names may contain `/` (folders) and the SDKs send them URL-encoded as one path segment
(`%2F`), so names and item ids are taken from the raw path and decoded here, after routing.
Request bodies travel to evals as they came; evals validates them and answers the documents."""

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import (
    backend_options,
    endpoint,
    list_response,
    page_meta,
    page_params,
    path_segments,
    query_time,
    state_of,
)
from services.gateway.errors import ApiError, JsonResponse

V2_PREFIX = "/api/public/v2/datasets/"
V1_PREFIX = "/api/public/datasets/"
ITEM_PREFIX = "/api/public/dataset-items/"


def _json(document: bytes) -> Response:
    return Response(document, media_type="application/json")


# Datasets.


async def upsert_dataset(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.UpsertDataset(
        evals_pb2.UpsertDatasetRequest(body_json=await request.body()),
        **backend_options(request, scope),
    )
    return _json(reply.dataset_json)


async def upsert_dataset_v1(request: Request, scope: ProjectScope) -> Response:
    """Langfuse's legacy create answers the dataset with empty `items` and `runs`."""
    reply = await state_of(request).backends.evals.UpsertDataset(
        evals_pb2.UpsertDatasetRequest(body_json=await request.body()),
        **backend_options(request, scope),
    )
    return JsonResponse({**orjson.loads(reply.dataset_json), "items": [], "runs": []})


async def list_datasets(request: Request, scope: ProjectScope) -> Response:
    return await _datasets_page(request, scope, legacy_v1=False)


async def list_datasets_v1(request: Request, scope: ProjectScope) -> Response:
    """Each dataset with its item ids and run names (Langfuse's legacy shape)."""
    return await _datasets_page(request, scope, legacy_v1=True)


async def _datasets_page(request: Request, scope: ProjectScope, *, legacy_v1: bool) -> Response:
    page, limit = page_params(request, default_limit=50)
    reply = await state_of(request).backends.evals.ListDatasets(
        evals_pb2.ListDatasetsRequest(
            page=common_pb2.PageRequest(page=page, limit=limit), legacy_v1=legacy_v1
        ),
        **backend_options(request, scope),
    )
    return list_response(reply.datasets_json, page_meta(reply.meta))


async def dataset_by_name(request: Request, scope: ProjectScope) -> Response:
    """GET and DELETE `/v2/datasets/{name}`."""
    name = "/".join(path_segments(request, V2_PREFIX))
    evals = state_of(request).backends.evals
    options = backend_options(request, scope)
    if request.method == "DELETE":
        await evals.DeleteDataset(evals_pb2.DeleteDatasetRequest(dataset_name=name), **options)
        return JsonResponse({"message": "Dataset successfully deleted"})
    reply = await evals.GetDataset(evals_pb2.GetDatasetRequest(dataset_name=name), **options)
    return _json(reply.dataset_json)


async def dataset_v1_path(request: Request, scope: ProjectScope) -> Response:
    """The legacy v1 paths under a dataset name: `/datasets/{name}` (with its active items and
    run names), `/datasets/{name}/runs` and `/datasets/{name}/runs/{run}` (GET, DELETE)."""
    segments = path_segments(request, V1_PREFIX)
    evals = state_of(request).backends.evals
    options = backend_options(request, scope)
    if len(segments) >= 3 and segments[-2] == "runs":
        name, run = "/".join(segments[:-2]), segments[-1]
        if request.method == "DELETE":
            await evals.DeleteDatasetRun(
                evals_pb2.DeleteDatasetRunRequest(dataset_name=name, run_name=run), **options
            )
            return JsonResponse({"message": "Dataset run successfully deleted"})
        reply = await evals.GetDatasetRun(
            evals_pb2.GetDatasetRunRequest(dataset_name=name, run_name=run), **options
        )
        return _json(reply.run_json)
    if request.method == "DELETE":
        raise ApiError(405, "Method not allowed")
    if len(segments) >= 2 and segments[-1] == "runs":
        page, limit = page_params(request, default_limit=50)
        runs = await evals.ListDatasetRuns(
            evals_pb2.ListDatasetRunsRequest(
                dataset_name="/".join(segments[:-1]),
                page=common_pb2.PageRequest(page=page, limit=limit),
            ),
            **options,
        )
        return list_response(runs.runs_json, page_meta(runs.meta))
    dataset = await evals.GetDataset(
        evals_pb2.GetDatasetRequest(dataset_name="/".join(segments), legacy_v1=True), **options
    )
    return _json(dataset.dataset_json)


# Dataset items.


async def upsert_item(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.UpsertDatasetItem(
        evals_pb2.UpsertDatasetItemRequest(body_json=await request.body()),
        **backend_options(request, scope),
    )
    return _json(reply.item_json)


async def list_items(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    params = request.query_params
    message = evals_pb2.ListDatasetItemsRequest(
        page=common_pb2.PageRequest(page=page, limit=limit),
        dataset_name=params.get("datasetName", ""),
        source_trace_id=params.get("sourceTraceId", ""),
        source_observation_id=params.get("sourceObservationId", ""),
    )
    version = query_time(request, "version")
    if version is not None:
        message.version.CopyFrom(version)
    reply = await state_of(request).backends.evals.ListDatasetItems(
        message, **backend_options(request, scope)
    )
    return list_response(reply.items_json, page_meta(reply.meta))


async def item_by_id(request: Request, scope: ProjectScope) -> Response:
    """GET and DELETE `/dataset-items/{id}` (an id may hold `/`)."""
    item_id = "/".join(path_segments(request, ITEM_PREFIX))
    evals = state_of(request).backends.evals
    options = backend_options(request, scope)
    if request.method == "DELETE":
        await evals.DeleteDatasetItem(
            evals_pb2.DeleteDatasetItemRequest(item_id=item_id), **options
        )
        return JsonResponse({"message": "Dataset item successfully deleted"})
    reply = await evals.GetDatasetItem(evals_pb2.GetDatasetItemRequest(item_id=item_id), **options)
    return _json(reply.item_json)


# Run items.


async def create_run_item(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.CreateDatasetRunItem(
        evals_pb2.CreateDatasetRunItemRequest(body_json=await request.body()),
        **backend_options(request, scope),
    )
    return _json(reply.run_item_json)


async def list_run_items(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    reply = await state_of(request).backends.evals.ListDatasetRunItems(
        evals_pb2.ListDatasetRunItemsRequest(
            page=common_pb2.PageRequest(page=page, limit=limit),
            dataset_id=request.query_params.get("datasetId", ""),
            run_name=request.query_params.get("runName", ""),
        ),
        **backend_options(request, scope),
    )
    return list_response(reply.run_items_json, page_meta(reply.meta))


ROUTES = [
    Route("/api/public/v2/datasets", endpoint(upsert_dataset), methods=["POST"]),
    Route("/api/public/v2/datasets", endpoint(list_datasets), methods=["GET"]),
    Route(
        "/api/public/v2/datasets/{rest:path}", endpoint(dataset_by_name), methods=["GET", "DELETE"]
    ),
    Route("/api/public/datasets", endpoint(upsert_dataset_v1), methods=["POST"]),
    Route("/api/public/datasets", endpoint(list_datasets_v1), methods=["GET"]),
    Route("/api/public/datasets/{rest:path}", endpoint(dataset_v1_path), methods=["GET", "DELETE"]),
    Route("/api/public/dataset-items", endpoint(upsert_item), methods=["POST"]),
    Route("/api/public/dataset-items", endpoint(list_items), methods=["GET"]),
    Route("/api/public/dataset-items/{rest:path}", endpoint(item_by_id), methods=["GET", "DELETE"]),
    Route("/api/public/dataset-run-items", endpoint(create_run_item), methods=["POST"]),
    Route("/api/public/dataset-run-items", endpoint(list_run_items), methods=["GET"]),
]

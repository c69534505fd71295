"""The dataset RPCs (datasets, versioned items, runs and run items): each request becomes calls to
datasets.py, items.py and runs.py in one connection, and rows become the public documents. The
one thing evals cannot know itself, the trace of an observation (for run items of old SDKs that
name only the observation), it asks the query service."""

import asyncpg
import grpc
import orjson

from libs.common.errors import NotFound, Unavailable
from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.gen.obs.query.v1 import query_pb2, query_pb2_grpc
from libs.common.scope import ProjectScope
from libs.common.timestamps import from_timestamp
from services.evals import datasets, items, runs
from services.evals.fields import invalid, optional_text, page_meta, text
from services.evals.results import run_numbers

QUERY_TIMEOUT_SECONDS = 10.0


class DatasetApi:
    def __init__(
        self,
        pool: asyncpg.Pool,
        query: query_pb2_grpc.QueryServiceStub,
        item_positions: items.PositionCache | None = None,
    ) -> None:
        self._pool = pool
        self._query = query
        self._item_positions = item_positions or items.PositionCache()

    # Datasets.

    async def upsert_dataset(
        self, scope: ProjectScope, request: evals_pb2.UpsertDatasetRequest
    ) -> evals_pb2.UpsertDatasetResponse:
        scope.require_project_access()
        fields = datasets.dataset_fields(request.body_json)
        async with self._pool.acquire() as conn:
            row = await datasets.upsert(conn, scope.project_id, fields)
        return evals_pb2.UpsertDatasetResponse(
            dataset_json=datasets.document(row, scope.project_id)
        )

    async def get_dataset(
        self, scope: ProjectScope, request: evals_pb2.GetDatasetRequest
    ) -> evals_pb2.GetDatasetResponse:
        name = datasets.dataset_name(request.dataset_name)
        async with self._pool.acquire() as conn:
            row = await datasets.get(conn, scope.project_id, name)
            if not request.legacy_v1:
                return evals_pb2.GetDatasetResponse(
                    dataset_json=datasets.document(row, scope.project_id)
                )
            active = await items.active(conn, scope.project_id, row["id"])
            names = await runs.run_names(conn, scope.project_id, row["id"])
        document = datasets.document(
            row,
            scope.project_id,
            items=[orjson.Fragment(items.document(item)) for item in active],
            runs=names,
        )
        return evals_pb2.GetDatasetResponse(dataset_json=document)

    async def list_datasets(
        self, scope: ProjectScope, request: evals_pb2.ListDatasetsRequest
    ) -> evals_pb2.ListDatasetsResponse:
        page, limit = _page(request.page)
        async with self._pool.acquire() as conn:
            rows, total = await datasets.page(conn, scope.project_id, page, limit)
            documents = []
            for row in rows:
                extra = {}
                if request.legacy_v1:
                    extra = {
                        "items": await items.current_ids(conn, scope.project_id, row["id"]),
                        "runs": await runs.run_names(conn, scope.project_id, row["id"]),
                    }
                documents.append(datasets.document(row, scope.project_id, **extra))
        return evals_pb2.ListDatasetsResponse(
            datasets_json=documents, meta=page_meta(page, limit, total)
        )

    async def delete_dataset(
        self, scope: ProjectScope, request: evals_pb2.DeleteDatasetRequest
    ) -> evals_pb2.DeleteDatasetResponse:
        scope.require_project_access()
        name = datasets.dataset_name(request.dataset_name)
        await datasets.delete(self._pool, scope.project_id, name)
        return evals_pb2.DeleteDatasetResponse()

    # Dataset items.

    async def upsert_item(
        self, scope: ProjectScope, request: evals_pb2.UpsertDatasetItemRequest
    ) -> evals_pb2.UpsertDatasetItemResponse:
        scope.require_project_access()
        change = items.item_change(request.body_json)
        async with self._pool.acquire() as conn:
            row = await items.upsert(conn, scope.project_id, change)
        return evals_pb2.UpsertDatasetItemResponse(item_json=items.document(row))

    async def get_item(
        self, scope: ProjectScope, request: evals_pb2.GetDatasetItemRequest
    ) -> evals_pb2.GetDatasetItemResponse:
        row = await items.get(self._pool, scope.project_id, items.item_id(request.item_id))
        return evals_pb2.GetDatasetItemResponse(item_json=items.document(row))

    async def list_items(
        self, scope: ProjectScope, request: evals_pb2.ListDatasetItemsRequest
    ) -> evals_pb2.ListDatasetItemsResponse:
        page, limit = _page(request.page)
        version = from_timestamp(request.version) if request.HasField("version") else None
        if version is not None and not request.dataset_name:
            raise invalid("version requires datasetName")
        async with self._pool.acquire() as conn:
            dataset = None
            if request.dataset_name:
                name = datasets.dataset_name(request.dataset_name)
                dataset = await datasets.get(conn, scope.project_id, name)
            query = items.ItemQuery(
                dataset_id=dataset["id"] if dataset else None,
                source_trace_id=optional_text(request.source_trace_id or None, "sourceTraceId"),
                source_observation_id=optional_text(
                    request.source_observation_id or None, "sourceObservationId"
                ),
                version=version,
                dataset_revision=dataset["items_revision"] if dataset else None,
            )
            rows, total = await items.page(
                conn, scope.project_id, query, page, limit, self._item_positions
            )
        return evals_pb2.ListDatasetItemsResponse(
            items_json=[items.document(row) for row in rows], meta=page_meta(page, limit, total)
        )

    async def delete_item(
        self, scope: ProjectScope, request: evals_pb2.DeleteDatasetItemRequest
    ) -> evals_pb2.DeleteDatasetItemResponse:
        scope.require_project_access()
        async with self._pool.acquire() as conn:
            await items.delete(conn, scope.project_id, items.item_id(request.item_id))
        return evals_pb2.DeleteDatasetItemResponse()

    # Dataset runs and run items.

    async def create_run_item(
        self, scope: ProjectScope, request: evals_pb2.CreateDatasetRunItemRequest
    ) -> evals_pb2.CreateDatasetRunItemResponse:
        scope.require_project_access()
        body = runs.run_item_request(request.body_json)
        async with self._pool.acquire() as conn:
            # Checked before the trace lookup, as Langfuse does: an archived item is a 404.
            await runs.active_item_dataset(conn, scope.project_id, body.dataset_item_id)
        trace_id = body.trace_id or await self._trace_of(scope, body.observation_id or "")
        async with self._pool.acquire() as conn:
            document = await runs.create_run_item(conn, scope.project_id, body, trace_id)
        return evals_pb2.CreateDatasetRunItemResponse(run_item_json=document)

    async def list_run_items(
        self, scope: ProjectScope, request: evals_pb2.ListDatasetRunItemsRequest
    ) -> evals_pb2.ListDatasetRunItemsResponse:
        page, limit = _page(request.page)
        dataset_id = text(request.dataset_id, "datasetId")
        run_name = text(request.run_name, "runName")
        async with self._pool.acquire() as conn:
            run = await runs.get_run(conn, scope.project_id, dataset_id, run_name)
            rows, total = await runs.run_items_page(conn, scope.project_id, run["id"], page, limit)
        return evals_pb2.ListDatasetRunItemsResponse(
            run_items_json=[runs.run_item_document(row, run["name"]) for row in rows],
            meta=page_meta(page, limit, total),
        )

    async def list_runs(
        self, scope: ProjectScope, request: evals_pb2.ListDatasetRunsRequest
    ) -> evals_pb2.ListDatasetRunsResponse:
        page, limit = _page(request.page)
        name = datasets.dataset_name(request.dataset_name)
        async with self._pool.acquire() as conn:
            dataset = await datasets.get(conn, scope.project_id, name)
            rows, total = await runs.runs_page(conn, scope.project_id, dataset["id"], page, limit)
        return evals_pb2.ListDatasetRunsResponse(
            runs_json=[runs.run_document(row, dataset["name"]) for row in rows],
            meta=page_meta(page, limit, total),
        )

    async def get_run(
        self, scope: ProjectScope, request: evals_pb2.GetDatasetRunRequest
    ) -> evals_pb2.GetDatasetRunResponse:
        name = datasets.dataset_name(request.dataset_name)
        run_name = text(request.run_name, "runName")
        async with self._pool.acquire() as conn:
            dataset = await datasets.get(conn, scope.project_id, name)
            run = await runs.get_run(conn, scope.project_id, dataset["id"], run_name)
            run_items = await runs.run_items(conn, scope.project_id, run["id"])
        fields = [runs.run_item_fields(row, run["name"]) for row in run_items]
        # The run's results: each item's latency, cost and scores, and the run's aggregates.
        numbers = await run_numbers(self._query, scope, run["id"], fields)
        document = runs.run_document(run, dataset["name"], datasetRunItems=fields, **numbers)
        return evals_pb2.GetDatasetRunResponse(run_json=document)

    async def delete_run(
        self, scope: ProjectScope, request: evals_pb2.DeleteDatasetRunRequest
    ) -> evals_pb2.DeleteDatasetRunResponse:
        scope.require_project_access()
        name = datasets.dataset_name(request.dataset_name)
        run_name = text(request.run_name, "runName")
        async with self._pool.acquire() as conn:
            dataset = await datasets.get(conn, scope.project_id, name)
            await runs.delete_run(conn, scope.project_id, dataset["id"], run_name)
        return evals_pb2.DeleteDatasetRunResponse()

    async def _trace_of(self, scope: ProjectScope, observation_id: str) -> str:
        """The trace of an observation, from the query service (ClickHouse is its store)."""
        try:
            reply = await self._query.GetObservation(
                query_pb2.GetObservationRequest(observation_id=observation_id),
                metadata=scope.metadata(),
                timeout=QUERY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound("Observation not found") from exc
            raise Unavailable("The observation's trace could not be looked up") from exc
        trace_id: str = orjson.loads(reply.observation_json).get("traceId") or ""
        if not trace_id:
            raise invalid("No traceId set")
        return trace_id


def _page(request: common_pb2.PageRequest) -> tuple[int, int]:
    """Page and limit as the gateway checked them; internal callers get the defaults."""
    return max(request.page, 1), request.limit if 1 <= request.limit <= 100 else 50

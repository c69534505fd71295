"""Experiments: `GET /api/public/experiments` and `/experiment-items`, cursor lists as the 5.x
SDK's `api.experiments` calls them (fromStartTime required; comma-separated id, name and dataset
filters; `fields` groups; `filter` JSON). Experiments are dataset runs and runs on local data;
the evals service learns their items from the SDKs' spans and from POST /dataset-run-items."""

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
    query_csv,
    query_int,
    query_time,
    state_of,
)
from services.gateway.errors import ApiError


def _common(request: Request) -> dict[str, object]:
    """The parameters both lists take, as request fields."""
    since = query_time(request, "fromStartTime")
    if since is None:
        raise ApiError(400, "Invalid request data: fromStartTime is required")
    fields: dict[str, object] = {
        "cursor": common_pb2.CursorRequest(
            cursor=request.query_params.get("cursor", ""), limit=query_int(request, "limit", 0)
        ),
        "from_start_time": since,
        "fields": query_csv(request, "fields"),
        "score_limit": query_int(request, "scoreLimit", 0),
        "filter_json": request.query_params.get("filter", ""),
    }
    until = query_time(request, "toStartTime")
    if until is not None:
        fields["to_start_time"] = until
    return fields


def _cursor_meta(next_cursor: str) -> dict[str, str]:
    return {"cursor": next_cursor} if next_cursor else {}


async def list_experiments(request: Request, scope: ProjectScope) -> Response:
    message = evals_pb2.ListExperimentsRequest(
        **_common(request),
        ids=query_csv(request, "id"),
        names=query_csv(request, "name"),
        dataset_ids=query_csv(request, "datasetId"),
    )
    reply = await state_of(request).backends.evals.ListExperiments(
        message, **backend_options(request, scope)
    )
    return list_response(reply.experiments_json, _cursor_meta(reply.meta.next_cursor))


async def list_experiment_items(request: Request, scope: ProjectScope) -> Response:
    message = evals_pb2.ListExperimentItemsRequest(
        **_common(request),
        experiment_ids=query_csv(request, "experimentId"),
        experiment_names=query_csv(request, "experimentName"),
        experiment_item_ids=query_csv(request, "experimentItemId"),
        dataset_ids=query_csv(request, "datasetId"),
    )
    reply = await state_of(request).backends.evals.ListExperimentItems(
        message, **backend_options(request, scope)
    )
    return list_response(reply.items_json, _cursor_meta(reply.meta.next_cursor))


ROUTES = [
    Route("/api/public/experiments", endpoint(list_experiments), methods=["GET"]),
    Route("/api/public/experiment-items", endpoint(list_experiment_items), methods=["GET"]),
]

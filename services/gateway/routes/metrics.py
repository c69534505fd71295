"""The metrics API: a metrics query (v1 with the traces view, v2 without) and daily metrics,
answered by the query service."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.query.v1 import query_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import (
    backend_options,
    endpoint,
    list_response,
    page_meta,
    page_params,
    query_time_range,
    state_of,
)
from services.gateway.errors import ApiError


async def metrics_v1(request: Request, scope: ProjectScope) -> Response:
    return await _metrics(request, scope, 1)


async def metrics_v2(request: Request, scope: ProjectScope) -> Response:
    return await _metrics(request, scope, 2)


async def _metrics(request: Request, scope: ProjectScope, version: int) -> Response:
    raw = request.query_params.get("query")
    if not raw:
        raise ApiError(400, "Invalid request data: the query parameter is required")
    reply = await state_of(request).backends.query.QueryMetrics(
        query_pb2.QueryMetricsRequest(api_version=version, query_json=raw),
        **backend_options(request, scope),
    )
    return Response(b'{"data":' + reply.rows_json + b"}", media_type="application/json")


async def daily_metrics(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    params = request.query_params
    message = query_pb2.GetDailyMetricsRequest(
        page=common_pb2.PageRequest(page=page, limit=limit),
        time_range=query_time_range(request, "fromTimestamp", "toTimestamp"),
        trace_name=params.get("traceName", ""),
        user_id=params.get("userId", ""),
        tags=_listed(request, "tags"),
        environments=_listed(request, "environment"),
    )
    reply = await state_of(request).backends.query.GetDailyMetrics(
        message, **backend_options(request, scope)
    )
    return list_response(reply.days_json, page_meta(reply.meta))


def _listed(request: Request, name: str) -> list[str]:
    """A repeatable parameter whose values may also be comma-separated, as Langfuse reads them."""
    return [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]


ROUTES = [
    Route("/api/public/metrics", endpoint(metrics_v1), methods=["GET"]),
    Route("/api/public/metrics/daily", endpoint(daily_metrics), methods=["GET"]),
    Route("/api/public/v2/metrics", endpoint(metrics_v2), methods=["GET"]),
]

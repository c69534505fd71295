"""Trace, observation and session reads, served by the query service as ready JSON documents."""

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
    query_csv,
    query_int,
    query_time_range,
    read_json,
    state_of,
)
from services.gateway.errors import ApiError, JsonResponse

_TRACE_FILTERS = ("userId", "name", "sessionId", "release", "version", "tags", "environment")
_OBSERVATION_FILTERS = (
    "name", "userId", "sessionId", "type", "traceId", "level", "parentObservationId",
    "environment", "version",
)  # fmt: skip
_V2_MAX_LIMIT = 1000


async def get_trace(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.query.GetTrace(
        query_pb2.GetTraceRequest(trace_id=request.path_params["trace_id"]),
        **backend_options(request, scope),
    )
    return Response(reply.trace_json, media_type="application/json")


async def list_traces(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    message = query_pb2.ListTracesRequest(
        page=common_pb2.PageRequest(page=page, limit=limit),
        time_range=query_time_range(request, "fromTimestamp", "toTimestamp"),
        filters=_filters(request, _TRACE_FILTERS),
        order_by=request.query_params.get("orderBy", ""),
        fields=query_csv(request, "fields"),
        filter_json=request.query_params.get("filter", ""),
    )
    reply = await state_of(request).backends.query.ListTraces(
        message, **backend_options(request, scope)
    )
    return list_response(reply.traces_json, page_meta(reply.meta))


async def delete_trace(request: Request, scope: ProjectScope) -> Response:
    await _delete_traces(request, scope, [request.path_params["trace_id"]])
    return JsonResponse({"message": "Trace deleted successfully"})


async def delete_traces(request: Request, scope: ProjectScope) -> Response:
    body = await read_json(request)
    trace_ids = body.get("traceIds") if isinstance(body, dict) else None
    if not isinstance(trace_ids, list) or not all(isinstance(t, str) for t in trace_ids):
        raise ApiError(400, "Invalid request data: traceIds must be a list of strings")
    await _delete_traces(request, scope, trace_ids)
    return JsonResponse({"message": "Traces deleted successfully"})


async def _delete_traces(request: Request, scope: ProjectScope, trace_ids: list[str]) -> None:
    await state_of(request).backends.query.DeleteTraces(
        query_pb2.DeleteTracesRequest(trace_ids=trace_ids),
        **backend_options(request, scope),
    )


async def get_observation(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.query.GetObservation(
        query_pb2.GetObservationRequest(observation_id=request.path_params["observation_id"]),
        **backend_options(request, scope),
    )
    return Response(reply.observation_json, media_type="application/json")


async def list_observations(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    message = query_pb2.ListObservationsRequest(
        page=common_pb2.PageRequest(page=page, limit=limit),
        time_range=query_time_range(request, "fromStartTime", "toStartTime"),
        filters=_filters(request, _OBSERVATION_FILTERS),
        filter_json=request.query_params.get("filter", ""),
    )
    reply = await state_of(request).backends.query.ListObservations(
        message, **backend_options(request, scope)
    )
    return list_response(reply.observations_json, page_meta(reply.page_meta))


async def list_observations_v2(request: Request, scope: ProjectScope) -> Response:
    if request.query_params.get("parseIoAsJson", "").lower() == "true":
        raise ApiError(400, "Invalid request data: parseIoAsJson is not supported")
    limit = query_int(request, "limit", 50)
    if not 1 <= limit <= _V2_MAX_LIMIT:
        raise ApiError(400, f"Invalid request data: limit must be between 1 and {_V2_MAX_LIMIT}")
    message = query_pb2.ListObservationsRequest(
        cursor=common_pb2.CursorRequest(cursor=request.query_params.get("cursor", ""), limit=limit),
        time_range=query_time_range(request, "fromStartTime", "toStartTime"),
        filters=_filters(request, _OBSERVATION_FILTERS),
        fields=query_csv(request, "fields"),
        expand_metadata=query_csv(request, "expandMetadata"),
        filter_json=request.query_params.get("filter", ""),
    )
    reply = await state_of(request).backends.query.ListObservations(
        message, **backend_options(request, scope)
    )
    cursor = reply.cursor_meta.next_cursor
    return list_response(reply.observations_json, {"cursor": cursor} if cursor else {})


async def get_session(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.query.GetSession(
        query_pb2.GetSessionRequest(session_id=request.path_params["session_id"]),
        **backend_options(request, scope),
    )
    return Response(reply.session_json, media_type="application/json")


async def list_sessions(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    message = query_pb2.ListSessionsRequest(
        page=common_pb2.PageRequest(page=page, limit=limit),
        time_range=query_time_range(request, "fromTimestamp", "toTimestamp"),
        environments=request.query_params.getlist("environment"),
    )
    reply = await state_of(request).backends.query.ListSessions(
        message, **backend_options(request, scope)
    )
    return list_response(reply.sessions_json, page_meta(reply.meta))


def _filters(request: Request, names: tuple[str, ...]) -> list[query_pb2.Filter]:
    return [
        query_pb2.Filter(key=name, values=request.query_params.getlist(name))
        for name in names
        if request.query_params.getlist(name)
    ]


ROUTES = [
    Route("/api/public/traces", endpoint(list_traces), methods=["GET"]),
    Route("/api/public/traces", endpoint(delete_traces), methods=["DELETE"]),
    Route("/api/public/traces/{trace_id}", endpoint(get_trace), methods=["GET"]),
    Route("/api/public/traces/{trace_id}", endpoint(delete_trace), methods=["DELETE"]),
    Route("/api/public/observations", endpoint(list_observations), methods=["GET"]),
    Route("/api/public/observations/{observation_id}", endpoint(get_observation), methods=["GET"]),
    Route("/api/public/v2/observations", endpoint(list_observations_v2), methods=["GET"]),
    Route("/api/public/sessions", endpoint(list_sessions), methods=["GET"]),
    Route("/api/public/sessions/{session_id}", endpoint(get_session), methods=["GET"]),
]

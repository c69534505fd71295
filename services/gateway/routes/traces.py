"""Trace and observation reads, served by the query service as ready JSON documents."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.query.v1 import query_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import call_metadata, endpoint, state_of


async def get_trace(request: Request, scope: ProjectScope) -> Response:
    state = state_of(request)
    reply = await state.backends.query.GetTrace(
        query_pb2.GetTraceRequest(trace_id=request.path_params["trace_id"]),
        metadata=call_metadata(request, scope),
        timeout=state.backend_timeout,
    )
    return Response(reply.trace_json, media_type="application/json")


async def get_observation(request: Request, scope: ProjectScope) -> Response:
    state = state_of(request)
    reply = await state.backends.query.GetObservation(
        query_pb2.GetObservationRequest(observation_id=request.path_params["observation_id"]),
        metadata=call_metadata(request, scope),
        timeout=state.backend_timeout,
    )
    return Response(reply.observation_json, media_type="application/json")


ROUTES = [
    Route("/api/public/traces/{trace_id}", endpoint(get_trace), methods=["GET"]),
    Route("/api/public/observations/{observation_id}", endpoint(get_observation), methods=["GET"]),
]

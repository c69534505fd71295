"""LLM connections: `GET/PUT /api/public/llm-connections`, `DELETE /llm-connections/{id}`, kept
by the evals service, which seals the secret key and never returns it (only `displaySecretKey`)."""

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
    state_of,
)
from services.gateway.errors import JsonResponse


async def list_connections(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    reply = await state_of(request).backends.evals.ListLlmConnections(
        evals_pb2.ListLlmConnectionsRequest(page=common_pb2.PageRequest(page=page, limit=limit)),
        **backend_options(request, scope),
    )
    return list_response(reply.connections_json, page_meta(reply.meta))


async def upsert_connection(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.UpsertLlmConnection(
        evals_pb2.UpsertLlmConnectionRequest(body_json=await request.body()),
        **backend_options(request, scope),
    )
    return Response(reply.connection_json, media_type="application/json")


async def delete_connection(request: Request, scope: ProjectScope) -> Response:
    await state_of(request).backends.evals.DeleteLlmConnection(
        evals_pb2.DeleteLlmConnectionRequest(connection_id=request.path_params["connection_id"]),
        **backend_options(request, scope),
    )
    return JsonResponse({"message": "LLM connection deleted"})


ROUTES = [
    Route("/api/public/llm-connections", endpoint(list_connections), methods=["GET"]),
    Route("/api/public/llm-connections", endpoint(upsert_connection), methods=["PUT"]),
    Route(
        "/api/public/llm-connections/{connection_id}",
        endpoint(delete_connection),
        methods=["DELETE"],
    ),
]

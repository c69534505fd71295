"""Models for cost inference: `/api/public/models[/{id}]`. Project models take precedence over
the built-in ones, which are listed too (`isLangfuseManaged: true`) and cannot be deleted."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.query.v1 import query_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import (
    call_metadata,
    endpoint,
    list_response,
    page_params,
    state_of,
)
from services.gateway.errors import JsonResponse


async def list_models(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    state = state_of(request)
    reply = await state.backends.query.ListModels(
        query_pb2.ListModelsRequest(page=common_pb2.PageRequest(page=page, limit=limit)),
        metadata=call_metadata(request, scope),
        timeout=state.backend_timeout,
    )
    meta = reply.meta
    return list_response(
        reply.models_json,
        {"page": meta.page, "limit": meta.limit, "totalItems": meta.total_items,
         "totalPages": meta.total_pages},
    )  # fmt: skip


async def create_model(request: Request, scope: ProjectScope) -> Response:
    state = state_of(request)
    reply = await state.backends.query.CreateModel(
        query_pb2.CreateModelRequest(model_json=await request.body()),
        metadata=call_metadata(request, scope),
        timeout=state.backend_timeout,
    )
    return Response(reply.model_json, media_type="application/json")


async def get_model(request: Request, scope: ProjectScope) -> Response:
    state = state_of(request)
    reply = await state.backends.query.GetModel(
        query_pb2.GetModelRequest(model_id=request.path_params["model_id"]),
        metadata=call_metadata(request, scope),
        timeout=state.backend_timeout,
    )
    return Response(reply.model_json, media_type="application/json")


async def delete_model(request: Request, scope: ProjectScope) -> Response:
    state = state_of(request)
    await state.backends.query.DeleteModel(
        query_pb2.DeleteModelRequest(model_id=request.path_params["model_id"]),
        metadata=call_metadata(request, scope),
        timeout=state.backend_timeout,
    )
    return JsonResponse({"message": "Model successfully deleted"})


ROUTES = [
    Route("/api/public/models", endpoint(list_models), methods=["GET"]),
    Route("/api/public/models", endpoint(create_model), methods=["POST"]),
    Route("/api/public/models/{model_id}", endpoint(get_model), methods=["GET"]),
    Route("/api/public/models/{model_id}", endpoint(delete_model), methods=["DELETE"]),
]

"""Models for cost inference: `/api/public/models[/{id}]`. Project models take precedence over
the built-in ones, which are listed too (`isLangfuseManaged: true`) and cannot be deleted."""

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
    state_of,
)
from services.gateway.errors import JsonResponse


async def list_models(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    reply = await state_of(request).backends.query.ListModels(
        query_pb2.ListModelsRequest(page=common_pb2.PageRequest(page=page, limit=limit)),
        **backend_options(request, scope),
    )
    return list_response(reply.models_json, page_meta(reply.meta))


async def create_model(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.query.CreateModel(
        query_pb2.CreateModelRequest(model_json=await request.body()),
        **backend_options(request, scope),
    )
    return Response(reply.model_json, media_type="application/json")


async def get_model(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.query.GetModel(
        query_pb2.GetModelRequest(model_id=request.path_params["model_id"]),
        **backend_options(request, scope),
    )
    return Response(reply.model_json, media_type="application/json")


async def delete_model(request: Request, scope: ProjectScope) -> Response:
    await state_of(request).backends.query.DeleteModel(
        query_pb2.DeleteModelRequest(model_id=request.path_params["model_id"]),
        **backend_options(request, scope),
    )
    return JsonResponse({"message": "Model successfully deleted"})


ROUTES = [
    Route("/api/public/models", endpoint(list_models), methods=["GET"]),
    Route("/api/public/models", endpoint(create_model), methods=["POST"]),
    Route("/api/public/models/{model_id}", endpoint(get_model), methods=["GET"]),
    Route("/api/public/models/{model_id}", endpoint(delete_model), methods=["DELETE"]),
]

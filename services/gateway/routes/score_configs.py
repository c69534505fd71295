"""Score configs: `/api/public/score-configs[/{id}]`, kept by the evals service. A change is
answered only once every ingestion replica will check new scores against it."""

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


async def list_score_configs(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    reply = await state_of(request).backends.evals.ListScoreConfigs(
        evals_pb2.ListScoreConfigsRequest(page=common_pb2.PageRequest(page=page, limit=limit)),
        **backend_options(request, scope),
    )
    return list_response(reply.configs_json, page_meta(reply.meta))


async def create_score_config(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.CreateScoreConfig(
        evals_pb2.CreateScoreConfigRequest(body_json=await request.body()),
        **backend_options(request, scope),
    )
    return Response(reply.config_json, media_type="application/json")


async def get_score_config(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.GetScoreConfig(
        evals_pb2.GetScoreConfigRequest(config_id=request.path_params["config_id"]),
        **backend_options(request, scope),
    )
    return Response(reply.config_json, media_type="application/json")


async def update_score_config(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.UpdateScoreConfig(
        evals_pb2.UpdateScoreConfigRequest(
            config_id=request.path_params["config_id"], body_json=await request.body()
        ),
        **backend_options(request, scope),
    )
    return Response(reply.config_json, media_type="application/json")


ROUTES = [
    Route("/api/public/score-configs", endpoint(list_score_configs), methods=["GET"]),
    Route("/api/public/score-configs", endpoint(create_score_config), methods=["POST"]),
    Route("/api/public/score-configs/{config_id}", endpoint(get_score_config), methods=["GET"]),
    Route(
        "/api/public/score-configs/{config_id}", endpoint(update_score_config), methods=["PATCH"]
    ),
]

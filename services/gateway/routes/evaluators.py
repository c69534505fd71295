"""Evaluators: `/api/public/v2/evaluators[/{id}[/versions]]` as the 5.x SDK calls them, kept by
the evals service. Errors in the `{message, code}` shape it parses (public_api_errors.py).
Langfuse's OpenAPI file lists an older shape under `/api/public/unstable/` (one evaluator per
rule, its own status fields), not served here."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import backend_options, list_response, query_int, state_of
from services.gateway.routes.public_api_errors import public_api_endpoint


def cursor_params(request: Request) -> tuple[int, str]:
    """`limit` (default 50; 1-100 is checked by the backend) and the opaque `cursor`."""
    return query_int(request, "limit", 50) or 0, request.query_params.get("cursor", "")


def cursor_list(items: list[bytes], next_cursor: str) -> Response:
    return list_response(items, {"cursor": next_cursor or None})


def json_response(body: bytes) -> Response:
    return Response(body, media_type="application/json")


async def list_evaluators(request: Request, scope: ProjectScope) -> Response:
    limit, cursor = cursor_params(request)
    reply = await state_of(request).backends.evals.ListEvaluators(
        evals_pb2.ListEvaluatorsRequest(limit=limit, cursor=cursor),
        **backend_options(request, scope),
    )
    return cursor_list(reply.evaluators_json, reply.next_cursor)


async def create_evaluator(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.CreateEvaluator(
        evals_pb2.CreateEvaluatorRequest(body_json=await request.body()),
        **backend_options(request, scope),
    )
    return json_response(reply.evaluator_json)


async def get_evaluator(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.GetEvaluator(
        evals_pb2.GetEvaluatorRequest(evaluator_id=request.path_params["evaluator_id"]),
        **backend_options(request, scope),
    )
    return json_response(reply.evaluator_json)


async def update_evaluator(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.UpdateEvaluator(
        evals_pb2.UpdateEvaluatorRequest(
            evaluator_id=request.path_params["evaluator_id"], body_json=await request.body()
        ),
        **backend_options(request, scope),
    )
    return json_response(reply.evaluator_json)


async def delete_evaluator(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.DeleteEvaluator(
        evals_pb2.DeleteEvaluatorRequest(evaluator_id=request.path_params["evaluator_id"]),
        **backend_options(request, scope),
    )
    return json_response(reply.deleted_json)


async def list_versions(request: Request, scope: ProjectScope) -> Response:
    limit, cursor = cursor_params(request)
    reply = await state_of(request).backends.evals.ListEvaluatorVersions(
        evals_pb2.ListEvaluatorVersionsRequest(
            evaluator_id=request.path_params["evaluator_id"], limit=limit, cursor=cursor
        ),
        **backend_options(request, scope),
    )
    return cursor_list(reply.versions_json, reply.next_cursor)


V2 = "/api/public/v2/evaluators"
ROUTES = [
    Route(V2, public_api_endpoint(list_evaluators), methods=["GET"]),
    Route(V2, public_api_endpoint(create_evaluator), methods=["POST"]),
    Route(f"{V2}/{{evaluator_id}}", public_api_endpoint(get_evaluator), methods=["GET"]),
    Route(f"{V2}/{{evaluator_id}}", public_api_endpoint(update_evaluator), methods=["PATCH"]),
    Route(f"{V2}/{{evaluator_id}}", public_api_endpoint(delete_evaluator), methods=["DELETE"]),
    Route(f"{V2}/{{evaluator_id}}/versions", public_api_endpoint(list_versions), methods=["GET"]),
]

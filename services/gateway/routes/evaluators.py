"""Evaluators, kept by the evals service: `/api/public/v2/evaluators[/{id}[/versions]]` as the
5.x SDK calls them, and the same evaluators in the shape of Langfuse's OpenAPI file under
`/api/public/unstable/evaluators[/{id}]` (page-numbered lists, a family named by `name`; the
evals service translates, services/evals/unstable.py). No SDK calls the unstable routes. Errors
in the `{message, code}` shape both parse (public_api_errors.py)."""

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import (
    backend_options,
    list_response,
    page_meta,
    page_params,
    query_int,
    state_of,
)
from services.gateway.routes.public_api_errors import public_api_endpoint


def cursor_params(request: Request) -> tuple[int, str]:
    """`limit` (default 50; 1-100 is checked by the backend) and the opaque `cursor`."""
    return query_int(request, "limit", 50), request.query_params.get("cursor", "")


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


def unstable_page(request: Request) -> common_pb2.PageRequest:
    """`page` (default 1) and `limit` (default 50) of the unstable lists."""
    page, limit = page_params(request, 50)
    return common_pb2.PageRequest(page=page, limit=limit)


def deleted(message: str) -> Response:
    """The unstable routes' deletion answer, `{"message": ...}`."""
    return Response(orjson.dumps({"message": message}), media_type="application/json")


async def list_unstable(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.ListEvaluators(
        evals_pb2.ListEvaluatorsRequest(unstable=True, page=unstable_page(request)),
        **backend_options(request, scope),
    )
    return list_response(reply.evaluators_json, page_meta(reply.meta))


async def create_unstable(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.CreateEvaluator(
        evals_pb2.CreateEvaluatorRequest(body_json=await request.body(), unstable=True),
        **backend_options(request, scope),
    )
    return json_response(reply.evaluator_json)


async def get_unstable(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.GetEvaluator(
        evals_pb2.GetEvaluatorRequest(evaluator_id=request.path_params["evaluator_id"],
                                      unstable=True),
        **backend_options(request, scope),
    )  # fmt: skip
    return json_response(reply.evaluator_json)


async def delete_unstable(request: Request, scope: ProjectScope) -> Response:
    await delete_evaluator(request, scope)
    return deleted("Evaluator successfully deleted")


V2 = "/api/public/v2/evaluators"
UNSTABLE = "/api/public/unstable/evaluators"
ROUTES = [
    Route(V2, public_api_endpoint(list_evaluators), methods=["GET"]),
    Route(V2, public_api_endpoint(create_evaluator), methods=["POST"]),
    Route(f"{V2}/{{evaluator_id}}", public_api_endpoint(get_evaluator), methods=["GET"]),
    Route(f"{V2}/{{evaluator_id}}", public_api_endpoint(update_evaluator), methods=["PATCH"]),
    Route(f"{V2}/{{evaluator_id}}", public_api_endpoint(delete_evaluator), methods=["DELETE"]),
    Route(f"{V2}/{{evaluator_id}}/versions", public_api_endpoint(list_versions), methods=["GET"]),
    Route(UNSTABLE, public_api_endpoint(list_unstable), methods=["GET"]),
    Route(UNSTABLE, public_api_endpoint(create_unstable), methods=["POST"]),
    Route(f"{UNSTABLE}/{{evaluator_id}}", public_api_endpoint(get_unstable), methods=["GET"]),
    Route(f"{UNSTABLE}/{{evaluator_id}}", public_api_endpoint(delete_unstable), methods=["DELETE"]),
]

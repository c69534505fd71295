"""Comments on traces, observations, sessions and prompts: `/api/public/comments[/{id}]`, kept by
the evals service, which checks the commented object with its owner before writing."""

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


async def create_comment(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.CreateComment(
        evals_pb2.CreateCommentRequest(body_json=await request.body()),
        **backend_options(request, scope),
    )
    return JsonResponse({"id": reply.comment_id})


async def list_comments(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    params = request.query_params
    reply = await state_of(request).backends.evals.ListComments(
        evals_pb2.ListCommentsRequest(
            page=common_pb2.PageRequest(page=page, limit=limit),
            object_type=params.get("objectType", ""),
            object_id=params.get("objectId", ""),
            author_user_id=params.get("authorUserId", ""),
        ),
        **backend_options(request, scope),
    )
    return list_response(reply.comments_json, page_meta(reply.meta))


async def get_comment(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.GetComment(
        evals_pb2.GetCommentRequest(comment_id=request.path_params["comment_id"]),
        **backend_options(request, scope),
    )
    return Response(reply.comment_json, media_type="application/json")


ROUTES = [
    Route("/api/public/comments", endpoint(create_comment), methods=["POST"]),
    Route("/api/public/comments", endpoint(list_comments), methods=["GET"]),
    Route("/api/public/comments/{comment_id}", endpoint(get_comment), methods=["GET"]),
]

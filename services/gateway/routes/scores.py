"""`POST /api/public/scores`: one score object (200 `{id}`) or, as Python SDK 5 sends, a JSON
array (202 when all were accepted, 207 with counts and messages otherwise). A public key alone
(Bearer) may call it, as browser feedback widgets do."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.ingestion.v1 import ingestion_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import call_metadata, endpoint, state_of
from services.gateway.errors import ApiError, JsonResponse


async def create_scores(request: Request, scope: ProjectScope) -> Response:
    body = await request.body()
    state = state_of(request)
    reply = await state.backends.ingestion.IngestScores(
        ingestion_pb2.IngestScoresRequest(body=body),
        metadata=call_metadata(request, scope),
        timeout=state.backend_timeout,
    )
    if not body.lstrip().startswith(b"["):
        if reply.errors:
            raise ApiError(400, f"Invalid request data: {reply.errors[0].message}")
        return JsonResponse({"id": reply.ids[0]})
    if not reply.errors:
        return JsonResponse({"message": "Accepted"}, status_code=202)
    return JsonResponse(
        {
            "accepted": len(reply.ids),
            "rejected": len(reply.errors),
            "errors": [{"message": f"score {e.id}: {e.message}"} for e in reply.errors],
        },
        status_code=207,
    )


ROUTES = [Route("/api/public/scores", endpoint(create_scores, scores_only=True), methods=["POST"])]

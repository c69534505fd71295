"""Scores. `POST /api/public/scores`: one score object (200 `{id}`) or, as Python SDK 5 sends, a
JSON array (202 when all were accepted, 207 with counts and messages otherwise); a public key alone
(Bearer) may call it, as browser feedback widgets do. Reads: v2 pages, v3 cursors."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.ingestion.v1 import ingestion_pb2
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
    state_of,
)
from services.gateway.errors import ApiError, JsonResponse


async def create_scores(request: Request, scope: ProjectScope) -> Response:
    body = await request.body()
    reply = await state_of(request).backends.ingestion.IngestScores(
        ingestion_pb2.IngestScoresRequest(body=body),
        **backend_options(request, scope),
    )
    if not body.lstrip().startswith(b"["):
        if reply.errors:
            error = reply.errors[0]
            if error.status != 400:  # 503: its score config could not be read, the client retries
                raise ApiError(error.status, error.message)
            raise ApiError(400, f"Invalid request data: {error.message}")
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


_V2_FILTERS = (
    "name", "source", "dataType", "environment", "configId", "queueId", "traceId",
    "observationId", "sessionId", "datasetRunId", "userId",
)  # fmt: skip
_V3_LIST_FILTERS = ("id", "name", "source", "dataType", "environment", "configId", "queueId")
_V3_FILTERS = ("traceId", "sessionId", "observationId")


async def list_scores_v2(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    filters = [
        query_pb2.Filter(key=name, values=request.query_params.getlist(name))
        for name in _V2_FILTERS
        if request.query_params.getlist(name)
    ]
    if request.query_params.get("scoreIds"):
        filters.append(query_pb2.Filter(key="id", values=query_csv(request, "scoreIds")))
    message = query_pb2.ListScoresRequest(
        page=common_pb2.PageRequest(page=page, limit=limit),
        time_range=query_time_range(request, "fromTimestamp", "toTimestamp"),
        filters=filters,
        filter_json=request.query_params.get("filter", ""),
    )
    reply = await state_of(request).backends.query.ListScores(
        message, **backend_options(request, scope)
    )
    return list_response(reply.scores_json, page_meta(reply.page_meta))


async def list_scores_v3(request: Request, scope: ProjectScope) -> Response:
    limit = query_int(request, "limit", 50)
    if not 1 <= limit <= 100:
        raise ApiError(400, "Invalid request data: limit must be between 1 and 100")
    filters = [query_pb2.Filter(key=n, values=query_csv(request, n)) for n in _V3_LIST_FILTERS
               if request.query_params.get(n)]  # fmt: skip
    filters += [query_pb2.Filter(key=n, values=[request.query_params[n]]) for n in _V3_FILTERS
                if request.query_params.get(n)]  # fmt: skip
    if request.query_params.get("observationId") and not request.query_params.get("traceId"):
        raise ApiError(400, "Invalid request data: observationId needs traceId")
    if experiments := query_csv(request, "experimentId"):
        # An experiment is a dataset run: its own scores carry its id as datasetRunId.
        filters.append(query_pb2.Filter(key="datasetRunId", values=experiments))
    message = query_pb2.ListScoresRequest(
        cursor=common_pb2.CursorRequest(cursor=request.query_params.get("cursor", ""), limit=limit),
        time_range=query_time_range(request, "fromTimestamp", "toTimestamp"),
        filters=filters,
    )
    reply = await state_of(request).backends.query.ListScores(
        message, **backend_options(request, scope)
    )
    meta: dict[str, object] = {"limit": limit}
    if reply.cursor_meta.next_cursor:
        meta["cursor"] = reply.cursor_meta.next_cursor
    return list_response(reply.scores_json, meta)


async def get_score(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.query.GetScore(
        query_pb2.GetScoreRequest(score_id=request.path_params["score_id"]),
        **backend_options(request, scope),
    )
    return Response(reply.score_json, media_type="application/json")


async def delete_score(request: Request, scope: ProjectScope) -> Response:
    await state_of(request).backends.query.DeleteScore(
        query_pb2.DeleteScoreRequest(score_id=request.path_params["score_id"]),
        **backend_options(request, scope),
    )
    return JsonResponse({"message": "Score deleted"}, status_code=202)


ROUTES = [
    Route("/api/public/scores", endpoint(create_scores, scores_only=True), methods=["POST"]),
    Route("/api/public/scores/{score_id}", endpoint(delete_score), methods=["DELETE"]),
    Route("/api/public/v2/scores", endpoint(list_scores_v2), methods=["GET"]),
    Route("/api/public/v2/scores/{score_id}", endpoint(get_score), methods=["GET"]),
    Route("/api/public/v3/scores", endpoint(list_scores_v3), methods=["GET"]),
]

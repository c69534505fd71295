"""QueryServicer: reads over ClickHouse, answered as the public API's JSON documents."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import grpc
import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from libs.common.cursors import decode_cursor, encode_cursor
from libs.common.errors import InvalidArgument, NotFound
from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.query.v1 import query_pb2, query_pb2_grpc
from libs.common.limits import is_id
from libs.common.scope import scope_from
from services.query import analytics
from services.query.deletions import DeletionNotices
from services.query.export_api import ExportApi
from services.query.filters import (
    OBSERVATION_FILTER_COLUMNS,
    SCORE_FILTER_COLUMNS,
    TRACE_FILTER_COLUMNS,
    TRACE_ORDER,
    Where,
    equality_filters,
    json_filters,
    order_by,
    storable,
)
from services.query.metrics import trace_metrics
from services.query.models import ModelCatalogs, ModelStore, model_document, new_entry
from services.query.store import DAYS_OF_TRACES, KEY_COLUMNS, SORT_KEYS, TraceStore
from services.query.views import (
    TRACE_GROUPS,
    V2_TRACE_GROUPS,
    full_trace_view,
    listed_trace_view,
    observation_v2_view,
    observation_view,
    score_v3_view,
    score_view,
    session_view,
    trace_view,
)


class QueryServicer(query_pb2_grpc.QueryServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        store: TraceStore,
        models: ModelStore,
        catalogs: ModelCatalogs,
        deletions: DeletionNotices,
        exports: ExportApi,
    ) -> None:
        self._store = store
        self._models = models
        self._catalogs = catalogs
        self._deletions = deletions
        self._exports = exports

    async def GetTrace(  # noqa: N802
        self, request: query_pb2.GetTraceRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.GetTraceResponse:
        project_id = scope_from(context).project_id
        # Three lookups at once (the store runs them on separate sessions).
        row, observation_rows, score_rows = await asyncio.gather(
            self._store.trace(project_id, request.trace_id),
            self._store.observations_of(project_id, request.trace_id),
            self._store.scores_of(project_id, request.trace_id),
        )
        if row is None:
            raise NotFound(f"Trace {request.trace_id} not found within authorized project")
        observations = [observation_view(o, project_id) for o in observation_rows]
        scores = [score_view(s, project_id) for s in score_rows]
        document = full_trace_view(row, project_id, observations, scores)
        return query_pb2.GetTraceResponse(trace_json=orjson.dumps(document))

    async def ListTraces(  # noqa: N802
        self, request: query_pb2.ListTracesRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.ListTracesResponse:
        project_id = scope_from(context).project_id
        page, limit = _page(request.page)
        where = _where(request, TRACE_FILTER_COLUMNS, "traces")
        order = order_by(request.order_by, TRACE_ORDER, "timestamp DESC, id DESC")
        groups = set(request.fields) or TRACE_GROUPS
        if unknown := groups - TRACE_GROUPS:
            expected = ", ".join(sorted(TRACE_GROUPS))
            raise InvalidArgument(f"Invalid fields: {', '.join(sorted(unknown))} ({expected})")
        rows, total = await self._store.page_of(
            "trace", project_id, where, order, limit, (page - 1) * limit
        )
        rollups = (
            await self._store.trace_rollups(project_id, [r["id"] for r in rows])
            if groups & {"observations", "scores", "metrics"}
            else {}
        )
        return query_pb2.ListTracesResponse(
            traces_json=[
                orjson.dumps(listed_trace_view(r, project_id, rollups.get(r["id"], {}), groups))
                for r in rows
            ],
            meta=_page_meta(page, limit, total),
        )

    async def ListObservations(  # noqa: N802
        self, request: query_pb2.ListObservationsRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.ListObservationsResponse:
        project_id = scope_from(context).project_id
        where = _where(request, OBSERVATION_FILTER_COLUMNS, "observations")
        trace_ids = {f.key: list(f.values) for f in request.filters}.get("traceId")
        if trace_ids and not request.filter_json:  # as _where reads them
            where.add(DAYS_OF_TRACES, keyed=True, traces=trace_ids)
        if request.HasField("cursor"):
            limit, offset = _cursor(request.cursor)
            rows, more = await self._store.window(
                "observation", project_id, where, "start_time DESC, id DESC", limit, offset
            )
            groups = set(request.fields) or {"core", "basic"}
            expand = set(request.expand_metadata)
            traces: dict[str, dict[str, Any]] = {}
            if groups & V2_TRACE_GROUPS and rows:
                trace_ids = sorted({r["trace_id"] for r in rows})
                loaded = await self._store.load("trace", project_id, trace_ids)
                traces = {t["id"]: t for t in loaded}
            documents = [
                observation_v2_view(r, project_id, groups, expand, traces.get(r["trace_id"]))
                for r in rows
            ]
            cursor = encode_cursor(offset + len(rows)) if more else ""
            return query_pb2.ListObservationsResponse(
                observations_json=[orjson.dumps(d) for d in documents],
                cursor_meta=common_pb2.CursorMeta(next_cursor=cursor),
            )
        page, limit = _page(request.page)
        known = _known_observations(request) if page == 1 else None
        rows = await self._store.observations_among(project_id, *known) if known else []
        if known and len(rows) <= limit:  # else (an id in many traces) as any other page
            total = len(rows)
        else:
            rows, total = await self._store.page_of(
                "observation", project_id, where, "start_time DESC, id DESC", limit,
                (page - 1) * limit,
            )  # fmt: skip
        return query_pb2.ListObservationsResponse(
            observations_json=[orjson.dumps(observation_view(r, project_id)) for r in rows],
            page_meta=_page_meta(page, limit, total),
        )

    async def GetSession(  # noqa: N802
        self, request: query_pb2.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.GetSessionResponse:
        project_id = scope_from(context).project_id
        sessions, _ = await self._store.sessions(project_id, [request.session_id], None, None, 1, 0)
        if not sessions:
            raise NotFound(f"Session {request.session_id} not found within authorized project")
        where = Where()
        where.add("session_id = {session:String}", session=request.session_id)
        traces, _ = await self._store.page_of(
            "trace", project_id, where, "timestamp ASC, id ASC", 10_000, 0
        )
        document = session_view(sessions[0], project_id)
        document["traces"] = [trace_view(t, project_id, [], [], 0.0, 0.0) for t in traces]
        return query_pb2.GetSessionResponse(session_json=orjson.dumps(document))

    async def ListSessions(  # noqa: N802
        self, request: query_pb2.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.ListSessionsResponse:
        project_id = scope_from(context).project_id
        page, limit = _page(request.page)
        time_range = request.time_range
        since = _moment(time_range.from_time) if time_range.HasField("from_time") else None
        until = _moment(time_range.to_time) if time_range.HasField("to_time") else None
        rows, total = await self._store.sessions(
            project_id, None, since, until, limit, (page - 1) * limit, list(request.environments)
        )
        return query_pb2.ListSessionsResponse(
            sessions_json=[orjson.dumps(session_view(r, project_id)) for r in rows],
            meta=_page_meta(page, limit, total),
        )

    async def DeleteTraces(  # noqa: N802
        self, request: query_pb2.DeleteTracesRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.DeleteTracesResponse:
        scope = scope_from(context)
        scope.require_project_access()
        trace_ids = list(request.trace_ids)
        if len(trace_ids) > _MAX_DELETE_IDS:
            raise InvalidArgument(f"At most {_MAX_DELETE_IDS} trace ids per request")
        for trace_id in trace_ids:
            _check_id(trace_id)
        await self._store.delete_traces(scope.project_id, trace_ids)
        await self._deletions.traces_deleted(scope.project_id, trace_ids)
        return query_pb2.DeleteTracesResponse()

    async def GetScore(  # noqa: N802
        self, request: query_pb2.GetScoreRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.GetScoreResponse:
        project_id = scope_from(context).project_id
        rows = await self._store.load("score", project_id, [request.score_id])
        if not rows:
            raise NotFound(f"Score {request.score_id} not found within authorized project")
        return query_pb2.GetScoreResponse(score_json=orjson.dumps(score_view(rows[0], project_id)))

    async def ListScores(  # noqa: N802
        self, request: query_pb2.ListScoresRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.ListScoresResponse:
        project_id = scope_from(context).project_id
        where = _where(request, SCORE_FILTER_COLUMNS, "scores")
        order = "timestamp DESC, id DESC"
        if request.HasField("cursor"):
            limit, offset = _cursor(request.cursor)
            rows, more = await self._store.window("score", project_id, where, order, limit, offset)
            return query_pb2.ListScoresResponse(
                scores_json=[orjson.dumps(score_v3_view(r, project_id)) for r in rows],
                cursor_meta=common_pb2.CursorMeta(
                    next_cursor=encode_cursor(offset + len(rows)) if more else ""
                ),
            )
        page, limit = _page(request.page)
        rows, total = await self._store.page_of(
            "score", project_id, where, order, limit, (page - 1) * limit
        )
        return query_pb2.ListScoresResponse(
            scores_json=[orjson.dumps(score_view(r, project_id)) for r in rows],
            page_meta=_page_meta(page, limit, total),
        )

    async def DeleteScore(  # noqa: N802
        self, request: query_pb2.DeleteScoreRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.DeleteScoreResponse:
        scope = scope_from(context)
        scope.require_project_access()
        if not await self._store.load("score", scope.project_id, [request.score_id]):
            raise NotFound(f"Score {request.score_id} not found within authorized project")
        await self._store.delete_score(scope.project_id, request.score_id)
        self._deletions.score_deleted(scope.project_id, request.score_id)
        return query_pb2.DeleteScoreResponse()

    async def GetObservation(  # noqa: N802
        self, request: query_pb2.GetObservationRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.GetObservationResponse:
        project_id = scope_from(context).project_id
        row = await self._store.observation(project_id, request.observation_id)
        if row is None:
            raise NotFound(
                f"Observation {request.observation_id} not found within authorized project"
            )
        document = observation_view(row, project_id)
        return query_pb2.GetObservationResponse(observation_json=orjson.dumps(document))

    async def ListModels(  # noqa: N802
        self, request: query_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.ListModelsResponse:
        project_id = scope_from(context).project_id
        page, limit = _page(request.page)
        entries = await self._entries(project_id)
        chosen = entries[(page - 1) * limit : page * limit]
        return query_pb2.ListModelsResponse(
            models_json=[orjson.dumps(model_document(e)) for e in chosen],
            meta=_page_meta(page, limit, len(entries)),
        )

    async def GetModel(  # noqa: N802
        self, request: query_pb2.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.GetModelResponse:
        project_id = scope_from(context).project_id
        for entry in await self._entries(project_id):
            if entry["id"] == request.model_id:
                return query_pb2.GetModelResponse(model_json=orjson.dumps(model_document(entry)))
        raise NotFound(f"Model {request.model_id} not found")

    async def CreateModel(  # noqa: N802
        self, request: query_pb2.CreateModelRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.CreateModelResponse:
        scope = scope_from(context)
        scope.require_project_access()
        try:
            body = orjson.loads(request.model_json)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument("Invalid request data: the body is not valid JSON") from exc
        entry = new_entry(body)
        await self._models.create(scope.project_id, entry)
        self._catalogs.forget(scope.project_id)
        document = model_document({**entry, "projectId": scope.project_id})
        return query_pb2.CreateModelResponse(model_json=orjson.dumps(document))

    async def DeleteModel(  # noqa: N802
        self, request: query_pb2.DeleteModelRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.DeleteModelResponse:
        scope = scope_from(context)
        scope.require_project_access()
        if not await self._models.delete(scope.project_id, request.model_id):
            raise NotFound(
                f"Model {request.model_id} not found (built-in models cannot be deleted)"
            )
        self._catalogs.forget(scope.project_id)
        return query_pb2.DeleteModelResponse()

    async def GetTraceMetrics(  # noqa: N802
        self, request: query_pb2.GetTraceMetricsRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.GetTraceMetricsResponse:
        project_id = scope_from(context).project_id
        traces = await trace_metrics(self._store, project_id, list(request.trace_ids))
        return query_pb2.GetTraceMetricsResponse(traces=traces)

    async def QueryMetrics(  # noqa: N802
        self, request: query_pb2.QueryMetricsRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.QueryMetricsResponse:
        project_id = scope_from(context).project_id
        if request.api_version not in (1, 2):
            raise InvalidArgument("api_version must be 1 or 2")
        rows = await analytics.answer(
            self._store, project_id, request.api_version, request.query_json
        )
        return query_pb2.QueryMetricsResponse(rows_json=orjson.dumps(rows))

    async def GetDailyMetrics(  # noqa: N802
        self, request: query_pb2.GetDailyMetricsRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.GetDailyMetricsResponse:
        project_id = scope_from(context).project_id
        page, limit = _page(request.page)
        given = {"name": [request.trace_name], "userId": [request.user_id],
                 "tags": list(request.tags), "environment": list(request.environments)}  # fmt: skip
        where = Where()
        equality_filters(where, TRACE_FILTER_COLUMNS, {k: v for k, v in given.items() if any(v)})
        _time_range(where, "timestamp", request.time_range)
        traces_sql, usage_sql = analytics.daily_sql(where)
        trace_rows, usage_rows = await asyncio.gather(
            self._store.aggregate(project_id, traces_sql, where.params),
            self._store.aggregate(project_id, usage_sql, where.params),
        )
        days = analytics.daily_documents(trace_rows, usage_rows)
        return query_pb2.GetDailyMetricsResponse(
            days_json=[orjson.dumps(d) for d in days[(page - 1) * limit : page * limit]],
            meta=_page_meta(page, limit, len(days)),
        )

    async def GetBlobStorageIntegration(  # noqa: N802
        self,
        request: query_pb2.GetBlobStorageIntegrationRequest,
        context: grpc.aio.ServicerContext,
    ) -> query_pb2.GetBlobStorageIntegrationResponse:
        documents = await self._exports.documents(scope_from(context).project_id)
        if documents is None:
            return query_pb2.GetBlobStorageIntegrationResponse()
        integration, status = documents
        return query_pb2.GetBlobStorageIntegrationResponse(
            integration_json=integration, status_json=status
        )

    async def UpsertBlobStorageIntegration(  # noqa: N802
        self,
        request: query_pb2.UpsertBlobStorageIntegrationRequest,
        context: grpc.aio.ServicerContext,
    ) -> query_pb2.UpsertBlobStorageIntegrationResponse:
        document = await self._exports.upsert(scope_from(context).project_id, request.body_json)
        return query_pb2.UpsertBlobStorageIntegrationResponse(integration_json=document)

    async def DeleteBlobStorageIntegration(  # noqa: N802
        self,
        request: query_pb2.DeleteBlobStorageIntegrationRequest,
        context: grpc.aio.ServicerContext,
    ) -> query_pb2.DeleteBlobStorageIntegrationResponse:
        await self._exports.delete(scope_from(context).project_id)
        return query_pb2.DeleteBlobStorageIntegrationResponse()

    async def _entries(self, project_id: str) -> list[dict[str, Any]]:
        """The project's models first, then the built-in ones."""
        return [*await self._models.entries(project_id), *self._catalogs.default_entries]


def _known_observations(
    request: query_pb2.ListObservationsRequest,
) -> tuple[list[str], list[str]] | None:
    """The trace ids and ids of a list request that only looks up known observations, or None."""
    given = {f.key: list(f.values) for f in request.filters}
    if (
        request.filter_json
        or request.HasField("time_range")
        or set(given) != {"traceId", "id"}
        or not all(given.values())
    ):
        return None
    return given["traceId"], given["id"]


def _where(
    request: query_pb2.ListTracesRequest
    | query_pb2.ListObservationsRequest
    | query_pb2.ListScoresRequest,
    columns: dict[str, tuple[str, str]],
    table: str,
) -> Where:
    """A list request's filters: its `filter` parameter when given (which, as in Langfuse,
    replaces the others), else its query-parameter filters and time range."""
    where = Where()
    if request.filter_json:
        json_filters(where, columns, request.filter_json)
    else:
        given = {f.key: list(f.values) for f in request.filters}
        equality_filters(where, columns, given, KEY_COLUMNS[table])
        _time_range(where, SORT_KEYS[table][0], request.time_range)
    return where


def _time_range(where: Where, column: str, time_range: query_pb2.TimeRange) -> None:
    if time_range.HasField("from_time"):
        since = _moment(time_range.from_time)
        where.add(f"{column} >= {{since:DateTime64(3, 'UTC')}}", since=since)
    if time_range.HasField("to_time"):
        until = _moment(time_range.to_time)
        where.add(f"{column} < {{until:DateTime64(3, 'UTC')}}", until=until)


def _moment(stamp: Timestamp) -> datetime:
    """A time bound as a datetime the columns can compare with."""
    try:
        return storable(stamp.ToDatetime(tzinfo=UTC))
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument("Timestamp out of range") from exc


# The callers' arguments are checked here too (the gateway checks them first): a page of 0
# would divide by zero, an unbounded limit would answer megabytes.
_MAX_PAGE_LIMIT = 100
_MAX_CURSOR_LIMIT = 1000
_MAX_DELETE_IDS = 1000


def _page(page: common_pb2.PageRequest) -> tuple[int, int]:
    if page.page < 1 or not 1 <= page.limit <= _MAX_PAGE_LIMIT:
        raise InvalidArgument(f"page must be ≥ 1 and limit between 1 and {_MAX_PAGE_LIMIT}")
    return page.page, page.limit


def _cursor(cursor: common_pb2.CursorRequest) -> tuple[int, int]:
    """A cursor request's limit and the offset its cursor stands for."""
    if not 1 <= cursor.limit <= _MAX_CURSOR_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {_MAX_CURSOR_LIMIT}")
    return cursor.limit, decode_cursor(cursor.cursor)


def _check_id(value: str) -> None:
    """Ids as ingestion accepts them (libs/common/limits.py): a trace that could be stored can be
    deleted, and nothing else reaches the event log's cleaner."""
    if not is_id(value):
        raise InvalidArgument(f"Invalid trace id: {value!r}")


def _page_meta(page: int, limit: int, total: int) -> common_pb2.PageMeta:
    return common_pb2.PageMeta(
        page=page, limit=limit, total_items=total, total_pages=-(-total // limit)
    )

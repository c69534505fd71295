"""Experiments and their results, read from the runs and run items in PostgreSQL: GET
/experiments and /experiment-items as the 5.x SDK's `api.experiments` calls them, and a run's
results with their numbers. What lives in ClickHouse (each trace's latency, cost and scores; the
runs' own scores, `datasetRunId` = the run id) comes from the query service over gRPC.

An experiment is a run (with or without a dataset); its start and end are its items' within the
asked range, so runs without items in the range are not listed. An item's time is its root
span's start, or its creation for run items no span has described (POST /dataset-run-items)."""

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
import orjson

from libs.common.cursors import decode_cursor, encode_cursor
from libs.common.errors import InvalidArgument, NotFound, Unavailable
from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.gen.obs.query.v1 import query_pb2, query_pb2_grpc
from libs.common.scope import ProjectScope, read_cutoff

QUERY_TIMEOUT_SECONDS = 20.0
EXPERIMENT_GROUPS = {"core", "metadata", "scores"}
ITEM_GROUPS = {"core", "dataset", "io", "metadata", "itemMetadata", "experimentMetadata", "scores"}
_DEFAULT_ITEM_GROUPS = {"core", "dataset"}
_EXPERIMENT_COLUMNS = {"id": "r.id", "name": "r.name", "datasetId": "r.dataset_id"}
_ITEM_COLUMNS = {
    "experimentId": "r.id", "experimentName": "r.name",
    "experimentItemId": "i.dataset_item_id", "datasetId": "r.dataset_id",
}  # fmt: skip
_ITEM_TIME = "coalesce(i.start_time, i.created_at)"
# JSON columns as text, whatever codecs the pool has.
_ITEM_SELECT = (
    "i.id, i.dataset_run_id, i.dataset_item_id, i.trace_id, i.observation_id, i.created_at,"
    " i.start_time, i.end_time, i.level, i.environment, i.input::text AS input,"
    " i.output::text AS output, i.expected_output::text AS expected_output,"
    " i.metadata::text AS metadata, i.item_metadata::text AS item_metadata, i.item_version,"
    " r.name AS run_name, r.dataset_id, r.description AS run_description,"
    " r.metadata::text AS run_metadata"
)
# Langfuse's string operators, with the column and parameter filled in.
_STRING_OPERATORS = {
    "=": "{c} = {p}",
    "contains": "strpos({c}, {p}) > 0",
    "does not contain": "strpos({c}, {p}) = 0",
    "starts with": "starts_with({c}, {p})",
    "ends with": "right({c}, length({p})) = {p}",
}


@dataclass
class _Where:
    """SQL conditions joined with AND and their positional parameters ($1 is the project)."""

    params: list[Any]
    conditions: list[str] = field(default_factory=list)

    def param(self, value: Any) -> str:
        # PostgreSQL text cannot hold NUL: a client mistake, not a store error.
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise InvalidArgument("Invalid request data: text must not contain NUL")
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, condition: str) -> None:
        self.conditions.append(condition)

    def any_of(self, column: str, values: list[str]) -> None:
        if values:
            self.add(f"{column} = ANY({self.param(values)}::text[])")

    def sql(self) -> str:
        return " AND ".join(self.conditions)


class ExperimentReads:
    def __init__(self, pool: asyncpg.Pool, query: query_pb2_grpc.QueryServiceStub) -> None:
        self._pool = pool
        self._query = query

    async def list_experiments(
        self, scope: ProjectScope, request: evals_pb2.ListExperimentsRequest
    ) -> evals_pb2.ListExperimentsResponse:
        groups = _groups(request.fields, EXPERIMENT_GROUPS, {"core"})
        where = _where_items(scope, request, _EXPERIMENT_COLUMNS)
        where.any_of("r.id", list(request.ids))
        where.any_of("r.name", list(request.names))
        where.any_of("r.dataset_id", list(request.dataset_ids))
        limit, offset = _limit(request.cursor), decode_cursor(request.cursor.cursor)
        rows = await self._pool.fetch(
            "SELECT r.id, r.name, r.description, r.dataset_id, r.metadata::text AS metadata,"
            f" min({_ITEM_TIME}) AS start_time,"
            f" max(coalesce(i.end_time, {_ITEM_TIME})) AS end_time, count(*) AS item_count"
            " FROM dataset_run_items i JOIN dataset_runs r"
            " ON r.project_id = i.project_id AND r.id = i.dataset_run_id"
            f" WHERE {where.sql()} GROUP BY r.project_id, r.id"
            f" ORDER BY end_time DESC, r.id LIMIT {limit + 1} OFFSET {offset}",
            *where.params,
        )
        page = rows[:limit]
        scores = {}
        if "scores" in groups:
            ids = [r["id"] for r in page]
            scores = await run_scores(self._query, scope, ids, request.score_limit)
        documents = []
        for row in page:
            document = {
                "id": row["id"],
                "name": row["name"],
                "description": row["description"],
                "startTime": iso(row["start_time"]),
                "endTime": iso(row["end_time"]),
                "itemCount": row["item_count"],
                "datasetId": row["dataset_id"],
            }
            if "metadata" in groups:
                document["metadata"] = _loads(row["metadata"]) or {}
            if "scores" in groups:
                document["scores"] = scores.get(row["id"], [])
            documents.append(orjson.dumps(document))
        return evals_pb2.ListExperimentsResponse(
            experiments_json=documents, meta=_next(offset, limit, len(rows))
        )

    async def list_items(
        self, scope: ProjectScope, request: evals_pb2.ListExperimentItemsRequest
    ) -> evals_pb2.ListExperimentItemsResponse:
        groups = _groups(request.fields, ITEM_GROUPS, _DEFAULT_ITEM_GROUPS)
        where = _where_items(scope, request, _ITEM_COLUMNS)
        where.any_of("r.id", list(request.experiment_ids))
        where.any_of("r.name", list(request.experiment_names))
        where.any_of("i.dataset_item_id", list(request.experiment_item_ids))
        where.any_of("r.dataset_id", list(request.dataset_ids))
        limit, offset = _limit(request.cursor), decode_cursor(request.cursor.cursor)
        rows = await self._pool.fetch(
            f"SELECT {_ITEM_SELECT} FROM dataset_run_items i JOIN dataset_runs r"
            " ON r.project_id = i.project_id AND r.id = i.dataset_run_id"
            f" WHERE {where.sql()} ORDER BY {_ITEM_TIME} DESC, i.id"
            f" LIMIT {limit + 1} OFFSET {offset}",
            *where.params,
        )
        page = rows[:limit]
        metrics = {}
        if "scores" in groups:
            metrics = await trace_metrics(self._query, scope, [r["trace_id"] for r in page])
        score_limit = _score_limit(request.score_limit)
        documents = []
        for row in page:
            document = item_document(row, groups)
            if "scores" in groups:
                trace = metrics.get(row["trace_id"])
                document["scores"] = trace["scores"][:score_limit] if trace else []
            documents.append(orjson.dumps(document))
        return evals_pb2.ListExperimentItemsResponse(
            items_json=documents, meta=_next(offset, limit, len(rows))
        )

    async def run_results(self, scope: ProjectScope, run_id: str) -> dict[str, Any]:
        """The run with each item's numbers and the run's aggregates (see `run_numbers`)."""
        if "\x00" in run_id:
            raise NotFound(f"Dataset run {run_id!r} not found")
        run = await self._pool.fetchrow(
            "SELECT id, name, dataset_id FROM dataset_runs WHERE project_id = $1 AND id = $2",
            scope.project_id,
            run_id,
        )
        if run is None:
            raise NotFound(f"Dataset run {run_id} not found")
        items = await self._pool.fetch(
            "SELECT id, dataset_item_id, trace_id, observation_id FROM dataset_run_items"
            " WHERE project_id = $1 AND dataset_run_id = $2"
            " AND ($3::timestamptz IS NULL OR created_at >= $3) ORDER BY created_at, id",
            scope.project_id,
            run_id,
            read_cutoff(),
        )
        documents = [
            {
                "id": item["id"],
                "datasetItemId": item["dataset_item_id"],
                "traceId": item["trace_id"],
                "observationId": item["observation_id"],
            }
            for item in items
        ]
        results = {"runId": run["id"], "runName": run["name"], "datasetId": run["dataset_id"]}
        aggregates = await run_numbers(self._query, scope, run_id, documents)
        return {**results, "items": documents, **aggregates}


async def run_numbers(
    query: query_pb2_grpc.QueryServiceStub,
    scope: ProjectScope,
    run_id: str,
    items: list[dict[str, Any]],
) -> dict[str, Any]:
    """A run's numbers: `items` (run item documents with `traceId`) each gain their trace's
    `latency` (s), `totalCost` (USD) and `scores` (null, null and [] while the trace is not
    stored); returned are the run's `countRunItems`, `avgLatency`, `totalCost`, `avgTotalCost`,
    `avgScores` (mean of each numeric or boolean score over the items' traces) and `runScores`
    (the run's own scores, `datasetRunId` = its id)."""
    metrics = await trace_metrics(query, scope, [item["traceId"] for item in items])
    scores = await run_scores(query, scope, [run_id], 50)
    return {**numbers(items, metrics), "runScores": scores.get(run_id, [])}


async def trace_metrics(
    query: query_pb2_grpc.QueryServiceStub, scope: ProjectScope, trace_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Each stored trace's latency, total cost and scores, by trace id."""
    if not trace_ids:
        return {}
    try:
        reply = await query.GetTraceMetrics(
            query_pb2.GetTraceMetricsRequest(trace_ids=trace_ids),
            metadata=scope.metadata(),
            timeout=QUERY_TIMEOUT_SECONDS,
        )
    except grpc.aio.AioRpcError as exc:
        raise Unavailable("The traces' numbers could not be read") from exc
    return {
        t.trace_id: {
            "latency": t.latency,
            "totalCost": t.total_cost,
            "scores": [orjson.loads(s) for s in t.scores_json],
        }
        for t in reply.traces
    }


async def run_scores(
    query: query_pb2_grpc.QueryServiceStub,
    scope: ProjectScope,
    run_ids: list[str],
    score_limit: int,
) -> dict[str, list[dict[str, Any]]]:
    """Scores attached to runs (`datasetRunId`), newest first, at most `score_limit` each."""
    if not run_ids:
        return {}
    per_run = _score_limit(score_limit)
    try:
        reply = await query.ListScores(
            query_pb2.ListScoresRequest(
                # The query service's cap: the newest 1000 scores of these runs.
                cursor=common_pb2.CursorRequest(limit=min(per_run * len(run_ids), 1000)),
                filters=[query_pb2.Filter(key="datasetRunId", values=run_ids)],
            ),
            metadata=scope.metadata(),
            timeout=QUERY_TIMEOUT_SECONDS,
        )
    except grpc.aio.AioRpcError as exc:
        raise Unavailable("The runs' scores could not be read") from exc
    scores: dict[str, list[dict[str, Any]]] = {}
    for raw in reply.scores_json:
        score = orjson.loads(raw)
        listed = scores.setdefault(score["subject"]["id"], [])
        if len(listed) < per_run:
            listed.append(score)
    return scores


def numbers(items: list[dict[str, Any]], metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The pure part of `run_numbers`."""
    latencies, costs, values = [], [], {}
    for item in items:
        trace = metrics.get(item["traceId"])
        item.update(latency=None, totalCost=None, scores=[])
        if trace is None:
            continue
        item.update(trace)
        latencies.append(trace["latency"])
        costs.append(trace["totalCost"])
        for score in trace["scores"]:
            if score["dataType"] in ("NUMERIC", "BOOLEAN") and score["value"] is not None:
                values.setdefault(score["name"], []).append(float(score["value"]))
    return {
        "countRunItems": len(items),
        "avgLatency": statistics.fmean(latencies) if latencies else None,
        "totalCost": sum(costs),
        "avgTotalCost": statistics.fmean(costs) if costs else None,
        "avgScores": {name: statistics.fmean(v) for name, v in sorted(values.items())},
    }


def item_document(row: asyncpg.Record, groups: set[str]) -> dict[str, Any]:
    """An ExperimentItem with the field groups asked for (core always)."""
    start = row["start_time"] or row["created_at"]
    document: dict[str, Any] = {
        "id": row["observation_id"] or row["id"],
        "traceId": row["trace_id"],
        "startTime": iso(start),
        "endTime": iso(row["end_time"]),
        "level": row["level"] or "DEFAULT",
        "environment": row["environment"] or "default",
        "experimentId": row["dataset_run_id"],
        "experimentName": row["run_name"],
        "experimentItemId": row["dataset_item_id"],
    }
    if "dataset" in groups:
        document["experimentDatasetId"] = row["dataset_id"]
        document["experimentItemVersion"] = iso(row["item_version"])
    if "io" in groups:
        document["input"] = _loads(row["input"])
        document["output"] = _loads(row["output"])
        document["expectedOutput"] = _loads(row["expected_output"])
    if "metadata" in groups:
        document["metadata"] = _loads(row["metadata"])
    if "itemMetadata" in groups:
        document["experimentItemMetadata"] = _loads(row["item_metadata"])
    if "experimentMetadata" in groups:
        document["experimentMetadata"] = _loads(row["run_metadata"])
        document["experimentDescription"] = row["run_description"]
    return document


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _where_items(
    scope: ProjectScope,
    request: evals_pb2.ListExperimentsRequest | evals_pb2.ListExperimentItemsRequest,
    columns: dict[str, str],
) -> _Where:
    """The project, the time range on the items, and the `filter` conditions."""
    if not request.HasField("from_start_time"):
        raise InvalidArgument("Invalid request data: fromStartTime is required")
    where = _Where([scope.project_id])
    where.add("i.project_id = $1")
    where.add(f"{_ITEM_TIME} >= {where.param(request.from_start_time.ToDatetime(tzinfo=UTC))}")
    if request.HasField("to_start_time"):
        where.add(f"{_ITEM_TIME} < {where.param(request.to_start_time.ToDatetime(tzinfo=UTC))}")
    if request.filter_json:
        _filter_conditions(where, columns, request.filter_json)
    if (cutoff := read_cutoff()) is not None:  # items older than the retention (retention.py)
        where.add(f"i.created_at >= {where.param(cutoff)}")
    return where


def _filter_conditions(where: _Where, columns: dict[str, str], raw: str) -> None:
    """Langfuse's `filter` JSON on the listed columns: string, stringOptions/categoryOptions
    (any of, none of) and null conditions; anything else is a 400 naming it."""
    try:
        conditions = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument("Invalid request data: filter is not valid JSON") from exc
    if not isinstance(conditions, list):
        raise InvalidArgument("Invalid request data: filter must be a JSON array")
    for condition in conditions:
        if not isinstance(condition, dict) or condition.get("column") not in columns:
            name = condition.get("column") if isinstance(condition, dict) else condition
            raise InvalidArgument(f"Invalid request data: filter column {name!r} is not supported")
        column = columns[condition["column"]]
        kind, operator, value = (
            condition.get("type"),
            condition.get("operator"),
            condition.get("value"),
        )
        if kind == "string" and operator in _STRING_OPERATORS and isinstance(value, str):
            where.add(_STRING_OPERATORS[operator].format(c=column, p=where.param(value)))
        elif (
            kind in ("stringOptions", "categoryOptions")
            and operator in ("any of", "none of")
            and isinstance(value, list)
            and all(isinstance(v, str) for v in value)
        ):
            test = f"{column} = ANY({where.param(value)}::text[])"
            where.add(test if operator == "any of" else f"NOT coalesce({test}, false)")
        elif kind == "null" and operator in ("is null", "is not null"):
            where.add(f"{column} {operator.upper()}")
        else:
            raise InvalidArgument(
                f"Invalid request data: filter {kind!r} {operator!r} on {condition['column']!r}"
                " is not supported"
            )


def _groups(given: Any, known: set[str], default: set[str]) -> set[str]:
    groups = set(given) or default
    if unknown := groups - known:
        raise InvalidArgument(f"Invalid request data: unknown fields {', '.join(sorted(unknown))}")
    return groups | {"core"}


def _limit(cursor: common_pb2.CursorRequest) -> int:
    limit = cursor.limit or 50
    if not 1 <= limit <= 100:
        raise InvalidArgument("Invalid request data: limit must be between 1 and 100")
    return limit


def _score_limit(score_limit: int) -> int:
    if not 0 <= score_limit <= 50:
        raise InvalidArgument("Invalid request data: scoreLimit must be between 1 and 50")
    return score_limit or 50


def _next(offset: int, limit: int, fetched: int) -> common_pb2.CursorMeta:
    return common_pb2.CursorMeta(
        next_cursor=encode_cursor(offset + limit) if fetched > limit else ""
    )


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)

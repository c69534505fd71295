"""Langfuse's metrics API (`/metrics`, `/v2/metrics`, `/metrics/daily`) as ClickHouse SQL.

A metrics query (JSON) names a view, dimensions, metrics (a measure and an aggregation), filters,
an optional time dimension and a time range. It is checked against the view and turned into one
SELECT over the current rows of the view's table (FINAL, tombstones left out, the project bound as
a parameter); every client value is a bound `{name:Type}` parameter, every name in the SQL comes
from the views below. The views take their fields and measures from services/query/entities.py,
so a field means the same column in list filters, metrics filters and metrics dimensions.
`build` is pure; `answer` runs a query, reading whole past days of the observations view from
pre-aggregated rollups where it can (the fast path, below) and the rest live.
"""

import asyncio
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from libs.common.errors import InvalidArgument
from libs.common.scope import read_cutoff
from services.query.entities import (
    BOOLEAN_SCORES,
    CATEGORICAL,
    FILTER,
    HIGH,
    NUMERIC,
    OBSERVATION,
    RELATIONS,
    SCORE,
    TRACE,
    V2,
    Entity,
    Measure,
    bare_column,
)
from services.query.filters import Where, add_conditions, storable
from services.query.rows import iso, parse_time
from services.query.store import TraceStore, current

AGGREGATIONS = ("sum", "avg", "count", "max", "min", "p50", "p75", "p90", "p95", "p99", "histogram")
_QUANTILES = {"p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}
# A time bucket as DateTime('UTC') (WITH FILL needs one type for the bucket and its bounds).
_BUCKETS = {
    "minute": "toStartOfMinute({})", "hour": "toStartOfHour({})", "day": "toStartOfDay({})",
    "week": "toMonday({})", "month": "toStartOfMonth({})",
}  # fmt: skip
DEFAULT_ROW_LIMIT, MAX_ROW_LIMIT = 100, 1000
DEFAULT_BINS, MAX_BINS = 10, 100
TIME_KEY = "time_dimension"


@dataclass(frozen=True)
class View:
    table: str
    time_field: str
    # Filterable fields: API name -> (column or expression, kind), as entities.py describes them.
    fields: dict[str, tuple[str, str]]
    dimensions: tuple[str, ...]
    measures: dict[str, Measure]
    high_cardinality: tuple[str, ...] = ()  # dimensions v2 refuses (filters take them)
    v2_only: tuple[str, ...] = ()
    segment: str = "1"  # which rows of the table the view holds


def _view(entity: Entity, name: str, segment: str = "1") -> View:
    """The metrics view `name` of an entity: the fields and measures its description gives it."""
    fields = entity.metrics_fields(name)
    return View(
        table=entity.table,
        time_field=entity.time_field,
        fields={f.name: (f.column, f.kind) for f in fields},
        dimensions=tuple(f.name for f in fields if f.metrics != FILTER),
        measures=entity.metrics_measures(name),
        high_cardinality=tuple(f.name for f in fields if f.metrics == HIGH),
        v2_only=tuple(f.name for f in fields if f.metrics == V2),
        segment=segment,
    )


VIEWS = {
    "traces": _view(TRACE, "traces"),
    "observations": _view(OBSERVATION, "observations"),
    NUMERIC: _view(SCORE, NUMERIC, "data_type IN ('NUMERIC', 'BOOLEAN')"),
    BOOLEAN_SCORES: _view(SCORE, BOOLEAN_SCORES, "data_type = 'BOOLEAN'"),
    CATEGORICAL: _view(SCORE, CATEGORICAL, "data_type = 'CATEGORICAL'"),
}
V2_VIEWS = ("observations", "scores-numeric", "scores-boolean", "scores-categorical")

_JOINS = {
    "trace_rollup": (
        "SELECT trace_id AS r_trace_id, count() AS r_observations, min(start_time) AS r_first,"
        " max(coalesce(end_time, start_time)) AS r_last, sum(usage_details['total']) AS r_tokens,"
        " toFloat64(sum(coalesce(total_cost, 0))) AS r_cost"
        f" FROM {current('observations', '1')} GROUP BY trace_id",
        "r.r_trace_id = base.id",
    ),
    "trace_scores": (
        "SELECT trace_id AS sc_key, count() AS sc_count"
        f" FROM {current('scores', 'trace_id IS NOT NULL')} GROUP BY trace_id",
        "sc.sc_key = base.id",
    ),
    "observation_scores": (
        "SELECT observation_id AS sc_key, count() AS sc_count"
        f" FROM {current('scores', 'observation_id IS NOT NULL')} GROUP BY observation_id",
        "sc.sc_key = base.id",
    ),
}
_JOIN_ALIASES = {"trace_rollup": "r", "trace_scores": "sc", "observation_scores": "sc"}


# Rows of related tables missing (a trace not yet written) read as null, not as empty values.
# FINAL needs no merging across partitions: every table is partitioned by the month of a time
# that never changes for an entity, so all versions of a row share a partition (and
# ReplacingMergeTree only ever replaces within one); this halves the cost of FINAL.
_SETTINGS = "SETTINGS join_use_nulls = 1, do_not_merge_across_partitions_select_final = 1"


@dataclass
class MetricsQuery:
    """A checked query: its SQL, its parameters, and how to read its rows back."""

    sql: str
    params: dict[str, Any]
    time_dimension: bool = False
    metric_keys: list[str] = field(default_factory=list)
    rollup: "Rollup | None" = None  # when whole days of it may be read from the rollups


def build(version: int, raw: str) -> MetricsQuery:
    """The SQL of a metrics query (the JSON of the `query` parameter); 400 naming what is wrong."""
    query = _parse(raw)
    views = V2_VIEWS if version == 2 else tuple(VIEWS)
    view_name = query.get("view")
    if not isinstance(view_name, str) or view_name not in views:
        raise InvalidArgument(
            f"Invalid query: unknown view {view_name!r} (one of: {', '.join(views)})"
        )
    view = VIEWS[str(view_name)]
    since, until = _time(query, "fromTimestamp"), _time(query, "toTimestamp")
    if since >= until:
        raise InvalidArgument("Invalid query: fromTimestamp must be before toTimestamp")
    config = _object(query, "config")
    row_limit = _bounded(config, "row_limit", DEFAULT_ROW_LIMIT, MAX_ROW_LIMIT)
    bins = _bounded(config, "bins", DEFAULT_BINS, MAX_BINS)
    dimensions = _dimensions(query, view, version)
    metrics = _metrics(query, view)
    granularity = _granularity(query, since, until)

    where = Where()
    filters = _list(query, "filters")
    add_conditions(where, {**view.fields, _time_column(view): view.fields[view.time_field]},
                   filters)  # fmt: skip
    filtered = Where(list(where.conditions), dict(where.params))
    time_column = bare_column(view.fields[view.time_field][0])
    where.add(f"{time_column} >= {{m_from:DateTime64(3, 'UTC')}}", m_from=storable(since))
    where.add(f"{time_column} <= {{m_to:DateTime64(3, 'UTC')}}", m_to=storable(until))
    where.add(view.segment)

    select, group, joins = [], [], set()
    for name in dimensions:
        column, related = _dimension_sql(view.fields[name][0])
        joins |= related
        select.append(f"{column} AS `{name}`")
        group.append(f"`{name}`")
    if granularity:
        select.append(f"{_bucket(granularity, time_column)} AS {TIME_KEY}")
        group.append(TIME_KEY)
    keys = []
    for measure_name, aggregation in metrics:
        measure = view.measures[measure_name]
        joins |= set(measure.joins)
        key = f"{aggregation}_{measure_name}"
        select.append(f"{_aggregate(measure, aggregation)} AS `{key}`")
        keys.append(key)
    params = dict(where.params)
    if any(aggregation == "histogram" for _, aggregation in metrics):
        params["m_bins"] = bins
    order = _order_by(query, dimensions, keys, granularity is not None)
    fill = ""
    if (
        granularity
        and not query.get("orderBy")
        and _buckets(since, until, granularity) <= row_limit
    ):
        start = _bucket(granularity, "{m_from:DateTime64(3, 'UTC')}")
        fill = (
            f" WITH FILL FROM {start} TO toDateTime({{m_to:DateTime64(3, 'UTC')}}, 'UTC')"
            f" STEP INTERVAL 1 {granularity.upper()}"
        )
    sql = (
        f"SELECT {', '.join(select)}"
        f" FROM (SELECT * FROM {current(view.table, where.sql())}) AS base"
        f"{''.join(_join(name) for name in sorted(joins))}"
        f"{' GROUP BY ' + ', '.join(group) if group else ''}"
        f"{' ORDER BY ' + order if order else ''}{fill}"
        f" LIMIT {{m_limit:UInt32}} {_SETTINGS}"
    )
    params["m_limit"] = row_limit
    rollup = None
    if table := _rollup_table(view_name, dimensions, metrics, filters, granularity):
        tail = f"{' ORDER BY ' + order if order else ''}{fill} LIMIT {{m_limit:UInt32}}"
        on_traces = Where()
        if table.traces:  # every filter is the trace's: met by joining the trace (live)...
            add_conditions(on_traces, _BARE_TRACE_FIELDS, filters)
            filtered = Where()
            if table.traces == ROLLED:  # ...and by its fields as the rollups keep them
                add_conditions(filtered, _ROLLED_TRACE_FIELDS, filters)
        rollup = Rollup(
            table,
            dimensions,
            granularity,
            metrics,
            filtered,
            on_traces,
            since,
            until,
            tail,
            row_limit,
        )
    return MetricsQuery(sql, params, granularity is not None, keys, rollup)


def result_rows(query: MetricsQuery, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as the API answers them: time buckets in ISO 8601, NaN (an empty average) as null."""
    for row in rows:
        if query.time_dimension:
            row[TIME_KEY] = iso(row[TIME_KEY])
        for key in query.metric_keys:
            value = row.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                row[key] = None
            elif not isinstance(value, int | float | list | None):
                row[key] = float(value)  # Decimal from the native driver
    return rows


def _parse(raw: str) -> dict[str, Any]:
    try:
        query = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument("Invalid query: the query parameter is not valid JSON") from exc
    if not isinstance(query, dict):
        raise InvalidArgument("Invalid query: expected a JSON object")
    return query


def _time(query: dict[str, Any], name: str) -> datetime:
    value = query.get(name)
    try:
        moment = parse_time(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidArgument(f"Invalid query: {name} is required, an ISO 8601 timestamp")
    return moment


def _object(query: dict[str, Any], name: str) -> dict[str, Any]:
    value = query.get(name) or {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"Invalid query: {name} must be an object")
    return value


def _list(query: dict[str, Any], name: str) -> list[Any]:
    value = query.get(name) or []
    if not isinstance(value, list):
        raise InvalidArgument(f"Invalid query: {name} must be an array")
    return value


def _bounded(config: dict[str, Any], name: str, default: int, highest: int) -> int:
    value = config.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= highest:
        raise InvalidArgument(
            f"Invalid query: config.{name} must be an integer from 1 to {highest}"
        )
    return value


def _dimensions(query: dict[str, Any], view: View, version: int) -> list[str]:
    allowed = [d for d in view.dimensions if version == 2 or d not in view.v2_only]
    if version == 2:
        allowed = [d for d in allowed if d not in view.high_cardinality]
    names = []
    for entry in _list(query, "dimensions"):
        name = entry.get("field") if isinstance(entry, dict) else None
        if version == 2 and name in view.high_cardinality:
            raise InvalidArgument(
                f"Invalid query: dimension {name!r} has too high a cardinality for the v2 metrics"
                " API; filter on it instead"
            )
        if name not in allowed:
            raise InvalidArgument(
                f"Invalid query: unknown dimension {name!r} (one of: {', '.join(allowed)})"
            )
        if name not in names:
            names.append(str(name))
    return names


def _metrics(query: dict[str, Any], view: View) -> list[tuple[str, str]]:
    metrics: list[tuple[str, str]] = []
    for entry in _list(query, "metrics"):
        entry = entry if isinstance(entry, dict) else {}
        measure, aggregation = entry.get("measure"), entry.get("aggregation")
        if not isinstance(measure, str) or measure not in view.measures:
            raise InvalidArgument(
                f"Invalid query: unknown measure {measure!r} (one of: {', '.join(view.measures)})"
            )
        allowed = ("count", "sum") if view.measures[str(measure)].distinct else AGGREGATIONS
        if aggregation not in allowed:
            raise InvalidArgument(
                f"Invalid query: unknown aggregation {aggregation!r} for {measure!r}"
                f" (one of: {', '.join(allowed)})"
            )
        if (measure, aggregation) not in metrics:
            metrics.append((str(measure), str(aggregation)))
    if not metrics:
        raise InvalidArgument("Invalid query: metrics must name at least one measure")
    return metrics


def _granularity(query: dict[str, Any], since: datetime, until: datetime) -> str | None:
    time_dimension = query.get("timeDimension")
    if time_dimension is None:
        return None
    granularity = time_dimension.get("granularity") if isinstance(time_dimension, dict) else None
    if granularity == "auto":
        hours = (until - since).total_seconds() / 3600  # about 50 buckets, as Langfuse picks
        return next(g for limit, g in _AUTO if hours < limit)
    if not isinstance(granularity, str) or granularity not in _BUCKETS:
        raise InvalidArgument(
            f"Invalid query: unknown granularity {granularity!r}"
            f" (one of: auto, {', '.join(_BUCKETS)})"
        )
    return str(granularity)


def _buckets(since: datetime, until: datetime, granularity: str) -> float:
    """About how many buckets the window holds: gaps are filled only when every bucket fits in
    the rows answered (a minute grid over years would be generated before the limit cut it)."""
    return (until - since).total_seconds() / _SECONDS[granularity]


_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 28 * 86400}
_AUTO = ((2, "minute"), (72, "hour"), (1440, "day"), (8760, "week"), (math.inf, "month"))


def _time_column(view: View) -> str:
    """Langfuse also names the time field by its column (`start_time`, `timestamp`)."""
    return bare_column(view.fields[view.time_field][0])


def _bucket(granularity: str, column: str) -> str:
    return f"toDateTime({_BUCKETS[granularity].format(column)}, 'UTC')"


def _dimension_sql(column: str) -> tuple[str, set[str]]:
    """A dimension's expression in the outer query, and the join it needs."""
    for prefix, relation in RELATIONS.items():
        if column.startswith(prefix):
            return f"{relation.alias}_{column.removeprefix(prefix)}", {prefix}
    return column, set()


def _join(name: str, condition: str = "1") -> str:
    """The LEFT JOIN of a related table's current rows (those meeting `condition`) or of a
    per-key aggregate."""
    if name in RELATIONS:
        # The related table's current rows, their columns under names of their own (so that no
        # name of the view's table becomes ambiguous).
        relation = RELATIONS[name]
        alias, columns = relation.alias, _RELATED_COLUMNS[name]
        selected = ", ".join(f"{c} AS {alias}_{c}" for c in ("id", *columns))
        source = f"SELECT {selected} FROM {current(relation.entity.table, condition)}"
        return f" LEFT JOIN ({source}) AS {alias} ON {alias}.{alias}_id = base.{relation.key}"
    source, condition = _JOINS[name]
    return f" LEFT JOIN ({source}) AS {_JOIN_ALIASES[name]} ON {condition}"


def _related_columns(entity: Entity, prefix: str) -> tuple[str, ...]:
    """The columns of related rows that the views' fields name (`trace.name` and the like), in
    the order the entity describes them."""
    named = {
        column.removeprefix(prefix)
        for view in VIEWS.values()
        for column, _ in view.fields.values()
        if column.startswith(prefix)
    }
    return tuple(dict.fromkeys(f.column for f in entity.fields if f.column in named))


_RELATED_COLUMNS = {
    prefix: _related_columns(relation.entity, prefix) for prefix, relation in RELATIONS.items()
}


def _aggregate(measure: Measure, aggregation: str) -> str:
    value = measure.sql
    if measure.distinct:
        return f"uniqExact({value})"
    if aggregation in _QUANTILES:
        return f"quantile({_QUANTILES[aggregation]})({value})"
    if aggregation == "histogram":
        return f"histogram({{m_bins:UInt32}})(toFloat64({value}))"
    return f"{aggregation}({value})"


def _order_by(query: dict[str, Any], dimensions: list[str], keys: list[str], has_time: bool) -> str:
    """The query's orderBy on its dimensions, time bucket or `<aggregation>_<measure>` keys;
    by default the time bucket, else the first metric (descending)."""
    given = query.get("orderBy")
    if not given:
        return f"{TIME_KEY} ASC" if has_time else f"`{keys[0]}` DESC"
    if not isinstance(given, list):
        raise InvalidArgument("Invalid query: orderBy must be an array")
    sortable = [*dimensions, *keys, *([TIME_KEY] if has_time else [])]
    clauses = []
    for entry in given:
        entry = entry if isinstance(entry, dict) else {}
        name, direction = entry.get("field"), entry.get("direction", "asc")
        if name not in sortable or direction not in ("asc", "desc"):
            raise InvalidArgument(
                f"Invalid query: orderBy field {name!r} must be one of the query's dimensions or"
                f" metrics ({', '.join(sortable)}) with direction asc or desc"
            )
        clauses.append(f"`{name}` {str(direction).upper()}")
    return ", ".join(clauses)


# The fast path: whole UTC days of the observations view read from pre-aggregated rollups
# (migrations 0008 and 0009). A query qualifies when it asks only for measures and aggregations
# the rollups keep, buckets time by day or coarser, and groups and filters either only by the
# observation's own dimensions below (observation_rollups: a row per day and group of them), or
# only by its trace's name, tags, release and version (observation_trace_field_rollups, 0010: a
# row per day and group of those, as the trace's current row said at build time), or by any of
# its trace's fields (observation_trace_rollups: a row per day and trace, the trace's current
# row joined at query time as in the live query). Its whole days with a valid build are read
# from the rollups; the rest (the window's partial first and last days, today, days changed
# since their build) is aggregated live into the same per-day groups, and the outer query
# combines both, so the answer is the live one: sums, counts, minima and maxima add up exactly,
# averages are sum / count, and the quantile samples merge (exactly while a group has at most
# 8,192 values, as `quantile` is).
_ROLLUP_MEASURES = {"latency": "latency", "totalCost": "cost", "totalTokens": "tokens"}
_LEVELS = "(0.5, 0.75, 0.9, 0.95, 0.99)"
_ROLLUP_BUCKETS = {"day": "{}", "week": "toMonday({})", "month": "toStartOfMonth({})"}
MAX_ROLLUP_DAYS = 400


@dataclass(frozen=True)
class RollupTable:
    table: str
    builds: str  # its builds: the one to read per (project, day)
    group: str  # the columns of a group besides its day
    quantiles: bool  # whether it keeps latency samples
    traces: str = ""  # JOINED: grouped by trace, the trace joined at query time; ROLLED: see above

    def group_columns(self) -> list[str]:
        return self.group.split(", ")

    def fits(self, field_name: str) -> bool:
        """Whether a field of the observations view is one of its groups' (the trace's fields
        as `t_<column>`), or, for the JOINED rollups, is read through the trace."""
        column = VIEWS["observations"].fields.get(field_name, ("", ""))[0]
        if self.traces == JOINED:
            return column.startswith("trace.")
        return _dimension_sql(column)[0] in self.group_columns()


JOINED, ROLLED = "joined", "rolled"


# The trace fields of the observations view under the trace's own column names.
_BARE_TRACE_FIELDS = {
    name: (bare_column(column), kind)
    for name, (column, kind) in VIEWS["observations"].fields.items()
    if column.startswith("trace.")
}
# And as the columns of observation_trace_field_rollups (those of a trace join: `t_name`...).
_ROLLED_TRACE_FIELDS = {
    name: (_dimension_sql(column)[0], kind)
    for name, (column, kind) in VIEWS["observations"].fields.items()
    if column.startswith("trace.")
}
ROLLUP_TABLES = (
    RollupTable("observation_rollups", "observation_rollup_builds",
                "environment, type, name, level, provided_model_name", quantiles=True),
    RollupTable("observation_trace_field_rollups", "observation_trace_field_rollup_builds",
                "t_name, t_tags, t_release, t_version", quantiles=True, traces=ROLLED),
    RollupTable("observation_trace_rollups", "observation_trace_rollup_builds", "trace_id",
                quantiles=False, traces=JOINED),
)  # fmt: skip


@dataclass(frozen=True)
class Rollup:
    """What the fast path needs of a checked observations query."""

    table: RollupTable
    dimensions: list[str]
    granularity: str | None
    metrics: list[tuple[str, str]]
    filters: Where  # the query's filters on columns the rollups share
    trace_filters: Where  # or on the trace's columns, written on those (trace rollups)
    since: datetime
    until: datetime
    tail: str  # ORDER BY, WITH FILL and LIMIT of the live query
    row_limit: int


def _rollup_aggregate(table: RollupTable, measure: str, aggregation: str) -> str | None:
    """The metric from the columns of per-day groups; None when the rollups don't keep it."""
    if measure == "count":
        return "sum(rows)" if aggregation in ("count", "sum") else None
    prefix = _ROLLUP_MEASURES.get(measure)
    if prefix is None:
        return None
    if aggregation in ("sum", "min", "max"):
        return f"{aggregation}({prefix}_{aggregation})"
    if aggregation == "count":
        return f"sum({prefix}_count)"
    if aggregation == "avg":
        return f"sum({prefix}_sum) / sum({prefix}_count)"
    if aggregation in _QUANTILES and prefix == "latency" and table.quantiles:
        index = (0.5, 0.75, 0.9, 0.95, 0.99).index(_QUANTILES[aggregation]) + 1
        return (
            f"if(sum(latency_count) = 0, NULL, quantilesMerge{_LEVELS}(latency_quantiles)[{index}])"
        )
    return None


def _rollup_table(
    view: Any, dimensions: list[str], metrics: list[tuple[str, str]], filters: list[Any],
    granularity: str | None,
) -> RollupTable | None:  # fmt: skip
    """The rollups that can answer the query, if any."""
    if view != "observations" or granularity not in (None, *_ROLLUP_BUCKETS):
        return None
    fields = [*dimensions, *(f.get("column") for f in filters if isinstance(f, dict))]
    if len(fields) != len(dimensions) + len(filters):
        return None
    for table in ROLLUP_TABLES:
        if all(table.fits(str(name)) for name in fields) and all(
            _rollup_aggregate(table, m, a) is not None for m, a in metrics
        ):
            return table
    return None


def _rollup_aggregates(table: RollupTable) -> dict[str, str]:
    """A per-day group's columns after its dimensions (those of the rollup table), aggregated
    from observation rows."""
    aggregates = {"rows": "count()"}
    for measure, prefix in _ROLLUP_MEASURES.items():
        value = OBSERVATION.measures[measure].sql
        for aggregation in ("sum", "count", "min", "max"):
            aggregates[f"{prefix}_{aggregation}"] = f"{aggregation}({value})"
        if prefix == "latency" and table.quantiles:
            aggregates["latency_quantiles"] = f"quantilesState{_LEVELS}({value})"
    return aggregates


def _rollup_columns(table: RollupTable, group: list[str], columns: list[str]) -> str:
    """`columns` of a group aggregated from observation rows, after its dimensions `group`."""
    aggregates = _rollup_aggregates(table)
    return ", ".join([*group, *(f"{aggregates[c]} AS {c}" for c in columns)])


def _group_read(rollup: Rollup) -> list[str]:
    """The columns of the rollup table's groups that the outer query reads: its dimensions', or
    the trace id a JOINED rollup is joined on. The live rows are grouped by only those (and the
    day): fewer and larger groups than a build's make fewer quantile samples for the outer query
    to merge (p95 latency per name: 24 live groups instead of 336, 191 -> 129 ms at 10 M)."""
    group = rollup.table.group_columns()
    if rollup.table.traces == JOINED:
        return group
    read = {_dimension_sql(VIEWS["observations"].fields[name][0])[0] for name in rollup.dimensions}
    return [c for c in group if c in read]


def _columns_read(rollup: Rollup) -> list[str]:
    """The columns of the rollup table the query's metrics read (see _rollup_aggregate)."""
    names = set()
    for measure, aggregation in rollup.metrics:
        prefix = _ROLLUP_MEASURES.get(measure)
        if prefix is None:
            names.add("rows")
        elif aggregation in ("sum", "count", "min", "max"):
            names.add(f"{prefix}_{aggregation}")
        elif aggregation == "avg":
            names |= {f"{prefix}_sum", f"{prefix}_count"}
        else:
            names |= {"latency_count", "latency_quantiles"}
    return [c for c in _rollup_aggregates(rollup.table) if c in names]


def rollup_days(rollup: Rollup, now: datetime) -> list[date]:
    """The whole UTC days of the window that are over (only those are worth a build); none for
    windows of over MAX_ROLLUP_DAYS (a query over all time stays live: no build of every day
    since 1900)."""
    if rollup.until - rollup.since > timedelta(days=MAX_ROLLUP_DAYS):
        return []
    first = (rollup.since - timedelta(milliseconds=1)).date() + timedelta(days=1)
    last = min(rollup.until, now).date() - timedelta(days=1)  # the last day ending by then
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# A build is stale once an active part of observations holding rows of its day is as new as it:
# every insert, tombstone, merge or delete makes new parts. A ROLLED build is also stale once a
# part of traces holding a trace with observations on its day (observation_days) is as new.
# Part modification times are whole seconds, and a part's directory may be written a moment
# before it is committed: hence a slack.
ROLLUP_SLACK = timedelta(seconds=10)
_BUILDS_SQL = (
    "SELECT day, build_id, toUnixTimestamp64Micro(built_at) AS built_us FROM {builds} FINAL"
    " WHERE project_id = {{project_id:String}} AND day IN {{m_days:Array(Date)}}"
)
_PARTS_SQL = (
    "SELECT table AS source, name, toUnixTimestamp(modification_time) AS changed_s"
    " FROM system.parts WHERE database = currentDatabase() AND active"
    " AND table IN {m_tables:Array(String)} AND modification_time >= {m_since:DateTime64(3, 'UTC')}"
)
# Per table: the days of the asked ones whose rows the parts hold, with those parts.
_CHANGES_SQL = {
    "observations": (
        "SELECT toDate(start_time) AS day, groupUniqArray(_part) AS parts"
        " FROM observations WHERE project_id = {project_id:String}"
        " AND _part IN {m_parts:Array(String)} AND toDate(start_time) IN {m_days:Array(Date)}"
        " GROUP BY day"
    ),
    "traces": (
        "SELECT day, groupUniqArray(t_part) AS parts FROM observation_days INNER JOIN"
        " (SELECT id AS t_id, _part AS t_part FROM traces WHERE project_id = {project_id:String}"
        "  AND _part IN {m_parts:Array(String)}) AS t ON t.t_id = trace_id"
        " WHERE project_id = {project_id:String} AND day IN {m_days:Array(Date)}"
        " AND trace_id IN (SELECT id FROM traces WHERE project_id = {project_id:String}"
        "  AND _part IN {m_parts:Array(String)})"
        " GROUP BY day"
    ),
}


_PRUNE_SQL = (
    "DELETE FROM {table} WHERE project_id = {{project_id:String}}"
    " AND day IN {{m_days:Array(Date)}} AND build_id NOT IN {{m_keep:Array(UUID)}}"
)


def _build_sql(table: RollupTable) -> str:
    every = list(_rollup_aggregates(table))
    days = current("observations", "toDate(start_time) IN {m_days:Array(Date)}")
    return (
        f"INSERT INTO {table.table} SELECT project_id, toDate(start_time) AS day,"
        f" {{m_build:UUID}} AS build_id, {_rollup_columns(table, table.group_columns(), every)}"
        f" FROM (SELECT * FROM {days}) AS base{_join('trace.') if table.traces == ROLLED else ''}"
        f" GROUP BY project_id, day, {table.group} {_SETTINGS}"
    )


def _mark_sql(table: RollupTable) -> str:
    """Each of {m_days} has its build of {m_builds}, as of {m_built_at}."""
    return (
        f"INSERT INTO {table.builds} SELECT {{project_id:String}}, pair.1, pair.2,"
        " {m_built_at:DateTime64(6, 'UTC')}"
        " FROM (SELECT arrayJoin(arrayZip({m_days:Array(Date)}, {m_builds:Array(UUID)})) AS pair)"
    )


def rollup_sql(rollup: Rollup, builds: dict[date, str]) -> tuple[str, dict[str, Any]]:
    """The query reading the days of `builds` (day -> its valid build) from the rollups."""
    days, table, columns = sorted(builds), rollup.table, _columns_read(rollup)
    first, last = rollup.since.date(), rollup.until.date()
    window = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    params = {
        **rollup.filters.params, **rollup.trace_filters.params,
        "m_days": [d.isoformat() for d in days],
        "m_builds": [builds[d] for d in days],
        "m_live": [d.isoformat() for d in window if d not in builds],
        "m_from": storable(rollup.since), "m_to": storable(rollup.until),
        "m_limit": rollup.row_limit,
    }  # fmt: skip
    filters = rollup.filters.sql()
    live_rows = (
        " AND start_time >= {m_from:DateTime64(3, 'UTC')}"
        " AND start_time <= {m_to:DateTime64(3, 'UTC')}"
        " AND toDate(start_time) IN {m_live:Array(Date)}"  # positive: the key prunes by day
    )
    if table.traces == ROLLED:
        if rollup.trace_filters.conditions:  # the trace exists, as `trace_id IN (traces...)`
            filters += " AND t_name IS NOT NULL"
        # Only the traces of the live rows are joined, not every trace of the project.
        live_traces = (
            "id IN (SELECT trace_id FROM observations"
            f" WHERE project_id = {{project_id:String}}{live_rows})"
        )
        source = (
            f"(SELECT * FROM {current('observations', '1')}{live_rows}) AS base"
            f"{_join('trace.', live_traces)} WHERE {filters}"
        )
    else:
        source = f"{current('observations', filters)}{live_rows}"
    group = _group_read(rollup)
    live = (
        f"SELECT toDate(start_time) AS day, {_rollup_columns(table, group, columns)}"
        f" FROM {source} GROUP BY {', '.join(['day', *group])}"
    )
    stored = (
        f"SELECT {', '.join(['day', *group, *columns])} FROM {table.table}"
        " WHERE project_id = {project_id:String} AND day IN {m_days:Array(Date)}"
        " AND build_id = {m_builds:Array(UUID)}[indexOf({m_days:Array(Date)}, day)]"
        f" AND {filters}"
    )
    select, group, joins = [], [], set()
    for name in rollup.dimensions:
        column, related = _dimension_sql(VIEWS["observations"].fields[name][0])
        joins |= related
        select.append(f"{column} AS `{name}`")
        group.append(f"`{name}`")
    if rollup.granularity:
        bucket = _ROLLUP_BUCKETS[rollup.granularity].format("day")
        select.append(f"toDateTime({bucket}, 'UTC') AS {TIME_KEY}")
        group.append(TIME_KEY)
    for measure, aggregation in rollup.metrics:
        metric = _rollup_aggregate(table, measure, aggregation)
        select.append(f"{metric} AS `{aggregation}_{measure}`")
    if table.traces == ROLLED:  # the trace's fields are in the rows
        join = ""
    elif rollup.trace_filters.conditions:  # only the traces that pass, in place of all of them
        selected = ", ".join(f"{c} AS t_{c}" for c in ("id", *_RELATED_COLUMNS["trace."]))
        source = f"SELECT {selected} FROM {current('traces', rollup.trace_filters.sql())}"
        join = f" INNER JOIN ({source}) AS t ON t.t_id = base.trace_id"
    else:
        join = "".join(_join(name) for name in sorted(joins))
    sql = (
        f"SELECT {', '.join(select)} FROM ({stored} UNION ALL {live}) AS base{join}"
        f"{' GROUP BY ' + ', '.join(group) if group else ''}{rollup.tail} {_SETTINGS}"
    )
    return sql, params


async def answer(
    store: TraceStore, project_id: str, version: int, raw: str
) -> list[dict[str, Any]]:
    """The rows of a metrics query: whole days from the rollups where it qualifies, else live."""
    query = build(version, raw)
    sql, params = query.sql, query.params
    if query.rollup is not None:
        builds = await _valid_builds(store, project_id, query.rollup)
        if builds:
            sql, params = rollup_sql(query.rollup, builds)
    return result_rows(query, await store.aggregate(project_id, sql, params))


async def _valid_builds(store: TraceStore, project_id: str, rollup: Rollup) -> dict[date, str]:
    """Each whole past day of the window with its valid build (day -> build id); days with none
    or a stale one are built first, in one build."""
    days = rollup_days(rollup, datetime.now(UTC))
    if (cutoff := read_cutoff()) is not None:
        # Days the project's retention hides in whole or in part are read live (store.current).
        days = [day for day in days if day > cutoff.date()]
    if not days:
        return {}
    asked = {"m_days": [d.isoformat() for d in days]}
    built = {
        date.fromisoformat(str(row["day"])): (str(row["build_id"]), int(row["built_us"]))
        for row in await store.aggregate(
            project_id, _BUILDS_SQL.format(builds=rollup.table.builds), asked
        )
    }
    superseded: set[str] = set()
    checked_at, scanned = datetime.now(UTC), False  # the stamp of a build begun now
    if built:
        oldest = min(us for _, us in built.values())
        since = datetime.fromtimestamp(oldest / 1e6, UTC) - ROLLUP_SLACK
        tables = ["observations", *(["traces"] if rollup.table.traces == ROLLED else [])]
        parts: dict[str, dict[str, int]] = {table: {} for table in tables}
        for row in await store.aggregate(
            project_id, _PARTS_SQL, {"m_since": since, "m_tables": tables}
        ):
            parts[row["source"]][row["name"]] = int(row["changed_s"]) * 1_000_000
        slack = ROLLUP_SLACK // timedelta(microseconds=1)
        for table, changed in parts.items():
            scanned |= bool(changed)
            changes = await store.aggregate(
                project_id, _CHANGES_SQL[table], {**asked, "m_parts": list(changed)}
            ) if changed else []  # fmt: skip
            for row in changes:
                day = date.fromisoformat(str(row["day"]))  # text from chDB, a date from a server
                if day in built and max(changed[p] for p in row["parts"]) >= built[day][1] - slack:
                    superseded.add(built.pop(day)[0])
    valid = {day: build_id for day, (build_id, _) in built.items()}
    if scanned and valid:
        # The days still valid are as good as built when the check began: stamped so, the next
        # query does not scan the same new parts again (a merge makes big ones).
        confirmed = {"m_days": [d.isoformat() for d in valid], "m_builds": list(valid.values()),
                     "m_built_at": checked_at}  # fmt: skip
        await store.aggregate(project_id, _mark_sql(rollup.table), confirmed)
    if stale := [d for d in days if d not in valid]:
        key = (project_id, rollup.table.table, tuple(stale))
        if (task := _BUILDING.get(key)) is None:
            task = asyncio.ensure_future(_build(store, project_id, rollup.table, stale, superseded))
            _BUILDING[key] = task
            task.add_done_callback(lambda _: _BUILDING.pop(key, None))
        # The build runs to its end even if this request gives up (its deadline passed: a first
        # build of 30 days at 10 M observations takes 10-40 s on a loaded machine), so that the
        # next query finds it instead of beginning it again.
        valid |= dict.fromkeys(stale, await asyncio.shield(task))
    return valid


# Builds under way in this process by (project, rollup table, days): a query that needs the same
# days (a retried request, a dashboard's panels) awaits the build begun instead of another one.
_BUILDING: dict[tuple[str, str, tuple[date, ...]], "asyncio.Future[str]"] = {}


async def _build(
    store: TraceStore, project_id: str, table: RollupTable, days: list[date], superseded: set[str]
) -> str:
    """A new build of `days`; its id."""
    build_id = str(uuid.uuid4())
    params = {"m_days": [d.isoformat() for d in days], "m_build": build_id,
              "m_builds": [build_id] * len(days), "m_built_at": datetime.now(UTC)}  # fmt: skip
    await store.aggregate(project_id, _build_sql(table), params)
    await store.aggregate(project_id, _mark_sql(table), params)
    # Older builds of these days go, but for the one just superseded, which a query that began
    # before this build may still be reading.
    keep = {**params, "m_keep": [build_id, *superseded]}
    await store.aggregate(project_id, _PRUNE_SQL.format(table=table.table), keep)
    return build_id


def daily_sql(where: Where) -> tuple[str, str]:
    """The legacy daily metrics of the traces matching `where` (conditions on traces): traces per
    day of their timestamp, and their observations per day of their start and model."""
    traces = (
        "SELECT toDate(timestamp) AS day, count() AS traces"
        f" FROM {current('traces', where.sql())} GROUP BY day"
    )
    matching = f"trace_id IN (SELECT id FROM {current('traces', where.sql())})"
    usage = (
        "SELECT toDate(start_time) AS day, provided_model_name AS model,"
        " count() AS observations, uniqExact(trace_id) AS traces,"
        " sum(usage_details['input']) AS input, sum(usage_details['output']) AS output,"
        " sum(usage_details['total']) AS total,"
        " toFloat64(sum(coalesce(total_cost, 0))) AS cost"
        f" FROM {current('observations', matching)} GROUP BY day, model"
    )
    return traces, usage


def daily_documents(
    trace_rows: list[dict[str, Any]], usage_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One document per day with traces or observations, newest first."""
    days: dict[str, dict[str, Any]] = {}

    def day(value: Any) -> dict[str, Any]:
        date = str(value)[:10]
        return days.setdefault(
            date,
            {"date": date, "countTraces": 0, "countObservations": 0, "totalCost": 0.0,
             "usage": []},
        )  # fmt: skip

    for row in trace_rows:
        day(row["day"])["countTraces"] = int(row["traces"])
    for row in sorted(usage_rows, key=lambda r: (str(r["day"]), r["model"] or "")):
        document = day(row["day"])
        document["countObservations"] += int(row["observations"])
        document["totalCost"] += float(row["cost"])
        document["usage"].append(
            {"model": row["model"], "inputUsage": int(row["input"]),
             "outputUsage": int(row["output"]), "totalUsage": int(row["total"]),
             "countObservations": int(row["observations"]), "countTraces": int(row["traces"]),
             "totalCost": float(row["cost"])}
        )  # fmt: skip
    return sorted(days.values(), key=lambda d: d["date"], reverse=True)

"""Each entity (trace, observation, score) described once: for every public field, its ClickHouse
column or expression, its kind, and where the API takes it. The row mapping (rows.py), the list
filters and ordering (filters.py), the field groups of the list documents (views.py) and the
metrics views (analytics.py) all read their fields from here. Pure.

A column is a column of the entity's table, a SQL expression over them, or `trace.<column>` /
`observation.<column>`: a column of the trace or observation the row belongs to, read through
that relation. Fields computed from other rows (a trace's latency) have no column. One column may
be public under two names (`model` in ingestion events, `providedModelName` in filters), each
with its own flags."""

from dataclasses import dataclass

# Kinds: each takes its own filter condition types (filters.py).
STRING, NUMBER, DATETIME, ARRAY, OBJECT, BOOLEAN = (
    "string", "number", "datetime", "array", "object", "boolean",
)  # fmt: skip
# Where a field stands in the metrics views.
FILTER = "filter"  # filters only
DIMENSION = "dimension"  # a dimension, and filters
HIGH = "high"  # a v1 dimension; too many values for a v2 one (v2 filters on it)
V2 = "v2"  # a v2 dimension only, and filters


@dataclass(frozen=True)
class Field:
    """One public field of an entity and where the API takes it."""

    name: str
    column: str
    kind: str
    stored: bool = False  # the merge state keeps it under this name, as the column (rows.py)
    filterable: bool = False  # a list filter: query parameter (string, array) and `filter`
    sortable: bool = False  # a list's orderBy
    metrics: str = ""  # FILTER, DIMENSION, HIGH or V2 in the entity's metrics views
    views: tuple[str, ...] = ()  # the metrics views that have it, when not all of the entity's
    group: str = ""  # its field group in the list documents (`fields=`); core is always sent


@dataclass(frozen=True)
class Measure:
    """A measure's value on one row of a metrics view (null when unknown: it is then not
    counted). `joins` names the related rows it reads (analytics.py); `distinct` measures count
    distinct values of `sql` whatever the aggregation (count or sum)."""

    sql: str
    joins: tuple[str, ...] = ()
    distinct: bool = False
    views: tuple[str, ...] = ()  # the metrics views that have it, when not all of the entity's


@dataclass(frozen=True)
class Entity:
    table: str
    time_field: str  # the field metrics windows and time buckets use
    fields: tuple[Field, ...]
    measures: dict[str, Measure]

    def filter_columns(self) -> dict[str, tuple[str, str]]:
        """Filterable field -> (column, kind), for list filters."""
        return {f.name: (f.column, f.kind) for f in self.fields if f.filterable}

    def sort_columns(self) -> dict[str, str]:
        """Sortable field -> column, for a list's orderBy."""
        return {f.name: f.column for f in self.fields if f.sortable}

    def stored_columns(self) -> dict[str, str]:
        """Merge-state field -> column, for the row mapping."""
        return {f.name: f.column for f in self.fields if f.stored}

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Field group -> its fields, in the order described."""
        groups: dict[str, tuple[str, ...]] = {}
        for f in self.fields:
            if f.group:
                groups[f.group] = (*groups.get(f.group, ()), f.name)
        return groups

    def metrics_fields(self, view: str) -> tuple[Field, ...]:
        """The fields of one of the entity's metrics views."""
        return tuple(f for f in self.fields if f.metrics and (not f.views or view in f.views))

    def metrics_measures(self, view: str) -> dict[str, Measure]:
        return {n: m for n, m in self.measures.items() if not m.views or view in m.views}


def _month(column: str) -> str:
    return f"formatDateTime({column}, '%Y-%m')"


def _usage(details: str, kind: str) -> str:
    """Langfuse's input/output sums: every key of the usage or cost map that names the kind."""
    keys = f"(k, v) -> positionCaseInsensitive(k, '{kind}') > 0"
    return f"toFloat64(arraySum(mapValues(mapFilter({keys}, {details}))))"


_MS = "date_diff('millisecond', {}, {})"

TRACE = Entity(
    table="traces",
    time_field="timestamp",
    fields=(
        Field("id", "id", STRING, stored=True, filterable=True, sortable=True, metrics=HIGH,
              group="core"),
        Field("timestamp", "timestamp", DATETIME, stored=True, filterable=True, sortable=True,
              metrics=FILTER, group="core"),
        Field("name", "name", STRING, stored=True, filterable=True, sortable=True,
              metrics=DIMENSION, group="core"),
        Field("userId", "user_id", STRING, stored=True, filterable=True, sortable=True,
              metrics=HIGH, group="core"),
        Field("sessionId", "session_id", STRING, stored=True, filterable=True, sortable=True,
              metrics=HIGH, group="core"),
        Field("release", "release", STRING, stored=True, filterable=True, sortable=True,
              metrics=DIMENSION, group="core"),
        Field("version", "version", STRING, stored=True, filterable=True, sortable=True,
              metrics=DIMENSION, group="core"),
        Field("environment", "environment", STRING, stored=True, filterable=True,
              metrics=DIMENSION, group="core"),
        Field("public", "public", BOOLEAN, stored=True, filterable=True, sortable=True,
              group="core"),
        Field("tags", "tags", ARRAY, stored=True, filterable=True, metrics=DIMENSION,
              group="core"),
        Field("bookmarked", "bookmarked", BOOLEAN, filterable=True, sortable=True, group="core"),
        Field("timestampMonth", _month("timestamp"), STRING, metrics=DIMENSION),
        Field("input", "input", OBJECT, group="io"),
        Field("output", "output", OBJECT, group="io"),
        Field("metadata", "metadata", OBJECT, filterable=True, metrics=FILTER, group="io"),
        Field("observations", "", ARRAY, group="observations"),
        Field("scores", "", ARRAY, group="scores"),
        Field("latency", "", NUMBER, group="metrics"),
        Field("totalCost", "", NUMBER, group="metrics"),
    ),
    measures={
        "count": Measure("1"),
        "observationsCount": Measure("ifNull(r_observations, 0)", ("trace_rollup",)),
        "scoresCount": Measure("ifNull(sc_count, 0)", ("trace_scores",)),
        "uniqueUserIds": Measure("user_id", distinct=True),
        "uniqueSessionIds": Measure("session_id", distinct=True),
        "latency": Measure(_MS.format("r_first", "r_last"), ("trace_rollup",)),
        "totalTokens": Measure("r_tokens", ("trace_rollup",)),
        "totalCost": Measure("r_cost", ("trace_rollup",)),
    },
)  # fmt: skip

# In the order of the v2 list's field groups (views.py answers each group's fields in this order).
OBSERVATION = Entity(
    table="observations",
    time_field="startTime",
    fields=(
        Field("id", "id", STRING, stored=True, filterable=True, metrics=HIGH, group="core"),
        Field("traceId", "trace_id", STRING, stored=True, filterable=True, metrics=HIGH,
              group="core"),
        Field("startTime", "start_time", DATETIME, stored=True, filterable=True, metrics=FILTER,
              group="core"),
        Field("endTime", "end_time", DATETIME, stored=True, filterable=True, metrics=FILTER,
              group="core"),
        Field("projectId", "project_id", STRING, group="core"),
        Field("parentObservationId", "parent_observation_id", STRING, stored=True,
              filterable=True, metrics=HIGH, group="core"),
        Field("type", "type", STRING, stored=True, filterable=True, metrics=DIMENSION,
              group="core"),
        Field("name", "name", STRING, stored=True, filterable=True, metrics=DIMENSION,
              group="basic"),
        Field("level", "level", STRING, stored=True, filterable=True, metrics=DIMENSION,
              group="basic"),
        Field("statusMessage", "status_message", STRING, stored=True, filterable=True,
              group="basic"),
        Field("version", "version", STRING, stored=True, filterable=True, metrics=DIMENSION,
              group="basic"),
        Field("environment", "environment", STRING, stored=True, filterable=True,
              metrics=DIMENSION, group="basic"),
        Field("bookmarked", "trace.bookmarked", BOOLEAN, group="basic"),
        Field("public", "trace.public", BOOLEAN, group="basic"),
        Field("userId", "trace.user_id", STRING, filterable=True, metrics=HIGH, group="basic"),
        Field("sessionId", "trace.session_id", STRING, filterable=True, metrics=HIGH,
              group="basic"),
        Field("isRootObservation", "toBool(isNull(parent_observation_id))", BOOLEAN,
              metrics=V2, group="basic"),
        Field("completionStartTime", "completion_start_time", DATETIME, stored=True,
              group="time"),
        Field("createdAt", "created_at", DATETIME, group="time"),
        Field("updatedAt", "updated_at", DATETIME, group="time"),
        Field("input", "input", OBJECT, group="io"),
        Field("output", "output", OBJECT, group="io"),
        Field("metadata", "metadata", OBJECT, filterable=True, metrics=FILTER, group="metadata"),
        Field("providedModelName", "provided_model_name", STRING, filterable=True,
              metrics=DIMENSION, group="model"),
        Field("internalModelId", "internal_model_id", STRING, group="model"),
        Field("modelParameters", "model_parameters", OBJECT, group="model"),
        Field("usageDetails", "usage_details", OBJECT, group="usage"),
        Field("costDetails", "cost_details", OBJECT, group="usage"),
        Field("totalCost", "total_cost", NUMBER, filterable=True, group="usage"),
        Field("usagePricingTierName", "usage_pricing_tier_name", STRING, group="usage"),
        Field("promptId", "prompt_id", STRING, group="prompt"),
        Field("promptName", "prompt_name", STRING, stored=True, filterable=True,
              metrics=DIMENSION, group="prompt"),
        Field("promptVersion", "prompt_version", NUMBER, stored=True, filterable=True,
              metrics=DIMENSION, group="prompt"),
        Field("latency", "", NUMBER, group="metrics"),
        Field("timeToFirstToken", "", NUMBER, group="metrics"),
        Field("tags", "trace.tags", ARRAY, metrics=DIMENSION, group="trace_context"),
        Field("release", "trace.release", STRING, metrics=DIMENSION, group="trace_context"),
        Field("traceName", "trace.name", STRING, filterable=True, metrics=DIMENSION,
              group="trace_context"),
        Field("model", "provided_model_name", STRING, stored=True),
        Field("traceTags", "trace.tags", ARRAY, filterable=True),
        Field("traceRelease", "trace.release", STRING, filterable=True, metrics=DIMENSION),
        Field("traceVersion", "trace.version", STRING, filterable=True, metrics=DIMENSION),
        Field("startTimeMonth", _month("start_time"), STRING, metrics=DIMENSION),
    ),
    measures={
        "count": Measure("1"),
        "latency": Measure(_MS.format("start_time", "end_time")),
        "streamingLatency": Measure(_MS.format("completion_start_time", "end_time")),
        "inputTokens": Measure(_usage("usage_details", "input")),
        "outputTokens": Measure(_usage("usage_details", "output")),
        "totalTokens": Measure("usage_details['total']"),
        "outputTokensPerSecond": Measure(
            f"{_usage('usage_details', 'output')} * 1000"
            f" / nullIf({_MS.format('completion_start_time', 'end_time')}, 0)"
        ),
        "tokensPerSecond": Measure(
            f"usage_details['total'] * 1000 / nullIf({_MS.format('start_time', 'end_time')}, 0)"
        ),
        "inputCost": Measure(_usage("cost_details", "input")),
        "outputCost": Measure(_usage("cost_details", "output")),
        "totalCost": Measure("toFloat64(total_cost)"),
        "timeToFirstToken": Measure(_MS.format("start_time", "completion_start_time")),
        "countScores": Measure("ifNull(sc_count, 0)", ("observation_scores",)),
    },
)  # fmt: skip

# Score values by data type: each metrics view of scores holds one segment of them.
NUMERIC, BOOLEAN_SCORES, CATEGORICAL = "scores-numeric", "scores-boolean", "scores-categorical"
SCORE = Entity(
    table="scores",
    time_field="timestamp",
    fields=(
        Field("id", "id", STRING, stored=True, filterable=True, metrics=HIGH),
        Field("timestamp", "timestamp", DATETIME, stored=True, filterable=True, metrics=FILTER),
        Field("name", "name", STRING, stored=True, filterable=True, metrics=DIMENSION),
        Field("source", "source", STRING, stored=True, filterable=True, metrics=DIMENSION),
        Field("dataType", "data_type", STRING, stored=True, filterable=True, metrics=DIMENSION),
        Field("value", "value", NUMBER, filterable=True, metrics=DIMENSION,
              views=(NUMERIC, BOOLEAN_SCORES)),
        Field("stringValue", "string_value", STRING, filterable=True, metrics=DIMENSION,
              views=(CATEGORICAL,)),
        Field("booleanValue", "toBool(value = 1)", BOOLEAN, metrics=DIMENSION,
              views=(BOOLEAN_SCORES,)),
        Field("comment", "comment", STRING, stored=True),
        Field("environment", "environment", STRING, stored=True, filterable=True,
              metrics=DIMENSION),
        Field("traceId", "trace_id", STRING, stored=True, filterable=True, metrics=HIGH),
        Field("observationId", "observation_id", STRING, stored=True, filterable=True,
              metrics=HIGH),
        Field("sessionId", "session_id", STRING, stored=True, filterable=True, metrics=HIGH),
        Field("datasetRunId", "dataset_run_id", STRING, stored=True, filterable=True),
        Field("configId", "config_id", STRING, stored=True, filterable=True, metrics=DIMENSION),
        Field("queueId", "queue_id", STRING, stored=True, filterable=True),
        Field("metadata", "metadata", OBJECT, filterable=True, metrics=FILTER),
        Field("userId", "trace.user_id", STRING, filterable=True, metrics=HIGH),
        Field("traceName", "trace.name", STRING, filterable=True, metrics=DIMENSION),
        Field("traceTags", "trace.tags", ARRAY, filterable=True),
        Field("tags", "trace.tags", ARRAY, metrics=DIMENSION),
        Field("traceRelease", "trace.release", STRING, filterable=True, metrics=DIMENSION),
        Field("traceVersion", "trace.version", STRING, filterable=True, metrics=DIMENSION),
        Field("observationName", "observation.name", STRING, filterable=True,
              metrics=DIMENSION),
        Field("observationModelName", "observation.provided_model_name", STRING,
              filterable=True, metrics=DIMENSION),
        Field("observationPromptName", "observation.prompt_name", STRING, filterable=True,
              metrics=DIMENSION),
        Field("observationPromptVersion", "observation.prompt_version", NUMBER,
              filterable=True, metrics=DIMENSION),
        Field("timestampMonth", _month("timestamp"), STRING, metrics=DIMENSION),
        Field("timestampDay", "formatDateTime(timestamp, '%Y-%m-%d')", STRING,
              metrics=DIMENSION),
    ),
    measures={
        "count": Measure("1"),
        "value": Measure("value", views=(NUMERIC, BOOLEAN_SCORES)),
    },
)  # fmt: skip
ENTITIES = {"trace": TRACE, "observation": OBSERVATION, "score": SCORE}


@dataclass(frozen=True)
class Relation:
    """The trace or observation a row belongs to: a column `<prefix><column>` is its column."""

    key: str  # the row's column naming it
    entity: Entity
    alias: str  # its rows' name in the metrics views' joins


RELATIONS = {
    "trace.": Relation("trace_id", TRACE, "t"),
    "observation.": Relation("observation_id", OBSERVATION, "ob"),
}


def bare_column(column: str) -> str:
    """The column without its relation prefix (`trace.name` -> `name`)."""
    for prefix in RELATIONS:
        if column.startswith(prefix):
            return column.removeprefix(prefix)
    return column

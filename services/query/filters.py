"""Public-API filters and ordering turned into SQL conditions with bound parameters. Only
allow-listed columns reach SQL; values are always parameters. Pure."""

from dataclasses import dataclass, field
from typing import Any

from libs.common.errors import InvalidArgument

# Public filter name -> (column, ClickHouse type); repeated values mean "any of" (tags: "all of").
# A `trace.` column is one of the trace an observation or score belongs to.
TRACE_FILTERS = {
    "userId": ("user_id", "String"),
    "name": ("name", "String"),
    "sessionId": ("session_id", "String"),
    "release": ("release", "String"),
    "version": ("version", "String"),
    "environment": ("environment", "String"),
}
OBSERVATION_FILTERS = {
    "name": ("name", "String"),
    "type": ("type", "String"),
    "traceId": ("trace_id", "String"),
    "level": ("level", "String"),
    "parentObservationId": ("parent_observation_id", "String"),
    "environment": ("environment", "String"),
    "version": ("version", "String"),
    "userId": ("trace.user_id", "String"),
    "sessionId": ("trace.session_id", "String"),
}
SCORE_FILTERS = {
    "name": ("name", "String"),
    "source": ("source", "String"),
    "dataType": ("data_type", "String"),
    "environment": ("environment", "String"),
    "configId": ("config_id", "String"),
    "queueId": ("queue_id", "String"),
    "traceId": ("trace_id", "String"),
    "observationId": ("observation_id", "String"),
    "sessionId": ("session_id", "String"),
    "datasetRunId": ("dataset_run_id", "String"),
    "id": ("id", "String"),
    "userId": ("trace.user_id", "String"),
}
TRACE_ORDER = {
    "id": "id", "timestamp": "timestamp", "name": "name", "userId": "user_id",
    "release": "release", "version": "version", "public": "public", "bookmarked": "bookmarked",
    "sessionId": "session_id",
}  # fmt: skip


@dataclass
class Where:
    """Conditions joined with AND, and their parameters."""

    conditions: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, condition: str, **params: Any) -> None:
        self.conditions.append(condition)
        self.params.update(params)

    def sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "1"


def equality_filters(
    where: Where, allowed: dict[str, tuple[str, str]], given: dict[str, list[str]]
) -> None:
    for index, (name, values) in enumerate(sorted(given.items())):
        if name not in allowed:
            raise InvalidArgument(f"Unknown filter: {name}")
        column, kind = allowed[name]
        condition = f"{column.removeprefix('trace.')} IN {{f{index}:Array({kind})}}"
        if column.startswith("trace."):
            condition = (
                "trace_id IN (SELECT id FROM traces FINAL"
                f" WHERE project_id = {{project_id:String}} AND {condition})"
            )
        where.add(condition, **{f"f{index}": values})


def order_by(raw: str, allowed: dict[str, str], default: str) -> str:
    """`field.asc|desc` (Langfuse's orderBy) as an ORDER BY clause; the id breaks ties."""
    if not raw:
        return default
    name, _, direction = raw.partition(".")
    if name not in allowed or direction.lower() not in ("asc", "desc"):
        raise InvalidArgument("orderBy must be <field>.<asc|desc> on a sortable field")
    return f"{allowed[name]} {direction.upper()}, id {direction.upper()}"

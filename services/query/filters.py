"""Public-API filters and ordering turned into SQL conditions with bound parameters. Only
allow-listed columns reach SQL; values are always parameters. Pure."""

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from libs.common.errors import InvalidArgument
from libs.common.scope import read_cutoff
from services.query import retention
from services.query.entities import OBSERVATION, RELATIONS, SCORE, TRACE, bare_column
from services.query.rows import parse_time

# Public field -> (SQL column, its kind), one map per entity (services/query/entities.py) for
# both kinds of filters: query parameters (`string` columns; repeated values mean "any of", and
# for `array` columns such as tags "all of") and the `filter` parameter (every kind). A `trace.`
# column is one of the trace an observation or score belongs to, an `observation.` column one of
# a score's observation.
TRACE_FILTER_COLUMNS = TRACE.filter_columns()
OBSERVATION_FILTER_COLUMNS = OBSERVATION.filter_columns()
SCORE_FILTER_COLUMNS = SCORE.filter_columns()
# Which condition types each kind of column takes ("null" fits every one).
_TYPES_OF = {
    "string": {"string", "stringOptions", "categoryOptions"},
    "datetime": {"datetime"},
    "number": {"number"},
    "array": {"arrayOptions"},
    "object": {"stringObject", "numberObject"},
    "boolean": {"boolean"},
}
# What a DateTime64(3) parameter can hold: time bounds beyond it mean "from the start" or "to the
# end", and are moved to its edges.
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(2299, 12, 31, 23, 59, 59, tzinfo=UTC)
# The trace fields a trace list may be ordered by, and their columns.
TRACE_ORDER = TRACE.sort_columns()


@dataclass
class Where:
    """Conditions joined with AND, and their parameters; and whether every condition is `keyed`:
    on columns of the table's sort key, which every version of a row shares, so that they may
    select rows before FINAL merges them (see store.current_by_key)."""

    conditions: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    keyed: bool = True

    def add(self, condition: str, *, keyed: bool = False, **params: Any) -> None:
        self.conditions.append(condition)
        self.params.update(params)
        self.keyed = self.keyed and keyed

    def sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "1"

    @property
    def by_key(self) -> bool:
        """Whether it has conditions and all of them are keyed."""
        return bool(self.conditions) and self.keyed


def equality_filters(
    where: Where,
    columns: dict[str, tuple[str, str]],
    given: dict[str, list[str]],
    keys: Collection[str] = (),
) -> None:
    """The query-parameter filters: a value of a text column, or all values of an array column.
    Those on a column in `keys` (the table's sort key) are keyed."""
    for index, (name, values) in enumerate(sorted(given.items())):
        column, kind = columns.get(name, ("", ""))
        if kind not in ("string", "array"):
            raise InvalidArgument(f"Unknown filter: {name}")
        bare, value = bare_column(column), f"{{f{index}:Array(String)}}"
        condition = f"hasAll({bare}, {value})" if kind == "array" else f"{bare} IN {value}"
        where.add(
            _through_relation(column, condition), keyed=column in keys, **{f"f{index}": values}
        )


def storable(moment: datetime) -> datetime:
    """A time bound within what DateTime64(3) holds."""
    return min(max(moment, _EARLIEST), _LATEST)


def order_by(raw: str, allowed: dict[str, str], default: str) -> str:
    """`field.asc|desc` (Langfuse's orderBy) as an ORDER BY clause; the id breaks ties."""
    if not raw:
        return default
    name, _, direction = raw.partition(".")
    if name not in allowed or direction.lower() not in ("asc", "desc"):
        raise InvalidArgument("orderBy must be <field>.<asc|desc> on a sortable field")
    return f"{allowed[name]} {direction.upper()}, id {direction.upper()}"


_COMPARISONS = {">", "<", ">=", "<="}
_STRING_OPERATORS = {
    "=": "{column} = {value}",
    "contains": "positionUTF8({column}, {value}) > 0",
    "does not contain": "positionUTF8({column}, {value}) = 0",
    "starts with": "startsWith({column}, {value})",
    "ends with": "endsWith({column}, {value})",
}


def json_filters(where: Where, columns: dict[str, tuple[str, str]], raw: str) -> None:
    """Adds the conditions of a `filter` parameter; 400 for anything it cannot express."""
    try:
        conditions = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument("Invalid filter: not valid JSON") from exc
    add_conditions(where, columns, conditions)


def add_conditions(where: Where, columns: dict[str, tuple[str, str]], conditions: Any) -> None:
    """Adds parsed filter conditions (a list of `{type, column, operator, value, key?}`)."""
    if not isinstance(conditions, list) or not all(isinstance(c, dict) for c in conditions):
        raise InvalidArgument("Invalid filter: expected a JSON array of condition objects")
    for index, condition in enumerate(conditions):
        name, kind = str(condition.get("column")), str(condition.get("type"))
        if name not in columns:
            raise InvalidArgument(f"Invalid filter: unknown column {name!r}")
        column, column_kind = columns[name]
        if kind != "null" and kind not in _TYPES_OF[column_kind]:
            message = f"Invalid filter: {name!r} is a {column_kind} column, not {kind!r}"
            raise InvalidArgument(message)
        sql, params = _json_condition(bare_column(column), condition, f"j{index}")
        where.add(_through_relation(column, sql), **params)


def _through_relation(column: str, condition: str) -> str:
    """`condition`, written on the bare column; on a `trace.` or `observation.` column, the rows
    whose trace or observation meets it."""
    for prefix, relation in RELATIONS.items():
        if column.startswith(prefix):
            table = relation.entity.table
            return (
                f"{relation.key} IN (SELECT id FROM {table} FINAL"
                f" WHERE project_id = {{project_id:String}}"
                f"{retention.within(table, read_cutoff())} AND {condition})"
            )
    return condition


def _json_condition(
    column: str, condition: dict[str, Any], name: str
) -> tuple[str, dict[str, Any]]:
    kind, operator, value = (
        condition.get("type"),
        str(condition.get("operator")),
        condition.get("value"),
    )
    problem = f"Invalid filter: {kind!r} with operator {operator!r} on {condition.get('column')!r}"
    if kind == "null" and operator in ("is null", "is not null"):
        return f"{column} {operator.upper()}", {}
    if kind in ("stringObject", "numberObject"):
        key = condition.get("key")
        if not isinstance(key, str):
            raise InvalidArgument(f"{problem}: needs a metadata key")
        # Metadata values are stored as JSON text: compare their decoded form.
        column, extra = f"JSONExtract(metadata[{{{name}k:String}}], 'String')", {f"{name}k": key}
        if kind == "numberObject":
            column = f"toFloat64OrNull(metadata[{{{name}k:String}}])"
        kind = "string" if kind == "stringObject" else "number"
    else:
        extra = {}
    if kind == "datetime" and operator in _COMPARISONS:
        try:
            moment = parse_time(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None:
            raise InvalidArgument(f"{problem}: value must be an ISO 8601 timestamp")
        return f"{column} {operator} {{{name}:DateTime64(3, 'UTC')}}", {name: storable(moment)}
    if kind == "string" and operator in _STRING_OPERATORS and isinstance(value, str):
        sql = _STRING_OPERATORS[operator].format(column=column, value=f"{{{name}:String}}")
        return sql, {name: value, **extra}
    if kind == "number" and (operator in _COMPARISONS or operator == "=") and _is_number(value):
        return f"{column} {operator} {{{name}:Float64}}", {name: float(value), **extra}
    if kind in ("stringOptions", "categoryOptions") and operator in ("any of", "none of"):
        negation = "NOT " if operator == "none of" else ""
        return f"{column} {negation}IN {{{name}:Array(String)}}", {name: _strings(value, problem)}
    if kind == "arrayOptions" and operator in ("any of", "none of", "all of"):
        function = "hasAll" if operator == "all of" else "hasAny"
        negation = "NOT " if operator == "none of" else ""
        return f"{negation}{function}({column}, {{{name}:Array(String)}})", {
            name: _strings(value, problem)
        }
    if kind == "boolean" and operator in ("=", "<>") and isinstance(value, bool):
        return f"{column} {operator} {{{name}:Bool}}", {name: value}
    raise InvalidArgument(problem)


def _strings(value: Any, problem: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{problem}: value must be an array of strings")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

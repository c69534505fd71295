"""Evaluation-rule filters in the 5.x SDK's types (`{type, column, operator, value, key?}`): the
columns each target offers with the one filter type each accepts, validation (a 400 naming the
field), and matching. Matching is three-valued: the trigger consumer sees single events, which
may not carry a column (an update without the name, an observation without its trace), so an
unknown column neither matches nor fails there; the judge worker decides on the merged state.
Pure: no I/O."""

from typing import Any

from services.evals.fields import invalid

OPERATORS = {
    "string": ("=", "contains", "does not contain", "starts with", "ends with"),
    "number": ("=", ">", "<", ">=", "<="),
    "stringOptions": ("any of", "none of"),
    "arrayOptions": ("any of", "none of", "all of"),
    "stringObject": (
        "=",
        "contains",
        "does not contain",
        "starts with",
        "ends with",
        "is set",
        "is not set",
    ),  # fmt: skip
    "boolean": ("=", "<>"),
    "null": ("is null", "is not null"),
}
OBSERVATION_COLUMNS = {
    "type": "stringOptions", "name": "stringOptions", "environment": "stringOptions",
    "level": "stringOptions", "version": "string", "traceName": "stringOptions",
    "userId": "string", "sessionId": "string", "tags": "arrayOptions", "metadata": "stringObject",
    "isRootObservation": "boolean", "parentObservationId": "null",
    "experimentId": "stringOptions", "isExperimentItemRootSpan": "boolean",
    "calledToolNames": "arrayOptions", "toolCalls": "number", "datasetId": "stringOptions",
}  # fmt: skip
TRACE_COLUMNS = {
    "name": "stringOptions", "traceName": "stringOptions", "environment": "stringOptions",
    "userId": "string", "sessionId": "string", "tags": "arrayOptions", "metadata": "stringObject",
    "version": "string", "release": "string",
}  # fmt: skip
TARGET_COLUMNS = {"observation": OBSERVATION_COLUMNS, "trace": TRACE_COLUMNS}
# Columns of an observation rule that its trace tells.
TRACE_LEVEL = frozenset({"traceName", "userId", "sessionId", "tags"})


def checked_filters(value: Any, target: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("filter must be a list")
    columns = TARGET_COLUMNS[target]
    filters = []
    for i, item in enumerate(value):
        where = f"filter[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"{where} must be an object")
        column = item.get("column")
        if column not in columns:
            raise invalid(f"{where}.column: {column!r} is not a column of {target} rules "
                          f"({', '.join(columns)})")  # fmt: skip
        kind = columns[column]
        if item.get("type") != kind:
            raise invalid(f"{where}.type: column {column} takes filter type {kind}")
        operator = item.get("operator")
        if operator not in OPERATORS[kind]:
            raise invalid(f"{where}.operator must be one of {', '.join(OPERATORS[kind])}")
        checked = {"type": kind, "column": column, "operator": operator,
                   "value": _value(kind, operator, item.get("value"), where)}  # fmt: skip
        if kind == "stringObject":
            key = item.get("key")
            if not isinstance(key, str) or not key:
                raise invalid(f"{where}.key is required for metadata filters")
            checked["key"] = key
        filters.append(checked)
    return filters


def _value(kind: str, operator: str, value: Any, where: str) -> Any:
    if kind == "null" or operator in ("is set", "is not set"):
        return None
    if kind in ("string", "stringObject") and not isinstance(value, str):
        raise invalid(f"{where}.value must be a string")
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise invalid(f"{where}.value must be a number")
    if kind in ("stringOptions", "arrayOptions") and (
        not isinstance(value, list) or not all(isinstance(v, str) for v in value)
    ):
        raise invalid(f"{where}.value must be a list of strings")
    if kind == "boolean" and not isinstance(value, bool):
        raise invalid(f"{where}.value must be a boolean")
    return value


def matches(filters: list[dict[str, Any]], row: dict[str, Any]) -> bool | None:
    """True when every filter holds, False when one fails, None when none fails but a column
    was not in `row` (unknown)."""
    unknown = False
    for f in filters:
        if f["column"] not in row:
            unknown = True
            continue
        if not _holds(f, row[f["column"]]):
            return False
    return None if unknown else True


def _holds(f: dict[str, Any], actual: Any) -> bool:
    kind, op, expected = f["type"], f["operator"], f["value"]
    if kind == "stringObject":
        actual = actual.get(f["key"]) if isinstance(actual, dict) else None
        if op in ("is set", "is not set"):
            return (actual is not None) == (op == "is set")
        if actual is None:
            return op == "does not contain"
        actual = actual if isinstance(actual, str) else str(actual)
        kind = "string"
    if kind == "string":
        text = actual if isinstance(actual, str) else ""
        return {
            "=": text == expected,
            "contains": expected in text,
            "does not contain": expected not in text,
            "starts with": text.startswith(expected),
            "ends with": text.endswith(expected),
        }[op]
    if kind == "stringOptions":
        return (actual in expected) == (op == "any of")
    if kind == "arrayOptions":
        values = set(actual or ())
        if op == "all of":
            return set(expected) <= values
        return bool(values & set(expected)) == (op == "any of")
    if kind == "number":
        number = actual if isinstance(actual, int | float) else 0
        return {"=": number == expected, ">": number > expected, "<": number < expected,
                ">=": number >= expected, "<=": number <= expected}[op]  # fmt: skip
    if kind == "boolean":
        return (bool(actual) == expected) == (op == "=")
    return (actual is None) == (op == "is null")  # null


def observation_row(
    obs: dict[str, Any], trace: dict[str, Any] | None, *, merged: bool
) -> dict[str, Any]:
    """The filter columns of an observation. `merged`: the stored state, where a missing field
    means its default; otherwise one event's body, where it means unknown."""
    row: dict[str, Any] = {}

    def take(column: str, key: str, default: Any = None) -> None:
        if key in obs or merged:
            row[column] = obs.get(key, default) if obs.get(key) is not None else default

    take("type", "type", "SPAN")
    take("name", "name")
    take("environment", "environment", "default")
    take("level", "level", "DEFAULT")
    take("version", "version")
    take("parentObservationId", "parentObservationId")
    if "parentObservationId" in row:
        row["isRootObservation"] = row["parentObservationId"] is None
    if "metadata" in obs or merged:
        metadata = obs.get("metadata") if isinstance(obs.get("metadata"), dict) else {}
        row["metadata"] = metadata
        experiment = metadata.get("experiment")
        experiment = experiment if isinstance(experiment, dict) else {}
        row["experimentId"] = experiment.get("id")
        row["datasetId"] = experiment.get("dataset.id")
        row["isExperimentItemRootSpan"] = bool(experiment) and (
            experiment.get("item.root_observation_id") == obs.get("id")
        )
    if merged:
        row["calledToolNames"], row["toolCalls"] = [], 0
    if trace is not None:
        row["traceName"] = trace.get("name")
        row["userId"] = trace.get("userId")
        row["sessionId"] = trace.get("sessionId")
        row["tags"] = trace.get("tags") or []
    return row


def trace_row(trace: dict[str, Any], *, merged: bool) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column, key in (("name", "name"), ("traceName", "name"), ("userId", "userId"),
                        ("sessionId", "sessionId"), ("version", "version"),
                        ("release", "release")):  # fmt: skip
        if key in trace or merged:
            row[column] = trace.get(key)
    if "environment" in trace or merged:
        row["environment"] = trace.get("environment") or "default"
    if "tags" in trace or merged:
        row["tags"] = trace.get("tags") or []
    if "metadata" in trace or merged:
        row["metadata"] = trace.get("metadata") if isinstance(trace.get("metadata"), dict) else {}
    return row

"""Stored rows as the public API's JSON documents (Trace, ObservationsView, Score), with every
key the pydantic-based SDKs require present, null where unknown. Pure."""

from typing import Any

from services.query.entities import OBSERVATION, TRACE
from services.query.rows import from_row, iso, parse_time


def observation_view(row: dict[str, Any], project_id: str) -> dict[str, Any]:
    state = from_row("observation", row)
    usage = state.get("computedUsage", {})
    cost = state.get("computedCost", {})
    start, end = parse_time(state.get("startTime")), parse_time(state.get("endTime"))
    first_token = parse_time(state.get("completionStartTime"))
    return {
        "id": state["id"],
        "projectId": project_id,
        "traceId": state.get("traceId"),
        "type": state.get("type"),
        "name": state.get("name") or None,
        "startTime": state.get("startTime"),
        "endTime": state.get("endTime"),
        "completionStartTime": state.get("completionStartTime"),
        "model": state.get("model"),
        "modelParameters": state.get("modelParameters"),
        "input": state.get("input"),
        "output": state.get("output"),
        "version": state.get("version"),
        "metadata": state.get("metadata", {}),
        "level": state.get("level", "DEFAULT"),
        "statusMessage": state.get("statusMessage"),
        "parentObservationId": state.get("parentObservationId"),
        "environment": state.get("environment", "default"),
        "usage": {
            "input": usage.get("input", 0),
            "output": usage.get("output", 0),
            "total": usage.get("total", 0),
            "unit": "TOKENS" if usage else None,
        },
        "usageDetails": usage,
        "costDetails": cost,
        "promptId": row.get("prompt_id"),
        "promptName": state.get("promptName"),
        "promptVersion": state.get("promptVersion"),
        "modelId": row.get("internal_model_id"),
        "usagePricingTierName": state.get("pricingTier"),
        "inputPrice": None,
        "outputPrice": None,
        "totalPrice": None,
        "calculatedInputCost": cost.get("input"),
        "calculatedOutputCost": cost.get("output"),
        "calculatedTotalCost": state.get("totalCost"),
        "totalCost": state.get("totalCost"),
        "latency": (end - start).total_seconds() if start and end else None,
        "timeToFirstToken": (first_token - start).total_seconds()
        if start and first_token
        else None,
        "createdAt": state.get("createdAt"),
        "updatedAt": state.get("updatedAt"),
    }


def score_view(row: dict[str, Any], project_id: str) -> dict[str, Any]:
    state = from_row("score", row)
    return {
        "id": state["id"],
        "projectId": project_id,
        "traceId": state.get("traceId"),
        "observationId": state.get("observationId"),
        "sessionId": state.get("sessionId"),
        "datasetRunId": state.get("datasetRunId"),
        "name": state.get("name"),
        "value": state.get("value"),
        "stringValue": state.get("stringValue"),
        "dataType": state.get("dataType"),
        "source": state.get("source", "API"),
        "comment": state.get("comment"),
        "metadata": state.get("metadata", {}),
        "configId": state.get("configId"),
        "queueId": state.get("queueId"),
        "authorUserId": None,
        "environment": state.get("environment", "default"),
        "timestamp": state.get("timestamp"),
        "createdAt": state.get("createdAt"),
        "updatedAt": state.get("updatedAt"),
    }


def score_v3_view(row: dict[str, Any], project_id: str) -> dict[str, Any]:
    """v3: `value` typed by data type, and the scored subject spelled out."""
    score = score_view(row, project_id)
    value: Any = score["value"]
    if score["dataType"] == "BOOLEAN":
        value = bool(value)
    elif score["dataType"] == "CATEGORICAL":
        value = score["stringValue"]
    if score["traceId"]:
        kind, subject_id = ("observation", score["observationId"]) if score["observationId"] else (
            "trace", score["traceId"])  # fmt: skip
    elif score["sessionId"]:
        kind, subject_id = "session", score["sessionId"]
    else:
        kind, subject_id = "experiment", score["datasetRunId"]
    subject = {"kind": kind, "id": subject_id}
    if kind == "observation":
        subject["traceId"] = score["traceId"]
    keys = ("id", "projectId", "name", "source", "timestamp", "environment", "createdAt",
            "updatedAt", "dataType", "comment", "metadata", "configId", "queueId")  # fmt: skip
    return {**{k: score[k] for k in keys}, "value": value, "subject": subject}


def trace_view(
    row: dict[str, Any],
    project_id: str,
    observations: list[Any],
    scores: list[Any],
    latency: float,
    total_cost: float,
) -> dict[str, Any]:
    """A trace with its observations and scores, as documents (GET one) or ids (lists)."""
    state = from_row("trace", row)
    return {
        "id": state["id"],
        "projectId": project_id,
        "timestamp": state.get("timestamp"),
        "name": state.get("name") or None,
        "input": state.get("input"),
        "output": state.get("output"),
        "sessionId": state.get("sessionId"),
        "release": state.get("release"),
        "version": state.get("version"),
        "userId": state.get("userId"),
        "metadata": state.get("metadata", {}),
        "tags": state.get("tags", []),
        "public": bool(state.get("public", False)),
        "bookmarked": bool(row.get("bookmarked", False)),
        "environment": state.get("environment", "default"),
        "htmlPath": f"/project/{project_id}/traces/{state['id']}",
        "latency": latency,
        "totalCost": total_cost,
        "observations": observations,
        "scores": scores,
        "createdAt": state.get("createdAt"),
        "updatedAt": state.get("updatedAt"),
    }


def full_trace_view(
    row: dict[str, Any],
    project_id: str,
    observations: list[dict[str, Any]],
    scores: list[dict[str, Any]],
) -> dict[str, Any]:
    starts = [parse_time(o["startTime"]) for o in observations if o.get("startTime")]
    ends = [
        parse_time(o.get("endTime") or o["startTime"]) for o in observations if o.get("startTime")
    ]
    latency = (max(ends) - min(starts)).total_seconds() if starts else 0.0  # type: ignore[type-var,operator]
    total_cost = sum(o.get("calculatedTotalCost") or 0 for o in observations)
    return trace_view(row, project_id, observations, scores, latency, total_cost)


TRACE_GROUPS = set(TRACE.groups())
# What a list answers for the fields of a group not asked for, as Langfuse does.
_PLACEHOLDERS: dict[str, Any] = {"array": [], "number": -1}


def listed_trace_view(
    row: dict[str, Any], project_id: str, rollup: dict[str, Any], groups: set[str]
) -> dict[str, Any]:
    """A trace of a list, with the field groups asked for; the others keep their keys (the
    SDKs' models require them) with Langfuse's placeholders: null, [] or -1 for numbers."""
    first, last = parse_time(rollup.get("first_start")), parse_time(rollup.get("last_end"))
    latency = (last - first).total_seconds() if first and last else 0.0
    view = trace_view(
        row, project_id, list(rollup.get("ids", [])), list(rollup.get("score_ids", [])),
        latency, float(rollup.get("total_cost") or 0.0),
    )  # fmt: skip
    for f in TRACE.fields:
        if f.group not in groups and f.group != "core":
            view[f.name] = _PLACEHOLDERS.get(f.kind)
    return view


V2_GROUPS = OBSERVATION.groups()
# The groups that need the observation's trace.
V2_TRACE_GROUPS = {f.group for f in OBSERVATION.fields if f.column.startswith("trace.") and f.group}
_METADATA_PREVIEW = 200


def observation_v2_view(
    row: dict[str, Any],
    project_id: str,
    groups: set[str],
    expand_metadata: set[str],
    trace_row: dict[str, Any] | None,
) -> dict[str, Any]:
    """The v2 shape: only the requested field groups; input/output as raw JSON text; long
    metadata values cut to 200 characters unless their key is in `expand_metadata`; user,
    session, tags and the like from the observation's trace (`trace_row`)."""
    view = observation_view(row, project_id)
    trace = from_row("trace", trace_row) if trace_row else {}
    view.update(
        userId=trace.get("userId"), sessionId=trace.get("sessionId"),
        public=bool(trace.get("public", False)),
        bookmarked=bool(trace_row.get("bookmarked", False)) if trace_row else False,
        isRootObservation=view["parentObservationId"] is None,
        tags=trace.get("tags", []), release=trace.get("release"),
        traceName=trace.get("name") or None,
    )  # fmt: skip
    view["providedModelName"] = view["model"]
    view["internalModelId"] = view["modelId"]
    view["input"], view["output"] = row.get("input"), row.get("output")
    view["metadata"] = {
        key: value if key in expand_metadata or len(text := str(value)) <= _METADATA_PREVIEW
        else text[:_METADATA_PREVIEW]
        for key, value in view["metadata"].items()
    }  # fmt: skip
    document: dict[str, Any] = {"modelId": None, "inputPrice": None, "outputPrice": None,
                                "totalPrice": None}  # fmt: skip
    for group in ("core", *sorted(groups & V2_GROUPS.keys())):
        for key in V2_GROUPS[group]:
            document[key] = view.get(key)
    if "model" in groups:
        document["modelId"] = view["modelId"]
    return document


def session_view(row: dict[str, Any], project_id: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "createdAt": iso(row.get("created_at")),
        "projectId": project_id,
        "environment": row.get("session_environment") or "default",
    }

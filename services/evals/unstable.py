"""Langfuse's `/api/public/unstable/evaluators` and `/unstable/evaluation-rules` shapes of the
evaluators and rules `/v2/` serves: the same stored objects. An unstable body is translated into
the v2 one, so v2's validation (services/evals/evaluators.py, rules.py) is the only one, and its
messages name the fields as the unstable body spells them; a v2 document is reshaped for the
answer. Where the unstable shape cannot say what ours holds, the closest faithful reading:

- An unstable evaluator is a family named by `name`: creating one whose name exists makes its
  next version. Names are not identifiers in v2, so a name two evaluators share is a 409 here.
- Its `prompt` is one string, stored as one user message. A v2 chat prompt of several messages
  reads as their contents joined by blank lines: the unstable shape has no roles.
- `outputDefinition.reasoning.description` and `score.description` are v2's
  `scoreReasoningInstructions` and `scoreValueInstructions`; `score` holds the other fields.
- A rule names its evaluators by name, resolved to the family's id. `target: experiment` is
  stored as v2 expresses it: an observation rule with the filter `isExperimentItemRootSpan =
  true`, and such a rule reads back as an experiment rule. v2's `trace` rules read as Langfuse's
  legacy rules, read-only here (update them through v2) as Langfuse's are through this API.
- We pause evaluators where Langfuse pauses rules: an enabled rule with a paused evaluator reads
  as `paused`, with that evaluator's reason and message.
- Observation rules keep v2's default delay (0): the unstable shape has no `delay`.
- Rule names are unique on this path (a 409), as Langfuse's are; v2 does not check them. Two
  concurrent creations of one new name may both pass the check: the next write names the clash.
"""

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson

from libs.common.errors import Conflict, InvalidArgument
from libs.common.json_bodies import parse_body
from services.evals.evaluators import CODE_REFUSED, EvaluatorApi, checked_head
from services.evals.fields import invalid, text
from services.evals.rule_filters import OBSERVATION_COLUMNS
from services.evals.rules import RuleApi

TARGETS = ("observation", "experiment")
# How v2 says "experiment items": their root spans.
EXPERIMENT_FILTER = {"type": "boolean", "column": "isExperimentItemRootSpan", "operator": "=",
                     "value": True}  # fmt: skip
# The filter columns Langfuse documents per unstable target (v2's observation rules have more).
FILTER_COLUMNS = {
    "observation": sorted(
        set(OBSERVATION_COLUMNS) - {"experimentId", "datasetId", "isExperimentItemRootSpan"}
    ),  # fmt: skip
    "experiment": ["datasetId"],
}
EXPERIMENT_SOURCES = ("expected_output", "experiment_item_metadata")
# v2's field names in its validation messages, as the unstable body spells them.
FIELD_NAMES = (
    ("evaluatorAssignments[", "evaluators["),
    ("variableMapping", "mapping"),
    ("outputDefinition.scoreReasoningInstructions", "outputDefinition.reasoning.description"),
    ("outputDefinition.scoreValueInstructions", "outputDefinition.score.description"),
    ("outputDefinition.minValue", "outputDefinition.score.minValue"),
    ("outputDefinition.maxValue", "outputDefinition.score.maxValue"),
    ("outputDefinition.categories", "outputDefinition.score.categories"),
    ("outputDefinition.shouldAllowMultipleMatches",
     "outputDefinition.score.shouldAllowMultipleMatches"),
    ("prompt[0].content", "prompt"),
)  # fmt: skip
# The deprecated single-evaluator fields (`evaluator`, `mapping`) stand for `evaluators[0]`.
SINGLE_FIELD_NAMES = (("evaluators[0].mapping", "mapping"), ("evaluators[0].", ""))


class UnstableApi:
    def __init__(self, evaluators: EvaluatorApi, rules: RuleApi) -> None:
        self._evaluators = evaluators
        self._rules = rules

    async def create_evaluator(self, project_id: str, raw: bytes) -> bytes:
        body, name = checked_head(raw)
        if not isinstance(body.get("prompt"), str):
            raise invalid("prompt must be a string")
        definition = {
            "prompt": body["prompt"],
            "outputDefinition": v2_output(body.get("outputDefinition")),
            "modelConfig": body.get("modelConfig"),
            "variableMapping": body.get("mapping"),
        }
        ids = await self._evaluators.ids_named(project_id, name)
        if len(ids) > 1:
            raise _name_clash("name", name)
        with unstable_fields():
            if ids:
                document = await self._evaluators.update(project_id, ids[0],
                                                         orjson.dumps(definition))  # fmt: skip
            else:
                document = await self._evaluators.create(
                    project_id, orjson.dumps({"type": "llm_as_judge", "name": name, **definition})
                )
        return evaluator_document(orjson.loads(document))

    async def get_evaluator(self, project_id: str, evaluator_id: str) -> bytes:
        return evaluator_document(
            orjson.loads(await self._evaluators.get(project_id, evaluator_id))
        )

    async def list_evaluators(
        self, project_id: str, page: int, limit: int
    ) -> tuple[list[bytes], int]:
        documents, total = await self._evaluators.numbered_page(project_id, page, limit)
        return [evaluator_document(orjson.loads(d)) for d in documents], total

    async def create_rule(self, project_id: str, raw: bytes) -> bytes:
        body = parse_body(raw)
        single = "evaluator" in body or "mapping" in body
        with unstable_fields(SINGLE_FIELD_NAMES if single else ()):
            name = text(body.get("name"), "name")
            target = _target(body.get("target"))
            if single and "evaluators" in body:
                raise invalid("evaluators cannot be combined with the deprecated evaluator and "
                              "mapping fields")  # fmt: skip
            if single:
                items: Any = [{"evaluator": body.get("evaluator"), "mapping": body.get("mapping")}]
            else:
                items = body.get("evaluators")
            if not isinstance(items, list):
                raise invalid("evaluators must be a list of {evaluator: {name, type}, mapping}")
            v2 = {
                "name": name,
                "enabled": body.get("enabled"),
                "sampling": body.get("sampling"),
                "target": "observation",
                "filter": v2_filters(body.get("filter"), target),
                "evaluatorAssignments": await self._assignments(project_id, items, target),
            }
            if await self._rules.name_taken(project_id, name):
                raise Conflict(f"An evaluation rule named {name!r} exists in this project: "
                               "update it instead")  # fmt: skip
            document = await self._rules.create(project_id, orjson.dumps(v2))
        return (await self._rule_documents(project_id, [document]))[0]

    async def update_rule(self, project_id: str, rule_id: str, raw: bytes) -> bytes:
        body = parse_body(raw)
        if not body:
            raise invalid("the body must change at least one field")
        current = orjson.loads(await self._rules.get(project_id, rule_id))
        if current["target"] == "trace":
            raise invalid(
                "this trace rule (Langfuse's legacy shape) is read-only through "
                "/unstable/: update it through /api/public/v2/evaluation-rules"
            )
        single = body.get("evaluator") is not None or body.get("mapping") is not None
        with unstable_fields(SINGLE_FIELD_NAMES if single else ()):
            if single and body.get("evaluators") is not None:
                raise invalid("evaluators cannot be combined with the deprecated evaluator and "
                              "mapping fields")  # fmt: skip
            was = "experiment" if EXPERIMENT_FILTER in current["filter"] else "observation"
            target = _target(body["target"]) if body.get("target") is not None else was
            v2: dict[str, Any] = {
                k: body[k] for k in ("enabled", "sampling") if body.get(k) is not None
            }
            if body.get("name") is not None:
                v2["name"] = text(body["name"], "name")
                if await self._rules.name_taken(project_id, v2["name"], rule_id):
                    raise Conflict(f"Another evaluation rule is named {v2['name']!r}")
            if body.get("filter") is not None or target != was:
                kept = [f for f in current["filter"] if f != EXPERIMENT_FILTER]
                filters = body["filter"] if body.get("filter") is not None else kept
                v2["filter"] = v2_filters(filters, target)
            assignments = await self._updated_assignments(project_id, body, current, target, was)
            if assignments is not None:
                v2["evaluatorAssignments"] = assignments
            document = await self._rules.update(project_id, rule_id, orjson.dumps(v2))
        return (await self._rule_documents(project_id, [document]))[0]

    async def get_rule(self, project_id: str, rule_id: str) -> bytes:
        document = await self._rules.get(project_id, rule_id)
        return (await self._rule_documents(project_id, [document]))[0]

    async def list_rules(self, project_id: str, page: int, limit: int) -> tuple[list[bytes], int]:
        documents, total = await self._rules.numbered_page(project_id, page, limit)
        return await self._rule_documents(project_id, documents), total

    async def _assignments(
        self, project_id: str, items: list[Any], target: str
    ) -> list[dict[str, Any]]:
        """v2's `evaluatorAssignments` of unstable `evaluators`: names resolved to ids."""
        assignments = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise invalid(f"evaluators[{i}] must be an object")
            evaluator_id = await self._evaluator_named(
                project_id, item.get("evaluator"), f"evaluators[{i}].evaluator"
            )
            _check_sources(item.get("mapping"), target, f"evaluators[{i}].mapping")
            assignments.append(
                {"evaluatorId": evaluator_id, "variableMapping": item.get("mapping")}
            )
        return assignments

    async def _updated_assignments(
        self, project_id: str, body: dict[str, Any], current: dict[str, Any], target: str, was: str
    ) -> list[dict[str, Any]] | None:
        """The assignments an update sets: `evaluators` replaces them all, the deprecated
        `evaluator`/`mapping` the first one only; None leaves them (valid for the target)."""
        if body.get("evaluators") is not None:
            if not isinstance(body["evaluators"], list):
                raise invalid("evaluators must be a list of {evaluator: {name, type}, mapping}")
            return await self._assignments(project_id, body["evaluators"], target)
        kept = [{"evaluatorId": a["evaluatorId"], "variableMapping": a["variableMapping"]}
                for a in current["evaluatorAssignments"]]  # fmt: skip
        if body.get("evaluator") is not None or body.get("mapping") is not None:
            first = kept[0] if kept else {"evaluatorId": None, "variableMapping": None}
            if body.get("evaluator") is not None:
                first = {**first, "evaluatorId": await self._evaluator_named(
                    project_id, body["evaluator"], "evaluators[0].evaluator")}  # fmt: skip
            if first["evaluatorId"] is None:
                raise invalid("evaluator is required: the rule has no evaluator to map")
            if body.get("mapping") is not None:
                first = {**first, "variableMapping": body["mapping"]}
            kept = [first, *kept[1:]]
        elif target == was:
            return None
        for i, assignment in enumerate(kept):
            _check_sources(assignment["variableMapping"], target, f"evaluators[{i}].mapping")
        return kept

    async def _evaluator_named(self, project_id: str, reference: Any, field: str) -> str:
        if not isinstance(reference, dict):
            raise invalid(f"{field} must be an object with the evaluator's name")
        if reference.get("type") == "code":
            raise invalid(CODE_REFUSED)
        if reference.get("type") not in (None, "llm_as_judge"):
            raise invalid(f"{field}.type must be llm_as_judge")
        name = text(reference.get("name"), f"{field}.name")
        ids = await self._evaluators.ids_named(project_id, name)
        if not ids:
            raise invalid(f"{field}.name: no evaluator named {name!r} in this project")
        if len(ids) > 1:
            raise _name_clash(f"{field}.name", name)
        return ids[0]

    async def _rule_documents(self, project_id: str, documents: list[bytes]) -> list[bytes]:
        rules = [orjson.loads(d) for d in documents]
        ids = sorted({a["evaluatorId"] for r in rules for a in r["evaluatorAssignments"]})
        evaluators = {
            e["id"]: e for e in map(orjson.loads, await self._evaluators.documents(project_id, ids))
        }
        return [rule_document(r, evaluators) for r in rules]


def evaluator_document(v2: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "id": v2["id"],
            "name": v2["name"],
            "type": "llm_as_judge",
            "version": v2["version"],
            "variables": v2["variables"],
            "mapping": v2["variableMapping"],
            "evaluationRuleCount": len(v2["evaluationRuleAssignments"]),
            "createdAt": v2["createdAt"],
            "updatedAt": v2["updatedAt"],
            "prompt": "\n\n".join(message["content"] for message in v2["prompt"]),
            "outputDefinition": _public_output(v2["outputDefinition"]),
            "modelConfig": v2["modelConfig"],
        }
    )


def rule_document(v2: dict[str, Any], evaluators: dict[str, dict[str, Any]]) -> bytes:
    """The unstable reading of a v2 rule; `evaluators`: the documents of its evaluators (one
    deleted since the rule was read is left out, as its assignment is gone)."""
    assigned = [(evaluators[a["evaluatorId"]], a["variableMapping"])
                for a in v2["evaluatorAssignments"] if a["evaluatorId"] in evaluators]  # fmt: skip
    references = [{"id": e["id"], "name": e["name"], "type": "llm_as_judge"} for e, _ in assigned]
    paused = next((e for e, _ in assigned if e["status"] == "paused"), None)
    status = "inactive" if not v2["enabled"] else "paused" if paused else "active"
    effective = _effective_mapping(*assigned[0]) if assigned else []
    document: dict[str, Any] = {
        "id": v2["id"],
        "name": v2["name"],
        "evaluator": references[0] if references else None,
        "enabled": v2["enabled"],
        "status": status,
        "pausedReason": paused["pausedReason"] if paused and status == "paused" else None,
        "pausedMessage": paused["pausedMessage"] if paused and status == "paused" else None,
        "sampling": v2["sampling"],
        "createdAt": v2["createdAt"],
        "updatedAt": v2["updatedAt"],
    }
    if v2["target"] == "trace":
        document.update(
            evaluators=[{"evaluator": reference, "mapping": _legacy_mapping(mapping)}
                        for reference, (_, mapping) in zip(references, assigned, strict=True)],
            target="trace",
            delay=v2["delay"],
            timeScope=["NEW"],
            filter=v2["filter"],
            mapping=_legacy_mapping(effective),
        )  # fmt: skip
    else:
        document.update(
            evaluators=[{"evaluator": reference, "mapping": mapping}
                        for reference, (_, mapping) in zip(references, assigned, strict=True)],
            target="experiment" if EXPERIMENT_FILTER in v2["filter"] else "observation",
            filter=[f for f in v2["filter"] if f != EXPERIMENT_FILTER],
            mapping=effective,
        )  # fmt: skip
    return orjson.dumps(document)


def _effective_mapping(
    evaluator: dict[str, Any], override: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Each prompt variable's mapping: the rule's, else the evaluator's default, else none yet
    (`source` null, as Langfuse reads an incomplete mapping)."""
    by_variable = {m["variable"]: m for m in evaluator["variableMapping"] or ()}
    by_variable.update({m["variable"]: m for m in override or ()})
    return [by_variable.get(v, {"variable": v, "source": None, "jsonPath": None})
            for v in evaluator["variables"]]  # fmt: skip


def _legacy_mapping(mapping: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Langfuse's legacy trace-rule mapping: every variable reads the trace."""
    if mapping is None:
        return None
    return [{"variable": m["variable"], "langfuseObject": "trace", "objectName": None,
             "source": m["source"] or "", "jsonPath": m["jsonPath"]} for m in mapping]  # fmt: skip


def _public_output(stored: dict[str, Any]) -> dict[str, Any]:
    score: dict[str, Any] = {"description": stored.get("scoreValueInstructions") or ""}
    if stored["dataType"] == "NUMERIC":
        score.update(minValue=stored.get("minValue"), maxValue=stored.get("maxValue"))
    if stored["dataType"] == "CATEGORICAL":
        score.update(categories=stored["categories"],
                     shouldAllowMultipleMatches=stored["shouldAllowMultipleMatches"])  # fmt: skip
    return {
        "dataType": stored["dataType"],
        "reasoning": {"description": stored.get("scoreReasoningInstructions") or ""},
        "score": score,
    }


def v2_output(value: Any) -> Any:
    """v2's output definition of an unstable one. The unstable shape requires the two
    descriptions; v2 checks everything else (and names the fields, renamed back)."""
    if not isinstance(value, dict):
        return value
    definition = {"dataType": value.get("dataType")}
    for part, key in (("reasoning", "scoreReasoningInstructions"),
                      ("score", "scoreValueInstructions")):  # fmt: skip
        field = value.get(part)
        if not isinstance(field, dict) or not isinstance(field.get("description"), str):
            raise invalid(f"outputDefinition.{part}.description must be a string")
        definition[key] = field["description"]
    score = value["score"]
    for key in ("minValue", "maxValue", "categories", "shouldAllowMultipleMatches"):
        if key in score:
            definition[key] = score[key]
    return definition


def _target(value: Any) -> str:
    if value not in TARGETS:
        raise invalid("target must be observation or experiment (trace rules are made through "
                      "/api/public/v2/evaluation-rules)")  # fmt: skip
    return str(value)


def v2_filters(value: Any, target: str) -> Any:
    """v2's filter of an unstable one: the target's columns only; an experiment rule's filter
    holds the experiment filter too (last, so that v2's messages keep the client's indexes)."""
    if value is None:
        value = []
    if not isinstance(value, list):
        raise invalid("filter must be a list")
    columns = FILTER_COLUMNS[target]
    for i, item in enumerate(value):
        if isinstance(item, dict) and item.get("column") not in columns:
            raise invalid(f"filter[{i}].column: {item.get('column')!r} is not a column of "
                          f"{target} rules ({', '.join(columns)})")  # fmt: skip
    return [*value, EXPERIMENT_FILTER] if target == "experiment" else value


def _check_sources(mapping: Any, target: str, field: str) -> None:
    """Experiment items' sources only on experiment rules (v2 checks the rest of a mapping)."""
    if target == "experiment" or not isinstance(mapping, list):
        return
    for i, item in enumerate(mapping):
        if isinstance(item, dict) and item.get("source") in EXPERIMENT_SOURCES:
            raise invalid(f"{field}[{i}].source: {item['source']} is only valid for target "
                          "experiment")  # fmt: skip


def _name_clash(field: str, name: str) -> Conflict:
    return Conflict(f"{field}: several evaluators are named {name!r} (v2 names are not "
                    "identifiers); rename them or use /api/public/v2/evaluators")  # fmt: skip


@contextlib.contextmanager
def unstable_fields(more: tuple[tuple[str, str], ...] = ()) -> Iterator[None]:
    """v2's validation messages with the fields named as the unstable body names them."""
    try:
        yield
    except InvalidArgument as exc:
        message = str(exc)
        for v2, unstable in (*FIELD_NAMES, *more):
            message = message.replace(v2, unstable)
        raise InvalidArgument(message) from exc

"""The `/unstable/` shapes of evaluators and rules (services/evals/unstable.py): v2 documents read
in the shapes of Langfuse's OpenAPI file, validated against the file's own schemas; experiment
rules, legacy trace rules, paused evaluators and effective mappings; unstable request parts
translated to v2's, with v2's messages naming the unstable fields."""

import functools
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from libs.common.errors import InvalidArgument
from services.evals.fields import invalid
from services.evals.unstable import (
    EXPERIMENT_FILTER,
    SINGLE_FIELD_NAMES,
    evaluator_document,
    rule_document,
    unstable_fields,
    v2_filters,
    v2_output,
)
from tests.contract.test_openapi_routes import OPENAPI

MAPPING = [{"variable": "question", "source": "input", "jsonPath": None},
           {"variable": "answer", "source": "output", "jsonPath": "$.text"}]  # fmt: skip
DATASET = {"type": "stringOptions", "column": "datasetId", "operator": "any of", "value": ["d"]}
STAMP = "2026-12-01T10:00:00.000Z"


def v2_evaluator(**fields: Any) -> dict[str, Any]:
    """An evaluator document as services/evals/evaluators.py writes it."""
    return {
        "id": "e1", "name": "judge", "description": None, "createdBy": None, "status": "active",
        "pausedAt": None, "pausedReason": None, "pausedMessage": None,
        "evaluationRuleAssignments": [], "createdAt": STAMP, "updatedAt": STAMP,
        "versionId": "v1", "version": 1, "versionCreatedAt": STAMP, "versionCreatedBy": None,
        "type": "llm_as_judge",
        "prompt": [{"role": "user", "content": "Q: {{question}} A: {{answer}}"}],
        "variables": ["question", "answer"], "variableMapping": None,
        "modelConfig": {"provider": "openai", "model": "gpt-4o-mini"},
        "outputDefinition": {"dataType": "NUMERIC", "scoreReasoningInstructions": "Why",
                             "scoreValueInstructions": None, "minValue": 0, "maxValue": None},
        **fields,
    }  # fmt: skip


def v2_rule(**fields: Any) -> dict[str, Any]:
    """A rule document as services/evals/rules.py writes it."""
    return {
        "id": "r1", "name": "rule", "createdBy": None, "enabled": True, "sampling": 1.0,
        "filter": [], "evaluatorAssignments": [{"evaluatorId": "e1", "variableMapping": MAPPING}],
        "target": "observation", "delay": 0, "createdAt": STAMP, "updatedAt": STAMP, **fields,
    }  # fmt: skip


def json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable` as JSON Schema (beside a `$ref` too, as the file writes it)."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema(value) for key, value in node.items() if key != "nullable"}
    if not node.get("nullable"):
        return converted
    if "$ref" in converted:
        return {"anyOf": [{"$ref": converted["$ref"]}, {"type": "null"}]}
    if "type" in converted:
        return {**converted, "type": [converted["type"], "null"]}
    return {"anyOf": [converted, {"type": "null"}]}


@functools.cache
def components() -> dict[str, Any]:
    spec = yaml.load(OPENAPI.read_text(), Loader=yaml.CSafeLoader)
    return json_schema(spec["components"])  # type: ignore[no-any-return]


def test_the_schemas_refuse_what_the_file_does_not_allow() -> None:
    with pytest.raises(jsonschema.ValidationError):
        assert_conforms(orjson.dumps({**orjson.loads(evaluator_document(v2_evaluator())),
                                      "prompt": None}), "unstableEvaluator")  # fmt: skip


def assert_conforms(document: bytes, schema: str) -> dict[str, Any]:
    root = {"allOf": [{"$ref": f"#/components/schemas/{schema}"}], "components": components()}
    value: dict[str, Any] = orjson.loads(document)
    jsonschema.Draft7Validator(root).validate(value)
    return value


def test_an_evaluator_reads_in_the_files_shape() -> None:
    read = assert_conforms(evaluator_document(v2_evaluator(
        variableMapping=MAPPING, evaluationRuleAssignments=[{"evaluationRuleId": "r1"}])),
        "unstableEvaluator")  # fmt: skip
    assert read["prompt"] == "Q: {{question}} A: {{answer}}"
    assert (read["mapping"], read["evaluationRuleCount"]) == (MAPPING, 1)
    assert read["outputDefinition"] == {"dataType": "NUMERIC", "reasoning": {"description": "Why"},
                                        "score": {"description": "", "minValue": 0,
                                                  "maxValue": None}}  # fmt: skip
    categorical = {"dataType": "CATEGORICAL", "categories": ["a", "b"],
                   "shouldAllowMultipleMatches": True}  # fmt: skip
    chat = [{"role": "system", "content": "You judge."}, {"role": "user", "content": "{{x}}"}]
    read = assert_conforms(evaluator_document(v2_evaluator(
        prompt=chat, outputDefinition=categorical)), "unstableEvaluator")  # fmt: skip
    assert read["prompt"] == "You judge.\n\n{{x}}"
    assert read["outputDefinition"]["score"] == {"description": "", "categories": ["a", "b"],
                                                 "shouldAllowMultipleMatches": True}  # fmt: skip


def test_rules_read_as_observation_experiment_or_legacy_trace_rules() -> None:
    evaluators = {"e1": v2_evaluator(variableMapping=MAPPING[:1])}
    override = [{"variable": "answer", "source": "output", "jsonPath": None}]
    live = assert_conforms(rule_document(v2_rule(evaluatorAssignments=[
        {"evaluatorId": "e1", "variableMapping": override}]), evaluators),
        "unstableReadableEvaluationRule")  # fmt: skip
    assert (live["target"], live["status"], live["filter"]) == ("observation", "active", [])
    # The effective mapping: the rule's override over the evaluator's default.
    assert live["mapping"] == [MAPPING[0], override[0]]
    reference = {"id": "e1", "name": "judge", "type": "llm_as_judge"}
    assert live["evaluators"] == [{"evaluator": reference, "mapping": override}]

    experiment = assert_conforms(rule_document(
        v2_rule(filter=[DATASET, EXPERIMENT_FILTER], enabled=False), evaluators),
        "unstableReadableEvaluationRule")  # fmt: skip
    assert (experiment["target"], experiment["status"]) == ("experiment", "inactive")
    assert experiment["filter"] == [DATASET]

    legacy = assert_conforms(rule_document(v2_rule(target="trace", delay=10_000), evaluators),
                             "unstableReadableEvaluationRule")  # fmt: skip
    assert (legacy["target"], legacy["delay"], legacy["timeScope"]) == ("trace", 10_000, ["NEW"])
    assert legacy["mapping"][1] == {"variable": "answer", "langfuseObject": "trace",
                                    "objectName": None, "source": "output",
                                    "jsonPath": "$.text"}  # fmt: skip


def test_an_enabled_rule_with_a_paused_evaluator_reads_as_paused() -> None:
    paused = v2_evaluator(status="paused", pausedReason="LLM_CONNECTION_ERROR",
                          pausedMessage="401 from the provider")  # fmt: skip
    read = orjson.loads(rule_document(v2_rule(), {"e1": paused}))
    assert (read["status"], read["pausedReason"], read["pausedMessage"]) == (
        "paused", "LLM_CONNECTION_ERROR", "401 from the provider")  # fmt: skip
    disabled = orjson.loads(rule_document(v2_rule(enabled=False), {"e1": paused}))
    assert (disabled["status"], disabled["pausedReason"]) == ("inactive", None)


def test_unstable_request_parts_become_v2_ones() -> None:
    assert v2_filters([DATASET], "experiment") == [DATASET, EXPERIMENT_FILTER]
    assert v2_filters(None, "observation") == []
    with pytest.raises(InvalidArgument, match=r"filter\[0\]\.column: 'name'"):
        v2_filters([{"column": "name"}], "experiment")
    with pytest.raises(InvalidArgument, match=r"filter\[0\]\.column: 'datasetId'"):
        v2_filters([DATASET], "observation")
    output = {"dataType": "NUMERIC", "reasoning": {"description": "Why"},
              "score": {"description": "How", "minValue": 0, "maxValue": 1}}  # fmt: skip
    assert v2_output(output) == {"dataType": "NUMERIC", "scoreReasoningInstructions": "Why",
                                 "scoreValueInstructions": "How", "minValue": 0,
                                 "maxValue": 1}  # fmt: skip
    with pytest.raises(InvalidArgument, match=r"outputDefinition\.score\.description"):
        v2_output({"dataType": "BOOLEAN", "reasoning": {"description": "Why"}})


@pytest.mark.parametrize(
    ("v2_message", "more", "unstable_message"),
    [
        ("evaluatorAssignments[1].variableMapping[0].source must be", (),
         "evaluators[1].mapping[0].source must be"),
        ("outputDefinition.minValue must be a finite number", (),
         "outputDefinition.score.minValue must be a finite number"),
        ("prompt[0].content must be a non-empty string", (), "prompt must be a non-empty string"),
        ("evaluatorAssignments[0].variableMapping: the prompt's variable 'a' has no mapping",
         SINGLE_FIELD_NAMES, "mapping: the prompt's variable 'a' has no mapping"),
        ("evaluators[0].evaluator.name: no evaluator named 'x'", SINGLE_FIELD_NAMES,
         "evaluator.name: no evaluator named 'x'"),
    ],
)  # fmt: skip
def test_v2_messages_name_the_unstable_fields(
    v2_message: str, more: tuple[tuple[str, str], ...], unstable_message: str
) -> None:
    with pytest.raises(InvalidArgument) as caught, unstable_fields(more):
        raise invalid(v2_message)
    assert str(caught.value) == f"Invalid request data: {unstable_message}"

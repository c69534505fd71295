"""The pure parts of LLM-as-a-judge: rule filters (validation naming the field, three-valued
matching on single events, full matching on merged state), variable mappings and JSON paths,
prompt rendering, the output schema and the checks on the judge's verdict."""

from typing import Any

import orjson
import pytest

from libs.common.errors import InvalidArgument
from services.evals.evaluators import Definition
from services.evals.judge import output_schema, parse_verdict, render
from services.evals.judge_fields import (
    at_path,
    list_window,
    next_cursor,
    template_variables,
    variable_mapping,
)
from services.evals.rule_filters import checked_filters, matches, observation_row, trace_row
from services.evals.rules import ActiveRule
from services.evals.trigger import ProjectRules, TargetEvent, matching

NAME_IS_ANSWER = {"type": "stringOptions", "column": "name", "operator": "any of",
                  "value": ["answer"]}  # fmt: skip
TAGGED_PROD = {"type": "arrayOptions", "column": "tags", "operator": "any of", "value": ["prod"]}


def test_filters_name_the_field_they_refuse() -> None:
    cases = [
        ({"type": "string", "column": "colour", "operator": "=", "value": "x"}, "filter[0].column"),
        ({"type": "string", "column": "name", "operator": "=", "value": "x"}, "filter[0].type"),
        ({**NAME_IS_ANSWER, "operator": "contains"}, "filter[0].operator"),
        ({**NAME_IS_ANSWER, "value": "answer"}, "filter[0].value"),
        ({"type": "stringObject", "column": "metadata", "operator": "=", "value": "v"},
         "filter[0].key"),
    ]  # fmt: skip
    for item, field in cases:
        with pytest.raises(InvalidArgument, match=field.replace("[", r"\[").replace("]", r"\]")):
            checked_filters([item], "observation")
    with pytest.raises(InvalidArgument, match="not a column of trace rules"):
        checked_filters([{**NAME_IS_ANSWER, "column": "isRootObservation"}], "trace")


def test_a_single_event_leaves_what_it_does_not_carry_unknown() -> None:
    filters = checked_filters([NAME_IS_ANSWER, TAGGED_PROD], "observation")
    event = observation_row({"id": "o1", "name": "answer"}, None, merged=False)
    assert matches(filters, event) is None  # tags belong to the trace, not in this event
    assert matches(filters, observation_row({"name": "other"}, None, merged=False)) is False
    merged = observation_row({"id": "o1", "name": "answer"}, {"tags": ["prod"]}, merged=True)
    assert matches(filters, merged) is True
    assert matches(filters, observation_row({"name": "answer"}, {"tags": []}, merged=True)) is False


def test_experiment_columns_come_from_the_experiment_metadata() -> None:
    experiment = {"id": "e1", "dataset.id": "d1", "item.root_observation_id": "root"}
    body = {"id": "root", "metadata": {"experiment": experiment}}
    row = observation_row(body, None, merged=True)
    assert (row["experimentId"], row["datasetId"], row["isExperimentItemRootSpan"]) == (
        "e1", "d1", True)  # fmt: skip
    child = observation_row({**body, "id": "child", "parentObservationId": "root"}, None,
                            merged=True)  # fmt: skip
    assert child["isExperimentItemRootSpan"] is False and child["isRootObservation"] is False


def test_metadata_and_string_operators() -> None:
    [f] = checked_filters([{"type": "stringObject", "column": "metadata", "key": "team",
                            "operator": "starts with", "value": "ev"}], "trace")  # fmt: skip
    assert matches([f], trace_row({"metadata": {"team": "evals"}}, merged=True)) is True
    assert matches([f], trace_row({"metadata": {}}, merged=True)) is False
    assert matches([f], trace_row({"name": "t"}, merged=False)) is None


def test_mappings_name_only_the_prompts_variables() -> None:
    prompt = [{"role": "user", "content": "{{ question }} / {{answer}} / {{question}}"}]
    variables = template_variables(prompt)
    assert variables == ["question", "answer"]
    with pytest.raises(InvalidArgument, match=r"variableMapping\[0\].variable"):
        variable_mapping([{"variable": "nope", "source": "input"}], "variableMapping", variables)
    with pytest.raises(InvalidArgument, match=r"variableMapping\[0\].source"):
        variable_mapping([{"variable": "answer", "source": "db"}], "variableMapping", variables)
    with pytest.raises(InvalidArgument, match="jsonPath"):
        variable_mapping([{"variable": "answer", "source": "output", "jsonPath": "$..x"}],
                         "variableMapping", variables)  # fmt: skip


def test_json_paths_read_objects_lists_and_json_text() -> None:
    value = {"choices": [{"message": {"content": "4"}}]}
    assert at_path(value, "$.choices[0].message.content") == "4"
    assert at_path('{"a": {"b": 1}}', "a.b") == 1
    assert at_path(value, "$.missing[3]") is None


def test_cursors_are_opaque_offsets() -> None:
    assert list_window(10, "") == (10, 0)
    cursor = next_cursor(10, 0, 11)
    assert list_window(10, cursor) == (10, 10) and next_cursor(10, 0, 10) == ""
    for bad in ("garbage", "e30"):
        with pytest.raises(InvalidArgument, match="cursor"):
            list_window(10, bad)
    with pytest.raises(InvalidArgument, match="limit"):
        list_window(101, "")


def definition(output: dict[str, Any]) -> Definition:
    return Definition(
        prompt=[{"role": "system", "content": "Judge."},
                {"role": "user", "content": "Q={{q}} A={{a}} M={{m}}"}],
        variables=["q", "a", "m"],
        variable_mapping=[{"variable": "q", "source": "input", "jsonPath": None}],
        provider="p", model="m", output=output,
    )  # fmt: skip


def test_render_fills_mapped_values_and_overrides_win() -> None:
    observation = {"input": "2+2?", "output": {"text": "4"}, "metadata": {"team": "evals"}}
    override = [{"variable": "a", "source": "output", "jsonPath": "$.text"},
                {"variable": "m", "source": "metadata", "jsonPath": None}]  # fmt: skip
    messages = render(definition({"dataType": "BOOLEAN"}), override, observation)
    assert messages[1]["content"] == 'Q=2+2? A=4 M={"team":"evals"}'
    assert messages[0] == {"role": "system", "content": "Judge."}


def test_verdicts_are_checked_against_the_output_definition() -> None:
    numeric = {"dataType": "NUMERIC", "minValue": 0, "maxValue": 1}
    assert parse_verdict('{"score": 0.5, "reasoning": "ok"}', numeric).values == [("", 0.5)]
    for bad in ('{"score": 2}', '{"score": "high"}', "not json", '{"reasoning": "x"}'):
        with pytest.raises(ValueError):
            parse_verdict(bad, numeric)
    boolean = {"dataType": "BOOLEAN"}
    assert parse_verdict('{"score": true, "reasoning": ""}', boolean).values == [("", 1.0)]
    categorical = {"dataType": "CATEGORICAL", "categories": ["good", "bad"],
                   "shouldAllowMultipleMatches": True}  # fmt: skip
    assert [v for _, v in parse_verdict('{"score": ["good", "bad"]}', categorical).values] == [
        "good", "bad"]  # fmt: skip
    with pytest.raises(ValueError, match="categories"):
        parse_verdict('{"score": "meh"}', categorical)
    schema = output_schema(categorical)
    assert schema["properties"]["score"]["items"]["enum"] == ["good", "bad"]
    assert schema["required"] == ["score", "reasoning"]


def test_rules_filed_by_name_are_found_by_the_events_name_or_when_it_is_unknown() -> None:
    def rule(rule_id: str, filters: list[dict[str, Any]]) -> ActiveRule:
        return ActiveRule("p", rule_id, "observation", checked_filters(filters, "observation"),
                          1.0, 0, (f"evaluator-{rule_id}",))  # fmt: skip

    rules = ProjectRules([
        rule("by-name", [{**NAME_IS_ANSWER, "value": ["answer", "reply"]}]),
        rule("any", []),
        rule("trace-level", [TAGGED_PROD]),
    ])  # fmt: skip

    def judged(body: dict[str, Any], complete: bool = True) -> set[str]:
        event = TargetEvent("p", "t1", "o1", orjson.dumps(body), complete)
        return {m.rule_id for m in matching(rules, event)}

    assert judged({"id": "o1", "name": "reply"}) == {"by-name", "any", "trace-level"}
    assert judged({"id": "o1", "name": "other"}) == {"any", "trace-level"}
    assert judged({"id": "o1", "output": "late"}, complete=False) == {"by-name", "any",
                                                                       "trace-level"}  # fmt: skip
    assert judged({"id": "o1", "name": "answer", "environment": "llm-as-a-judge"}) == set()

"""Langfuse's `/api/public/unstable/evaluators` and `/unstable/evaluation-rules` on the real stack:
the same evaluators and rules as `/v2/` (the 5.x SDK's client reads what the unstable routes
made, and the other way round) in the OpenAPI file's shapes; page-numbered lists; an evaluator
family named by its name; experiment rules stored as v2 says them; v2's trace rules read as
Langfuse's legacy rules; another project's objects are 404s; bad input is a 400 naming the field
as the unstable body spells it. No SDK calls these routes (the Python 5.x and JS 5.x SDKs have
clients for `/unstable/dashboards` only), so the tests speak HTTP."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from langfuse import Langfuse
from langfuse.api import (
    CreateEvaluatorRequest_LlmAsJudge,
    EvaluationRuleEvaluatorAssignmentInput,
    EvaluatorChatMessage,
    EvaluatorChatMessageRole,
    EvaluatorModelConfig,
    EvaluatorOutputDefinition_Boolean,
    PromptVariableMappingInput,
)

from tests.e2e.admin import new_project
from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.eventually import eventually
from tests.support.llm_standin import LlmStandIn

EVALUATORS = "/api/public/unstable/evaluators"
RULES = "/api/public/unstable/evaluation-rules"
PROMPT = "Question: {{question}}\nAnswer: {{answer}}\nIs the answer correct?"
MODEL = "judge-model"
NUMERIC = {
    "dataType": "NUMERIC",
    "reasoning": {"description": "One sentence."},
    "score": {"description": "1 when correct.", "minValue": 0, "maxValue": 1},
}
MAPPING: list[dict[str, Any]] = [
    {"variable": "question", "source": "input", "jsonPath": None},
    {"variable": "answer", "source": "output", "jsonPath": "$.text"},
]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Project:
    """A project of its own (so that lists count only this test's objects), its HTTP client,
    its 5.x SDK client and an LLM connection's provider name."""

    http: httpx.AsyncClient
    sdk: Langfuse
    provider: str


@contextlib.asynccontextmanager
async def project_with_connection(stack: Stack, base_url: str) -> AsyncIterator[Project]:
    public_key, secret_key = new_project(stack, "unstable")
    sdk = Langfuse(public_key=public_key, secret_key=secret_key, host=stack.gateway_url)
    async with httpx.AsyncClient(base_url=stack.gateway_url,
                                 auth=(public_key, secret_key)) as http:  # fmt: skip
        provider = unique("stand-in")
        connection = {"provider": provider, "adapter": "openai", "secretKey": "sk-unstable",
                      "baseURL": base_url, "customModels": [MODEL],
                      "withDefaultModels": False}  # fmt: skip
        assert (await http.put("/api/public/llm-connections", json=connection)).status_code == 200
        yield Project(http, sdk, provider)


@pytest.fixture
async def project(stack: Stack) -> AsyncIterator[Project]:
    # Nothing is judged here: the connection's endpoint is never called.
    async with project_with_connection(stack, "http://127.0.0.1:9/v1") as made:
        yield made


def evaluator_body(project: Project, name: str, **fields: Any) -> dict[str, Any]:
    return {"type": "llm_as_judge", "name": name, "prompt": PROMPT, "outputDefinition": NUMERIC,
            "modelConfig": {"provider": project.provider, "model": MODEL}, **fields}  # fmt: skip


async def created(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def ok(response: Any) -> dict[str, Any]:
    answer: httpx.Response = await response
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def test_an_evaluator_is_one_object_on_both_paths(project: Project) -> None:
    name = unique("correctness")
    made = await created(project.http, EVALUATORS, evaluator_body(project, name, mapping=MAPPING))
    assert {k: v for k, v in made.items() if k not in ("id", "createdAt", "updatedAt")} == {
        "name": name, "type": "llm_as_judge", "version": 1, "variables": ["question", "answer"],
        "mapping": MAPPING, "evaluationRuleCount": 0, "prompt": PROMPT,
        "outputDefinition": NUMERIC, "modelConfig": {"provider": project.provider, "model": MODEL},
    }  # fmt: skip

    v2 = project.sdk.api.evaluators.get(made["id"])
    assert v2.name == name and v2.version == 1
    assert [(m.role, m.content) for m in v2.prompt] == [("user", PROMPT)]
    assert v2.output_definition.score_reasoning_instructions == "One sentence."

    # The name is the family: creating it again is its next version, under the same id.
    again = await created(project.http, EVALUATORS, evaluator_body(
        project, name, prompt="Is {{answer}} right?",
        outputDefinition={"dataType": "BOOLEAN", "reasoning": {"description": "Why."},
                          "score": {"description": "True when right."}}))  # fmt: skip
    assert (again["id"], again["version"], again["variables"]) == (made["id"], 2, ["answer"])
    assert again["outputDefinition"]["dataType"] == "BOOLEAN"
    assert len(project.sdk.api.evaluators.list_versions(made["id"]).data) == 2

    # A v2 chat prompt reads as its messages' contents (the unstable prompt is one string).
    role = EvaluatorChatMessageRole
    chat = project.sdk.api.evaluators.create(request=CreateEvaluatorRequest_LlmAsJudge(
        name=unique("chat"),
        prompt=[EvaluatorChatMessage(role=role.SYSTEM, content="You judge answers."),
                EvaluatorChatMessage(role=role.USER, content="Is {{answer}} right?")],
        model_config_=EvaluatorModelConfig(provider=project.provider, model=MODEL),
        output_definition=EvaluatorOutputDefinition_Boolean(),
    ))  # fmt: skip
    read = await ok(project.http.get(f"{EVALUATORS}/{chat.id}"))
    assert read["prompt"] == "You judge answers.\n\nIs {{answer}} right?"
    assert read["outputDefinition"] == {"dataType": "BOOLEAN", "reasoning": {"description": ""},
                                        "score": {"description": ""}}  # fmt: skip

    first = await ok(project.http.get(EVALUATORS, params={"limit": 1}))
    assert first["meta"] == {"page": 1, "limit": 1, "totalItems": 2, "totalPages": 2}
    second = await ok(project.http.get(EVALUATORS, params={"page": 2, "limit": 1}))
    assert {first["data"][0]["id"], second["data"][0]["id"]} == {made["id"], chat.id}

    deleted = await project.http.delete(f"{EVALUATORS}/{made['id']}")
    assert deleted.json() == {"message": "Evaluator successfully deleted"}
    gone = await project.http.get(f"{EVALUATORS}/{made['id']}")
    assert gone.status_code == 404 and gone.json()["code"] == "resource_not_found"
    assert [e.id for e in project.sdk.api.evaluators.list().data] == [chat.id]


async def test_a_rule_is_one_object_on_both_paths(project: Project) -> None:
    judge = await created(project.http, EVALUATORS, evaluator_body(project, unique("judge")))
    reference = {"id": judge["id"], "name": judge["name"], "type": "llm_as_judge"}
    name_filter = {"type": "stringOptions", "column": "name", "operator": "any of",
                   "value": ["answer"]}  # fmt: skip
    observation = await created(project.http, RULES, {
        "name": unique("live"), "target": "observation", "enabled": True, "sampling": 0.5,
        "filter": [name_filter],
        "evaluators": [{"evaluator": {"name": judge["name"], "type": "llm_as_judge"},
                        "mapping": MAPPING}],
    })  # fmt: skip
    assert {k: observation[k] for k in ("evaluator", "status", "target", "filter", "mapping",
                                        "evaluators", "sampling")} == {  # fmt: skip
        "evaluator": reference, "status": "active", "target": "observation",
        "filter": [name_filter], "mapping": MAPPING, "sampling": 0.5,
        "evaluators": [{"evaluator": reference, "mapping": MAPPING}],
    }  # fmt: skip
    v2 = project.sdk.api.evaluation_rules.get(observation["id"])
    assert v2.evaluator_assignments[0].evaluator_id == judge["id"] and v2.sampling == 0.5
    assert (await ok(project.http.get(f"{EVALUATORS}/{judge['id']}")))["evaluationRuleCount"] == 1

    # The deprecated single-evaluator form; an experiment rule is v2's observation rule on
    # experiment items' root spans.
    dataset_filter = {"type": "stringOptions", "column": "datasetId", "operator": "any of",
                      "value": ["dataset-1"]}  # fmt: skip
    expected = [*MAPPING[:1], {"variable": "answer", "source": "expected_output", "jsonPath": None}]
    experiment = await created(project.http, RULES, {
        "name": unique("experiments"), "target": "experiment", "enabled": False,
        "filter": [dataset_filter], "evaluator": {"name": judge["name"]}, "mapping": expected,
    })  # fmt: skip
    assert (experiment["target"], experiment["status"]) == ("experiment", "inactive")
    assert (experiment["filter"], experiment["mapping"]) == ([dataset_filter], expected)
    stored = project.sdk.api.evaluation_rules.get(experiment["id"])
    assert [f.column for f in stored.filter] == ["datasetId", "isExperimentItemRootSpan"]

    # v2's trace rules read as Langfuse's legacy rules, read-only here.
    trace_rule = project.sdk.api.evaluation_rules.create(
        name=unique("traces"), enabled=True,
        evaluator_assignments=[EvaluationRuleEvaluatorAssignmentInput(
            evaluator_id=judge["id"],
            variable_mapping=[PromptVariableMappingInput(**m) for m in MAPPING],
        )],
        request_options={"additional_body_parameters": {"target": "trace"}},
    )  # fmt: skip
    legacy = await ok(project.http.get(f"{RULES}/{trace_rule.id}"))
    assert (legacy["target"], legacy["delay"], legacy["timeScope"]) == ("trace", 10_000, ["NEW"])
    assert legacy["mapping"][1] == {"variable": "answer", "langfuseObject": "trace",
                                    "objectName": None, "source": "output",
                                    "jsonPath": "$.text"}  # fmt: skip
    refused = await project.http.patch(f"{RULES}/{trace_rule.id}", json={"sampling": 0.1})
    assert refused.status_code == 400 and "read-only" in refused.json()["message"]

    listed = await ok(project.http.get(RULES, params={"page": 1, "limit": 10}))
    assert listed["meta"] == {"page": 1, "limit": 10, "totalItems": 3, "totalPages": 1}
    assert {r["target"] for r in listed["data"]} == {"observation", "experiment", "trace"}

    # PATCH changes only what it names; a target change takes a filter valid for it.
    patched = await ok(project.http.patch(f"{RULES}/{observation['id']}", json={
        "enabled": False, "target": "experiment", "filter": [dataset_filter]}))  # fmt: skip
    assert (patched["status"], patched["target"], patched["filter"]) == (
        "inactive", "experiment", [dataset_filter])  # fmt: skip
    assert (patched["sampling"], patched["mapping"]) == (0.5, MAPPING)
    assert project.sdk.api.evaluation_rules.get(observation["id"]).enabled is False

    clash = await project.http.post(RULES, json={
        "name": experiment["name"], "target": "observation", "enabled": False,
        "evaluators": [{"evaluator": {"name": judge["name"]}, "mapping": MAPPING}]})  # fmt: skip
    assert clash.status_code == 409 and clash.json()["code"] == "conflict"

    deleted = await project.http.delete(f"{RULES}/{observation['id']}")
    assert deleted.json() == {"message": "Evaluation rule successfully deleted"}
    assert (await project.http.get(f"/api/public/v2/evaluation-rules/{observation['id']}")
            ).status_code == 404  # fmt: skip


async def test_another_projects_evaluators_and_rules_are_404s(
    stack: Stack, project: Project
) -> None:
    judge = await created(project.http, EVALUATORS, evaluator_body(project, unique("private")))
    rule = await created(project.http, RULES, {
        "name": unique("private"), "target": "observation", "enabled": False,
        "evaluators": [{"evaluator": {"name": judge["name"]}, "mapping": MAPPING}]})  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.gateway_url,
                                 auth=(PUBLIC_KEY, SECRET_KEY)) as other:  # fmt: skip
        for response in (
            await other.get(f"{EVALUATORS}/{judge['id']}"),
            await other.delete(f"{EVALUATORS}/{judge['id']}"),
            await other.get(f"{RULES}/{rule['id']}"),
            await other.patch(f"{RULES}/{rule['id']}", json={"enabled": False}),
            await other.delete(f"{RULES}/{rule['id']}"),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "resource_not_found"
        borrowed = await other.post(RULES, json={
            "name": unique("borrowed"), "target": "observation", "enabled": False,
            "evaluators": [{"evaluator": {"name": judge["name"]}, "mapping": MAPPING}],
        })  # fmt: skip
        assert borrowed.status_code == 400
        assert "evaluators[0].evaluator.name" in borrowed.json()["message"]
        listed = await ok(other.get(EVALUATORS, params={"limit": 100}))
        assert judge["id"] not in {e["id"] for e in listed["data"]}
    assert (await ok(project.http.get(f"{RULES}/{rule['id']}")))["name"] == rule["name"]


async def test_bad_input_is_a_400_naming_the_field(project: Project) -> None:
    judge = await created(project.http, EVALUATORS, evaluator_body(project, unique("judge")))
    rule = await created(project.http, RULES, {
        "name": unique("rule"), "target": "observation", "enabled": False,
        "evaluators": [{"evaluator": {"name": judge["name"]}, "mapping": MAPPING}]})  # fmt: skip

    def rule_body(**fields: Any) -> dict[str, Any]:
        return {"name": unique("bad"), "target": "observation", "enabled": True,
                "evaluators": [{"evaluator": {"name": judge["name"]}, "mapping": MAPPING}],
                **fields}  # fmt: skip

    no_reasoning = {"dataType": "NUMERIC", "score": {"description": "x"}}
    bad_bound = {**NUMERIC, "score": {"description": "x", "minValue": "low"}}
    cases = [
        (EVALUATORS, evaluator_body(project, "x", outputDefinition=no_reasoning),
         "outputDefinition.reasoning.description"),
        (EVALUATORS, evaluator_body(project, "x", outputDefinition=bad_bound),
         "outputDefinition.score.minValue"),
        (EVALUATORS, evaluator_body(project, "x", mapping=[{"variable": "nope",
                                                           "source": "input"}]),
         "mapping[0].variable"),
        (EVALUATORS, evaluator_body(project, "x", prompt=[{"role": "user", "content": "x"}]),
         "prompt must be a string"),
        (EVALUATORS, evaluator_body(project, "x", modelConfig=None), "modelConfig"),
        (EVALUATORS, evaluator_body(project, "x", type="code"), "sandbox"),
        (RULES, rule_body(target="trace"), "target"),
        (RULES, rule_body(sampling=2), "sampling"),
        (RULES, rule_body(evaluators=[{"evaluator": {"name": "no-such-judge"}}]),
         "evaluators[0].evaluator.name"),
        (RULES, rule_body(evaluators=[{"evaluator": {"name": judge["name"]},
                                       "mapping": MAPPING[:1]}]),
         "evaluators[0].mapping: the prompt's variable 'answer' has no mapping"),
        (RULES, rule_body(evaluators=[{"evaluator": {"name": judge["name"]}, "mapping": [
            MAPPING[0], {"variable": "answer", "source": "expected_output"}]}]),
         "evaluators[0].mapping[1].source"),
        (RULES, rule_body(target="experiment", filter=[{"type": "stringOptions", "column": "name",
                                                       "operator": "any of", "value": ["a"]}]),
         "filter[0].column"),
        (RULES, rule_body(evaluator={"name": judge["name"]}, mapping=MAPPING), "combined"),
        (RULES, {"name": unique("bad"), "target": "observation", "enabled": True,
                 "evaluator": {"name": judge["name"]}, "mapping": MAPPING[:1]},
         "mapping: the prompt's variable 'answer'"),
    ]  # fmt: skip
    for path, body, field in cases:
        response = await project.http.post(path, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == "invalid_body"
        assert field in response.json()["message"], (field, response.text)
    for patch, field in (
        ({}, "at least one field"),
        ({"target": "dataset"}, "target"),
        ({"evaluators": [{"evaluator": {"name": "nope"}}]}, "evaluators[0]"),
    ):
        response = await project.http.patch(f"{RULES}/{rule['id']}", json=patch)
        assert response.status_code == 400 and field in response.json()["message"], response.text
    for params in ({"page": -1}, {"limit": 101}, {"page": "x"}):
        response = await project.http.get(EVALUATORS, params=params)
        assert response.status_code == 400 and response.json()["code"] == "invalid_query"
    assert (await project.http.get(f"{EVALUATORS}/%00")).status_code == 404
    assert (await project.http.get(f"{RULES}/missing")).status_code == 404


async def test_a_rule_made_on_the_unstable_path_judges(stack: Stack) -> None:
    with LlmStandIn(latency=0.01) as llm:
        async with project_with_connection(stack, llm.base_url) as project:
            judge = await created(project.http, EVALUATORS, evaluator_body(project, unique("j")))
            judged = unique("answer")
            await created(project.http, RULES, {
                "name": unique("live"), "target": "observation", "enabled": True,
                "filter": [{"type": "stringOptions", "column": "name", "operator": "any of",
                            "value": [judged]}],
                "evaluators": [{"evaluator": {"name": judge["name"]}, "mapping": MAPPING}],
            })  # fmt: skip
            generation = project.sdk.start_observation(
                name=judged, as_type="generation", input="What is 2+2?", output={"text": "4"}
            )
            generation.end()
            project.sdk.flush()

            async def scores() -> list[dict[str, Any]]:
                response = await project.http.get("/api/public/v2/scores", params={
                    "traceId": generation.trace_id, "source": "EVAL"})  # fmt: skip
                return response.json().get("data", [])  # type: ignore[no-any-return]

            [score] = await eventually(scores, lambda s: len(s) == 1)
            assert score["name"] == judge["name"]
            assert any("Question: What is 2+2?\nAnswer: 4" in p for p in llm.prompts())

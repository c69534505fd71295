"""LLM-as-a-judge end to end: an LLM connection, an evaluator and a rule created through the 5.x
SDK's API client; traces ingested by the 5.x SDK; the stand-in LLM server (a real HTTP server)
judging them; scores with source EVAL read back through the public API, with the judge call as a
generation of its own. Exactly one score per matching target, none for the others; sampling,
delay, retries on 429, a dead endpoint that pauses its evaluator, code evaluators and bad input
refused in the SDK's error shape, and the secret key in no response and no log line."""

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langfuse import Langfuse
from langfuse.api import (
    CreateEvaluatorRequest_LlmAsJudge,
    EvaluationRuleEvaluatorAssignmentInput,
    EvaluationRuleFilter_StringOptions,
    EvaluatorModelConfig,
    EvaluatorOutputDefinition_Numeric,
    LlmAdapter,
    PromptVariableMappingInput,
)

from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.eventually import eventually
from tests.support.llm_standin import LlmStandIn

AUTH = (PUBLIC_KEY, SECRET_KEY)
LLM_SECRET = f"sk-judge-{uuid.uuid4().hex}"
PROMPT = "Question: {{question}}\nAnswer: {{answer}}\nIs the answer correct?"
MODEL = "judge-model"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sdk(stack: Stack) -> Langfuse:
    return Langfuse(public_key=PUBLIC_KEY, secret_key=SECRET_KEY, host=stack.gateway_url)


@pytest.fixture
def llm() -> Iterator[LlmStandIn]:
    with LlmStandIn(latency=0.05) as server:
        yield server


def connection(sdk: Langfuse, base_url: str) -> str:
    provider = unique("stand-in")
    created = sdk.api.llm_connections.upsert(
        provider=provider, adapter=LlmAdapter.OPEN_AI, secret_key=LLM_SECRET, base_url=base_url,
        custom_models=[MODEL], with_default_models=False,
        extra_headers={"X-Judge-Header": "header-value"},
    )  # fmt: skip
    assert created.display_secret_key == "..." + LLM_SECRET[-4:]
    assert created.extra_header_keys == ["X-Judge-Header"]
    return provider


def evaluator(sdk: Langfuse, provider: str, name: str | None = None) -> Any:
    return sdk.api.evaluators.create(
        request=CreateEvaluatorRequest_LlmAsJudge(
            name=name or unique("correctness"),
            prompt=PROMPT,
            model_config_=EvaluatorModelConfig(provider=provider, model=MODEL),
            output_definition=EvaluatorOutputDefinition_Numeric(
                min_value=0, max_value=1, score_reasoning_instructions="One sentence."
            ),
        )
    )


def rule(sdk: Langfuse, evaluator_id: str, observation_name: str, **extra: Any) -> Any:
    sampling = extra.pop("sampling", None)
    return sdk.api.evaluation_rules.create(
        name=unique("rule"),
        enabled=True,
        sampling=sampling,
        filter=[EvaluationRuleFilter_StringOptions(column="name", operator="any of",
                                                   value=[observation_name])],
        evaluator_assignments=[EvaluationRuleEvaluatorAssignmentInput(
            evaluator_id=evaluator_id,
            variable_mapping=[
                PromptVariableMappingInput(variable="question", source="input"),
                PromptVariableMappingInput(variable="answer", source="output", json_path="$.text"),
            ],
        )],
        request_options={"additional_body_parameters": {"delay": 0, **extra}},
    )  # fmt: skip


def generation(sdk: Langfuse, name: str, question: str, answer: str) -> tuple[str, str]:
    observation = sdk.start_observation(name=name, as_type="generation", input=question,
                                        output={"text": answer}, model="gpt-4o-mini")  # fmt: skip
    observation.end()
    return observation.trace_id, observation.id


async def api(stack: Stack, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        return await client.get(path, params=params)


async def eval_scores(stack: Stack, trace_id: str) -> list[dict[str, Any]]:
    response = await api(stack, "/api/public/v2/scores", traceId=trace_id, source="EVAL")
    return [s for s in response.json().get("data", []) if s["source"] == "EVAL"]


async def jobs(stack: Stack, **params: str) -> list[dict[str, Any]]:
    response = await api(stack, "/api/public/unstable/evaluation-jobs", **params)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def test_one_score_per_matching_observation_with_the_rendered_prompt(
    stack: Stack, sdk: Langfuse, llm: LlmStandIn
) -> None:
    judged_name = unique("answer")
    judge = evaluator(sdk, connection(sdk, llm.base_url))
    created = rule(sdk, judge.id, judged_name)
    assert created.evaluator_assignments[0].evaluator_id == judge.id

    other_trace, _ = generation(sdk, unique("not-judged"), "What is 3+3?", "6")
    trace_id, observation_id = generation(sdk, judged_name, "What is 2+2?", "4")
    sdk.flush()

    [score] = await eventually(lambda: eval_scores(stack, trace_id), lambda s: len(s) == 1)
    assert score["name"] == judge.name and score["value"] == 0.9
    assert score["observationId"] == observation_id and score["dataType"] == "NUMERIC"
    assert score["comment"].startswith("stand-in verdict")
    assert "Question: What is 2+2?\nAnswer: 4\nIs the answer correct?" in llm.prompts()
    assert all("What is 3+3?" not in prompt for prompt in llm.prompts())
    assert llm.authorizations[-1] == f"Bearer {LLM_SECRET}"

    # The judge call is a generation of its own, linked from the score.
    judge_trace = score["metadata"]["judgeTraceId"]
    response = await eventually(
        lambda: api(stack, f"/api/public/traces/{judge_trace}"),
        lambda r: r.status_code == 200 and r.json()["observations"],
    )
    [call] = response.json()["observations"]
    assert call["id"] == score["metadata"]["judgeObservationId"]
    assert call["type"] == "GENERATION" and call["model"] == MODEL
    assert call["usageDetails"]["input"] > 0

    [job] = await jobs(stack, traceId=trace_id)
    assert job["status"] == "completed" and job["scoreIds"] == [score["id"]]
    assert job["judgeTraceId"] == judge_trace
    assert await jobs(stack, traceId=other_trace) == []
    # A later event of the same observation does not judge it again.
    assert len(await eval_scores(stack, trace_id)) == 1

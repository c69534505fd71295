"""LLM-as-a-judge end to end: an LLM connection, an evaluator and a rule created through the 5.x
SDK's API client; traces ingested by the 5.x SDK; the stand-in LLM server (a real HTTP server)
judging them; scores with source EVAL read back through the public API, with the judge call as a
generation of its own. Exactly one score per matching target, none for the others; sampling,
delay, retries on 429, a dead endpoint that pauses its evaluator, code evaluators and bad input
refused in the SDK's error shape, and the secret key in no response and no log line."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from langfuse import Langfuse
from langfuse.api import (
    CreateEvaluatorRequest_Code,
    CreateEvaluatorRequest_LlmAsJudge,
    EvaluationRuleEvaluatorAssignmentInput,
    EvaluationRuleFilter_Boolean,
    EvaluationRuleFilter_StringOptions,
    EvaluatorModelConfig,
    EvaluatorOutputDefinition_Numeric,
    LlmAdapter,
    PromptVariableMappingInput,
    UpdateEvaluatorMetadataRequest,
)
from langfuse.api.evaluation_errors import BadRequestError

from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack, wait_healthy
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


async def test_sampling_zero_judges_nothing_and_sampling_one_everything(
    stack: Stack, sdk: Langfuse, llm: LlmStandIn
) -> None:
    name = unique("sampled")
    judge = evaluator(sdk, connection(sdk, llm.base_url))
    every = rule(sdk, judge.id, name, sampling=1.0)
    never = rule(sdk, judge.id, name, sampling=0.0)
    traces = [generation(sdk, name, f"question {n}", "yes")[0] for n in range(3)]
    sdk.flush()
    for trace_id in traces:
        await eventually(lambda t=trace_id: eval_scores(stack, t), lambda s: len(s) == 1)
        assert {j["evaluationRuleId"] for j in await jobs(stack, traceId=trace_id)} == {every.id}
    assert never.sampling == 0


async def test_the_rule_delay_is_respected(stack: Stack, sdk: Langfuse, llm: LlmStandIn) -> None:
    name = unique("delayed")
    judge = evaluator(sdk, connection(sdk, llm.base_url))
    created = rule(sdk, judge.id, name, delay=1500)
    assert created.delay == 1500  # type: ignore[attr-defined]
    trace_id, _ = generation(sdk, name, "late question", "late answer")
    sdk.flush()
    await eventually(lambda: eval_scores(stack, trace_id), lambda s: len(s) == 1)
    [job] = await jobs(stack, traceId=trace_id)
    created_at, run_after = (datetime.fromisoformat(job[k]) for k in ("createdAt", "runAfter"))
    assert run_after - created_at >= timedelta(milliseconds=1500)


async def test_a_429_then_200_gives_one_score_after_retry_after(
    stack: Stack, sdk: Langfuse, llm: LlmStandIn
) -> None:
    name = unique("throttled")
    judge = evaluator(sdk, connection(sdk, llm.base_url))
    rule(sdk, judge.id, name)
    llm.fail_next(429, retry_after=1, message="Rate limit reached")
    trace_id, _ = generation(sdk, name, "throttled question", "ok")
    sdk.flush()
    [score] = await eventually(lambda: eval_scores(stack, trace_id), lambda s: len(s) == 1)
    [job] = await jobs(stack, traceId=trace_id)
    assert job["status"] == "completed" and job["attempts"] == 2
    assert job["scoreIds"] == [score["id"]]
    assert sum("throttled question" in p for p in llm.prompts()) == 2


async def test_a_dead_endpoint_ends_in_a_readable_error_and_pauses_the_evaluator(
    stack: Stack, sdk: Langfuse
) -> None:
    with LlmStandIn() as gone:
        dead = gone.base_url
    name = unique("dead")
    judge = evaluator(sdk, connection(sdk, dead))
    rule(sdk, judge.id, name)
    trace_id, _ = generation(sdk, name, "anyone there?", "no")
    sdk.flush()
    [job] = await eventually(
        lambda: jobs(stack, traceId=trace_id), lambda j: bool(j) and j[0]["status"] == "error"
    )
    assert "cannot be reached" in job["error"] and job["attempts"] == 3
    paused = sdk.api.evaluators.get(judge.id)
    assert paused.status == "paused" and paused.paused_reason == "LLM_CONNECTION_ERROR"
    assert "cannot be reached" in (paused.paused_message or "")
    assert await eval_scores(stack, trace_id) == []
    # Any update resumes it.
    resumed = sdk.api.evaluators.update(judge.id, request=UpdateEvaluatorMetadataRequest(
        description="endpoint fixed"))  # fmt: skip
    assert resumed.status == "active" and resumed.paused_reason is None


async def test_a_kill_9_mid_job_loses_no_job_and_doubles_no_score(
    stack: Stack, sdk: Langfuse
) -> None:
    with LlmStandIn(latency=2.0) as slow:
        name = unique("killed")
        judge = evaluator(sdk, connection(sdk, slow.base_url))
        rule(sdk, judge.id, name)
        trace_id, _ = generation(sdk, name, "survive a crash?", "yes")
        sdk.flush()
        await eventually(lambda: _seen(slow, "survive a crash?"), bool)
        stack.processes["evals"].kill()  # SIGKILL: the job is claimed, its call in flight
        stack.processes["evals"].wait()
        stack.processes["evals"] = stack.start("evals")
        await wait_healthy(stack)
        [score] = await eventually(
            lambda: eval_scores(stack, trace_id), lambda s: len(s) == 1, timeout=60
        )
        [job] = await jobs(stack, traceId=trace_id)
        assert job["status"] == "completed" and job["attempts"] == 2
        assert job["scoreIds"] == [score["id"]]
        assert len(await eval_scores(stack, trace_id)) == 1


async def _seen(llm: LlmStandIn, text: str) -> bool:
    return any(text in prompt for prompt in llm.prompts())


async def test_experiment_items_of_run_experiment_are_judged(
    stack: Stack, sdk: Langfuse, llm: LlmStandIn
) -> None:
    dataset_name = unique("judged-dataset")
    sdk.create_dataset(name=dataset_name)
    for n in range(3):
        sdk.create_dataset_item(dataset_name=dataset_name, input=f"What is {n}+{n}?",
                                expected_output=str(2 * n))  # fmt: skip
    dataset = sdk.get_dataset(dataset_name)
    judge = sdk.api.evaluators.create(
        request=CreateEvaluatorRequest_LlmAsJudge(
            name=unique("exact"),
            prompt="Q: {{question}} A: {{answer}} Expected: {{expected}}",
            model_config_=EvaluatorModelConfig(provider=connection(sdk, llm.base_url),
                                               model=MODEL),
            output_definition=EvaluatorOutputDefinition_Numeric(),
        )
    )  # fmt: skip
    sdk.api.evaluation_rules.create(
        name=unique("experiments"), enabled=True,
        filter=[
            EvaluationRuleFilter_Boolean(column="isExperimentItemRootSpan", operator="=",
                                         value=True),
            EvaluationRuleFilter_StringOptions(column="datasetId", operator="any of",
                                               value=[dataset.id]),
        ],
        evaluator_assignments=[EvaluationRuleEvaluatorAssignmentInput(
            evaluator_id=judge.id,
            variable_mapping=[
                PromptVariableMappingInput(variable="question", source="input"),
                PromptVariableMappingInput(variable="answer", source="output"),
                PromptVariableMappingInput(variable="expected", source="expected_output"),
            ],
        )],
    )  # fmt: skip
    result = dataset.run_experiment(
        name="judged", task=lambda *, item, **_: str(int(item.input.split()[2][0]) * 2)
    )
    sdk.flush()
    for item in result.item_results:
        [score] = await eventually(
            lambda t=item.trace_id: eval_scores(stack, t), lambda s: len(s) == 1
        )
        assert score["name"] == judge.name
    assert any("Q: What is 2+2? A: 4 Expected: 4" in p for p in llm.prompts())


def test_bad_definitions_are_400s_naming_the_field(sdk: Langfuse, llm: LlmStandIn) -> None:
    provider = connection(sdk, llm.base_url)
    judge = evaluator(sdk, provider)

    def refused(call: Any) -> str:
        with pytest.raises(BadRequestError) as caught:
            call()
        assert caught.value.body.code == "invalid_body"
        return caught.value.body.message  # type: ignore[no-any-return]

    assert "sandbox" in refused(lambda: sdk.api.evaluators.create(request=(
        CreateEvaluatorRequest_Code(name="code", source_code="return 1",
                                    source_code_language="PYTHON"))))  # fmt: skip
    for model_config, field in (
        (EvaluatorModelConfig(provider="no-such-connection", model=MODEL), "modelConfig.provider"),
        (EvaluatorModelConfig(provider=provider, model="gpt-unknown"), "modelConfig.model"),
    ):
        assert field in refused(lambda mc=model_config: sdk.api.evaluators.create(
            request=CreateEvaluatorRequest_LlmAsJudge(
                name="bad", prompt=PROMPT, model_config_=mc,
                output_definition=EvaluatorOutputDefinition_Numeric())))  # fmt: skip

    def rule_with(**fields: Any) -> Any:
        arguments: dict[str, Any] = {
            "name": "bad", "enabled": True,
            "evaluator_assignments": [EvaluationRuleEvaluatorAssignmentInput(
                evaluator_id=judge.id,
                variable_mapping=[PromptVariableMappingInput(variable="question", source="input"),
                                  PromptVariableMappingInput(variable="answer", source="output")],
            )],
        }  # fmt: skip
        return lambda: sdk.api.evaluation_rules.create(**{**arguments, **fields})

    question_only = [PromptVariableMappingInput(variable="question", source="input")]
    unmapped = [
        EvaluationRuleEvaluatorAssignmentInput(
            evaluator_id=judge.id, variable_mapping=question_only
        )
    ]
    assert "'answer' has no mapping" in refused(rule_with(evaluator_assignments=unmapped))
    assert "sampling" in refused(rule_with(sampling=1.5))
    assert "filter[0].column" in refused(rule_with(filter=[EvaluationRuleFilter_StringOptions(
        column="colour", operator="any of", value=["red"])]))  # fmt: skip
    unknown = [EvaluationRuleEvaluatorAssignmentInput(evaluator_id="no-such-evaluator")]
    assert "evaluatorAssignments[0].evaluatorId" in refused(
        rule_with(evaluator_assignments=unknown)
    )


async def test_the_secret_key_is_in_no_response_and_no_log_line(
    stack: Stack, sdk: Langfuse, llm: LlmStandIn
) -> None:
    connection(sdk, llm.base_url)
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        listed = await client.get("/api/public/llm-connections", params={"limit": 100})
        assert listed.status_code == 200
        assert LLM_SECRET not in listed.text and "header-value" not in listed.text
        assert LLM_SECRET[-4:] in listed.text
        for path in ("/api/public/v2/evaluators", "/api/public/v2/evaluation-rules",
                     "/api/public/unstable/evaluation-jobs"):  # fmt: skip
            response = await client.get(path)
            assert response.status_code == 200 and LLM_SECRET not in response.text
    for log in stack.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        assert LLM_SECRET not in text and "header-value" not in text, log.name


async def test_a_trace_target_is_judged_once_on_its_merged_state_across_batches(
    stack: Stack, sdk: Langfuse, llm: LlmStandIn
) -> None:
    name = unique("whole-trace")
    judge = evaluator(sdk, connection(sdk, llm.base_url))
    sdk.api.evaluation_rules.create(
        name=unique("traces"), enabled=True,
        filter=[EvaluationRuleFilter_StringOptions(column="name", operator="any of",
                                                   value=[name])],
        evaluator_assignments=[EvaluationRuleEvaluatorAssignmentInput(
            evaluator_id=judge.id,
            variable_mapping=[
                PromptVariableMappingInput(variable="question", source="input"),
                PromptVariableMappingInput(variable="answer", source="output"),
            ],
        )],
        request_options={"additional_body_parameters": {"target": "trace", "delay": 1000}},
    )  # fmt: skip
    trace_id = uuid.uuid4().hex
    batches = [
        [{"type": "trace-create", "body": {"id": trace_id, "name": name, "input": "Capital?"}}],
        *([{"type": "span-create", "body": {"id": uuid.uuid4().hex, "traceId": trace_id,
                                            "name": f"step {n}"}}] for n in range(3)),
        [{"type": "trace-create", "body": {"id": trace_id, "output": "Paris"}}],
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        for batch in batches:
            envelopes = [{**e, "id": uuid.uuid4().hex, "timestamp": datetime.now(UTC).isoformat()}
                         for e in batch]  # fmt: skip
            response = await client.post("/api/public/ingestion", json={"batch": envelopes})
            assert response.status_code == 207 and not response.json()["errors"]
    [score] = await eventually(lambda: eval_scores(stack, trace_id), lambda s: len(s) == 1)
    assert score["observationId"] is None
    [job] = await jobs(stack, evaluatorId=judge.id)
    assert job["status"] == "completed" and job["observationId"] is None
    assert "Question: Capital?\nAnswer: Paris\nIs the answer correct?" in llm.prompts()


async def test_an_unparsable_verdict_is_a_readable_error_not_a_silent_drop(
    stack: Stack, sdk: Langfuse, llm: LlmStandIn
) -> None:
    name = unique("garbled")
    judge = evaluator(sdk, connection(sdk, llm.base_url))
    rule(sdk, judge.id, name)
    llm.reply_garbage()
    trace_id, _ = generation(sdk, name, "garbled question", "answer")
    sdk.flush()
    [job] = await eventually(
        lambda: jobs(stack, evaluatorId=judge.id),
        lambda j: bool(j) and j[0]["status"] == "error",
    )
    assert "not a valid verdict" in job["error"] and "this is not JSON" in job["error"]
    assert await eval_scores(stack, trace_id) == []
    assert sdk.api.evaluators.get(judge.id).status == "active"


async def test_hostile_requests_are_4xx_never_500(stack: Stack) -> None:
    connection_body = {"provider": "\U0001f600" * 1000, "adapter": "openai", "secretKey": "sk-x"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        requests = [
            client.put("/api/public/llm-connections", json=connection_body),
            client.put("/api/public/llm-connections", json=[1, 2]),
            client.put("/api/public/llm-connections", content=b"{not json"),
            client.put("/api/public/llm-connections", json={**connection_body, "provider": "p",
                                                            "adapter": "anthropic"}),  # fmt: skip
            client.delete("/api/public/llm-connections/%00"),
            client.get("/api/public/v2/evaluators/%00"),
            client.patch("/api/public/v2/evaluators/%00", json={"name": "x"}),
            client.get("/api/public/v2/evaluators/%00/versions"),
            client.get("/api/public/v2/evaluators", params={"cursor": "%%%", "limit": 5}),
            client.get("/api/public/v2/evaluators", params={"limit": 1000}),
            client.post("/api/public/v2/evaluators", json={"type": "llm_as_judge", "name": "x",
                                                           "prompt": [{"role": "robot"}]}),
            client.get("/api/public/v2/evaluation-rules/%00"),
            client.delete("/api/public/v2/evaluation-rules/missing"),
            client.post("/api/public/v2/evaluation-rules", json={"name": "r", "enabled": "yes"}),
            client.get("/api/public/unstable/evaluation-jobs", params={"traceId": "\x00"}),
            client.get("/api/public/unstable/evaluation-jobs", params={"status": "exploded"}),
        ]  # fmt: skip
        for response in [await request for request in requests]:
            assert 400 <= response.status_code < 500, (response.request.url, response.text)
            body = response.json()
            assert body["message"] and ("code" in body or "error" in body)

"""Every operation the gateway serves, driven by schemathesis from Langfuse's OpenAPI file (the copy
in tests/contract/data): generated requests, valid and invalid, never get a 5xx, and every answer
matches the file's schema for its status. The stack holds a second project with data of its own;
nothing of it may appear in the first project's answers.

Operations of the file that the gateway does not serve (yet) are left out by asking the gateway's
route table, not by a list. Where we deliberately answer differently from the file, the difference
is listed in EXCLUDED with its reason."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckContext, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.contract.test_openapi_routes import OPENAPI, normalized, served
from tests.e2e.admin import admin
from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.eventually import eventually

# Examples per operation and generation mode: enough to reach every parameter's edge cases (the
# 500s this found were all within the first few), small enough for a few minutes on two cores.
MAX_EXAMPLES = 15
AUTH = (PUBLIC_KEY, SECRET_KEY)

# Every answer: no 5xx, a status the file documents, a body matching the file's schema for it.
CHECKS = (not_a_server_error, status_code_conformance, response_schema_conformance)
# Where we deliberately answer differently from the file: (method, path of the file) -> the check
# left out there, and why. The other checks still run.
EXCLUDED: dict[tuple[str, str], dict[Any, str]] = {
    ("POST", "/api/public/v2/prompts"): {
        status_code_conformance: "201 Created, as Langfuse itself answers (the file says 200)",
    },
}


@dataclass(frozen=True)
class OtherProject:
    """The second project: its id, and a marker its data carries everywhere it can."""

    project_id: str
    marker: str


def sample_batch(marker: str) -> dict[str, Any]:
    """A trace in a session with a generation, a span, an event and scores of each data type."""
    trace_id = f"{marker}-trace"
    stamp = {"timestamp": "2026-11-22T10:00:00Z"}
    return {"batch": [
        {"id": f"{marker}-1", "type": "trace-create", **stamp,
         "body": {"id": trace_id, "name": marker, "sessionId": f"{marker}-session",
                  "userId": marker, "tags": [marker], "input": {"q": marker}, "output": "a"}},
        {"id": f"{marker}-2", "type": "generation-create", **stamp,
         "body": {"id": f"{marker}-gen", "traceId": trace_id, "name": marker, "model": "gpt-4o",
                  "startTime": "2026-11-22T10:00:00Z", "endTime": "2026-11-22T10:00:01Z",
                  "usageDetails": {"input": 10, "output": 5}, "input": [{"role": "user",
                  "content": marker}], "output": {"role": "assistant", "content": "a"}}},
        {"id": f"{marker}-3", "type": "span-create", **stamp,
         "body": {"id": f"{marker}-span", "traceId": trace_id, "name": marker,
                  "parentObservationId": f"{marker}-gen", "metadata": {"k": marker}}},
        {"id": f"{marker}-4", "type": "event-create", **stamp,
         "body": {"id": f"{marker}-event", "traceId": trace_id, "name": marker}},
        {"id": f"{marker}-5", "type": "score-create", **stamp,
         "body": {"id": f"{marker}-score", "traceId": trace_id, "name": marker, "value": 1}},
        {"id": f"{marker}-6", "type": "score-create", **stamp,
         "body": {"id": f"{marker}-category", "traceId": trace_id, "name": "label",
                  "value": "good", "dataType": "CATEGORICAL"}},
        {"id": f"{marker}-7", "type": "score-create", **stamp,
         "body": {"id": f"{marker}-bool", "traceId": trace_id, "observationId": f"{marker}-gen",
                  "name": "ok", "value": 1, "dataType": "BOOLEAN"}},
    ]}  # fmt: skip


async def fill(stack: Stack, auth: tuple[str, str], marker: str) -> None:
    """Gives a project sample data of every kind the reads return, and waits until readable."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=auth) as client:
        response = await client.post("/api/public/ingestion", json=sample_batch(marker))
        assert response.status_code == 207 and not response.json()["errors"], response.text
        for prompt in (
            {"name": marker, "prompt": marker, "labels": ["production"], "config": {"k": 1}},
            {"name": f"{marker}-chat", "type": "chat", "labels": ["production"],
             "prompt": [{"role": "system", "content": marker}]},
        ):  # fmt: skip
            assert (await client.post("/api/public/v2/prompts", json=prompt)).status_code == 201
        model = {"modelName": marker, "matchPattern": f"(?i)^{marker}$", "inputPrice": 0.001}
        assert (await client.post("/api/public/models", json=model)).status_code == 200
        await fill_evaluations(client, marker)
        for path in (f"/api/public/v2/scores/{marker}-bool", f"/api/public/traces/{marker}-trace"):
            await eventually(lambda url=path: client.get(url), lambda r: r.status_code == 200)


async def fill_evaluations(client: httpx.AsyncClient, marker: str) -> None:
    """An evaluator and a rule of each target (disabled: nothing is judged), for the unstable
    evaluator and rule reads; the trace rule is made through v2, the unstable shape has none."""
    connection = {"provider": marker, "adapter": "openai", "secretKey": "sk-sample",
                  "baseURL": "http://127.0.0.1:9/v1", "customModels": ["judge"],
                  "withDefaultModels": False}  # fmt: skip
    assert (await client.put("/api/public/llm-connections", json=connection)).status_code == 200
    judge = {"name": marker, "prompt": "Is {{output}} right?",
             "outputDefinition": {"dataType": "CATEGORICAL", "reasoning": {"description": "Why"},
                                  "score": {"description": marker, "categories": ["yes", "no"],
                                            "shouldAllowMultipleMatches": False}},
             "modelConfig": {"provider": marker, "model": "judge"},
             "mapping": [{"variable": "output", "source": "output"}]}  # fmt: skip
    made = await client.post("/api/public/unstable/evaluators", json=judge)
    assert made.status_code == 200, made.text
    filters = {"observation": [{"type": "stringOptions", "column": "name", "operator": "any of",
                                "value": [marker]}],
               "experiment": [{"type": "stringOptions", "column": "datasetId",
                               "operator": "any of", "value": [marker]}]}  # fmt: skip
    for target, rule_filter in filters.items():
        rule = {"name": f"{marker}-{target}", "target": target, "enabled": False, "sampling": 0.5,
                "filter": rule_filter, "evaluators": [{"evaluator": {"name": marker}}]}  # fmt: skip
        response = await client.post("/api/public/unstable/evaluation-rules", json=rule)
        assert response.status_code == 200, response.text
    trace_rule = {"name": f"{marker}-trace", "enabled": False, "target": "trace",
                  "evaluatorAssignments": [{"evaluatorId": made.json()["id"]}]}  # fmt: skip
    response = await client.post("/api/public/v2/evaluation-rules", json=trace_rule)
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
async def second_project(stack: Stack) -> OtherProject:
    """Sample data in the stack's project, and a second project with its own, all marked."""
    await fill(stack, AUTH, f"sample-{uuid.uuid4().hex[:8]}")
    project_id = f"second-{uuid.uuid4().hex[:8]}"
    marker = f"leak-{uuid.uuid4().hex}"
    admin(stack, "create-project", "--org-id", "e2e-org", "--project-id", project_id,
          "--name", marker)  # fmt: skip
    keys = admin(stack, "create-key", "--org-id", "e2e-org", "--project-id", project_id)
    await fill(stack, (keys["publicKey"], keys["secretKey"]), marker)
    return OtherProject(project_id, marker)


def operations() -> Iterator[Any]:
    schema = schemathesis.openapi.from_path(str(OPENAPI))
    routes = served()
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), normalized(operation.path)) in routes:
            yield pytest.param(operation, id=f"{operation.method.upper()} {operation.path}")


def checks_for(operation: Any) -> list[Any]:
    excluded = EXCLUDED.get((operation.method.upper(), operation.path), {})
    return [check for check in CHECKS if check not in excluded]


@pytest.mark.parametrize("operation", list(operations()))
def test_operation_conforms_and_never_fails(
    stack: Stack, second_project: OtherProject, operation: Any
) -> None:
    failures: list[str] = []

    def leaks_nothing(ctx: CheckContext, response: schemathesis.Response, case: Case) -> None:
        for secret in (second_project.marker, second_project.project_id):
            assert secret not in response.text, "another project's data leaked"

    checks = [*checks_for(operation), leaks_nothing]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: report the case as found
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        def run(case: Case) -> None:
            response = case.call(base_url=stack.gateway_url, auth=AUTH, timeout=30)
            try:
                case.validate_response(response, checks=checks)
            except (AssertionError, FailureGroup) as error:
                failures.append(f"{case.as_curl_command()}\n -> {response.status_code} "
                                f"{response.text[:300]}\n{error}")  # fmt: skip

        try:
            run()
        except Unsatisfiable:
            # Nothing to make invalid: the operation takes no parameters and no body.
            assert mode is GenerationMode.NEGATIVE
    assert not failures, "\n\n".join(failures[:5])

"""`POST /api/public/ingestion` end to end: per-event results, merged state readable through the
read API, replays that change nothing, public-key limits and project isolation."""

import json
import uuid
from typing import Any

import httpx
import pytest

from services.query.filters import (
    OBSERVATION_FILTER_COLUMNS,
    SCORE_FILTER_COLUMNS,
    TRACE_FILTER_COLUMNS,
)
from tests.e2e.admin import admin as admin  # still imported from here by test_media.py
from tests.e2e.admin import create_project
from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)


def batch(trace_id: str) -> dict[str, Any]:
    generation = f"{trace_id}-gen"
    return {
        "batch": [
            {"id": f"{trace_id}-1", "type": "trace-create", "timestamp": "2026-11-22T10:00:00Z",
             "body": {"id": trace_id, "name": "chat", "tags": ["b"], "metadata": {"a": {"x": 1}},
                      "input": {"q": "hi"}, "environment": "Langfuse-Staging"}},
            {"id": f"{trace_id}-2", "type": "generation-create",
             "timestamp": "2026-11-22T10:00:00.100Z",
             "body": {"id": generation, "traceId": trace_id, "name": "llm", "model": "gpt-4o",
                      "startTime": "2026-11-22T10:00:00.100Z",
                      "usage": {"input": 10, "output": 5}}},
            {"id": f"{trace_id}-3", "type": "generation-update",
             "timestamp": "2026-11-22T10:00:01Z",
             "body": {"id": generation, "traceId": trace_id, "output": "hello",
                      "endTime": "2026-11-22T10:00:01.100Z"}},
            {"id": f"{trace_id}-4", "type": "trace-create", "timestamp": "2026-11-22T10:00:02Z",
             "body": {"id": trace_id, "tags": ["a"], "metadata": {"a": {"y": 2}}}},
            {"id": f"{trace_id}-5", "type": "score-create", "timestamp": "2026-11-22T10:00:03Z",
             "body": {"id": f"{trace_id}-score", "traceId": trace_id, "name": "q", "value": 1}},
            {"id": f"{trace_id}-bad", "type": "span-create", "timestamp": "yesterday",
             "body": {"id": "s"}},
        ]
    }  # fmt: skip


async def read_trace(client: httpx.AsyncClient, trace_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/public/traces/{trace_id}")
    return response.json() if response.status_code == 200 else {}


def complete(trace: dict[str, Any]) -> bool:
    observations = trace.get("observations", [])
    return bool(observations) and observations[0].get("output") == "hello" and "a" in trace.get(
        "tags", []
    ) and bool(trace.get("scores"))  # fmt: skip


async def test_a_batch_is_answered_per_event_and_becomes_readable(stack: Stack) -> None:
    trace_id = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post("/api/public/ingestion", json=batch(trace_id))
        assert response.status_code == 207
        result = response.json()
        assert [s["id"] for s in result["successes"]] == [f"{trace_id}-{i}" for i in range(1, 6)]
        assert all(s["status"] == 201 for s in result["successes"])
        [error] = result["errors"]
        assert (error["id"], error["status"]) == (f"{trace_id}-bad", 400)

        trace = await eventually(lambda: read_trace(client, trace_id), complete)
    assert trace["name"] == "chat" and trace["environment"] == "staging"
    assert trace["tags"] == ["a", "b"] and trace["metadata"] == {"a": {"x": 1, "y": 2}}
    [generation] = trace["observations"]
    assert generation["type"] == "GENERATION" and generation["model"] == "gpt-4o"
    assert generation["usageDetails"] == {"input": 10, "output": 5, "total": 15}
    assert generation["latency"] == 1.0
    # No cost given: priced from the shipped model prices (gpt-4o: $2.5 and $10 per 1M tokens).
    assert generation["calculatedTotalCost"] == pytest.approx(10 * 2.5e-6 + 5 * 1e-5)
    assert generation["modelId"] is not None and generation["usagePricingTierName"] == "Standard"
    assert trace["totalCost"] == pytest.approx(generation["calculatedTotalCost"])
    assert trace["scores"][0]["value"] == 1


async def test_replaying_a_batch_changes_nothing(stack: Stack) -> None:
    trace_id = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        await client.post("/api/public/ingestion", json=batch(trace_id))
        first = await eventually(lambda: read_trace(client, trace_id), complete)
        await client.post("/api/public/ingestion", json=batch(trace_id))
        await client.post("/api/public/ingestion", json=batch(trace_id))

        async def after_replays() -> dict[str, Any]:
            trace = await read_trace(client, trace_id)
            return trace if trace.get("updatedAt") != first["updatedAt"] else {}

        again = await eventually(after_replays, lambda t: bool(t))
    ignore = {"updatedAt", "createdAt"}

    def stable(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k not in ignore | {"observations", "scores"}}

    assert stable(again) == stable(first)
    assert len(again["observations"]) == 1 and len(again["scores"]) == 1


async def test_a_public_key_alone_may_only_send_scores(stack: Stack) -> None:
    trace_id = uuid.uuid4().hex
    body = {
        "batch": [
            {"id": "s", "type": "score-create", "timestamp": "2026-11-22T10:00:00Z",
             "body": {"traceId": trace_id, "name": "feedback", "value": 1}},
            {"id": "t", "type": "trace-create", "timestamp": "2026-11-22T10:00:00Z",
             "body": {"id": trace_id}},
        ]
    }  # fmt: skip
    headers = {"Authorization": f"Bearer {PUBLIC_KEY}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers) as client:
        response = await client.post("/api/public/ingestion", json=body)
        assert (await client.get(f"/api/public/traces/{trace_id}")).status_code == 401
    result = response.json()
    assert [s["id"] for s in result["successes"]] == ["s"]
    assert [(e["id"], e["status"], e["message"]) for e in result["errors"]] == [
        ("t", 401, "Access Scope Denied")
    ]


@pytest.mark.parametrize("content", [b"{}", b"not json", b'{"batch": "x"}'])
async def test_a_malformed_envelope_is_400(stack: Stack, content: bytes) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post("/api/public/ingestion", content=content)
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid request data"


async def test_an_unsupported_ingestion_version_is_400(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post(
            "/api/public/ingestion",
            json={"batch": []},
            headers={"x-langfuse-ingestion-version": "5"},
        )
    assert response.status_code == 400


async def test_another_projects_key_cannot_read_the_trace(stack: Stack) -> None:
    other = f"other-{uuid.uuid4().hex[:6]}"
    stranger_auth = create_project(stack, other)
    trace_id = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as owner:
        await owner.post("/api/public/ingestion", json=batch(trace_id))
        await eventually(lambda: read_trace(owner, trace_id), complete)
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=stranger_auth) as stranger:
        assert (await stranger.get(f"/api/public/traces/{trace_id}")).status_code == 404
        assert (await stranger.get(f"/api/public/observations/{trace_id}-gen")).status_code == 404
        projects = (await stranger.get("/api/public/projects")).json()["data"]
    assert [p["id"] for p in projects] == [other]


async def session_trace(client: httpx.AsyncClient) -> str:
    """The batch's trace, in a session of its own (`session-<trace id>`), once readable."""
    trace_id = uuid.uuid4().hex
    body = batch(trace_id)
    body["batch"][0]["body"]["sessionId"] = f"session-{trace_id}"
    await client.post("/api/public/ingestion", json=body)
    await eventually(lambda: read_trace(client, trace_id), complete)
    return trace_id


async def test_trace_lists_return_only_the_field_groups_asked_for(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        trace_id = await session_trace(client)

        async def listed(fields: str) -> dict[str, Any]:
            params = {"sessionId": f"session-{trace_id}", "fields": fields}
            response = await client.get("/api/public/traces", params=params)
            [trace] = response.json()["data"]
            return trace  # type: ignore[no-any-return]

        everything, core = await listed(""), await listed("core")
        bad = await client.get("/api/public/traces", params={"fields": "core,nope"})
    assert everything["input"] == {"q": "hi"} and len(everything["observations"]) == 1
    assert everything["latency"] >= 0 and everything["totalCost"] > 0
    assert core["id"] == trace_id and core["name"] == "chat"
    assert (core["input"], core["output"], core["metadata"]) == (None, None, None)
    assert (core["observations"], core["scores"]) == ([], [])
    assert (core["latency"], core["totalCost"]) == (-1, -1)
    assert bad.status_code == 400 and "nope" in bad.json()["message"]


async def test_a_generation_without_usage_is_counted_with_its_models_tokenizer(
    stack: Stack,
) -> None:
    trace_id = uuid.uuid4().hex
    messages = [{"role": "user", "content": "Hello world"}]
    body = {"batch": [
        {"id": f"{trace_id}-1", "type": "generation-create", "timestamp": "2026-11-22T10:00:00Z",
         "body": {"id": f"{trace_id}-gen", "traceId": trace_id, "model": "gpt-4o",
                  "input": messages, "output": "Hello"}},
        {"id": f"{trace_id}-2", "type": "generation-create", "timestamp": "2026-11-22T10:00:00Z",
         "body": {"id": f"{trace_id}-err", "traceId": trace_id, "model": "gpt-4o",
                  "input": "Hello world", "level": "ERROR"}},
    ]}  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        await client.post("/api/public/ingestion", json=body)

        async def generations() -> dict[str, Any]:
            response = await client.get("/api/public/observations", params={"traceId": trace_id})
            return {o["id"]: o for o in response.json()["data"]}

        found = await eventually(generations, lambda g: len(g) == 2)
    counted, failed = found[f"{trace_id}-gen"], found[f"{trace_id}-err"]
    # o200k_base: 3 per message + "user" 1 + "Hello world" 2 + 3 priming = 9; "Hello" = 1.
    assert counted["usageDetails"] == {"input": 9, "output": 1, "total": 10}
    assert counted["calculatedTotalCost"] == pytest.approx(9 * 2.5e-6 + 1 * 1e-5)
    assert failed["usageDetails"] == {} and failed["calculatedTotalCost"] is None


async def test_the_filter_parameter_selects_traces_and_observations(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        trace_id = await session_trace(client)

        async def listed(path: str, conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
            mine = {"type": "string", "column": "sessionId", "operator": "=",
                    "value": f"session-{trace_id}"}  # fmt: skip
            params = {"filter": json.dumps([mine, *conditions])}
            response = await client.get(path, params=params)
            assert response.status_code == 200, response.text
            return response.json()["data"]  # type: ignore[no-any-return]

        tagged = await listed("/api/public/traces", [
            {"type": "arrayOptions", "column": "tags", "operator": "all of", "value": ["a", "b"]},
            {"type": "stringObject", "column": "metadata", "key": "a", "operator": "contains",
             "value": "x"},
        ])  # fmt: skip
        untagged = await listed("/api/public/traces", [
            {"type": "arrayOptions", "column": "tags", "operator": "none of", "value": ["a"]},
        ])  # fmt: skip
        generations = await listed("/api/public/v2/observations", [
            {"type": "stringOptions", "column": "type", "operator": "any of",
             "value": ["GENERATION"]},
            {"type": "number", "column": "totalCost", "operator": ">", "value": 0},
        ])  # fmt: skip
        bad = await client.get("/api/public/traces", params={"filter": '[{"column": "color"}]'})
    assert [t["id"] for t in tagged] == [trace_id] and untagged == []
    assert [o["id"] for o in generations] == [f"{trace_id}-gen"]
    assert bad.status_code == 400 and "color" in bad.json()["message"]


SAMPLE_CONDITIONS = {
    "string": [{"type": "string", "operator": "contains", "value": "x"},
               {"type": "stringOptions", "operator": "none of", "value": ["x"]}],
    "datetime": [{"type": "datetime", "operator": "<", "value": "2030-01-01T00:00:00Z"}],
    "number": [{"type": "number", "operator": ">=", "value": 0}],
    "array": [{"type": "arrayOptions", "operator": "any of", "value": ["x"]}],
    "object": [{"type": "stringObject", "key": "k", "operator": "starts with", "value": "x"},
               {"type": "numberObject", "key": "k", "operator": "<", "value": 1}],
    "boolean": [{"type": "boolean", "operator": "=", "value": True}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "columns"),
    [
        ("/api/public/traces", TRACE_FILTER_COLUMNS),
        ("/api/public/observations", OBSERVATION_FILTER_COLUMNS),
        ("/api/public/v2/observations", OBSERVATION_FILTER_COLUMNS),
        ("/api/public/v2/scores", SCORE_FILTER_COLUMNS),
    ],
)
async def test_every_filter_column_and_condition_type_runs(
    stack: Stack, path: str, columns: dict[str, tuple[str, str]]
) -> None:
    failures = []
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        for column, (_, kind) in columns.items():
            null = {"type": "null", "operator": "is not null"}
            for condition in [*SAMPLE_CONDITIONS[kind], null]:
                conditions = json.dumps([{**condition, "column": column}])
                response = await client.get(path, params={"filter": conditions})
                if response.status_code != 200:
                    failures.append((column, condition, response.status_code, response.text))
    assert failures == []

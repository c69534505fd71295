"""Traces sent over OTLP by the official Python SDKs (5.x here, 3.x in its own virtualenv) and by a
plain OpenTelemetry exporter with GenAI attributes, read back through the public API."""

import json
import subprocess
import uuid
from typing import Any

import httpx
from langfuse import Langfuse, observe, propagate_attributes
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.e2e.node import run_node_script
from tests.support.devenv import ROOT
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)
SDK3_PYTHON = ROOT / ".dev" / "venvs" / "langfuse3" / "bin" / "python"


async def trace_with(stack: Stack, trace_id: str, observations: int) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
            response = await client.get(f"/api/public/traces/{trace_id}")
        return response.json() if response.status_code == 200 else {}

    return await eventually(read, lambda t: len(t.get("observations", [])) >= observations)


async def test_sdk5_observe_generation_and_propagated_attributes(stack: Stack) -> None:
    sdk = Langfuse(public_key=PUBLIC_KEY, secret_key=SECRET_KEY, host=stack.gateway_url)
    seen: dict[str, str] = {}

    @observe()
    def answer(question: str) -> str:
        seen["trace_id"] = sdk.get_current_trace_id() or ""
        with (
            propagate_attributes(
                user_id="user-1", session_id="session-1", tags=["e2e"], metadata={"team": "core"}
            ),
            sdk.start_as_current_observation(
                as_type="generation", name="llm", model="gpt-4o"
            ) as generation,
        ):
            generation.update(
                input=[{"role": "user", "content": question}],
                output="forty-two",
                usage_details={"input": 10, "output": 4},
            )
        return "done"

    answer("what is it?")
    sdk.flush()
    trace = await trace_with(stack, seen["trace_id"], observations=2)
    assert (trace["name"], trace["userId"], trace["sessionId"]) == ("answer", "user-1", "session-1")
    assert trace["tags"] == ["e2e"] and trace["metadata"] == {"team": "core"}
    assert trace["input"] == {"args": ["what is it?"], "kwargs": {}} and trace["output"] == "done"
    by_type = {o["type"]: o for o in trace["observations"]}
    generation = by_type["GENERATION"]
    assert generation["model"] == "gpt-4o" and generation["output"] == "forty-two"
    assert generation["usageDetails"] == {"input": 10, "output": 4, "total": 14}
    assert generation["parentObservationId"] == by_type["SPAN"]["id"]

    sdk.create_score(name="helpful", value=1.0, trace_id=seen["trace_id"], comment="yes")
    sdk.flush()
    scored = await eventually(
        lambda: trace_with(stack, seen["trace_id"], observations=2),
        lambda t: any(s["name"] == "helpful" for s in t["scores"]),
    )
    [score] = scored["scores"]
    assert (score["value"], score["comment"], score["dataType"]) == (1.0, "yes", "NUMERIC")

    fields = "core,basic,usage,trace_context"
    page = sdk.api.observations.get_many(trace_id=seen["trace_id"], fields=fields)
    assert sorted(o.type for o in page.data) == ["GENERATION", "SPAN"]
    assert page.meta.cursor is None
    span = next(o for o in page.data if o.type == "SPAN")
    assert (span.user_id, span.session_id, span.trace_name) == ("user-1", "session-1", "answer")
    assert span.is_root_observation is True and span.tags == ["e2e"]
    by_user = sdk.api.observations.get_many(user_id="user-1", trace_id=seen["trace_id"])
    assert len(by_user.data) == 2
    assert sdk.api.observations.get_many(user_id="nobody", trace_id=seen["trace_id"]).data == []


SDK3_SCRIPT = """
import json, sys
from langfuse import Langfuse, observe
public_key, secret_key, host = sys.argv[1:4]
client = Langfuse(public_key=public_key, secret_key=secret_key, host=host)
out = {}

@observe()
def pipeline():
    client.update_current_trace(name="sdk3-trace", user_id="u3", session_id="s3", tags=["v3"],
                                metadata={"plain": "text"}, input={"q": 1}, output={"a": 2})
    with client.start_as_current_generation(name="gen", model="gpt-4o-mini") as generation:
        generation.update(output="hi", usage_details={"input": 3, "output": 2})
    out["trace_id"] = client.get_current_trace_id()

pipeline()
client.flush()
print(json.dumps(out))
"""

SDK3_READ = """
import json, sys, time
from langfuse import Langfuse
public_key, secret_key, host, trace_id = sys.argv[1:5]
client = Langfuse(public_key=public_key, secret_key=secret_key, host=host)
trace = client.api.trace.get(trace_id)
listed = client.api.trace.list(user_id="u3", limit=5)
session = client.api.sessions.get("s3")
print(json.dumps({"name": trace.name, "userId": trace.user_id, "tags": trace.tags,
                  "metadata": trace.metadata, "observations": len(trace.observations),
                  "listed": trace_id in [t.id for t in listed.data],
                  "session_traces": [t.id for t in session.traces]}))
"""


def run_sdk3(script: str, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(SDK3_PYTHON), "-c", script, PUBLIC_KEY, SECRET_KEY, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def test_sdk3_update_current_trace_and_read_back_with_the_sdk(stack: Stack) -> None:
    trace_id = run_sdk3(SDK3_SCRIPT, stack.gateway_url)["trace_id"]
    trace = await trace_with(stack, trace_id, observations=2)
    assert (trace["name"], trace["userId"], trace["sessionId"]) == ("sdk3-trace", "u3", "s3")
    assert trace["metadata"] == {"plain": "text"} and trace["input"] == {"q": 1}
    [generation] = [o for o in trace["observations"] if o["type"] == "GENERATION"]
    assert generation["usageDetails"] == {"input": 3, "output": 2, "total": 5}
    read = run_sdk3(SDK3_READ, stack.gateway_url, trace_id)
    assert read == {
        "name": "sdk3-trace", "userId": "u3", "tags": ["v3"],
        "metadata": {"plain": "text"}, "observations": 2,
        "listed": True, "session_traces": [trace_id],
    }  # fmt: skip


async def test_a_plain_opentelemetry_exporter_with_gen_ai_attributes(stack: Stack) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "plain-otel"}))
    exporter = OTLPSpanExporter(
        endpoint=f"{stack.gateway_url}/api/public/otel/v1/traces",
        headers={"Authorization": httpx.BasicAuth(*AUTH)._auth_header},
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("my-app")
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", "gpt-4o")
        span.set_attribute("gen_ai.request.temperature", 0.2)
        span.set_attribute("gen_ai.usage.input_tokens", 12)
        span.set_attribute("gen_ai.usage.output_tokens", 3)
        span.set_attribute("deployment.environment.name", "Staging")
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    trace = await trace_with(stack, trace_id, observations=1)
    [generation] = trace["observations"]
    assert generation["type"] == "GENERATION" and generation["model"] == "gpt-4o"
    assert generation["usageDetails"] == {"input": 12, "output": 3, "total": 15}
    assert generation["modelParameters"] == {"temperature": 0.2}
    assert generation["environment"] == "staging" and trace["name"] == "chat gpt-4o"
    assert generation["metadata"]["attributes"]["gen_ai.request.model"] == "gpt-4o"


async def test_otlp_json_with_hex_ids_and_string_numbers(stack: Stack) -> None:
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    export = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js"}}]},
            "scopeSpans": [{
                "scope": {"name": "langfuse-sdk", "version": "5.11.1"},
                "spans": [{
                    "traceId": trace_id, "spanId": span_id, "name": "root",
                    "startTimeUnixNano": "1763805600000000000",
                    "endTimeUnixNano": "1763805601500000000",
                    "attributes": [
                        {"key": "langfuse.observation.type", "value": {"stringValue": "agent"}},
                        {"key": "langfuse.trace.tags", "value": {"arrayValue": {"values": [
                            {"stringValue": "js"}]}}},
                        {"key": "langfuse.observation.input", "value": {"stringValue": '{"x":1}'}},
                        {"key": "langfuse.observation.metadata.raw", "value": {"stringValue": "v"}},
                        {"key": "attempt", "value": {"intValue": "3"}},
                    ],
                }],
            }],
        }]
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post("/api/public/otel/v1/traces", json=export)
    assert response.status_code == 200 and response.json() == {}
    trace = await trace_with(stack, trace_id, observations=1)
    [agent] = trace["observations"]
    assert agent["type"] == "AGENT" and agent["input"] == {"x": 1}
    assert agent["metadata"]["raw"] == "v" and agent["latency"] == 1.5
    assert trace["tags"] == ["js"] and trace["timestamp"] == "2025-11-22T10:00:00.000Z"


async def test_malformed_otlp_is_400_json(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        bad_protobuf = await client.post(
            "/api/public/otel/v1/traces",
            content=b"\xff\xff\xff",
            headers={"content-type": "application/x-protobuf"},
        )
        bad_type = await client.post(
            "/api/public/otel/v1/traces", content=b"x", headers={"content-type": "text/plain"}
        )
        bad_ids = await client.post(
            "/api/public/otel/v1/traces",
            json={
                "resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "1"}]}]}]
            },
        )
        empty = await client.post("/api/public/otel/v1/traces", json={})
    assert [r.status_code for r in (bad_protobuf, bad_type, bad_ids)] == [400, 400, 400]
    assert "error" in bad_ids.json()
    assert empty.status_code == 200


async def test_js_langfuse_otel_span_processor(stack: Stack) -> None:
    trace_id = run_node_script(stack, "tracing.mjs")["traceId"]
    trace = await trace_with(stack, trace_id, observations=2)
    assert trace["name"] == "js-agent" and trace["input"] == {"question": "2+2?"}
    by_type = {o["type"]: o for o in trace["observations"]}
    assert set(by_type) == {"AGENT", "GENERATION"}
    generation = by_type["GENERATION"]
    assert generation["usageDetails"] == {"input": 7, "output": 1, "total": 8}
    assert generation["parentObservationId"] == by_type["AGENT"]["id"]
    assert (generation["model"], generation["output"]) == ("gpt-4o", 4)

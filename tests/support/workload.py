"""SDK-shaped traffic, shared by the bench (scripts/bench.py) and the reliability tests.

The SDKs' batch span processors (Python SDK 3/5, JS `@langfuse/otel`) export up to 512 spans at a
time from whatever traces ended meanwhile, so an export mixes many agent traces of a few spans
each. `Traffic.export` makes such a set: 10-40 traces of 3-20 observations, 100-200 in all, each
observation carrying 1-4 KiB of text as input and as output (chat messages drawn from a small
vocabulary and a few system prompts: compressible like real prompts, never two alike).

One model, rendered two ways:
- `otlp_export`: an OTLP protobuf export with the attributes the SDKs send (`langfuse.*` for the
  Langfuse SDK's own spans; `gen_ai.*` for generations of third-party instrumentations);
- `batch_events`: the events of `POST /api/public/ingestion` as the Python SDK 2 batches them:
  trace-create, span-create, generation-create with the input, then span-update and
  generation-update with the output, usage, cost and end time, then a trace-create (upsert) with
  the trace's output. `split=True` returns creates and updates as two batches.
"""

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-flash")
# Types a child observation takes, weighted as in agent traces: mostly LLM calls and tools.
CHILD_TYPES = ("generation",) * 5 + ("tool",) * 2 + ("span", "retriever", "event")
_VOCABULARY = (
    "the agent calls a tool to fetch the order status and then summarizes it for the customer "
    "who asked about delivery times refunds invoices shipping address account billing plan "
    "support ticket priority escalation policy document search result context window model "
    "answer question user assistant system function retrieval embedding vector database query "
    "latency budget token cost evaluation score feedback dataset experiment prompt version label "
    "production staging release deploy monitor trace span generation observation session"
)
_WORDS = _VOCABULARY.split()


@dataclass
class Observation:
    id: str  # 16 hex characters: an OTLP span id
    trace_id: str
    parent_id: str | None
    type: str  # as the SDKs spell it: span, generation, tool, retriever, event, agent
    name: str
    start_ns: int
    end_ns: int
    input: Any
    output: Any
    model: str | None = None
    usage: dict[str, int] | None = None  # usageDetails
    cost: dict[str, float] | None = None  # costDetails (USD)
    gen_ai: bool = False  # reported through gen_ai.* attributes rather than langfuse.*


@dataclass
class Trace:
    id: str  # 32 hex characters
    name: str
    user_id: str
    session_id: str
    tags: list[str]
    input: Any
    output: Any
    observations: list[Observation]


def random_hex(rng: random.Random, characters: int) -> str:
    return f"{rng.getrandbits(characters * 4):0{characters}x}"


class Traffic:
    """A seeded source of SDK-like traces. Ids come from `trace_id(index)` and
    `span_id(index)` (index within the export), random unless given: the bench passes marker ids
    it replaces per request, so that a few rendered exports serve a whole run. Traces start
    within the minute after `start_ns` (now unless given)."""

    def __init__(
        self,
        seed: int = 0,
        trace_id: Callable[[int], str] | None = None,
        span_id: Callable[[int], str] | None = None,
        start_ns: int | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        start_ns = time.time_ns() if start_ns is None else start_ns
        self.start_ns = start_ns // 1_000_000 * 1_000_000  # whole milliseconds, as stored
        self.trace_id = trace_id or (lambda _: random_hex(self.rng, 32))
        self.span_id = span_id or (lambda _: random_hex(self.rng, 16))
        system = [" ".join(self.rng.choices(_WORDS, k=self.rng.randint(60, 200))) for _ in range(8)]
        self.system_prompts = [f"You are assistant {i}. {text}" for i, text in enumerate(system)]

    def text(self, size: int) -> str:
        """About `size` characters of words."""
        words = self.rng.choices(_WORDS, k=max(1, size // 7))
        return " ".join(words)[:size]

    def messages(self, size: int) -> list[dict[str, str]]:
        """A chat input of about `size` bytes once JSON-encoded: a system prompt and a question."""
        system = self.rng.choice(self.system_prompts)[: size // 2]
        question = self.text(max(64, size - len(system) - 80))
        return [{"role": "system", "content": system}, {"role": "user", "content": question}]

    def payload_size(self) -> int:
        return self.rng.randint(1024, 4096)

    def export(self, min_spans: int = 100, max_spans: int = 200) -> list[Trace]:
        """Traces of 3-20 observations, `min_spans`-`max_spans` observations in all."""
        wanted = self.rng.randint(min_spans, max_spans)
        traces: list[Trace] = []
        spans = 0
        while spans < wanted:
            # Mostly small agent traces (mode 4, mean ~9), a few long ones.
            size = min(int(self.rng.triangular(3, 21, 4)), wanted - spans)
            if size < 3 and traces:  # too few left for a trace: the last one takes them
                traces[-1].observations += self._children(traces[-1], size, spans)
                spans += size
                break
            traces.append(self.trace(len(traces), spans, max(size, 3)))
            spans += max(size, 3)
        return traces

    def trace(self, index: int, first_span: int, size: int) -> Trace:
        trace_id = self.trace_id(index)
        start = self.start_ns + self.rng.randrange(60_000) * 1_000_000
        question = self.text(self.rng.randint(80, 400))
        trace = Trace(
            id=trace_id,
            name=self.rng.choice(("support-agent", "rag-answer", "triage", "summarize")),
            user_id=f"user-{self.rng.randrange(1000)}",
            session_id=f"session-{self.rng.randrange(10_000)}",
            tags=sorted(self.rng.sample(("prod", "beta", "eu", "us", "vip"), 2)),
            input={"question": question},
            output={"answer": self.text(self.rng.randint(200, 800))},
            observations=[],
        )
        root = Observation(
            id=self.span_id(first_span), trace_id=trace_id, parent_id=None, type="agent",
            name=trace.name, start_ns=start, end_ns=start + 30_000_000_000,
            input=self.messages(self.payload_size()), output=self.text(self.payload_size()),
        )  # fmt: skip
        trace.observations = [root]
        trace.observations += self._children(trace, size - 1, first_span + 1)
        return trace

    def _children(self, trace: Trace, count: int, first_span: int) -> list[Observation]:
        root = trace.observations[0]
        children = []
        for offset in range(count):
            kind = self.rng.choice(CHILD_TYPES)
            start = root.start_ns + (len(trace.observations) + offset) * 1_000_000_000
            child = Observation(
                id=self.span_id(first_span + offset), trace_id=trace.id, parent_id=root.id,
                type=kind, name=f"{kind}-{offset}", start_ns=start,
                end_ns=start + self.rng.randint(50, 900) * 1_000_000,
                input=self.messages(self.payload_size()), output=self.text(self.payload_size()),
            )  # fmt: skip
            if kind == "generation":
                tokens_in, tokens_out = self.rng.randint(200, 4000), self.rng.randint(20, 800)
                child.model = self.rng.choice(MODELS)
                child.usage = {"input": tokens_in, "output": tokens_out}
                child.gen_ai = self.rng.random() < 0.3
                # Whole micro-dollars: sums compare exactly, whatever the order of addition.
                child.cost = (
                    {"total": (tokens_in + tokens_out) * 2 / 1e6}
                    if child.gen_ai
                    else {"input": tokens_in * 2.5 / 1e6, "output": tokens_out * 10 / 1e6}
                )
            children.append(child)
        return children


def _value(value: object) -> AnyValue:
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def span_attributes(observation: Observation, trace: Trace) -> dict[str, object]:
    """What the SDKs put on a span: Langfuse's attributes (metadata JSON-encoded, as Python SDK 5
    does), or for a third-party instrumentation's generation the OpenTelemetry GenAI ones."""
    attributes: dict[str, object] = {
        "langfuse.environment": "production",
        "langfuse.observation.input": _dumps(observation.input),
        "langfuse.observation.output": _dumps(observation.output),
        "langfuse.observation.metadata.step": _dumps(observation.name),
    }
    if observation.gen_ai:
        assert observation.usage and observation.cost
        attributes |= {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": observation.model,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.usage.input_tokens": observation.usage["input"],
            "gen_ai.usage.output_tokens": observation.usage["output"],
            "gen_ai.usage.cost": observation.cost["total"],
        }
    else:
        attributes["langfuse.observation.type"] = observation.type
    if observation.model and not observation.gen_ai:
        attributes |= {
            "langfuse.observation.model.name": observation.model,
            "langfuse.observation.model.parameters": '{"temperature":0.2,"max_tokens":1024}',
            "langfuse.observation.usage_details": _dumps(observation.usage),
            "langfuse.observation.cost_details": _dumps(observation.cost),
        }
    if observation.parent_id is None:
        attributes |= {
            "langfuse.trace.name": trace.name,
            "langfuse.user.id": trace.user_id,
            "langfuse.session.id": trace.session_id,
            "langfuse.trace.tags": trace.tags,
            "langfuse.trace.input": _dumps(trace.input),
            "langfuse.trace.output": _dumps(trace.output),
        }
    return attributes


def otlp_export(traces: list[Trace], sdk_version: str = "5.0.4") -> ExportTraceServiceRequest:
    """One export of all `traces`' spans, from the Python SDK's tracer."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (("telemetry.sdk.language", "python"), ("service.name", "support-bot")):
        resource_spans.resource.attributes.add(key=key, value=_value(value))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = "langfuse-sdk", sdk_version
    for trace in traces:
        for observation in trace.observations:
            span = scope_spans.spans.add(
                trace_id=bytes.fromhex(trace.id),
                span_id=bytes.fromhex(observation.id),
                name=observation.name,
                start_time_unix_nano=observation.start_ns,
                end_time_unix_nano=observation.end_ns,
            )
            if observation.parent_id:
                span.parent_span_id = bytes.fromhex(observation.parent_id)
            span.attributes.extend(
                KeyValue(key=key, value=_value(value))
                for key, value in span_attributes(observation, trace).items()
            )
    return request


def iso(ns: int) -> str:
    """`ns` since the epoch as the API spells times: UTC, milliseconds, `Z`."""
    seconds = datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{seconds}.{ns // 10**6 % 1000:03d}Z"


def batch_events(traces: list[Trace], split: bool = False) -> list[list[dict[str, Any]]]:
    """The ingestion events of `traces`, as one batch (creates first, then updates) or, with
    `split`, as two: creates, then updates (what an SDK sends when a flush falls mid-trace)."""
    creates: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for trace in traces:
        start = trace.observations[0].start_ns
        creates.append(_event(f"{trace.id}-c", "trace-create", start, {
            "id": trace.id, "name": trace.name, "userId": trace.user_id,
            "sessionId": trace.session_id, "tags": trace.tags, "input": trace.input,
            "timestamp": iso(start), "environment": "production",
        }))  # fmt: skip
        for observation in trace.observations:
            kind = {"generation": "generation", "event": "event"}.get(observation.type, "span")
            body: dict[str, Any] = {
                "id": observation.id, "traceId": trace.id, "name": observation.name,
                "startTime": iso(observation.start_ns), "input": observation.input,
                "metadata": {"step": observation.name}, "environment": "production",
            }  # fmt: skip
            if observation.parent_id:
                body["parentObservationId"] = observation.parent_id
            if observation.model:
                body |= {"model": observation.model, "modelParameters": {"temperature": 0.2}}
            if kind == "event":  # an event has no update: its create carries everything
                body["output"] = observation.output
            creates.append(_event(f"{observation.id}-c", f"{kind}-create",
                                  observation.start_ns, body))  # fmt: skip
            if kind == "event":
                continue
            update: dict[str, Any] = {
                "id": observation.id, "traceId": trace.id, "output": observation.output,
                "endTime": iso(observation.end_ns),
            }  # fmt: skip
            if observation.usage:
                update |= {"usageDetails": observation.usage, "costDetails": observation.cost}
            updates.append(_event(f"{observation.id}-u", f"{kind}-update",
                                  observation.end_ns, update))  # fmt: skip
        updates.append(_event(f"{trace.id}-u", "trace-create", trace.observations[0].end_ns,
                              {"id": trace.id, "output": trace.output}))  # fmt: skip
    return [creates, updates] if split else [creates + updates]


def _event(event_id: str, kind: str, ns: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "timestamp": iso(ns), "body": body}

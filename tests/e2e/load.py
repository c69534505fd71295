"""SDK-like load for the reliability tests, and the state it must leave behind.

`SdkLoad` sends SDK-shaped traffic (tests/support/workload.py) into a project of its own: OTLP
exports of several traces each, and batch JSON whose creates come in one request and whose updates
(output, usage, cost, end time; a trace's output) come in another, sent once the creates are
acknowledged, as an SDK's next flush would be. Every request is sent until acknowledged, retrying
5xx, per-event 5xx in a 207 and dropped connections, as the SDKs do; so events may arrive twice.

`differences` compares what the read API serves with the merge of everything sent, field by field
(every trace, every observation), and the project's daily metrics with the exact sums of
observations, traces, tokens and cost.
"""

import asyncio
import gzip
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.eventually import eventually
from tests.support.workload import Observation, Trace, Traffic, batch_events, iso, otlp_export

OTLP_HEADERS = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}
JSON_HEADERS = {"content-type": "application/json"}
# Observation types as stored: an OTLP span keeps the SDK's type; the batch API has creates and
# updates for spans, generations and (create only) events, so the SDK 2 sends the rest as spans.
OTLP_TYPES = {kind: kind.upper() for kind in ("agent", "tool", "retriever", "span", "event")}
BATCH_TYPES = {"generation": "GENERATION", "event": "EVENT"}


@dataclass
class Request:
    path: str
    body: bytes
    headers: dict[str, str]
    then: "Request | None" = None  # sent once this one is acknowledged


@dataclass
class SdkLoad:
    """`rounds` rounds of one OTLP export and one batch (creates, then updates) of 20-40
    observations each; `otlp` and `batch` hold the traces each way carried."""

    rounds: int
    seed: int = 0
    otlp: list[Trace] = field(default_factory=list)
    batch: list[Trace] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    acknowledged: int = 0

    def __post_init__(self) -> None:
        traffic = Traffic(self.seed)
        for _ in range(self.rounds):
            exported = traffic.export(20, 40)
            body = gzip.compress(otlp_export(exported).SerializeToString())
            self.requests.append(Request("/api/public/otel/v1/traces", body, OTLP_HEADERS))
            self.otlp += exported
            batched = traffic.export(20, 40)
            creates, updates = (
                json.dumps({"batch": events}).encode()
                for events in batch_events(batched, split=True)
            )
            update = Request("/api/public/ingestion", updates, JSON_HEADERS)
            self.requests.append(Request("/api/public/ingestion", creates, JSON_HEADERS, update))
            self.batch += batched

    @property
    def total(self) -> int:
        """Requests to acknowledge: each round's export, creates and updates."""
        return self.rounds * 3

    async def send(self, client: httpx.AsyncClient, senders: int = 4) -> None:
        """Until every request is acknowledged."""
        queue = list(reversed(self.requests))

        async def sender() -> None:
            while queue:
                request = queue.pop()
                while not await self._acknowledged(client, request):
                    await asyncio.sleep(0.2)
                self.acknowledged += 1
                if request.then:
                    queue.insert(0, request.then)  # behind what is queued: a later flush

        # A sender that finds the queue empty stops; the one whose creates are still in flight
        # sends their updates itself.
        await asyncio.gather(*(sender() for _ in range(senders)))

    @staticmethod
    async def _acknowledged(client: httpx.AsyncClient, request: Request) -> bool:
        try:
            response = await client.post(request.path, content=request.body,
                                         headers=request.headers)  # fmt: skip
        except httpx.TransportError:
            return False
        if response.status_code in (500, 502, 503, 504):
            return False
        assert response.status_code in (200, 207), response.text
        errors = response.json().get("errors", []) if response.status_code == 207 else []
        assert all(error["status"] >= 500 for error in errors), errors
        return not errors  # 5xx for some events: the SDK sends the batch again

    async def past(self, share: float) -> None:
        """Until `share` of the requests are acknowledged."""

        async def acknowledged() -> int:
            return self.acknowledged

        await eventually(acknowledged, lambda n: n >= share * self.total, timeout=300)

    def traces(self) -> list[tuple[Trace, dict[str, str]]]:
        """Every trace sent, with how its observations' types are stored."""
        return [(t, OTLP_TYPES) for t in self.otlp] + [(t, BATCH_TYPES) for t in self.batch]


def expected_trace(trace: Trace) -> dict[str, Any]:
    return {
        "id": trace.id, "name": trace.name, "userId": trace.user_id,
        "sessionId": trace.session_id, "tags": trace.tags, "input": trace.input,
        "output": trace.output, "environment": "production",
    }  # fmt: skip


def expected_observation(observation: Observation, types: dict[str, str]) -> dict[str, Any]:
    """The merged state of an observation: the create's input, model and start, the update's
    output, usage, cost and end (an event has no end: it is a point in time)."""
    kind = "GENERATION" if observation.type == "generation" else types.get(observation.type)
    usage = observation.usage or {}
    cost = observation.cost or {}
    return {
        "id": observation.id,
        "traceId": observation.trace_id,
        "parentObservationId": observation.parent_id,
        "type": kind or "SPAN",
        "name": observation.name,
        "startTime": iso(observation.start_ns),
        "endTime": None if kind == "EVENT" else iso(observation.end_ns),
        "input": observation.input,
        "output": observation.output,
        "model": observation.model,
        "usageDetails": usage | ({"total": sum(usage.values())} if usage else {}),
        "costDetails": cost | ({"total": sum(cost.values())} if cost else {}),
        "totalCost": sum(cost.values()) if cost else None,
        "environment": "production",
    }


def _differ(expected: Any, actual: Any) -> bool:
    """Costs are decimals served as floats: equal to 1e-9 USD; everything else exactly."""
    if isinstance(expected, float) and isinstance(actual, int | float):
        return not math.isclose(expected, actual, rel_tol=0, abs_tol=1e-9)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() != actual.keys() or any(
            _differ(value, actual[key]) for key, value in expected.items()
        )
    return bool(expected != actual)


def _compare(what: str, expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    return [
        f"{what} {name}: expected {value!r:.120}, stored {actual.get(name)!r:.120}"
        for name, value in expected.items()
        if _differ(value, actual.get(name))
    ]


async def trace_differences(
    client: httpx.AsyncClient, trace: Trace, types: dict[str, str]
) -> list[str]:
    """How the stored trace and its observations differ from what was sent."""
    response = await client.get(f"/api/public/traces/{trace.id}")
    if response.status_code != 200:
        return [f"trace {trace.id}: GET answered {response.status_code} {response.text:.200}"]
    stored = response.json()
    found = []
    differences = _compare(f"trace {trace.id}", expected_trace(trace), stored)
    observations = {o["id"]: o for o in stored.get("observations", [])}
    if len(observations) != len(stored.get("observations", [])):
        differences.append(f"trace {trace.id}: an observation is served twice")
    for observation in trace.observations:
        if observation.id not in observations:
            found.append(f"observation {observation.id}: not found")
            continue
        differences += _compare(
            f"observation {observation.id} ({observation.type})",
            expected_observation(observation, types),
            observations.pop(observation.id),
        )
    unexpected = [f"trace {trace.id}: unexpected observation {id}" for id in observations]
    return differences + found + unexpected


def expected_totals(load: SdkLoad) -> dict[str, float]:
    """What the project's daily metrics sum to: exact, since every value was sent once."""
    traces = [trace for trace, _ in load.traces()]
    observations = [o for trace in traces for o in trace.observations]
    return {
        "countTraces": len(traces),
        "countObservations": len(observations),
        "inputUsage": sum((o.usage or {}).get("input", 0) for o in observations),
        "outputUsage": sum((o.usage or {}).get("output", 0) for o in observations),
        "totalUsage": sum(sum((o.usage or {}).values()) for o in observations),
        "totalCost": sum(sum((o.cost or {}).values()) for o in observations),
    }


async def stored_totals(client: httpx.AsyncClient) -> dict[str, float]:
    """The project's daily metrics, summed over its days and models."""
    response = await client.get("/api/public/metrics/daily", params={"limit": 100})
    if response.status_code != 200:
        return {}
    days = response.json()["data"]
    usage = [model for day in days for model in day["usage"]]
    return {
        "countTraces": sum(day["countTraces"] for day in days),
        "countObservations": sum(day["countObservations"] for day in days),
        **{
            key: sum(model[key] for model in usage)
            for key in ("inputUsage", "outputUsage", "totalUsage")
        },  # fmt: skip
        "totalCost": sum(day["totalCost"] for day in days),
    }


async def differences(client: httpx.AsyncClient, load: SdkLoad) -> list[str]:
    """Every way the stored state differs from the merge of all events sent, and the project's
    totals from their sums, once the writer has caught up: polled until none is left, for three
    minutes at most (the last ones found)."""
    expected = expected_totals(load)
    checks = asyncio.Semaphore(8)

    async def check(trace: Trace, types: dict[str, str]) -> list[str]:
        async with checks:
            return await trace_differences(client, trace, types)

    deadline = time.monotonic() + 180
    while True:
        found = _compare("project totals", expected, await stored_totals(client))
        if not found:  # every entity is there: its content is checked
            for listed in await asyncio.gather(*(check(t, k) for t, k in load.traces())):
                found += listed
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(1)

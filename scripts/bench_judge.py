"""Bench rows of issue 10 (LLM-as-a-judge), against the running stack, with the stand-in LLM
server (tests/support/llm_standin.py) at 50 ms per call:

- score visible through the public API after the judged observation's ingestion was
  acknowledged (rule delay 0), p95;
- judge jobs per second at EVALS_JUDGE_CONCURRENCY (32 by default) once a backlog is queued;
- matching one ingested event against 10,000 active rules of its project (the trigger's
  in-process cost), p95.
"""

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from scripts.bench_support import check, p95_ms
from services.evals.rules import ActiveRule
from services.evals.trigger import ProjectRules, TargetEvent, matching
from tests.support.llm_standin import LlmStandIn

Row = tuple[str, str, str]
PROBES = int(os.environ.get("BENCH_JUDGE_PROBES", "40"))
BACKLOG = int(os.environ.get("BENCH_JUDGE_JOBS", "2000"))
MODEL = "judge-model"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _judge_setup(client: httpx.AsyncClient, base_url: str, observation_name: str) -> str:
    provider = _unique("bench-stand-in")
    check(await client.put("/api/public/llm-connections", json={
        "provider": provider, "adapter": "openai", "secretKey": "sk-bench", "baseURL": base_url,
        "customModels": [MODEL], "withDefaultModels": False}))  # fmt: skip
    evaluator = check(await client.post("/api/public/v2/evaluators", json={
        "type": "llm_as_judge", "name": _unique("bench-judge"),
        "prompt": "Q: {{q}} A: {{a}} Correct?",
        "modelConfig": {"provider": provider, "model": MODEL},
        "outputDefinition": {"dataType": "NUMERIC", "minValue": 0, "maxValue": 1},
    })).json()  # fmt: skip
    rule = check(await client.post("/api/public/v2/evaluation-rules", json={
        "name": _unique("bench-rule"), "enabled": True, "delay": 0,
        "filter": [{"type": "stringOptions", "column": "name", "operator": "any of",
                    "value": [observation_name]}],
        "evaluatorAssignments": [{"evaluatorId": evaluator["id"], "variableMapping": [
            {"variable": "q", "source": "input"}, {"variable": "a", "source": "output"}]}],
    })).json()  # fmt: skip
    return str(rule["id"])


def _generation_batch(name: str, count: int) -> tuple[list[str], dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    traces, events = [], []
    for n in range(count):
        trace_id = uuid.uuid4().hex
        traces.append(trace_id)
        events += [
            {"id": uuid.uuid4().hex, "type": "trace-create", "timestamp": now,
             "body": {"id": trace_id, "name": "bench-judged"}},
            {"id": uuid.uuid4().hex, "type": "generation-create", "timestamp": now,
             "body": {"id": uuid.uuid4().hex, "traceId": trace_id, "name": name,
                      "input": f"question {n}", "output": f"answer {n}", "model": "gpt-4o-mini"}},
        ]  # fmt: skip
    return traces, {"batch": events}


async def _ingest(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = check(await client.post("/api/public/ingestion", json=body))
    if response.json()["errors"]:
        raise RuntimeError(f"ingestion refused events: {response.json()['errors'][:3]}")


async def _has_eval_score(client: httpx.AsyncClient, trace_id: str) -> bool:
    response = await client.get("/api/public/v2/scores",
                                params={"traceId": trace_id, "source": "EVAL"})  # fmt: skip
    return response.status_code == 200 and bool(response.json()["data"])


async def score_visibility_p95(gateway: str, auth: tuple[str, str]) -> float:
    """Seconds from the 207 of a matching generation to its EVAL score in /v2/scores, p95."""
    name = _unique("bench-visible")
    samples = []
    with LlmStandIn(latency=0.05) as llm:
        async with httpx.AsyncClient(base_url=gateway, auth=auth, timeout=30) as client:
            await _judge_setup(client, llm.base_url, name)
            for _ in range(PROBES):
                [trace_id], body = _generation_batch(name, 1)
                await _ingest(client, body)
                acknowledged = time.perf_counter()
                while not await _has_eval_score(client, trace_id):
                    if time.perf_counter() - acknowledged > 60:
                        raise RuntimeError(f"no score for {trace_id} within 60 s")
                    await asyncio.sleep(0.01)
                samples.append(time.perf_counter() - acknowledged)
    return p95_ms(samples) / 1e3


async def jobs_per_second(gateway: str, auth: tuple[str, str]) -> float:
    """Judge calls per second while a backlog of BACKLOG matching generations is judged: from the
    stand-in's first call to its last."""
    name = _unique("bench-throughput")
    with LlmStandIn(latency=0.05) as llm:
        async with httpx.AsyncClient(base_url=gateway, auth=auth, timeout=60) as client:
            await _judge_setup(client, llm.base_url, name)
            traces: list[str] = []
            for start in range(0, BACKLOG, 100):
                batch_traces, body = _generation_batch(name, min(100, BACKLOG - start))
                await _ingest(client, body)
                traces += batch_traces
            deadline = time.monotonic() + 600
            while len(llm.arrivals) < BACKLOG:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(llm.arrivals)} of {BACKLOG} judge calls in 600 s")
                await asyncio.sleep(0.2)
            # The last scores are written too (spot check: the last trace queued).
            while not await _has_eval_score(client, traces[-1]):
                await asyncio.sleep(0.1)
    return BACKLOG / (llm.arrivals[-1] - llm.arrivals[0])


def matching_p95_ms(*, by_name: bool, rules: int = 10_000, events: int = 500) -> float:
    """One observation event against `rules` non-matching rules of its project, p95 in ms.
    `by_name`: each rule filters on an observation name (`any of`, filed by value) and a metadata
    key; otherwise on the metadata key alone, so every rule is read (the worst case)."""
    import orjson

    metadata = {"type": "stringObject", "column": "metadata", "key": "team", "operator": "=",
                "value": "other"}  # fmt: skip
    active = ProjectRules([
        ActiveRule("p", f"r{n}", "observation", [
            *([{"type": "stringOptions", "column": "name", "operator": "any of",
                "value": [f"rule-{n}"]}] if by_name else []),
            metadata], 1.0, 0, (f"e{n}",))
        for n in range(rules)
    ])  # fmt: skip
    samples = []
    for n in range(events):
        body = orjson.dumps({"id": f"o{n}", "traceId": f"t{n}", "name": "not-a-rule",
                             "type": "GENERATION", "metadata": {"team": "evals"}})  # fmt: skip
        event = TargetEvent("p", f"t{n}", f"o{n}", body, True)
        started = time.perf_counter()
        matching(active, event)
        samples.append(time.perf_counter() - started)
    return p95_ms(samples)


async def judge_rows(gateway: str, auth: tuple[str, str]) -> list[Row]:
    visible = await score_visibility_p95(gateway, auth)
    rate = await jobs_per_second(gateway, auth)
    by_name, scanned = matching_p95_ms(by_name=True), matching_p95_ms(by_name=False)
    return [
        ("judge score visible after the judged trace's ack, p95 (delay 0, 50 ms LLM)",
         f"{visible * 1e3:,.0f} ms", "≤ 2 s"),
        (f"judge jobs/s, backlog of {BACKLOG}, 50 ms LLM, concurrency 32", f"{rate:,.0f}/s",
         "≥ 100/s"),
        ("matching one event against 10,000 rules filtering on names, p95",
         f"{by_name:.3f} ms", "≤ 1 ms"),
        ("same, 10,000 rules on a metadata key only (every rule read), p95",
         f"{scanned:.2f} ms", "–"),
    ]  # fmt: skip


if __name__ == "__main__":
    from scripts.bench import AUTH, GATEWAY

    for row in asyncio.run(judge_rows(GATEWAY, AUTH)):
        print(" | ".join(row))

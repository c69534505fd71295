"""Bench rows of issue 10 (LLM-as-a-judge), against the running stack, with the stand-in LLM
server (tests/support/llm_standin.py) at 50 ms per call:

- score visible through the public API after the judged observation's ingestion was
  acknowledged (rule delay 0), p95;
- judge jobs per second at EVALS_JUDGE_CONCURRENCY (32 by default) once a backlog is queued, and
  each process's CPU per judge job;
- SDK-like ingestion (into a new project each run, which has no rules) with and without a judging
  backlog in the judge's project: accepted and end-to-end (the query writer's drain) rates;
- matching one ingested event against 10,000 active rules of its project (the trigger's
  in-process cost), p95.

Everything judged lives in a project of its own (PROJECT_ID): its rules are deleted when a row is
done (and any left by an interrupted run at the start), so the other sections' ingestion into
the default project never makes judge jobs.
"""

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from scripts.bench import ENV, GATEWAY, Row, cpu_seconds, quiet, sdk_batch_load, sustained
from scripts.bench_support import Tenant, check, p95_ms, tenant
from services.evals.rules import ActiveRule
from services.evals.trigger import ProjectRules, TargetEvent, matching
from tests.support.devenv import ROOT
from tests.support.llm_standin import LlmStandIn

PROBES = int(os.environ.get("BENCH_JUDGE_PROBES", "40"))
BACKLOG = int(os.environ.get("BENCH_JUDGE_JOBS", "2000"))
# The ingestion runs beside judging: their length, and the backlog queued for the busy one.
BESIDE_SECONDS = float(os.environ.get("BENCH_JUDGE_INGEST_SECONDS", "60"))
BESIDE_BACKLOG = int(os.environ.get("BENCH_JUDGE_BESIDE_JOBS", "6000"))
PROJECT_ID = "bench-judge"
MODEL = "judge-model"
# The processes whose CPU a judge job costs (pid files of scripts/stack.sh and engines.sh).
JOB_PROCESSES = {
    "evals": "evals.pid",
    "ingestion": "ingestion.pid",
    "query": "query.pid",
    "gateway": "gateway.pid",
    "Kafka": "kafka.pid",
    "S3 (MinIO)": "s3.pid",
}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _client(judge: Tenant) -> httpx.AsyncClient:
    headers = {"Authorization": judge.authorization}
    return httpx.AsyncClient(base_url=GATEWAY, headers=headers, timeout=60)


async def _delete_rules(client: httpx.AsyncClient) -> None:
    """Every rule of the bench project (one left by an interrupted run included)."""
    while rules := check(await client.get("/api/public/v2/evaluation-rules",
                                          params={"limit": 100})).json()["data"]:  # fmt: skip
        for rule in rules:
            check(await client.delete(f"/api/public/v2/evaluation-rules/{rule['id']}"))


@contextlib.asynccontextmanager
async def _judging(
    client: httpx.AsyncClient, base_url: str, observation_name: str, delay_ms: int = 0
) -> AsyncIterator[None]:
    """A connection, evaluator and enabled rule judging generations named `observation_name`;
    the project's rules are deleted on the way out, whatever happened."""
    await _delete_rules(client)
    provider = _unique("bench-stand-in")
    try:
        check(await client.put("/api/public/llm-connections", json={
            "provider": provider, "adapter": "openai", "secretKey": "sk-bench",
            "baseURL": base_url, "customModels": [MODEL], "withDefaultModels": False}))  # fmt: skip
        evaluator = check(await client.post("/api/public/v2/evaluators", json={
            "type": "llm_as_judge", "name": _unique("bench-judge"),
            "prompt": "Q: {{q}} A: {{a}} Correct?",
            "modelConfig": {"provider": provider, "model": MODEL},
            "outputDefinition": {"dataType": "NUMERIC", "minValue": 0, "maxValue": 1},
        })).json()  # fmt: skip
        check(await client.post("/api/public/v2/evaluation-rules", json={
            "name": _unique("bench-rule"), "enabled": True, "delay": delay_ms,
            "filter": [{"type": "stringOptions", "column": "name", "operator": "any of",
                        "value": [observation_name]}],
            "evaluatorAssignments": [{"evaluatorId": evaluator["id"], "variableMapping": [
                {"variable": "q", "source": "input"}, {"variable": "a", "source": "output"}]}],
        }))  # fmt: skip
        yield
    finally:
        await _delete_rules(client)


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


async def _queue(client: httpx.AsyncClient, name: str, count: int) -> list[str]:
    """`count` judged generations, 100 per request; their trace ids."""
    traces: list[str] = []
    for start in range(0, count, 100):
        batch_traces, body = _generation_batch(name, min(100, count - start))
        await _ingest(client, body)
        traces += batch_traces
    return traces


async def _has_eval_score(client: httpx.AsyncClient, trace_id: str) -> bool:
    response = await client.get("/api/public/v2/scores",
                                params={"traceId": trace_id, "source": "EVAL"})  # fmt: skip
    return response.status_code == 200 and bool(response.json()["data"])


async def _judged(llm: LlmStandIn, calls: int, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while len(llm.arrivals) < calls:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(llm.arrivals)} of {calls} judge calls in {seconds:g} s")
        await asyncio.sleep(0.2)


def _job_cpu() -> dict[str, float]:
    run = ROOT / ENV["OBS_DEV_DIR"] / "run"
    return {
        name: cpu_seconds(int((run / file).read_text())) for name, file in JOB_PROCESSES.items()
    }


async def score_visibility_p95(judge: Tenant) -> float:
    """Seconds from the 207 of a matching generation to its EVAL score in /v2/scores, p95."""
    name = _unique("bench-visible")
    samples = []
    with LlmStandIn(latency=0.05) as llm:
        async with _client(judge) as client, _judging(client, llm.base_url, name):
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


async def jobs_per_second(judge: Tenant) -> tuple[float, dict[str, float]]:
    """Judge calls per second while a backlog of BACKLOG matching generations is judged, from the
    stand-in's first call to its last; and each process's CPU ms per job over the backlog's
    ingestion and judging (ingesting the judged generations included)."""
    name = _unique("bench-throughput")
    with LlmStandIn(latency=0.05) as llm:
        async with _client(judge) as client, _judging(client, llm.base_url, name):
            cpu_before = _job_cpu()
            traces = await _queue(client, name, BACKLOG)
            await _judged(llm, BACKLOG)
            # The last scores are written too (spot check: the last trace queued).
            while not await _has_eval_score(client, traces[-1]):
                await asyncio.sleep(0.1)
            cpu_after = _job_cpu()
    ms_per_job = {p: (cpu_after[p] - cpu_before[p]) / BACKLOG * 1e3 for p in cpu_after}
    return BACKLOG / (llm.arrivals[-1] - llm.arrivals[0]), ms_per_job


async def ingestion_beside_judging(judge: Tenant) -> list[Row]:
    """SDK-like ingestion for BESIDE_SECONDS into the default project (no rules), first alone,
    then while the judge works through a backlog in its own project: the backlog's rule has a
    delay, so its BESIDE_BACKLOG jobs are queued before the run and all due when it starts. Each
    run begins once the stack is at rest (the merges of what ran before are over)."""
    load = sdk_batch_load()
    await quiet()
    alone = await sustained(load, BESIDE_SECONDS)
    name = _unique("bench-beside")
    delay = 120.0
    with LlmStandIn(latency=0.05) as llm:
        async with _client(judge) as client, _judging(client, llm.base_url, name, int(delay * 1e3)):
            queued_at = time.monotonic()
            await _queue(client, name, BESIDE_BACKLOG)
            await quiet(longest=delay - 10)  # both runs begin on a stack at rest
            await asyncio.sleep(max(0.0, queued_at + delay - time.monotonic()))
            started = time.monotonic()
            busy = await sustained(load, BESIDE_SECONDS)
            ended = time.monotonic()
            judged = sum(started <= t < ended for t in llm.arrivals)
            backlog_left = BESIDE_BACKLOG - len(llm.arrivals)
    print(f"bench judge: {judged} judge calls during the busy run, {backlog_left} still queued")
    workload = f"SDK-like batch JSON, {BESIDE_SECONDS:.0f} s"
    return [
        (f"ingestion accepted, no judging [{workload}]", f"{alone.accepted:,.0f} obs/s", ""),
        (f"ingestion accepted, judging a backlog [{workload}]", f"{busy.accepted:,.0f} obs/s",
         f"≥ 80 % ({busy.accepted / alone.accepted:.0%})"),
        (f"end to end (writer drained), no judging [{workload}]", f"{alone.end_to_end:,.0f} obs/s",
         ""),
        (f"end to end (writer drained), judging a backlog [{workload}]",
         f"{busy.end_to_end:,.0f} obs/s", f"≥ 80 % ({busy.end_to_end / alone.end_to_end:.0%})"),
        ("judge jobs/s during that busy run", f"{judged / (ended - started):,.0f}/s", ""),
    ]  # fmt: skip


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


async def judge_rows() -> list[Row]:
    judge = await tenant(PROJECT_ID)
    visible = await score_visibility_p95(judge)
    rate, ms_per_job = await jobs_per_second(judge)
    beside = await ingestion_beside_judging(judge)
    by_name, scanned = matching_p95_ms(by_name=True), matching_p95_ms(by_name=False)
    return [
        ("judge score visible after the judged trace's ack, p95 (delay 0, 50 ms LLM)",
         f"{visible * 1e3:,.0f} ms", "≤ 2 s"),
        (f"judge jobs/s, backlog of {BACKLOG}, 50 ms LLM, concurrency 32", f"{rate:,.0f}/s",
         "≥ 100/s"),
        *((f"  CPU per judge job, {process}", f"{ms:.2f} ms", "")
          for process, ms in ms_per_job.items()),
        *beside,
        ("matching one event against 10,000 rules filtering on names, p95",
         f"{by_name:.3f} ms", "≤ 1 ms"),
        ("same, 10,000 rules on a metadata key only (every rule read), p95",
         f"{scanned:.2f} ms", "–"),
    ]  # fmt: skip


if __name__ == "__main__":
    for row in asyncio.run(judge_rows()):
        print(" | ".join(row))

"""The reads section at 10,000,000 stored observations (`BENCH_ONLY=reads10m`): a bench project
of its own (so the other sections' project stays small) is filled to that size straight into
ClickHouse (scripts/bench_dataset.py, SDK-shaped traces of 3-20 observations over 30 days) while
the query service is stopped, then the public read routes are timed one request at a time
through the gateway, as a user's page loads would be. The dataset stays for the next runs."""

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from scripts.bench import ENV, GATEWAY, Row, p, query_pid
from scripts.bench_dataset import fill, stored_observations
from scripts.bench_support import tenant
from tests.support.devenv import ROOT

OBSERVATIONS = int(os.environ.get("BENCH_READ_10M_OBSERVATIONS", "10000000"))
PROJECT_ID = "bench-reads-10m"
SAMPLES = 100


def clickhouse_url() -> str:
    """The dev stack's ClickHouse, its chDB directory resolved against the checkout."""
    url = ENV["QUERY_CLICKHOUSE_URL"]
    path = url.removeprefix("chdb://")
    if url.startswith("chdb://") and not Path(path).is_absolute():
        return f"chdb://{ROOT / path}"
    return url


async def fill_to(project_id: str, observations: int) -> int:
    """Tops the project up to `observations` with the query service stopped (chDB is one
    process); returns how many it holds."""
    pid = query_pid()
    os.kill(pid, signal.SIGTERM)
    while Path(f"/proc/{pid}").exists():
        await asyncio.sleep(0.1)
    url = clickhouse_url()
    stored = await stored_observations(url, project_id)
    if stored < observations:
        stored += (await fill(url, project_id, observations - stored))["observations"]
    subprocess.run(["scripts/stack.sh", "up"], cwd=ROOT, check=True, capture_output=True)
    return stored


async def read_rows(gateway: str, auth: tuple[str, str], stored: int) -> list[Row]:
    """The read figures of issue 14, each from SAMPLES sequential requests after a warm-up."""
    async with httpx.AsyncClient(base_url=gateway, auth=auth, timeout=60) as client:

        async def timed(path: str, params: dict[str, object] | None = None) -> float:
            started = time.perf_counter()
            (await client.get(path, params=params)).raise_for_status()
            return time.perf_counter() - started

        async def sampled(path: str, params: dict[str, object] | None = None) -> list[float]:
            for _ in range(5):
                await timed(path, params)
            return [await timed(path, params) for _ in range(SAMPLES)]

        latest = (await client.get("/api/public/traces", params={"limit": 50})).json()["data"]
        trace_ids = [trace["id"] for trace in latest[:20]]
        traces = await sampled("/api/public/traces", {"limit": 50})
        for _ in range(5):
            await timed(f"/api/public/traces/{trace_ids[0]}")
        one = [await timed(f"/api/public/traces/{trace_ids[i % 20]}") for i in range(SAMPLES)]
        observations = await sampled("/api/public/observations", {"limit": 50})
        v2 = await sampled("/api/public/v2/observations", {"limit": 50})
        by_trace = [
            await timed("/api/public/v2/observations", {"traceId": trace_ids[i % 20]})
            for i in range(SAMPLES)
        ]
        listed = (await client.get("/api/public/observations", params={"limit": 20})).json()
        observation_ids = [observation["id"] for observation in listed["data"]]
        by_id = [
            await timed(f"/api/public/observations/{observation_ids[i % len(observation_ids)]}")
            for i in range(SAMPLES)
        ]
    at = f"{stored / 1e6:.1f} M obs stored"

    def both(values: list[float]) -> str:
        return f"{p(values, 50):.0f} / {p(values, 95):.0f} ms"

    return [
        (f"latest 50 traces, p50 / p95 ({at})", both(traces), "<= 15 / <= 30 ms"),
        (f"one trace with its observations, p50 / p95 ({at})", both(one), "<= 15 ms p50"),
        (f"latest 50 observations, p50 / p95 ({at})", both(observations), "<= 50 ms p95"),
        (f"latest 50 observations (v2), p50 / p95 ({at})", both(v2), "<= 50 ms p95"),
        (f"v2 observations by trace, p50 / p95 ({at})", both(by_trace), "<= 30 ms"),
        (f"one observation by id, p50 / p95 ({at})", both(by_id), "(the judge's lookup)"),
    ]


async def reads_10m_rows() -> list[Row]:
    bench = await tenant(PROJECT_ID)
    auth = (bench.public_key, bench.secret_key)
    stored = await fill_to(PROJECT_ID, OBSERVATIONS)
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(base_url=GATEWAY, auth=auth, timeout=60) as client:
        while (await client.get("/api/public/traces", params={"limit": 1})).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the query service did not come back within 120 s")
            await asyncio.sleep(0.5)
    return await read_rows(GATEWAY, auth, stored)

"""The retention figure (issue 12): a pass over 10,000,000 stored observations that deletes the
oldest 10 %, how long it takes, and the p95 of reads through the public API while it runs against
their p95 when idle.

It runs on a stack of its own started on a copy of the kept 10 M dataset (scripts/
bench_lifecycle.py: 30 days of SDK-shaped traces of one project). The project gets, with an
organization key, the retention in whole days that cuts the oldest tenth of its span (reads leave
those rows out from then on); then its cutoff is announced on `gateway.projects.retention.v1`,
as the gateway's daily round does, and the clock runs until every owner (query, ingestion,
evals) has committed the announcement, which each does after its pass. The reads are what a
user's page loads make, one at a time: the latest 50 traces and one trace with its observations
and scores, in turn; the idle ones just before the announcement, the others until the pass ends.

    python -m scripts.bench_retention
"""

import asyncio
import math
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from libs.common.kafka import KafkaCluster, Topic, make_producer
from libs.common.retention import announce
from libs.common.scope import retention_cutoff
from scripts.bench_lifecycle import consumed, in_child, project_with_keys, stack_on, ten_million
from scripts.bench_support import p95_ms
from tests.e2e.conftest import Stack

Row = tuple[str, str, str]
IDLE_READS = 100
RETENTION_OWNERS = ("query", "ingestion", "evals")


async def retention_rows() -> list[Row]:
    source = await asyncio.to_thread(ten_million)
    described = await asyncio.to_thread(in_child, "--describe", str(source))
    project, (stored, first, last) = next(iter(described.items()))
    days = _days_cutting_a_tenth(*(datetime.fromisoformat(t + "+00:00") for t in (first, last)))
    # INFO: the query service's `retention_applied` line says what its pass deleted.
    async with stack_on(source, LOG_LEVEL="INFO") as stack:
        seconds, owners, idle, during = await measure(stack, project, days)
        deleted = _deleted_observations(stack.logs / "query.log")
    each = ", ".join(f"{owner} {at:.1f} s" for owner, at in owners.items())
    return [
        (f"retention pass over {stored / 1e6:.1f} M observations ({deleted / 1e6:.2f} M deleted):"
         f" announcement -> every owner done ({each})", f"{seconds:.1f} s", "-"),
        (f"read p95 during the retention pass ({len(during)} reads) / idle ({len(idle)})",
         f"{p95_ms(during):.0f} / {p95_ms(idle):.0f} ms", "<= 2x idle"),
    ]  # fmt: skip


def _days_cutting_a_tenth(first: datetime, last: datetime) -> int:
    """Whole days of retention whose cutoff, from now, falls at least a tenth into the span of
    the project's observations (the dataset was filled up to its own fill time)."""
    tenth = first + (last - first) / 10
    return math.floor((datetime.now(UTC) - tenth) / timedelta(days=1))


async def measure(
    stack: Stack, project: str, days: int
) -> tuple[float, dict[str, float], list[float], list[float]]:
    """Seconds from the announcement until every owner applied it, and until each did; read
    times idle and during."""
    project_key, org_key = project_with_keys(stack, project)
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, auth=project_key, timeout=60) as client,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=org_key, timeout=60) as org,
    ):
        body = {"name": project, "retention": days}
        (await org.put(f"/api/public/projects/{project}", json=body)).raise_for_status()
        reads = _Reads(client)
        await reads.start()
        idle = [await reads.one() for _ in range(IDLE_READS)]

        cluster = KafkaCluster(stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["KAFKA_NAMESPACE"])
        producer = make_producer(cluster, client_id="bench-retention")
        await producer.start()
        try:
            started = time.perf_counter()
            cutoff = retention_cutoff(days)
            assert cutoff is not None
            await announce(producer, cluster, project, days, cutoff)
            groups = [f"{owner}.retention" for owner in RETENTION_OWNERS]
            applied = asyncio.create_task(consumed(stack, Topic.PROJECT_RETENTION, groups))
            during = []
            while not applied.done():
                during.append(await reads.one())
            owners = {group.partition(".")[0]: at for group, at in (await applied).items()}
            seconds = time.perf_counter() - started
        finally:
            await producer.stop()
    return seconds, owners, idle, during


class _Reads:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self._trace_ids: list[str] = []
        self._turn = 0

    async def start(self) -> None:
        """The newest traces to open, and a warm-up."""
        page = await self._client.get("/api/public/traces", params={"limit": 50})
        self._trace_ids = [trace["id"] for trace in page.raise_for_status().json()["data"]]
        for _ in range(10):
            await self.one()

    async def one(self) -> float:
        """Seconds of one read, the latest traces and one trace in turn."""
        self._turn += 1
        started = time.perf_counter()
        if self._turn % 2:
            trace_id = random.choice(self._trace_ids)
            response = await self._client.get(f"/api/public/traces/{trace_id}")
        else:
            response = await self._client.get("/api/public/traces", params={"limit": 50})
        response.raise_for_status()
        return time.perf_counter() - started


def _deleted_observations(log: Path) -> int:
    """Observation rows the query service's pass deleted, from its `retention_applied` line."""
    for line in log.read_bytes().splitlines():
        if b"retention_applied" in line:
            return int(orjson.loads(line)["observations"])
    raise RuntimeError("the query service logged no retention_applied")


if __name__ == "__main__":
    for name, value, target in asyncio.run(retention_rows()):
        print(f"{name}: {value} ({target})")

"""The retention figure: a pass over 10,000,000 stored observations that deletes the oldest 10 %,
how long it takes, and the p95 of reads while it runs against their p95 when idle.

The dataset (scripts/bench_dataset.py, 30 days of SDK-shaped traces) is filled once into a
ClickHouse directory of its own under BENCH_RETENTION_DIR (default .dev/bench/), merged as a
table at rest is, and kept; each run works on a copy of it, so the dev stack's data is never
touched and a second run needs no refill. The cutoff is the oldest observation's time plus a
tenth of the span, wherever the clock stands now. The reads are what a user does beside the
pass: a trace with its observations and scores, and the first page of the observation list, one
at a time, on the same embedded engine (and its sessions) the pass uses, as in the query service.

    python -m scripts.bench_retention [observations]
"""

import asyncio
import os
import random
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

from libs.common.migrate import load_migrations, migrate
from scripts.bench_dataset import MIGRATIONS, fill
from scripts.bench_support import p95_ms
from services.query.clickhouse import ClickHouse, ClickHouseTarget, open_clickhouse
from services.query.filters import Where
from services.query.retention import TIME_COLUMNS, RetentionPass
from services.query.store import TraceStore
from tests.support.devenv import ROOT

Row = tuple[str, str, str]
PROJECT = "bench-retention"
IDLE_READS = 200
BENCH_DIR = Path(os.environ.get("BENCH_RETENTION_DIR", ROOT / ".dev" / "bench"))


async def retention_rows(observations: int | None = None) -> list[Row]:
    count = observations or int(os.environ.get("BENCH_RETENTION_OBSERVATIONS", "10000000"))
    source = BENCH_DIR / f"retention-{count}"
    if not (source / "filled").exists():
        shutil.rmtree(source, ignore_errors=True)
        await fill(f"chdb://{source}", PROJECT, count)
        await _settle(f"chdb://{source}")
        (source / "filled").touch()
    work = BENCH_DIR / "retention-work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work, symlinks=True)  # the engine links tables to store/
    clickhouse = open_clickhouse(f"chdb://{work}")
    try:
        # A kept dataset may predate the latest migrations (tables the pass deletes from).
        await migrate(ClickHouseTarget(clickhouse), load_migrations(MIGRATIONS))
        seconds, deleted, idle, during, reads = await measure(clickhouse)
    finally:
        clickhouse.close()
        shutil.rmtree(work, ignore_errors=True)
    return [
        (f"retention pass over {count / 1e6:g} M observations ({deleted / 1e6:.2f} M deleted)",
         f"{seconds:.1f} s", "-"),
        (f"read p95 during the retention pass ({reads} reads) / idle",
         f"{during:.0f} / {idle:.0f} ms", "<= 2x idle"),
    ]  # fmt: skip


async def _settle(url: str) -> None:
    """Merges what the fill wrote, as a table at rest is: a delete on freshly written parts first
    waits for the merges running on them (16-21 s instead of 0.7 s at 3 M observations)."""
    clickhouse = open_clickhouse(url)
    try:
        for table in TIME_COLUMNS:
            await clickhouse.execute(f"OPTIMIZE TABLE {table} FINAL")
    finally:
        clickhouse.close()


async def measure(clickhouse: ClickHouse) -> tuple[float, int, float, float, int]:
    """Seconds the pass took, observation rows it deleted, read p95 idle and during (ms), and
    how many reads ran during the pass."""
    store = TraceStore(clickhouse)
    params = {"project_id": PROJECT}
    [span] = await clickhouse.select(
        "SELECT min(start_time) AS first, max(start_time) AS last FROM observations"
        " WHERE project_id = {project_id:String}",
        params,
    )
    first, last = (datetime.fromisoformat(span[k] + "+00:00") for k in ("first", "last"))
    cutoff = first + (last - first) / 10
    # Traces the pass keeps, to read while it runs.
    kept = [
        row["id"]
        for row in await clickhouse.select(
            "SELECT id FROM traces WHERE project_id = {project_id:String}"
            " ORDER BY cityHash64(id) LIMIT 500",
            params,
        )
    ]
    reads = _Reads(store, kept)
    idle = [await reads.one() for _ in range(IDLE_READS)]
    started = time.perf_counter()
    running = asyncio.create_task(RetentionPass(clickhouse).run(PROJECT, cutoff))
    during: list[float] = []
    while not running.done():
        during.append(await reads.one())
    counts = await running
    seconds = time.perf_counter() - started
    return seconds, counts["observations"], p95_ms(idle), p95_ms(during or idle), len(during)


class _Reads:
    def __init__(self, store: TraceStore, trace_ids: list[str]) -> None:
        self._store = store
        self._trace_ids = trace_ids
        self._turn = 0

    async def one(self) -> float:
        """Seconds of one read, a trace view and an observation page in turn."""
        self._turn += 1
        started = time.perf_counter()
        if self._turn % 2:
            trace_id = random.choice(self._trace_ids)
            await asyncio.gather(
                self._store.trace(PROJECT, trace_id),
                self._store.observations_of(PROJECT, trace_id),
                self._store.scores_of(PROJECT, trace_id),
            )
        else:
            await self._store.page_of(
                "observation", PROJECT, Where(), "start_time DESC, id DESC", 50, 0
            )
        return time.perf_counter() - started


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else None
    for name, value, target in asyncio.run(retention_rows(size)):
        print(f"{name}: {value} ({target})")

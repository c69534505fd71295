"""The query writer alone: SDK-shaped events through EventWriter into an embedded chDB, timed per
observation. 2,000 traces of a trace upsert and 4 generations (1-4 KiB inputs and outputs, a
model, usage, gen_ai metadata): 10,000 events in messages of 20 traces (an SDK export's share of
one partition), consumed in batches of 1 MiB of messages as the writer's consumer takes them.
Three passes: the traces arrive (new entities), then each observation's update and the trace's
second upsert arrive (entities the writer just wrote), then the same again after the writer
forgot what it wrote (a rebalance). With `stored`, the project first holds that many
observations of the last 30 days (scripts/bench_dataset.py), among which lookups search. Last,
the merge alone (services/query/rows.py: each new entity's events merged into nothing and its
clocks encoded, no I/O), the best of five runs, as the loaded machines this runs on allow.

    python -m scripts.bench_writer [traces] [stored]
"""

import asyncio
import gzip
import inspect
import random
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord
from google.protobuf.timestamp_pb2 import Timestamp

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.migrate import load_migrations, migrate
from scripts import bench_dataset
from services.query import consumer, rows
from services.query.clickhouse import ClickHouseTarget, EmbeddedClickHouse
from services.query.models import ModelCatalogs
from services.query.store import TraceStore

MIGRATIONS = Path(consumer.__file__).parent / "migrations" / "clickhouse"
OBSERVATIONS_PER_TRACE = 4
TRACES_PER_MESSAGE = 20
BATCH_BYTES = 1024 * 1024
_WORDS = ["the", "agent", "calls", "a", "tool", "to", "fetch", "order", "status", "answer"]


class NoProjectModels:
    async def entries(self, project_id: str) -> list[dict[str, Any]]:
        return []


def text(rng: random.Random) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(170, 700)))  # 1-4 KiB


def event(
    kind: int,
    entity_id: str,
    trace_id: str,
    at: datetime,
    body: dict[str, Any],
    number: int,
    project_id: str,
) -> events_pb2.IngestionEvent:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return events_pb2.IngestionEvent(
        event_id=f"{entity_id}-{number}",
        project_id=project_id,
        type=kind,  # type: ignore[arg-type]
        observation_type="GENERATION" if kind != events_pb2.EVENT_TYPE_TRACE_CREATE else "",
        entity_id=entity_id,
        trace_id=trace_id,
        event_time=stamp,
        received_at=stamp,
        body_json=orjson.dumps(body),
    )


def messages(
    traces: int, updates: bool, rng: random.Random, project_id: str = "bench"
) -> list[bytes]:
    """One message per 20 traces: their creates, or their updates."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    values = []
    pending: list[events_pb2.IngestionEvent] = []
    for t in range(traces):
        trace_id = f"trace-{t:06d}"
        at = start + timedelta(seconds=t)
        upsert = {"id": trace_id, "name": "agent-run", "userId": f"user-{t % 50}",
                  "output": text(rng) if updates else None, "metadata": {"run": t}}  # fmt: skip
        later = at + timedelta(seconds=int(updates))
        kind = events_pb2.EVENT_TYPE_TRACE_CREATE
        events = [event(kind, trace_id, trace_id, later, upsert, int(updates), project_id)]
        for o in range(OBSERVATIONS_PER_TRACE):
            observation_id = f"{trace_id}-{o}"
            if updates:
                body = {"id": observation_id, "traceId": trace_id, "output": text(rng),
                        "endTime": (at + timedelta(seconds=2)).isoformat(),
                        "usageDetails": {"input": 600, "output": 300}}  # fmt: skip
                kind = events_pb2.EVENT_TYPE_OBSERVATION_UPDATE
            else:
                body = {"id": observation_id, "traceId": trace_id, "name": f"llm-{o}",
                        "startTime": at.isoformat(), "model": "gpt-4o", "input": text(rng),
                        "metadata": {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                                     "attributes": {"temperature": 0.2, "step": o}}}  # fmt: skip
                kind = events_pb2.EVENT_TYPE_OBSERVATION_CREATE
            events.append(event(kind, observation_id, trace_id, at, body, int(updates), project_id))
        pending += events
        if len(pending) >= TRACES_PER_MESSAGE * (1 + OBSERVATIONS_PER_TRACE) or t == traces - 1:
            batch = events_pb2.IngestionEventBatch(events=pending)
            values.append(gzip.compress(batch.SerializeToString(), compresslevel=1, mtime=0))
            pending = []
    return values


def batches(values: list[bytes]) -> list[list[ConsumerRecord[bytes, bytes]]]:
    out: list[list[ConsumerRecord[bytes, bytes]]] = [[]]
    size = 0
    for offset, value in enumerate(values):
        out[-1].append(ConsumerRecord("t", 0, offset, 0, 0, None, value, None, 0, len(value), []))
        size += len(value)
        if size >= BATCH_BYTES:
            out.append([])
            size = 0
    return [b for b in out if b]


async def run_pass(writer: Any, values: list[bytes]) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    count = 0
    for records in batches(values):
        decoded = [consumer.decode_events(r) for r in records]
        count += len(records)
        await writer.write(decoded)
    return time.perf_counter() - wall, time.process_time() - cpu, count


def merge_cost(values: list[bytes]) -> float:
    """CPU µs per entity of merging each entity's events into nothing and encoding its clocks."""
    grouped: dict[tuple[str, str], list[rows.Change]] = defaultdict(list)
    for records in batches(values):
        for record in records:
            for event in consumer.decode_events(record):
                grouped[(event.kind, event.entity_id)].append(event.change)
    best = float("inf")
    for _ in range(5):
        cpu = time.process_time()
        for (kind, _), changes in grouped.items():
            rows.encode_clocks(rows.merge(kind, None, changes)[0])
        best = min(best, time.process_time() - cpu)
    return best * 1e6 / len(grouped)


async def main(traces: int, stored: int) -> None:
    rng = random.Random(7)
    creates, updates = messages(traces, False, rng), messages(traces, True, rng)
    observations = traces * OBSERVATIONS_PER_TRACE
    with tempfile.TemporaryDirectory() as directory:
        if stored:
            await bench_dataset.fill(f"chdb://{directory}/chdb", "bench", stored)
        clickhouse = EmbeddedClickHouse(str(Path(directory) / "chdb"))
        await migrate(ClickHouseTarget(clickhouse), load_migrations(MIGRATIONS))
        for table in ("traces", "observations", "scores"):
            # Background merges (of the filled dataset above all) would be counted in a pass.
            await clickhouse.execute(f"SYSTEM STOP MERGES {table}")
        store = TraceStore(clickhouse)
        catalogs = ModelCatalogs(NoProjectModels())  # type: ignore[arg-type]
        remembers = len(inspect.signature(consumer.EventWriter).parameters) > 2
        if remembers:
            from services.query.recent_state import RecentState

            writer = consumer.EventWriter(store, catalogs, RecentState(20_000))
        else:
            writer = consumer.EventWriter(store, catalogs)
        # Imports and tokenizer tables load on first use: not part of any pass.
        await run_pass(writer, messages(20, False, rng, "warm-up"))
        passes = [("new entities", creates), ("updates, just written", updates)]
        if remembers:
            passes.append(("updates, forgotten", messages(traces, True, random.Random(8))))
        print(f"{traces} traces, {observations} observations per pass, "
              f"{len(batches(creates))} batches, {stored} stored before")  # fmt: skip
        for name, values in passes:
            if name == "updates, forgotten":
                writer.forget_recent()
            wall, cpu, _ = await run_pass(writer, values)
            print(f"{name:24} wall {wall * 1e6 / observations:7.0f} µs/obs   "
                  f"cpu {cpu * 1e6 / observations:7.0f} µs/obs")  # fmt: skip
        clickhouse.close()
    print(f"{'merge of a new entity':24} cpu {merge_cost(creates):7.1f} µs/entity (best of 5)")


if __name__ == "__main__":
    arguments = [int(argument) for argument in sys.argv[1:]]
    asyncio.run(main(*arguments, *[2000, 0][len(arguments) :]))

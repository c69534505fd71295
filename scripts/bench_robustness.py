"""Bench rows of issue 13: no tenant can hurt another.

Mixed load: SDK-like exports (OTLP protobuf and batch JSON, ten small traces of ten ~1.5 KB
observations each) at 80 % of the measured end-to-end ingest rate, spread over 20 projects, with
1 % poison events of every kind the issue lists beside them, plus records published straight to
Kafka that cannot be written. Every poison item has a trace of its own, so it travels in a Kafka
message of its own (keyed "<project>:<trace>") and is found on the dead-letter topic by that key.

Slow connections: 1,000 sockets that send half their request headers and stall, held open (opened
again when the gateway closes them) while a normal client measures GET /projects.
"""

import asyncio
import gzip
import itertools
import os
import resource
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from libs.common.event_batches import encode_event_batch
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.timestamps import to_timestamp
from scripts.bench import (
    AUTH,
    ENV,
    GATEWAY,
    INGEST_SECONDS,
    SENDERS,
    Row,
    fresh_spans,
    otlp_load,
    otlp_template,
    throughput,
    visibility_p95,
)
from scripts.bench_support import Tenant, p95_ms, tenants
from tests.support.devenv import ROOT

TENANTS = 20
POISON_SHARE = 0.01
TRACES_PER_REQUEST = 10
SPANS_PER_TRACE = 10
GOOD_PER_REQUEST = TRACES_PER_REQUEST * SPANS_PER_TRACE
EVENTS_TOPIC = "ingestion.events.v1"
DELETIONS_TOPIC = "ingestion.deletions.v1"
DLQ_TOPICS = (f"{EVENTS_TOPIC}.dlq", f"{DELETIONS_TOPIC}.dlq")
BOMB_BYTES = 100 * 1024 * 1024
SLOW_CONNECTIONS = int(os.environ.get("BENCH_SLOW_CONNECTIONS", "1000"))
SLOW_SAMPLES = int(os.environ.get("BENCH_SLOW_SAMPLES", "300"))
SLOW_SECONDS = float(os.environ.get("BENCH_SLOW_SECONDS", "30"))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _hex_id() -> str:
    return uuid.uuid4().hex


# --- what the senders send ------------------------------------------------------------------


def good_batch() -> list[dict[str, object]]:
    """An SDK-3-like batch: TRACES_PER_REQUEST traces of SPANS_PER_TRACE observations each."""
    now = _iso(datetime.now(UTC))
    events: list[dict[str, object]] = []
    for _ in range(TRACES_PER_REQUEST):
        trace_id = _hex_id()
        trace = {"id": trace_id, "name": "bench-mixed", "timestamp": now, "userId": "u-1"}
        events.append({"id": _hex_id(), "type": "trace-create", "timestamp": now, "body": trace})
        for index in range(SPANS_PER_TRACE):
            body: dict[str, object] = {
                "id": _hex_id(), "traceId": trace_id, "name": f"step-{index}", "startTime": now,
                "endTime": now, "input": {"messages": "x" * 700}, "output": "y" * 500,
            }  # fmt: skip
            kind = "span-create"
            if index % 2:
                kind = "generation-create"
                body |= {"model": "gpt-4o", "usageDetails": {"input": 10, "output": 20}}
            events.append({"id": _hex_id(), "type": kind, "timestamp": now, "body": body})
    return events


def good_export(template: bytes) -> bytes:
    """An SDK-5-like OTLP export of TRACES_PER_REQUEST small traces, gzipped."""
    raw = b"".join(fresh_spans(template)[1] for _ in range(TRACES_PER_REQUEST))
    return gzip.compress(raw, compresslevel=1)


@dataclass
class Poison:
    """One poison item: the events or request of one kind, in a trace of its own."""

    kind: str
    project_id: str
    trace_id: str
    events: int = 1  # poison events it holds (toward the POISON_SHARE budget)
    outcome: str = ""  # rejected (4xx at the door), accepted, 5xx; later dead-lettered, stored

    @property
    def key(self) -> bytes:
        return f"{self.project_id}:{self.trace_id}".encode()


def _observation(trace_id: str, **fields: object) -> dict[str, object]:
    # Two days back: outside the good events' time window even if a store keeps it.
    start = _iso(datetime.now(UTC) - timedelta(days=2))
    return {"id": _hex_id(), "traceId": trace_id, "name": "bench-poison", "startTime": start,
            **fields}  # fmt: skip


def _envelope(kind: str, body: dict[str, object], timestamp: str = "") -> dict[str, object]:
    timestamp = timestamp or _iso(datetime.now(UTC))
    return {"id": _hex_id(), "type": kind, "timestamp": timestamp, "body": body}


def _months_apart(trace_id: str) -> list[dict[str, object]]:
    """101 observations of one trace, each in another month (ClickHouse refuses an insert
    spanning more than 100 partitions)."""
    first = datetime.now(UTC).replace(day=1) - timedelta(days=1)
    events = []
    for month in range(101):
        start = first - timedelta(days=31 * month)
        body = _observation(trace_id, startTime=_iso(start))
        events.append(_envelope("span-create", body, _iso(start)))
    return events


LEGAL_POISON = "timestamps 101 months apart"
_years = itertools.cycle(["0999-06-01T00:00:00.000Z", "10000-01-01T00:00:00.000Z"])

# Poison that rides inside a good batch: kind -> events (of one trace) for that trace id.
EVENT_POISON: dict[str, Callable[[str], list[dict[str, object]]]] = {
    "cost >= 1e6": lambda t: [
        _envelope("generation-create", _observation(t, costDetails={"total": 2_000_000.0}))
    ],
    "negative promptVersion": lambda t: [
        _envelope("generation-create", _observation(t, promptName="bench", promptVersion=-1))
    ],
    "usage summing past 2^64": lambda t: [
        _envelope(
            "generation-create",
            _observation(t, usageDetails={"input": 10**19, "output": 10**19}),
        )
    ],
    LEGAL_POISON: _months_apart,
    "year 0999 / 10000": lambda t: [
        _envelope("span-create", _observation(t, startTime=(year := next(_years))), year)
    ],
    "empty id": lambda t: [_envelope("span-create", _observation(t, id=""))],
    "id with control characters": lambda t: [
        _envelope("span-create", _observation(t, id=f"bench\x00\x1b{_hex_id()}"))
    ],
}


def _deep_json(trace_id: str) -> bytes:
    """A batch whose one span's input nests 300 levels (written by hand: orjson stops at 254)."""
    now = _iso(datetime.now(UTC))
    head = (
        f'{{"batch":[{{"id":"{_hex_id()}","type":"span-create","timestamp":"{now}",'
        f'"body":{{"id":"{_hex_id()}","traceId":"{trace_id}","startTime":"{now}","input":'
    )
    return head.encode() + b'{"a":' * 300 + b"1" + b"}" * 300 + b"}}]}"


def _otlp_json_wrong_types(trace_id: str) -> bytes:
    span = {
        "traceId": trace_id, "spanId": ["not", "hex"], "name": {"an": "object"},
        "startTimeUnixNano": "soon", "endTimeUnixNano": True,
        "attributes": [{"key": "langfuse.observation.type", "value": {"intValue": "many"}}],
    }  # fmt: skip
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


def _gzip_bomb() -> bytes:
    """BOMB_BYTES of zeros, gzipped (about 1,000 to 1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    return b"".join(packer.compress(chunk) for _ in range(BOMB_BYTES // len(chunk))) + (
        packer.flush()
    )


def _unwritable_batch(project_id: str, trace_id: str) -> bytes:
    """What the door would refuse, encoded as ingestion would: a cost no Decimal64(12) holds."""
    now = datetime.now(UTC)
    body = _observation(trace_id, costDetails={"total": 5_000_000.0}, model="gpt-4o")
    event = events_pb2.IngestionEvent(
        event_id=_hex_id(), project_id=project_id, type=events_pb2.EVENT_TYPE_OBSERVATION_CREATE,
        observation_type="GENERATION", entity_id=str(body["id"]), trace_id=trace_id,
        body_json=orjson.dumps(body), event_time=to_timestamp(now), received_at=to_timestamp(now),
    )  # fmt: skip
    return encode_event_batch(events_pb2.IngestionEventBatch(events=[event]))


REQUEST_POISON = (
    "JSON nested 300 deep",
    "OTLP JSON with wrong value types",
    "gzip bomb (100 MiB of zeros)",
    'trace deletion with traceIds [""]',
    "Kafka record that is not an event batch",
    "Kafka record with an unwritable cost",
)


# --- the mixed load -------------------------------------------------------------------------


@dataclass
class Tally:
    acknowledged: Counter[str] = field(default_factory=Counter)  # good observations, per project
    refused: int = 0  # good observations refused at the door (beside poison)
    rate_limited: int = 0
    good_events: int = 0
    poison_events: int = 0
    poison: list[Poison] = field(default_factory=list)


class MixedLoad:
    def __init__(self, projects: list[Tenant], producer: AIOKafkaProducer) -> None:
        self.projects = projects
        self.producer = producer
        self.tally = Tally()
        self.bomb = _gzip_bomb()
        # Made now: its spans start when it is made, within the time window counted at the end.
        self.template = otlp_template(SPANS_PER_TRACE)
        self._event_kinds = itertools.cycle(EVENT_POISON)
        self._request_kinds = itertools.cycle(REQUEST_POISON)

    def _poison_due(self, level: str) -> bool:
        """Whether poison of this level (event, request) is due: each has half the share, so
        the 101-event item does not crowd out the others."""
        tally = self.tally
        sent = sum(p.events for p in tally.poison if (p.kind in EVENT_POISON) == (level == "event"))
        return sent < POISON_SHARE / 2 * (tally.good_events + tally.poison_events)

    async def _post(
        self, session: aiohttp.ClientSession, tenant: Tenant, method: str, path: str,
        body: bytes, content_type: str, encoding: str = "",
    ) -> tuple[int, bytes]:  # fmt: skip
        headers = {"Authorization": tenant.authorization, "content-type": content_type}
        if encoding:
            headers["content-encoding"] = encoding
        for _ in range(5):  # an SDK retries a 429 after Retry-After; a few times here
            async with session.request(method, path, data=body, headers=headers) as response:
                answer = await response.read()
                if response.status != 429:
                    break
                self.tally.rate_limited += 1
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        return response.status, answer

    async def batch_request(self, session: aiohttp.ClientSession, tenant: Tenant) -> None:
        """A good batch, with one event-level poison item inside when it is due."""
        events = good_batch()
        good_ids = {e["id"]: 0 if e["type"] == "trace-create" else 1 for e in events}
        poison: Poison | None = None
        poison_ids: set[object] = set()
        if self._poison_due("event"):
            kind = next(self._event_kinds)
            poison = Poison(kind, tenant.project_id, _hex_id())
            extra = EVENT_POISON[kind](poison.trace_id)
            poison.events, poison_ids = len(extra), {e["id"] for e in extra}
            events += extra
        body = orjson.dumps({"batch": events, "metadata": {"sdk_name": "python"}})
        status, answer = await self._post(
            session, tenant, "POST", "/api/public/ingestion", body, "application/json"
        )
        self.tally.good_events += GOOD_PER_REQUEST
        if status != 207:
            self.tally.refused += GOOD_PER_REQUEST
            if poison:
                poison.outcome = "rejected" if 400 <= status < 500 else "5xx"
        else:
            reply = orjson.loads(answer)
            ok = {s["id"] for s in reply["successes"]}
            self.tally.acknowledged[tenant.project_id] += sum(
                n for i, n in good_ids.items() if i in ok
            )
            self.tally.refused += sum(n for i, n in good_ids.items() if i not in ok)
            if poison:
                statuses = [e["status"] for e in reply["errors"] if e["id"] in poison_ids]
                if any(s >= 500 for s in statuses):
                    poison.outcome = "5xx"
                elif len(statuses) == len(poison_ids):
                    poison.outcome = "rejected"
                else:
                    poison.outcome = "accepted"
        if poison:
            self._count(poison)

    async def otlp_request(self, session: aiohttp.ClientSession, tenant: Tenant) -> None:
        """A good OTLP export, followed by one request-level poison item when it is due."""
        status, _ = await self._post(
            session, tenant, "POST", "/api/public/otel/v1/traces", good_export(self.template),
            "application/x-protobuf", "gzip",
        )  # fmt: skip
        self.tally.good_events += GOOD_PER_REQUEST
        if 200 <= status < 300:
            self.tally.acknowledged[tenant.project_id] += GOOD_PER_REQUEST
        else:
            self.tally.refused += GOOD_PER_REQUEST
        if self._poison_due("request"):
            await self.request_poison(session, tenant, next(self._request_kinds))

    async def request_poison(
        self, session: aiohttp.ClientSession, tenant: Tenant, kind: str
    ) -> None:
        poison = Poison(kind, tenant.project_id, _hex_id())
        trace = poison.trace_id
        if kind.startswith("Kafka"):
            value = (
                b"\x00not an event batch " + os.urandom(16)
                if "not an event batch" in kind
                else _unwritable_batch(tenant.project_id, trace)
            )
            await self.producer.send_and_wait(EVENTS_TOPIC, value=value, key=poison.key)
            poison.outcome = "accepted"
            self._count(poison)
            return
        otlp = "/api/public/otel/v1/traces"
        request: tuple[str, str, bytes, str, str] = {
            "JSON nested 300 deep": (
                "POST", "/api/public/ingestion", _deep_json(trace), "application/json", ""),
            "OTLP JSON with wrong value types": (
                "POST", otlp, _otlp_json_wrong_types(trace), "application/json", ""),
            "gzip bomb (100 MiB of zeros)": (
                "POST", otlp, self.bomb, "application/x-protobuf", "gzip"),
            'trace deletion with traceIds [""]': (
                "DELETE", "/api/public/traces", b'{"traceIds": [""]}', "application/json", ""),
        }[kind]  # fmt: skip
        status, answer = await self._post(session, tenant, *request)
        if status == 207:  # the deep batch: its one event's own status
            errors = orjson.loads(answer)["errors"]
            status = errors[0]["status"] if errors else 200
        poison.outcome = (
            "rejected" if 400 <= status < 500 else "5xx" if status >= 500 else "accepted"
        )
        self._count(poison)

    def _count(self, poison: Poison) -> None:
        self.tally.poison.append(poison)
        self.tally.poison_events += poison.events

    async def run(self, seconds: float, rate: float) -> float:
        """SENDERS senders, each alternating batch JSON and OTLP over the projects in turn,
        paced together to `rate` good observations/s; returns the rate they reached."""
        interval = SENDERS * GOOD_PER_REQUEST / rate
        began = time.perf_counter()
        deadline = began + seconds
        turns = itertools.count()
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(GATEWAY, timeout=timeout) as session:

            async def sender() -> None:
                next_at = time.perf_counter()
                while time.perf_counter() < deadline:
                    turn = next(turns)
                    tenant = self.projects[turn % len(self.projects)]
                    if turn // len(self.projects) % 2:
                        await self.otlp_request(session, tenant)
                    else:
                        await self.batch_request(session, tenant)
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

            await asyncio.gather(*(sender() for _ in range(SENDERS)))
        return self.tally.good_events / (time.perf_counter() - began)


# --- reading back ---------------------------------------------------------------------------


async def dlq_offsets(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """End offsets of the dead-letter topics that exist (the others start at 0 when made).
    Their partitions come from the admin client: a consumer knows only what it subscribed to."""
    admin = AIOKafkaAdminClient(bootstrap_servers=ENV["KAFKA_BOOTSTRAP_SERVERS"])
    await admin.start()
    try:
        described = await admin.describe_topics(list(DLQ_TOPICS))
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        if topic["error_code"] == 0
        for partition in topic["partitions"]
    ]
    return await consumer.end_offsets(partitions) if partitions else {}


async def dead_letters(consumer: AIOKafkaConsumer, since: dict[TopicPartition, int]) -> set[bytes]:
    """Keys of the events DLQ's records after `since`, and "<project>:deletion:<ids>" for
    deletions' dead letters."""
    ends = await dlq_offsets(consumer)
    keys: set[bytes] = set()
    wanted = {tp: end for tp, end in ends.items() if end > since.get(tp, 0)}
    if not wanted:
        return keys
    consumer.assign(list(wanted))
    for tp in wanted:
        consumer.seek(tp, since.get(tp, 0))
    while wanted:
        batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
        for tp, records in batches.items():
            for record in records:
                if tp.topic.startswith(DELETIONS_TOPIC):
                    deleted = events_pb2.TracesDeleted.FromString(record.value or b"")
                    ids = ",".join(deleted.trace_ids)
                    keys.add(f"{deleted.project_id}:deletion:{ids}".encode())
                else:
                    keys.add(record.key or b"")
            if records and records[-1].offset + 1 >= wanted.get(tp, 0):
                wanted.pop(tp, None)
        if not batches:
            break
    return keys


async def readable(
    client: httpx.AsyncClient, projects: list[Tenant], since: str, expected: Counter[str]
) -> Counter[str]:
    """Good observations readable per project (started since `since`), polled until each
    project shows what it acknowledged, or nothing grew for a minute (a writer catching up
    grows the counts), or fifteen minutes passed."""
    found: Counter[str] = Counter()
    started = last_growth = time.perf_counter()
    while True:
        for tenant in projects:
            if found[tenant.project_id] >= expected[tenant.project_id]:
                continue
            response = await client.get(
                "/api/public/observations",
                params={"limit": 1, "fromStartTime": since},
                headers={"Authorization": tenant.authorization},
            )
            count = int(response.json()["meta"]["totalItems"])
            if count > found[tenant.project_id]:
                found[tenant.project_id], last_growth = count, time.perf_counter()
        if all(found[p] >= n for p, n in expected.items()):
            return found
        if time.perf_counter() - last_growth > 60 or time.perf_counter() - started > 900:
            return found
        await asyncio.sleep(1)


async def stored(client: httpx.AsyncClient, tenant: Tenant, poison: Poison) -> bool:
    """Whether every observation of the poison item was written."""
    response = await client.get(
        "/api/public/observations",
        params={"traceId": poison.trace_id, "limit": 1},
        headers={"Authorization": tenant.authorization},
    )
    return response.status_code == 200 and response.json()["meta"]["totalItems"] >= poison.events


async def follow_accepted(
    client: httpx.AsyncClient,
    reader: AIOKafkaConsumer,
    since: dict[TopicPartition, int],
    projects: list[Tenant],
    poison: list[Poison],
) -> None:
    """Marks the poison items the door accepted that are now on a DLQ (waiting up to 30 s for
    the consumers' retries) or else stored whole."""
    accepted = [p for p in poison if p.outcome == "accepted"]
    deadline = time.perf_counter() + 30
    while accepted:
        letters = await dead_letters(reader, since)
        for item in accepted:
            deletion = f"{item.project_id}:deletion:".encode()
            if item.key in letters or (item.kind.startswith("trace deletion")
                                       and deletion in letters):  # fmt: skip
                item.outcome = "dead-lettered"
        accepted = [p for p in accepted if p.outcome == "accepted"]
        if not accepted or time.perf_counter() > deadline:
            break
        await asyncio.sleep(2)
    by_project = {t.project_id: t for t in projects}
    for item in accepted:
        written = not item.kind.startswith(("Kafka", "trace deletion"))
        if written and await stored(client, by_project[item.project_id], item):
            item.outcome = "stored"


def service_pids() -> dict[str, int]:
    run = ROOT / ENV["OBS_DEV_DIR"] / "run"
    return {path.stem: int(path.read_text().strip()) for path in sorted(run.glob("*.pid"))}


def exits(before: dict[str, int]) -> list[str]:
    """Processes of `before` that are gone or were replaced since."""
    now = service_pids()
    return [name for name, pid in before.items()
            if now.get(name) != pid or not Path(f"/proc/{pid}").exists()]  # fmt: skip


async def measured_rate(rate: float | None) -> float:
    """The OTLP end-to-end rate: from the ingest section, BENCH_INGEST_RATE, or measured now."""
    if rate:
        return rate
    if given := os.environ.get("BENCH_INGEST_RATE"):
        return float(given)
    _, end_to_end = await throughput(otlp_load(prepared=int(INGEST_SECONDS * 150)))
    return end_to_end


async def poison_rows(rate: float | None) -> list[Row]:
    rate = await measured_rate(rate)
    projects = await tenants(TENANTS)
    pids = service_pids()
    bootstrap = ENV["KAFKA_BOOTSTRAP_SERVERS"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await producer.start()
    await reader.start()
    try:
        since = await dlq_offsets(reader)
        window = _iso(datetime.now(UTC) - timedelta(seconds=1))
        load = MixedLoad(projects, producer)
        async with httpx.AsyncClient(base_url=GATEWAY, auth=AUTH, timeout=60) as client:
            running = asyncio.create_task(load.run(INGEST_SECONDS, 0.8 * rate))
            visibility = await visibility_p95(client, probes=20, poll=0.05)
            reached = await running
            tally = load.tally
        # No client-wide auth here: it would replace each project's Authorization header.
        async with httpx.AsyncClient(base_url=GATEWAY, timeout=60) as client:
            found = await readable(client, projects, window, tally.acknowledged)
            await follow_accepted(client, reader, since, projects, tally.poison)
    finally:
        await producer.stop()
        await reader.stop()
    lost = sum(max(0, n - found[p]) for p, n in tally.acknowledged.items())
    outcomes = Counter(p.outcome for p in tally.poison)
    # Observations 101 months apart are legal (Langfuse takes them): written whole is right too.
    legal = sum(p.kind == LEGAL_POISON and p.outcome == "stored" for p in tally.poison)
    accounted = outcomes["rejected"] + outcomes["dead-lettered"] + legal
    share = 100 * accounted / max(1, len(tally.poison))
    for (kind, outcome), count in sorted(
        Counter((p.kind, p.outcome) for p in tally.poison).items()
    ):
        print(f"bench: poison {kind}: {outcome} x{count}")
    gone = exits(pids)
    events = tally.good_events + tally.poison_events
    load_label = (
        f"{reached:.0f} obs/s reached of {0.8 * rate:.0f} asked (80 %), {TENANTS} projects, "
        f"{INGEST_SECONDS:.0f} s, "
        f"{100 * tally.poison_events / max(1, events):.1f} % poison"
    )
    return [
        (f"mixed load with poison ({load_label}): good observations lost "
         f"(of {sum(tally.acknowledged.values()):,} acknowledged)", f"{lost}", "0"),
        ("same: good observations refused at the door beside poison"
         f" ({tally.rate_limited} requests 429)", f"{tally.refused}", "0"),
        ("same: service processes exited (.dev/run/*.pid)",
         f"{len(gone)}" + (f" ({', '.join(gone)})" if gone else ""), "0"),
        (f"same: poison items accounted for: 4xx at the door, on the DLQ, or stored whole "
         f"if legal (of {len(tally.poison)}: {outcomes['rejected']} 4xx, "
         f"{outcomes['dead-lettered']} DLQ, {legal} stored; {outcomes['5xx']} 5xx)",
         f"{share:.1f} %", "100 %"),
        ("same: visibility p95 of good events", f"{visibility:.0f} ms", "<= 3000 ms"),
    ]  # fmt: skip


# --- slow connections -----------------------------------------------------------------------


async def projects_p95(samples: int, seconds: float = 0.0) -> tuple[float, int, int]:
    """p95 (ms) of GET /projects by a sequential client on a new connection each time, over
    `samples` requests or `seconds`, whichever is more; with the count and how many failed (a
    failure counts as its time, at most the 10 s timeout)."""
    durations: list[float] = []
    failures = 0
    limits = httpx.Limits(max_keepalive_connections=0)
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=GATEWAY, auth=AUTH, timeout=10, limits=limits) as client:
        while len(durations) < samples or time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                (await client.get("/api/public/projects")).raise_for_status()
            except httpx.HTTPError:
                failures += 1
            durations.append(time.perf_counter() - started)
    return p95_ms(durations), len(durations), failures


async def slow_connection_rows() -> list[Row]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SLOW_CONNECTIONS + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    idle, _, _ = await projects_p95(SLOW_SAMPLES)
    port = int(ENV["GATEWAY_HTTP_PORT"])
    half = b"GET /api/public/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic "
    stop = asyncio.Event()
    held = 0
    closed_by_gateway = 0

    async def hold() -> None:
        nonlocal held, closed_by_gateway
        while not stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 10
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            writer.write(half)
            held += 1
            eof = asyncio.ensure_future(reader.read(1))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({eof, stopped}, return_when=asyncio.FIRST_COMPLETED)
            held -= 1
            if eof.done():
                closed_by_gateway += 1
            for task in (eof, stopped):
                task.cancel()
            writer.close()

    holders = [asyncio.create_task(hold()) for _ in range(SLOW_CONNECTIONS)]
    deadline = time.perf_counter() + 30
    while held < SLOW_CONNECTIONS and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    opened = held
    # Measured for longer than the gateway's header deadline (10 s by default), so that its
    # closing the slow connections, and their coming back, happen meanwhile.
    loaded, samples, failures = await projects_p95(SLOW_SAMPLES, SLOW_SECONDS)
    stop.set()
    await asyncio.gather(*holders, return_exceptions=True)
    return [
        ("GET /projects p95, idle (sequential client, new connection each)", f"{idle:.1f} ms", ""),
        (f"same with {SLOW_CONNECTIONS:,} slow connections held open (half their headers; "
         f"{opened:,} open at start, {closed_by_gateway:,} closed by the gateway and opened "
         f"again; {samples:,} requests over {SLOW_SECONDS:.0f} s, {failures} failed)",
         f"{loaded:.1f} ms", f"<= {2 * idle:.1f} ms (2x idle)"),
    ]  # fmt: skip


async def robustness_rows(rate: float | None = None) -> list[Row]:
    return await poison_rows(rate) + await slow_connection_rows()

"""Benchmarks of the local stack, printed as one table (`make bench`).

Every load is bounded in time and sent only to loopback. HTTP load comes from wrk (a C load
generator, so the Python stack keeps the cores); gRPC latencies are measured by one sequential
caller, so they include the client's own overhead and are an upper bound.
`BENCH_ONLY=robustness,evals` runs only the named sections (see `sections()`).
"""

import asyncio
import base64
import gzip
import itertools
import os
import re
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from libs.common.gen.obs.prompts.v1 import prompts_pb2, prompts_pb2_grpc
from libs.common.rpc import make_channel
from libs.common.scope import ProjectScope
from tests.support.devenv import ROOT, dev_env
from tests.support.workload import Trace, Traffic, batch_events, otlp_export

ENV = dev_env()
GATEWAY = f"http://127.0.0.1:{ENV['GATEWAY_HTTP_PORT']}"
AUTH = (ENV["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"], ENV["LANGFUSE_INIT_PROJECT_SECRET_KEY"])
BASIC_AUTH = "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
WRK_SECONDS = 10
SAMPLES = 1000
INGEST_SECONDS = float(os.environ.get("BENCH_INGEST_SECONDS", "60"))
READ_OBSERVATIONS = int(os.environ.get("BENCH_READ_OBSERVATIONS", "1000000"))
SPANS_PER_EXPORT = 100
SENDERS = 8

Row = tuple[str, str, str]
# Figures one section measures and a later one builds on (the OTLP end-to-end ingest rate).
MEASURED: dict[str, float] = {}


def cold_start() -> list[Row]:
    subprocess.run(["scripts/stack.sh", "down"], cwd=ROOT, check=True, capture_output=True)
    started = time.perf_counter()
    subprocess.run(["scripts/stack.sh", "up"], cwd=ROOT, check=True, capture_output=True)
    return [
        (
            "stack start, warm machine -> 5 SERVING",
            f"{time.perf_counter() - started:.1f} s",
            "<= 60 s",
        )
    ]


def wrk(path: str, connections: int) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) of GET `path` under wrk."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{WRK_SECONDS}s", "--latency",
         "-H", f"Authorization: {BASIC_AUTH}", f"{GATEWAY}{path}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rate, float(p99) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def gateway_rows() -> list[Row]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{GATEWAY}/api/public/v2/prompts",
        json={"name": name, "prompt": "Hello {{who}}", "labels": ["production"]},
        auth=AUTH,
    ).raise_for_status()
    projects_rate, projects_p99 = wrk("/api/public/projects", 32)
    prompt_rate, prompt_p99 = wrk(f"/api/public/v2/prompts/{name}", 32)
    return [
        ("GET /projects via gateway (wrk, 32 conn)", f"{projects_rate:.0f} req/s", ""),
        ("GET /projects p99 (wrk, 32 conn)", f"{projects_p99:.1f} ms", ""),
        ("prompt fetch via gateway (wrk, 32 conn)", f"{prompt_rate:.0f} req/s", ">= 3000 req/s"),
        ("prompt fetch via gateway p99 (wrk, 32 conn)", f"{prompt_p99:.1f} ms", ""),
    ]


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1e3


async def prompts_service_rows() -> list[Row]:
    metadata = ProjectScope(ENV["LANGFUSE_INIT_PROJECT_ID"]).metadata()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    get = prompts_pb2.GetPromptRequest(name=name, resolve=True)
    async with make_channel(ENV["PROMPTS_ADDR"], token=ENV["INTERNAL_AUTH_TOKEN"]) as channel:
        stub = prompts_pb2_grpc.PromptsServiceStub(channel)
        for text in ("one", "two"):
            create = prompts_pb2.CreatePromptRequest(name=name, text=text, labels=["production"])
            await stub.CreatePrompt(create, metadata=metadata)
        hits: list[float] = []
        for _ in range(SAMPLES):
            started = time.perf_counter()
            await stub.GetPrompt(get, metadata=metadata)
            hits.append(time.perf_counter() - started)
        after_change: list[float] = []
        for i in range(SAMPLES // 5):
            labels = prompts_pb2.UpdatePromptLabelsRequest(
                name=name, version=1 + i % 2, new_labels=["production"]
            )
            await stub.UpdatePromptLabels(labels, metadata=metadata)
            started = time.perf_counter()
            await stub.GetPrompt(get, metadata=metadata)
            after_change.append(time.perf_counter() - started)
    return [
        ("prompt fetch at prompts service, cache hit p50", f"{p(hits, 50):.2f} ms", ""),
        ("prompt fetch at prompts service, cache hit p99", f"{p(hits, 99):.2f} ms", "<= 5 ms"),
        ("first fetch after a label change p99", f"{p(after_change, 99):.2f} ms", "<= 20 ms"),
    ]


_TRACE_MARK = b"\xfe\xed" * 8
_SPAN_MARK = b"\xab\xcd\xef\x01\x23\x45"  # the first 6 of 8 span-id bytes; 2 count the span


def otlp_template(spans: int = SPANS_PER_EXPORT) -> bytes:
    """The one-trace shape, serialized once: one trace of `spans` spans, a root and its children,
    ~1.5 KB of attributes per span. Ids are marker bytes that `fresh_export` replaces."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(
        key="telemetry.sdk.language", value=AnyValue(string_value="python")
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = "langfuse-sdk", "5.0.4"
    now = time.time_ns()
    for index in range(spans):
        span = scope_spans.spans.add(trace_id=_TRACE_MARK, name=f"step-{index}")
        span.span_id = _SPAN_MARK + index.to_bytes(2, "big")
        if index:
            span.parent_span_id = _SPAN_MARK + b"\x00\x00"
        span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1_000_000
        for key, value in (
            ("langfuse.observation.type", "generation" if index % 2 else "span"),
            ("langfuse.observation.input", '{"messages": "' + "x" * 700 + '"}'),
            ("langfuse.observation.output", "y" * 500),
            ("langfuse.observation.model.name", "gpt-4o"),
            ("langfuse.observation.usage_details", '{"input": 10, "output": 20}'),
        ):
            span.attributes.add(key=key, value=AnyValue(string_value=value))
    return request.SerializeToString()


def fresh_spans(template: bytes, trace_id: bytes | None = None) -> tuple[str, bytes]:
    """(trace id, serialized export) with new span ids and a new trace id unless one is given.
    Serialized exports concatenate into one export of all their traces (protobuf merges them)."""
    trace_id = trace_id or os.urandom(16)
    raw = template.replace(_TRACE_MARK, trace_id).replace(_SPAN_MARK, os.urandom(6))
    return trace_id.hex(), raw


def fresh_export(template: bytes, trace_id: bytes | None = None) -> tuple[str, bytes]:
    """(trace id, gzipped export): cheap enough for the load loop."""
    trace_hex, raw = fresh_spans(template, trace_id)
    return trace_hex, gzip.compress(raw, compresslevel=1)


async def observation_count(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/public/observations", params={"limit": 1})
    response.raise_for_status()
    return int(response.json()["meta"]["totalItems"])


_TRACE_HEX = b"feed" * 8
_OBSERVATION_HEX = b"abcdef012345"  # the first 12 of 16 observation-id characters


def batch_template(spans: int = SPANS_PER_EXPORT) -> bytes:
    """The one-trace shape as an SDK-3-like `POST /ingestion` body: a trace-create and `spans`
    span and generation creates of ~1.5 KB each, with marker ids that `fresh_batch` replaces."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    trace = {"id": _TRACE_HEX.decode(), "name": "bench", "timestamp": now}
    batch = [{"id": f"{_OBSERVATION_HEX.decode()}-trace", "type": "trace-create",
              "timestamp": now, "body": trace}]  # fmt: skip
    for index in range(spans):
        observation_id = f"{_OBSERVATION_HEX.decode()}{index:04d}"
        body = {
            "id": observation_id, "traceId": trace["id"], "name": f"step-{index}",
            "startTime": now, "endTime": now, "input": {"messages": "x" * 700},
            "output": "y" * 500,
        }  # fmt: skip
        if index:
            body["parentObservationId"] = f"{_OBSERVATION_HEX.decode()}0000"
        kind = "generation-create" if index % 2 else "span-create"
        if index % 2:
            body |= {"model": "gpt-4o", "usageDetails": {"input": 10, "output": 20}}
        batch.append({"id": f"{observation_id}-event", "type": kind, "timestamp": now,
                      "body": body})  # fmt: skip
    return orjson.dumps({"batch": batch, "metadata": {"sdk_name": "python"}})


def fresh_batch(template: bytes) -> tuple[str, bytes]:
    trace_id = os.urandom(16).hex().encode()
    body = template.replace(_TRACE_HEX, trace_id)
    return trace_id.decode(), body.replace(_OBSERVATION_HEX, os.urandom(6).hex().encode())


# The SDK-like workload (tests/support/workload.py): a few dozen exports rendered once with marker
# ids, made fresh per request by replacing the markers. Hex digits only, so that no word of the
# payloads' text can hold them; as bytes (OTLP) they are not ASCII, so no text can either.
_SDK_TRACE_MARK = "98" * 14  # the first 14 of 16 trace-id bytes; 2 count the trace
_SDK_SPAN_MARK = "918273645546"  # the first 6 of 8 span-id bytes; 2 count the span
SDK_TEMPLATES = 32
SDK_SHAPE = "SDK-like: 10-40 traces × 3-20 obs per request, 1-4 KiB I/O"
ONE_TRACE_SHAPE = f"one trace × {SPANS_PER_EXPORT} spans, ~1.5 KiB"


def sdk_exports(templates: int = SDK_TEMPLATES) -> list[list[Trace]]:
    """`templates` SDK-like exports whose ids are markers."""
    traffic = Traffic(
        seed=14,
        trace_id=lambda index: f"{_SDK_TRACE_MARK}{index:04x}",
        span_id=lambda index: f"{_SDK_SPAN_MARK}{index:04x}",
    )
    return [traffic.export() for _ in range(templates)]


@dataclass(frozen=True)
class Body:
    """One request's body, its first trace's id and the observations it carries."""

    trace_id: str
    data: bytes
    observations: int


@dataclass(frozen=True)
class Load:
    """SDK-like requests of one kind: where they go, and a source of fresh bodies."""

    name: str
    path: str
    headers: dict[str, str]
    fresh: Callable[[], Body]


_OTLP_HEADERS = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}
_OTLP_PATH = "/api/public/otel/v1/traces"


def _prepared(make: Callable[[], Body], count: int) -> Callable[[], Body]:
    """`make`, with `count` bodies made up front, so that gzip runs before the clock starts and
    the load generator leaves the cores to the stack."""
    pool = [make() for _ in range(count)]
    return lambda: pool.pop() if pool else make()


def otlp_load(spans: int = SPANS_PER_EXPORT, prepared: int = 0) -> Load:
    """The one-trace shape: OTLP exports of one trace of `spans` spans each."""
    template = otlp_template(spans)

    def make() -> Body:
        return Body(*fresh_export(template), spans)

    name = f"OTLP gzip [{ONE_TRACE_SHAPE}]"
    return Load(name, _OTLP_PATH, _OTLP_HEADERS, _prepared(make, prepared))


def batch_load(spans: int = SPANS_PER_EXPORT) -> Load:
    """The one-trace shape as batch JSON."""
    template = batch_template(spans)

    def make() -> Body:
        return Body(*fresh_batch(template), spans)

    headers = {"content-type": "application/json"}
    return Load(f"batch JSON [{ONE_TRACE_SHAPE}]", "/api/public/ingestion", headers, make)


def sdk_otlp_load(observations: float = 0) -> Load:
    """SDK-like OTLP exports, gzipped; enough for `observations` made up front."""
    templates = [
        (otlp_export(traces).SerializeToString(), sum(len(t.observations) for t in traces))
        for traces in sdk_exports()
    ]
    trace_mark, span_mark = bytes.fromhex(_SDK_TRACE_MARK), bytes.fromhex(_SDK_SPAN_MARK)
    turn = itertools.cycle(templates)

    def make() -> Body:
        raw, count = next(turn)
        trace_bytes = os.urandom(14)
        raw = raw.replace(trace_mark, trace_bytes).replace(span_mark, os.urandom(6))
        return Body(trace_bytes.hex() + "0000", gzip.compress(raw, compresslevel=1), count)

    mean = statistics.mean(count for _, count in templates)
    name = f"OTLP gzip [{SDK_SHAPE}]"
    return Load(name, _OTLP_PATH, _OTLP_HEADERS, _prepared(make, int(observations / mean)))


def sdk_batch_load() -> Load:
    """SDK-like `POST /ingestion` bodies (JSON, not compressed, as the Python SDK 2 sends them):
    creates, then updates with output, usage, cost and end time, of 10-40 traces."""
    templates = []
    for traces in sdk_exports():
        (events,) = batch_events(traces)
        body = orjson.dumps({"batch": events, "metadata": {"sdk_name": "python"}})
        templates.append((body, sum(len(t.observations) for t in traces)))
    trace_mark, span_mark = _SDK_TRACE_MARK.encode(), _SDK_SPAN_MARK.encode()
    turn = itertools.cycle(templates)

    def make() -> Body:
        body, count = next(turn)
        trace_hex = os.urandom(14).hex()
        body = body.replace(trace_mark, trace_hex.encode())
        return Body(
            trace_hex + "0000", body.replace(span_mark, os.urandom(6).hex().encode()), count
        )

    headers = {"content-type": "application/json"}
    return Load(f"batch JSON [{SDK_SHAPE}]", "/api/public/ingestion", headers, make)


async def send_for(
    load: Load,
    seconds: float,
    rate: float = 0,
    authorization: str = BASIC_AUTH,
    until: asyncio.Event | None = None,
) -> int:
    """Observations sent by SENDERS concurrent senders within `seconds` (or until `until` is
    set), as fast as the stack answers, or paced to `rate` observations/s, to the project of
    `authorization` (the default project's). aiohttp, not httpx: it costs the shared cores about
    half as much per request, which is the stack's to use."""
    sent = 0
    deadline = time.perf_counter() + seconds
    until = until or asyncio.Event()
    headers = {"Authorization": authorization}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(GATEWAY, headers=headers, timeout=timeout) as session:

        async def sender() -> None:
            nonlocal sent
            next_at = time.perf_counter()
            while time.perf_counter() < deadline and not until.is_set():
                body = load.fresh()
                async with session.post(load.path, data=body.data,
                                        headers=load.headers) as response:  # fmt: skip
                    response.raise_for_status()
                    if response.status == 207 and (errors := (await response.json())["errors"]):
                        raise RuntimeError(f"{load.name}: events refused: {errors[:3]}")
                sent += body.observations
                next_at += SENDERS * body.observations / rate if rate else 0.0
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

        await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return sent


# The processes of the stack's stages, by pid file: the services' (scripts/stack.sh) and the
# engines' (scripts/engines.sh). The query service is the writer; the bench's own polling reads
# are a few per second, noise beside it.
STAGES = {
    "gateway": "gateway.pid",
    "ingestion": "ingestion.pid",
    "S3 (MinIO)": "s3.pid",
    "Kafka (broker JVM)": "kafka.pid",
    "query writer": "query.pid",
}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of `pid` and its descendants so far, including
    the children they have waited for."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        process = int(stat.parent.name)
        parents[process] = int(fields[1])
        ticks[process] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    family, total = {pid}, 0
    for process in sorted(ticks):  # a child's pid may be lower than its parent's: walk up
        ancestor = process
        while ancestor not in family and ancestor in parents and ancestor > 1:
            ancestor = parents[ancestor]
        if ancestor in family:
            family.add(process)
            total += ticks[process]
    return total / _CLOCK_TICKS


GENERATOR = "load generator (this bench)"


def stage_cpu() -> dict[str, float]:
    """CPU seconds so far of each stage, and of the load generator (what it takes from them)."""
    run = ROOT / ENV["OBS_DEV_DIR"] / "run"
    used = {name: cpu_seconds(int((run / file).read_text())) for name, file in STAGES.items()}
    return used | {GENERATOR: cpu_seconds(os.getpid())}


async def quiet(cores: float = 0.2, window: float = 2.0, longest: float = 180.0) -> None:
    """Until the stack's stages together use under `cores` of CPU over `window` seconds, at most
    `longest` seconds: the background merges of what ran before are over, so that of two runs
    compared neither pays for the other's tail."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        before = stage_cpu()
        await asyncio.sleep(window)
        after = stage_cpu()
        if sum(after[name] - before[name] for name in STAGES) < cores * window:
            return
    print(f"bench: the stack was still busy after {longest:g} s")


async def caught_up(client: httpx.AsyncClient, observations: int, stall: float = 60) -> None:
    """Until the project holds `observations`; fails if none is added for `stall` seconds. Asked
    once a second: the total is a count over FINAL of every row of the project, and asked every
    0.2 s of a project of ~1 M rows (1.7 s each under load) it took most of a core from the
    writer it measured."""
    last, last_at = -1, time.perf_counter()
    while (count := await observation_count(client)) < observations:
        if count != last:
            last, last_at = count, time.perf_counter()
        elif time.perf_counter() - last_at > stall:
            raise RuntimeError(f"the writer stalled at {count} of {observations} observations")
        await asyncio.sleep(1.0)


@dataclass(frozen=True)
class Sustained:
    """A sustained run: accepted and end-to-end observations/s, CPU µs per observation by stage
    (and of the load generator)."""

    accepted: float
    end_to_end: float
    stage_us: dict[str, float]


async def sustained(load: Load, seconds: float = INGEST_SECONDS) -> Sustained:
    """`seconds` of load as fast as the stack answers, then until every observation sent is
    readable; each stage's CPU over that whole time, per observation sent. Into a new project
    each run, so that the total polled to see every observation readable counts this run's rows
    only (a count over FINAL: ~1.7 s at a million rows under load)."""
    from scripts.bench_support import tenant  # it imports this module

    project = await tenant(f"bench-ingest-{uuid.uuid4().hex[:8]}")
    headers = {"Authorization": project.authorization}
    async with httpx.AsyncClient(base_url=GATEWAY, headers=headers, timeout=60) as client:
        before = await observation_count(client)
        cpu_before = stage_cpu()
        started = time.perf_counter()
        sent = await send_for(load, seconds, authorization=project.authorization)
        accepted_seconds = time.perf_counter() - started
        await caught_up(client, before + sent)
        end_to_end = sent / (time.perf_counter() - started)
        cpu_after = stage_cpu()
    stage_us = {name: (cpu_after[name] - cpu_before[name]) / sent * 1e6 for name in cpu_after}
    return Sustained(sent / accepted_seconds, end_to_end, stage_us)


async def throughput(load: Load) -> tuple[float, float]:
    """(accepted, end-to-end) observations/s over INGEST_SECONDS of load."""
    run = await sustained(load)
    return run.accepted, run.end_to_end


# Visibility under load: probes one after another (a p95 of 40 rather than of 20, which was
# their maximum and moved by ±1.5 s between runs), the load begun LOAD_WARMUP seconds before
# the first and lasting until the last (LOADED_SECONDS at most).
LOADED_PROBES = 40
LOAD_WARMUP = 5.0
LOADED_SECONDS = 300.0


async def visibility_p95(client: httpx.AsyncClient, probes: int = 40, poll: float = 0.01) -> float:
    """From the 2xx of a 5-span export to its trace readable through GET /traces/{id} and its
    observations through GET /v2/observations, p95 in ms, polling every `poll` seconds."""
    delays: list[float] = []
    probe = otlp_load(spans=5)
    for _ in range(probes):
        body = probe.fresh()
        response = await client.post(probe.path, content=body.data, headers=probe.headers)
        response.raise_for_status()
        answered = time.perf_counter()
        while (await client.get(f"/api/public/traces/{body.trace_id}")).status_code != 200:
            await asyncio.sleep(poll)
        while True:
            params = {"traceId": body.trace_id}
            page = await client.get("/api/public/v2/observations", params=params)
            if len(page.json()["data"]) == 5:
                break
            await asyncio.sleep(poll)
        delays.append(time.perf_counter() - answered)
    return p(delays, 95)


async def loaded_visibility_p95(client: httpx.AsyncClient, rate: float) -> float:
    """`visibility_p95` of LOADED_PROBES probes under SDK-like OTLP load at `rate` obs/s. The
    load runs from LOAD_WARMUP before the first probe until the last one is done: probes on a
    stack quieting after its load would flatter the figure."""
    probes_done = asyncio.Event()
    background = asyncio.create_task(
        send_for(sdk_otlp_load(rate * INGEST_SECONDS * 2), LOADED_SECONDS, rate=rate,
                 until=probes_done)
    )  # fmt: skip
    await asyncio.sleep(LOAD_WARMUP)
    # Polled every 50 ms: tight polling would itself load the stack it measures.
    loaded = await visibility_p95(client, probes=LOADED_PROBES, poll=0.05)
    if background.done():
        await background  # its error, if it failed
        raise RuntimeError(f"the load ended before the last of {LOADED_PROBES} probes")
    probes_done.set()
    await background
    return loaded


def throughput_rows(load: Load, run: Sustained) -> list[Row]:
    return [
        (f"{load.name} accepted ({INGEST_SECONDS:.0f} s, {SENDERS} senders)",
         f"{run.accepted:.0f} obs/s", ">= 10000 obs/s"),
        (f"{load.name} end to end (all readable)", f"{run.end_to_end:.0f} obs/s",
         ">= 10000 obs/s"),
    ]  # fmt: skip


def stage_rows(load: Load, run: Sustained) -> list[Row]:
    """The stage table: CPU µs per observation of each process over the sustained run. The
    budget: 10,000 observations/s on two cores leave 200 µs per observation to all of them."""
    workload = f"SDK-like {load.name.split(' [')[0]}"
    used = run.stage_us
    return [
        *((f"  CPU per obs, {name} [{workload}]", f"{used[name]:.0f} µs", "") for name in STAGES),
        (f"  CPU per obs, these five together [{workload}]",
         f"{sum(used[stage] for stage in STAGES):.0f} µs", "<= 200 µs (2 cores / 10,000 obs/s)"),
        (f"  CPU per obs, {GENERATOR} [{workload}]", f"{used[GENERATOR]:.0f} µs", ""),
    ]  # fmt: skip


async def sdk_rows(load: Load) -> tuple[Sustained, list[Row]]:
    """A sustained run of SDK-like `load`: its throughput and stage rows. The load's bodies made
    up front (a GiB for OTLP) are freed when it returns."""
    run = await sustained(load)
    return run, throughput_rows(load, run) + stage_rows(load, run)


async def ingest_rows() -> list[Row]:
    """The SDK-like workload (the headline figures, with the stage table), then the one-trace
    shape; visibility idle and under SDK-like OTLP load at 80 % of its measured rate. Each run
    and the idle visibility begin on a stack at rest (the merges of the run before are over)."""
    await quiet()
    otlp_run, rows = await sdk_rows(sdk_otlp_load(INGEST_SECONDS * 12_000))
    MEASURED["ingest_rate"] = otlp_run.end_to_end
    await quiet()
    rows += (await sdk_rows(sdk_batch_load()))[1]
    rows.append(("query service (writer) RSS after the SDK-like sustained runs",
                 f"{query_rss_mib():.0f} MiB", ""))  # fmt: skip
    for load in (otlp_load(prepared=int(INGEST_SECONDS * 150)), batch_load()):
        await quiet()
        rows += throughput_rows(load, await sustained(load))
    rate = 0.8 * otlp_run.end_to_end
    await quiet()
    async with httpx.AsyncClient(base_url=GATEWAY, auth=AUTH, timeout=60) as client:
        idle = await visibility_p95(client)
        loaded = await loaded_visibility_p95(client, rate)
    return [
        ("visibility, 2xx -> trace and v2 observations readable, idle, p95", f"{idle:.0f} ms",
         "<= 1000 ms"),
        *rows,
        (f"visibility p95 under SDK-like OTLP load at 80 % of {otlp_run.end_to_end:.0f} obs/s",
         f"{loaded:.0f} ms", "<= 3000 ms"),
    ]  # fmt: skip


async def read_rows() -> list[Row]:
    """Read latencies once the project holds READ_OBSERVATIONS observations (loaded first)."""
    load, small = otlp_load(), otlp_load(spans=10)
    async with httpx.AsyncClient(base_url=GATEWAY, auth=AUTH, timeout=60) as client:
        missing = READ_OBSERVATIONS - await observation_count(client)

        async def loader() -> None:
            nonlocal missing
            while missing > 0:
                body = load.fresh()
                missing -= body.observations
                (await client.post(load.path, content=body.data,
                                   headers=load.headers)).raise_for_status()  # fmt: skip

        await asyncio.gather(*(loader() for _ in range(SENDERS)))
        trace_ids = []
        for _ in range(20):
            body = small.fresh()
            (await client.post(small.path, content=body.data,
                               headers=small.headers)).raise_for_status()  # fmt: skip
            trace_ids.append(body.trace_id)
        while await observation_count(client) < READ_OBSERVATIONS:
            await asyncio.sleep(1)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))

        async def timed(path: str, params: dict[str, object]) -> float:
            started = time.perf_counter()
            (await client.get(path, params=params)).raise_for_status()
            return time.perf_counter() - started

        lists = [await timed("/api/public/traces", {"limit": 50, "fromTimestamp": since})
                 for _ in range(100)]  # fmt: skip
        singles = [await timed(f"/api/public/traces/{trace_ids[i % 20]}", {}) for i in range(100)]
        v2 = [await timed("/api/public/v2/observations", {"traceId": trace_ids[i % 20]})
              for i in range(100)]  # fmt: skip
        stored = f"{await observation_count(client):,} obs stored"  # at least READ_OBSERVATIONS
    return [
        (
            f"trace list, one page, time filter, p95 ({stored})",
            f"{p(lists, 95):.0f} ms",
            "<= 100 ms",
        ),
        (f"one trace with 10 observations, p95 ({stored})", f"{p(singles, 95):.0f} ms", "<= 50 ms"),
        (f"v2 observations by trace id, p95 ({stored})", f"{p(v2, 95):.0f} ms", "<= 50 ms"),
    ]


def query_pid() -> int:
    return int((ROOT / ENV["OBS_DEV_DIR"] / "run" / "query.pid").read_text().strip())


async def halves_rows() -> list[Row]:
    """Each half of the pipeline alone: ingestion with the query service stopped (the events
    wait in Kafka), then the query writer draining that backlog with nothing else to do."""
    load = sdk_otlp_load(INGEST_SECONDS / 2 * 12_000)
    pid = query_pid()
    os.kill(pid, signal.SIGTERM)
    while Path(f"/proc/{pid}").exists():
        await asyncio.sleep(0.1)
    started = time.perf_counter()
    sent = await send_for(load, INGEST_SECONDS / 2)
    accepted = sent / (time.perf_counter() - started)
    subprocess.run(["scripts/stack.sh", "up"], cwd=ROOT, check=True, capture_output=True)
    async with httpx.AsyncClient(base_url=GATEWAY, auth=AUTH, timeout=60) as client:
        first, started = await observation_count(client), time.perf_counter()
        last, last_at, unchanged = first, started, 0
        while unchanged < 10:  # 5 s without growth: drained
            await asyncio.sleep(0.5)
            count = await observation_count(client)
            if count == last:
                unchanged += 1
            else:
                last, last_at, unchanged = count, time.perf_counter(), 0
    drained = (last - first) / (last_at - started)
    return [
        (f"{load.name} accepted, query service stopped (ingestion alone)",
         f"{accepted:.0f} obs/s", ">= 10000 obs/s"),
        ("query writer draining that backlog alone [SDK-like]", f"{drained:.0f} obs/s",
         ">= 10000 obs/s"),
    ]  # fmt: skip


def query_rss_mib() -> float:
    pid = query_pid()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS for the query service")


async def big_trace_rows(spans: int = 50_000) -> list[Row]:
    """One trace of 50,000 observations: the writer's memory stays bounded by its batch size
    (ConsumerSettings.max_records), not by the trace, and the trace reads back whole."""
    load, template = otlp_load(), otlp_template()
    trace_id = os.urandom(16)
    before = query_rss_mib()
    peak = before
    async with httpx.AsyncClient(base_url=GATEWAY, auth=AUTH, timeout=60) as client:
        for _ in range(spans // SPANS_PER_EXPORT):
            _, body = fresh_export(template, trace_id)
            (await client.post(load.path, content=body, headers=load.headers)).raise_for_status()
            peak = max(peak, query_rss_mib())
        read, cursor = 0, ""
        while read < spans:
            params = {
                "traceId": trace_id.hex(),
                "limit": 1000,
                **({"cursor": cursor} if cursor else {}),
            }
            page = (await client.get("/api/public/v2/observations", params=params)).json()
            read, cursor = (read + len(page["data"]), page["meta"].get("cursor", ""))
            peak = max(peak, query_rss_mib())
            if not cursor and read < spans:
                read, cursor = 0, ""  # not all written yet: read the trace again from the start
                await asyncio.sleep(0.5)
    return [
        ("one trace of 50,000 observations: query service RSS before -> peak",
         f"{before:.0f} -> {peak:.0f} MiB", "bounded"),
        ("one trace of 50,000 observations read back (v2, cursor)", f"{read:,} obs", "50,000"),
    ]  # fmt: skip


def sections() -> dict[str, Callable[[], list[Row]]]:
    """The bench's sections in the order they run; BENCH_ONLY=name,name runs a subset."""
    # Imported here: they import this module's helpers.
    from scripts.bench_evals import evals_rows
    from scripts.bench_export import export_rows
    from scripts.bench_judge import judge_rows
    from scripts.bench_lifecycle import project_deletion_rows
    from scripts.bench_media import media_rows
    from scripts.bench_metrics import metrics_10m_rows
    from scripts.bench_reads import reads_10m_rows
    from scripts.bench_retention import retention_rows
    from scripts.bench_robustness import robustness_rows

    return {
        "start": cold_start,
        "gateway": gateway_rows,
        "prompts": lambda: asyncio.run(prompts_service_rows()),
        "ingest": lambda: asyncio.run(ingest_rows()),
        "halves": lambda: asyncio.run(halves_rows()),
        "reads": lambda: asyncio.run(read_rows()),
        "reads10m": lambda: asyncio.run(reads_10m_rows()),
        "metrics": lambda: asyncio.run(metrics_10m_rows()),
        "media": lambda: media_rows(GATEWAY, AUTH),
        "bigtrace": lambda: asyncio.run(big_trace_rows()),
        "robustness": lambda: asyncio.run(robustness_rows(MEASURED.get("ingest_rate"))),
        "evals": lambda: asyncio.run(evals_rows()),
        "judge": lambda: asyncio.run(judge_rows()),
        "retention": lambda: asyncio.run(retention_rows()),
        "export": export_rows,
        "projectdelete": project_deletion_rows,
    }


def main() -> None:
    available = sections()
    only = [name for name in os.environ.get("BENCH_ONLY", "").split(",") if name]
    if unknown := set(only) - set(available):
        raise SystemExit(f"BENCH_ONLY: unknown {sorted(unknown)}; sections: {list(available)}")
    rows = [row for name, run in available.items() if not only or name in only for row in run()]
    header = ("figure", "measured", "target")
    width, measured, target = (max(len(row[i]) for row in [header, *rows]) for i in range(3))
    print(f"| {'figure':<{width}} | {'measured':>{measured}} | {'target':<{target}} |")
    print(f"|{'-' * (width + 2)}|{'-' * (measured + 2)}|{'-' * (target + 2)}|")
    for name, value, goal in rows:
        print(f"| {name:<{width}} | {value:>{measured}} | {goal:<{target}} |")


if __name__ == "__main__":
    main()

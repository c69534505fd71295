"""Bench rows of issue 9: datasets, experiments and score configs.

The datasets are made once through the public API (POST /dataset-items, FILLERS at a time) and
reused by later runs: their names carry their size, and a partly filled one is filled up.
"""

import asyncio
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import orjson
from langfuse import Evaluation, Langfuse

from libs.common.gen.obs.evals.v1 import evals_pb2, evals_pb2_grpc
from libs.common.rpc import make_channel
from libs.common.scope import ProjectScope
from scripts.bench import AUTH, ENV, GATEWAY, Row
from scripts.bench_support import NotAvailable, check, p95_ms, rows_or_missing, timed

DATASET_ITEMS = int(os.environ.get("BENCH_DATASET_ITEMS", "10000"))
PROJECT_ITEMS = int(os.environ.get("BENCH_PROJECT_ITEMS", "100000"))
EXPERIMENT_ITEMS = int(os.environ.get("BENCH_EXPERIMENT_ITEMS", "1000"))
SCORE_SAMPLES = int(os.environ.get("BENCH_SCORE_SAMPLES", "1000"))
PAGE_SAMPLES = 200
FILLERS = 16
READABLE_WITHIN = 60.0  # seconds an experiment's results may take before the row gives up
SDK_VERSION = package_version("langfuse")


def _item(dataset: str, index: int) -> dict[str, Any]:
    """A dataset item of about 1 KB, with an id derived from its place (upserts are no-ops)."""
    return {
        "id": f"{dataset}-{index:07d}",
        "datasetName": dataset,
        "input": {"question": f"What is item {index}?", "context": "lorem ipsum " * 70},
        "expectedOutput": {"answer": f"item {index}"},
        "metadata": {"source": "bench", "index": index},
    }


async def item_count(client: httpx.AsyncClient, dataset: str) -> int:
    page = check(await client.get("/api/public/dataset-items",
                                  params={"datasetName": dataset, "limit": 1}))  # fmt: skip
    return int(page.json()["meta"]["totalItems"])


async def dataset_of(client: httpx.AsyncClient, size: int, purpose: str) -> str:
    """The name of a dataset of `size` items, made (or filled up) now if needed."""
    name = f"bench/{purpose}-{size}"
    response = await client.get(f"/api/public/v2/datasets/{quote(name, safe='')}")
    if response.status_code == 404:
        check(await client.post("/api/public/v2/datasets", json={"name": name}))
    else:
        check(response)
    have = await item_count(client, name)
    if have >= size:
        return name
    print(f"bench: filling dataset {name} from {have:,} to {size:,} items")
    # Fillers take indexes in order: an interrupted fill leaves gaps only near its end.
    indexes = iter(range(max(0, have - 4 * FILLERS), size))

    async def filler() -> None:
        for index in indexes:
            body = _item(name, index)
            check(await client.post("/api/public/dataset-items", json=body))

    await asyncio.gather(*(filler() for _ in range(FILLERS)))
    if (have := await item_count(client, name)) < size:
        raise RuntimeError(f"dataset {name} holds {have} items after filling to {size}")
    return name


def sdk_client() -> Langfuse:
    # OTel's span queue holds 2,048 spans by default: a 1,000-item run of a trivial task makes
    # 2,000 at once and the SDK drops the rest ("Queue full, dropping Span"). A client running
    # experiments of that size raises it the same way.
    os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", "16384")
    return Langfuse(public_key=AUTH[0], secret_key=AUTH[1], base_url=GATEWAY)


async def get_dataset_rows(client: httpx.AsyncClient) -> list[Row]:
    name = await dataset_of(client, DATASET_ITEMS, "sdk-get")
    langfuse = sdk_client()
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        dataset = await asyncio.to_thread(langfuse.get_dataset, name)
        seconds.append(time.perf_counter() - started)
        if len(dataset.items) != DATASET_ITEMS:
            raise RuntimeError(f"get_dataset returned {len(dataset.items)} items")
    return [
        (f"get_dataset of a {DATASET_ITEMS:,}-item dataset, Python SDK {SDK_VERSION} "
         "(50 per page), median of 3", f"{statistics.median(seconds):.2f} s", "<= 3 s"),
    ]  # fmt: skip


async def item_page_rows(client: httpx.AsyncClient) -> list[Row]:
    name = await dataset_of(client, PROJECT_ITEMS, "pages")
    pages = -(-PROJECT_ITEMS // 50)
    version = (datetime.now(UTC) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")

    def read(extra: dict[str, str]) -> Any:
        params = {"datasetName": name, "page": random.randint(1, pages), "limit": 50, **extra}
        return lambda: client.get("/api/public/dataset-items", params=params)

    for _ in range(10):  # warm-up
        check(await read({})())
    latest = [await timed(read({})) for _ in range(PAGE_SAMPLES)]
    versioned = [await timed(read({"version": version})) for _ in range(PAGE_SAMPLES)]
    for extra in ({}, {"version": version}):  # the pages timed were full ones
        params = {"datasetName": name, "page": pages // 2, "limit": 50, **extra}
        page = check(await client.get("/api/public/dataset-items", params=params)).json()
        if len(page["data"]) != 50:
            raise RuntimeError(f"page {pages // 2} of {name} holds {len(page['data'])} items")
    label = f"random pages of a {PROJECT_ITEMS:,}-item dataset"
    return [
        (f"dataset item list page (limit 50) p95, {label}", f"{p95_ms(latest):.1f} ms",
         "<= 30 ms"),
        (f"same with version=<timestamp> p95, {label}", f"{p95_ms(versioned):.1f} ms",
         "<= 50 ms"),
    ]  # fmt: skip


async def run_results(run_id: str) -> dict[str, Any]:
    """The run's aggregates from the evals service (no public route serves them)."""
    metadata = ProjectScope(ENV["LANGFUSE_INIT_PROJECT_ID"]).metadata()
    async with make_channel(ENV["EVALS_ADDR"], token=ENV["INTERNAL_AUTH_TOKEN"]) as channel:
        stub = evals_pb2_grpc.EvalsServiceStub(channel)
        request = evals_pb2.GetRunResultsRequest(run_id=run_id)
        try:
            reply = await stub.GetRunResults(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise NotAvailable("GetRunResults: UNIMPLEMENTED") from error
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise
    return dict(orjson.loads(reply.results_json))


async def experiment_rows(client: httpx.AsyncClient) -> list[Row]:
    name = await dataset_of(client, EXPERIMENT_ITEMS, "experiment")
    await run_results("0" * 16)  # NotAvailable before the experiment if the RPC is missing
    langfuse = sdk_client()
    dataset = await asyncio.to_thread(langfuse.get_dataset, name)
    score = f"bench-exact-{uuid.uuid4().hex[:8]}"
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")

    def task(*, item: Any, **_: Any) -> Any:
        return item.expected_output

    def exact(*, output: Any, expected_output: Any, **_: Any) -> Evaluation:
        return Evaluation(name=score, value=1.0 if output == expected_output else 0.0)

    result = await asyncio.to_thread(
        dataset.run_experiment, name="bench", run_name=score, task=task, evaluators=[exact]
    )
    await asyncio.to_thread(langfuse.flush)
    flushed = time.perf_counter()
    count = len(result.item_results)
    traces = {"name": "experiment-item-run", "fromTimestamp": since, "limit": 1}
    scores = {"name": score, "limit": 1}
    waiting = {"traces", "scores", "aggregate"}
    while waiting and time.perf_counter() - flushed < READABLE_WITHIN:
        if "traces" in waiting:
            page = check(await client.get("/api/public/traces", params=traces)).json()
            if page["meta"]["totalItems"] >= count:
                waiting.discard("traces")
        if "scores" in waiting:
            page = check(await client.get("/api/public/v2/scores", params=scores)).json()
            if page["meta"]["totalItems"] >= count:
                waiting.discard("scores")
        if "aggregate" in waiting:
            results = await run_results(result.experiment_id)
            # The service names them countRunItems and avgScores (the proto's comment says
            # itemCount and scores): either will do.
            items = results.get("countRunItems", results.get("itemCount"))
            if items == count and score in (
                results.get("avgScores") or results.get("scores") or {}
            ):
                waiting.discard("aggregate")
        if waiting:
            await asyncio.sleep(0.05)
    readable = time.perf_counter() - flushed
    measured = f"{readable:.2f} s" if not waiting else f"> {READABLE_WITHIN:.0f} s"
    if waiting:
        print(f"bench: experiment results not readable within {READABLE_WITHIN} s: {waiting}")
    return [
        (f"run_experiment over {count:,} items (Python SDK {SDK_VERSION}, 1 evaluator): flush "
         "-> every trace, item score and the run's aggregate readable", measured, "<= 2 s"),
    ]  # fmt: skip


async def score_validation_rows(client: httpx.AsyncClient) -> list[Row]:
    name = f"bench-config-{uuid.uuid4().hex[:8]}"
    config = {"name": name, "dataType": "NUMERIC", "minValue": 0, "maxValue": 1}
    config_id = check(await client.post("/api/public/score-configs", json=config)).json()["id"]

    def post(with_config: bool) -> Any:
        body: dict[str, Any] = {"traceId": uuid.uuid4().hex, "name": name, "value": 0.5}
        if with_config:
            body["configId"] = config_id
        return lambda: client.post("/api/public/scores", json=body)

    for _ in range(20):  # warm-up: the config is in ingestion's cache after the first
        check(await post(True)())
        check(await post(False)())
    checked, plain = [], []
    for _ in range(SCORE_SAMPLES):  # interleaved, so drift of the shared machine hits both
        checked.append(await timed(post(True)))
        plain.append(await timed(post(False)))
    check(await post(True)())
    added = p95_ms(checked) - p95_ms(plain)
    return [
        (f"POST /scores p95 with a configId (cache hit) minus without "
         f"({p95_ms(checked):.2f} - {p95_ms(plain):.2f} ms, {SCORE_SAMPLES} each)",
         f"{added:.2f} ms", "<= 1 ms"),
    ]  # fmt: skip


async def evals_rows() -> list[Row]:
    limits = httpx.Limits(max_connections=FILLERS)
    async with httpx.AsyncClient(base_url=GATEWAY, auth=AUTH, timeout=60, limits=limits) as client:
        rows = await rows_or_missing(
            [("get_dataset of a dataset through the Python SDK", "", "<= 3 s")],
            get_dataset_rows(client),
        )
        rows += await rows_or_missing(
            [("dataset item list page p95", "", "<= 30 ms"),
             ("same with version=<timestamp> p95", "", "<= 50 ms")],
            item_page_rows(client),
        )  # fmt: skip
        rows += await rows_or_missing(
            [("run_experiment: flush -> results readable", "", "<= 2 s")],
            experiment_rows(client),
        )
        rows += await rows_or_missing(
            [("POST /scores p95 with a configId minus without", "", "<= 1 ms")],
            score_validation_rows(client),
        )
    return rows

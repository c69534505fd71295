"""Benchmarks of the local stack, printed as one table (`make bench`).

Every load is bounded in time and sent only to loopback. HTTP load comes from wrk (a C load
generator, so the Python stack keeps the cores); gRPC latencies are measured by one sequential
caller, so they include the client's own overhead and are an upper bound.
"""

import asyncio
import base64
import re
import statistics
import subprocess
import time
import uuid

import httpx

from libs.common.gen.obs.prompts.v1 import prompts_pb2, prompts_pb2_grpc
from libs.common.rpc import make_channel
from libs.common.scope import ProjectScope
from tests.support.devenv import ROOT, dev_env

ENV = dev_env()
GATEWAY = f"http://127.0.0.1:{ENV['GATEWAY_HTTP_PORT']}"
AUTH = (ENV["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"], ENV["LANGFUSE_INIT_PROJECT_SECRET_KEY"])
WRK_SECONDS = 10
SAMPLES = 1000

Row = tuple[str, str, str]


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
    token = base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{WRK_SECONDS}s", "--latency",
         "-H", f"Authorization: Basic {token}", f"{GATEWAY}{path}"],
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
    async with make_channel(ENV["PROMPTS_ADDR"]) as channel:
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


def main() -> None:
    rows = cold_start() + gateway_rows() + asyncio.run(prompts_service_rows())
    width = max(len(r[0]) for r in rows)
    print(f"| {'figure':<{width}} | {'measured':>12} | {'target':<13} |")
    print(f"|{'-' * (width + 2)}|{'-' * 14}|{'-' * 15}|")
    for name, value, target in rows:
        print(f"| {name:<{width}} | {value:>12} | {target:<13} |")


if __name__ == "__main__":
    main()

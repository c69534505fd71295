"""Benchmarks of the local stack, printed as a table (`make bench`).

Figures: time from a stopped stack on a warm machine to five SERVING services, and latency and
throughput of an authenticated gateway route (`GET /api/public/projects`, the SDKs' auth_check).
Bounded in time and sent only to loopback.
"""

import asyncio
import statistics
import subprocess
import time

import httpx

from tests.support.devenv import ROOT, dev_env

CONCURRENCY = 16
DURATION_SECONDS = 10.0


def cold_start_seconds() -> float:
    subprocess.run(["scripts/stack.sh", "down"], cwd=ROOT, check=True, capture_output=True)
    started = time.perf_counter()
    subprocess.run(["scripts/stack.sh", "up"], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


async def authenticated_requests(url: str, auth: tuple[str, str]) -> tuple[list[float], float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, auth=auth, limits=limits) as client:
        deadline = time.perf_counter() + DURATION_SECONDS

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get("/api/public/projects")
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    env = dev_env()
    start = cold_start_seconds()
    url = f"http://127.0.0.1:{env['GATEWAY_HTTP_PORT']}"
    auth = (env["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"], env["LANGFUSE_INIT_PROJECT_SECRET_KEY"])
    latencies, elapsed = asyncio.run(authenticated_requests(url, auth))
    rows = [
        ("stack start, warm machine -> 5 SERVING", f"{start:.1f} s", "<= 60 s"),
        (
            f"GET /projects, {CONCURRENCY} concurrent, p50",
            f"{percentile(latencies, 50) * 1e3:.1f} ms",
            "",
        ),
        (
            f"GET /projects, {CONCURRENCY} concurrent, p99",
            f"{percentile(latencies, 99) * 1e3:.1f} ms",
            "",
        ),
        ("GET /projects throughput", f"{len(latencies) / elapsed:.0f} req/s", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'figure':<{width}} | {'measured':>12} | {'target':<8} |")
    print(f"|{'-' * (width + 2)}|{'-' * 14}|{'-' * 10}|")
    for name, value, target in rows:
        print(f"| {name:<{width}} | {value:>12} | {target:<8} |")


if __name__ == "__main__":
    main()

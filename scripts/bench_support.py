"""What the robustness and evals bench sections share: rows for features that are not there yet,
sequential latency samples, and the bench tenants (projects with keys of their own)."""

import asyncio
import base64
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import orjson

from scripts.bench import ENV, GATEWAY, Row
from tests.support.devenv import ROOT


class NotAvailable(Exception):
    """A route the figure needs answered 404: its feature has not landed."""


def check(response: httpx.Response) -> httpx.Response:
    """The response if 2xx; NotAvailable on 404 (an unknown route: callers that expect an
    entity's 404 look at the status first) or 501; else the HTTP error."""
    if response.status_code in (404, 501):
        request = response.request
        raise NotAvailable(f"{request.method} {request.url.path}: {response.status_code}")
    response.raise_for_status()
    return response


async def rows_or_missing(targets: list[Row], measure: Awaitable[list[Row]]) -> list[Row]:
    """The measured rows, or `targets` marked "not available" when a feature is missing."""
    try:
        return await measure
    except NotAvailable as missing:
        print(f"bench: {missing}; rows marked not available")
        return [(name, "not available", target) for name, _, target in targets]


def p95_ms(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.95) - 1)] * 1e3


async def timed(request: Callable[[], Awaitable[httpx.Response]]) -> float:
    """Seconds one request took; raises unless it succeeded."""
    started = time.perf_counter()
    response = await request()
    seconds = time.perf_counter() - started
    check(response)
    return seconds


@dataclass(frozen=True)
class Tenant:
    project_id: str
    public_key: str
    secret_key: str

    @property
    def authorization(self) -> str:
        pair = f"{self.public_key}:{self.secret_key}".encode()
        return "Basic " + base64.b64encode(pair).decode()


_TENANTS_FILE = ROOT / ENV["OBS_DEV_DIR"] / "bench" / "tenants.json"
_ADMIN_ENV = {**os.environ, **ENV}


async def _admin(*args: str) -> dict[str, str]:
    process = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv" / "bin" / "python"), "-m", "services.gateway.admin", *args,
        cwd=ROOT, env=_ADMIN_ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"admin {args[0]} failed: {err.decode()[-500:]}")
    return orjson.loads(out)


async def _create_tenant(project_id: str) -> Tenant:
    org = "bench-org"
    await _admin(
        "create-project", "--org-id", org, "--project-id", project_id, "--name", project_id
    )
    key = await _admin("create-key", "--org-id", org, "--project-id", project_id, "--note", "bench")
    return Tenant(project_id, key["publicKey"], key["secretKey"])


async def tenant(project_id: str) -> Tenant:
    """Project `project_id` of organization bench-org (made, or kept), with a new key."""
    return await _create_tenant(project_id)


async def tenants(count: int) -> list[Tenant]:
    """`count` projects of organization bench-org with a key each, made once through the gateway's
    admin command and kept in .dev/bench/tenants.json for the next runs."""
    known: list[Tenant] = []
    if _TENANTS_FILE.exists():
        known = [Tenant(**t) for t in orjson.loads(_TENANTS_FILE.read_bytes())]
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=30) as client:
        for tenant in known[:1]:  # keys of a wiped database are stale: make them again
            headers = {"Authorization": tenant.authorization}
            if (await client.get("/api/public/projects", headers=headers)).status_code == 401:
                known = []
    made = asyncio.Semaphore(4)

    async def create(index: int) -> Tenant:
        async with made:
            return await _create_tenant(f"bench-tenant-{index:02d}")

    known += await asyncio.gather(*(create(i) for i in range(len(known) + 1, count + 1)))
    _TENANTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    _TENANTS_FILE.write_bytes(orjson.dumps([t.__dict__ for t in known], option=orjson.OPT_INDENT_2))
    return known[:count]

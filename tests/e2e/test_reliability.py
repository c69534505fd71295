"""No acknowledged event is lost: a `kill -9` of the query service, or of the ingestion service,
in the middle of a load leaves every acknowledged observation readable exactly once after the
restart. The load retries what was not acknowledged, as the SDKs do."""

import asyncio

import httpx
import pytest

from libs.common.rpc import check_health
from tests.e2e.admin import new_project
from tests.e2e.conftest import Stack
from tests.e2e.load import SPANS, export, send_all, stored_after
from tests.support.eventually import eventually

EXPORTS = 500


async def restart(stack: Stack, service: str) -> None:
    stack.processes[service].kill()  # SIGKILL: no drain, no flush, no commit
    stack.processes[service].wait()
    stack.processes[service] = stack.start(service)
    address = stack.env[f"{service.upper()}_ADDR"]
    await eventually(lambda: check_health(address), lambda s: s == "SERVING", timeout=60)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("victim", ["query", "ingestion"])
async def test_kill_9_during_load_loses_nothing(stack: Stack, victim: str) -> None:
    auth = new_project(stack, "reliability")
    exports = [export(i) for i in range(EXPORTS)]
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=auth, timeout=60) as client:
        load = asyncio.create_task(send_all(client, exports))
        await asyncio.sleep(3)
        await restart(stack, victim)
        await load

        stored = await stored_after(client, EXPORTS)
    assert stored == (EXPORTS * SPANS, EXPORTS)

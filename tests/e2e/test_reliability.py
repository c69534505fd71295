"""Exactly once, in content: a `kill -9` of the query service, or of the ingestion service, in the
middle of an SDK-like load leaves every trace and observation stored as the merge of everything
sent (no create, output, usage, cost or end time lost or applied twice) and the project's totals
(traces, observations, tokens, cost) equal to their exact sums. The load is OTLP exports of many
traces and batch JSON whose updates follow their creates; it retries what was not acknowledged, as
the SDKs do."""

import asyncio
import zlib

import httpx
import pytest

from libs.common.rpc import check_health
from tests.e2e.admin import new_project
from tests.e2e.conftest import Stack
from tests.e2e.load import SdkLoad, differences
from tests.support.eventually import eventually

ROUNDS = 40  # ~2,400 observations in ~240 traces, half of them updated after their create


async def restart(stack: Stack, service: str) -> None:
    stack.processes[service].kill()  # SIGKILL: no drain, no flush, no commit
    stack.processes[service].wait()
    stack.processes[service] = stack.start(service)
    address = stack.env[f"{service.upper()}_ADDR"]
    await eventually(lambda: check_health(address), lambda s: s == "SERVING", timeout=60)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("victim", ["query", "ingestion"])
async def test_kill_9_during_sdk_load_leaves_every_entity_as_sent(
    stack: Stack, victim: str
) -> None:
    auth = new_project(stack, "reliability")
    load = SdkLoad(ROUNDS, seed=zlib.crc32(victim.encode()))
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=auth, timeout=60) as client:
        sending = asyncio.create_task(load.send(client))
        await load.past(1 / 3)
        assert not sending.done(), "the load must still be running when the service dies"
        await restart(stack, victim)
        await sending

        assert await differences(client, load) == []

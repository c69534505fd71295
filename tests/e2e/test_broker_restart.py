"""Exactly once, in content, across a restart of the Kafka broker in the middle of an SDK-like load:
while it is away, ingestion answers 5xx (never a false success) and the sender retries; the query
writer resumes from its committed offsets once the broker is back; every trace and observation is
then stored as the merge of everything sent and the project's totals equal their exact sums (see
tests/e2e/load.py). The stack here has a broker of its own, so restarting it disturbs no other
test."""

import asyncio
import subprocess
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.admin import new_project
from tests.e2e.conftest import Stack, free_port, running_stack, stack_env
from tests.e2e.load import SdkLoad, differences
from tests.support.devenv import ROOT

ROUNDS = 40  # ~2,400 observations in ~240 traces, half of them updated after their create
# Longer than the producers' request timeout (30 s): aiokafka then gives up on the batches of a
# partition that has no leader, and a producer left with that gap in its sequence numbers would be
# refused by the broker for the rest of its life unless replaced (libs/common/kafka.Producer).
OUTAGES = {"short": 2, "longer-than-request-timeout": 35}


@dataclass(frozen=True)
class Broker:
    directory: Path
    port: int
    controller_port: int

    def start(self) -> None:
        self._engines("kafka-start", str(self.port), str(self.controller_port))

    def stop(self) -> None:
        self._engines("kafka-stop")

    def _engines(self, command: str, *args: str) -> None:
        subprocess.run(
            ["scripts/engines.sh", command, str(self.directory), *args],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(tmp_path_factory.mktemp("broker"), free_port(), free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
async def own_stack(
    broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    directory = tmp_path_factory.mktemp("broker-stack")
    env = stack_env(directory) | {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker.port}"}
    async with running_stack(env, directory) as stack:
        yield stack


@pytest.mark.timeout(600)
@pytest.mark.parametrize("outage", OUTAGES.values(), ids=OUTAGES.keys())
async def test_broker_restart_during_sdk_load_leaves_every_entity_as_sent(
    own_stack: Stack, broker: Broker, outage: float
) -> None:
    auth = new_project(own_stack, "reliability")
    load = SdkLoad(ROUNDS, seed=zlib.crc32(str(outage).encode()))
    async with httpx.AsyncClient(base_url=own_stack.gateway_url, auth=auth, timeout=60) as client:
        sending = asyncio.create_task(load.send(client))
        await load.past(1 / 3)
        await asyncio.to_thread(broker.stop)
        assert not sending.done(), "the load must still be running while the broker is away"
        await asyncio.sleep(outage)
        await asyncio.to_thread(broker.start)
        await sending  # producers wait out a short outage; longer ones answer 503 and are retried

        assert await differences(client, load) == []
    for name, process in own_stack.processes.items():
        assert process.poll() is None, f"{name} exited while the broker restarted"

"""Real engines from scripts/engines.sh (`make test` starts them). Every test gets its own
database, topic names or bucket, so tests never share state and need no cleanup ordering."""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.common.kafka import KafkaCluster
from tests.support.devenv import dev_env

ENV = dev_env()
PG_SERVER = f"postgresql://obs:obs@127.0.0.1:{ENV['POSTGRES_PORT']}"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    """A DSN for a database that does not exist yet (the migration runner creates it)."""
    name = unique("it")
    yield f"{PG_SERVER}/{name}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def kafka() -> KafkaCluster:
    """The local brokers, under a namespace of this test's own."""
    return KafkaCluster(ENV["KAFKA_BOOTSTRAP_SERVERS"], namespace=unique("it") + ".")

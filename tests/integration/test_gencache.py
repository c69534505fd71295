from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from libs.common.gencache import GenerationCache
from tests.integration.conftest import ENV, unique


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    client = redis.from_url(f"redis://127.0.0.1:{ENV['REDIS_PORT']}/0")
    yield client
    await client.aclose()


async def test_an_invalidation_on_one_replica_hides_entries_on_every_replica(
    client: redis.Redis,
) -> None:
    project = unique("project")
    replica_a, replica_b = GenerationCache(client, "prompts"), GenerationCache(client, "prompts")
    generation = await replica_a.generation(project)
    assert generation is not None and await replica_b.generation(project) == generation
    await replica_a.put(project, generation, "k", b"v1")
    assert await replica_b.get(project, generation, "k") == b"v1"

    await replica_a.invalidate(project)
    fresh = await replica_b.generation(project)
    assert fresh != generation
    assert await replica_b.get(project, fresh, "k") is None  # type: ignore[arg-type]


async def test_without_redis_the_cache_steps_aside() -> None:
    unreachable = redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        assert await GenerationCache(unreachable, "prompts").generation("p") is None
    finally:
        await unreachable.aclose()

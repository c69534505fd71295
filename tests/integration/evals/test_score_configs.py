"""Score configs in the evals service against real PostgreSQL and Redis: the RPCs as the gateway
and the ingestion service call them, projects kept apart, and every change announced to the
caches (a new generation) before it is answered; no change without that."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as redis

from libs.common.errors import NotFound, Unavailable
from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.gencache import GenerationCache
from libs.common.scope import ProjectScope
from libs.common.score_config_cache import score_config_generations
from services.evals.score_configs import ScoreConfigApi
from tests.integration.conftest import ENV, unique

A, B = ProjectScope(unique("project-a")), ProjectScope(unique("project-b"))


@pytest.fixture
async def generations() -> AsyncIterator[GenerationCache]:
    client = redis.from_url(f"redis://127.0.0.1:{ENV['REDIS_PORT']}/2")
    yield score_config_generations(client)
    await client.aclose()


async def create(api: ScoreConfigApi, scope: ProjectScope, **body: Any) -> dict[str, Any]:
    request = evals_pb2.CreateScoreConfigRequest(body_json=orjson.dumps(body))
    return orjson.loads((await api.create(scope, request)).config_json)  # type: ignore[no-any-return]


async def update(api: ScoreConfigApi, scope: ProjectScope, config_id: str, **body: Any) -> Any:
    request = evals_pb2.UpdateScoreConfigRequest(config_id=config_id, body_json=orjson.dumps(body))
    return orjson.loads((await api.update(scope, request)).config_json)


async def get(api: ScoreConfigApi, scope: ProjectScope, config_id: str) -> Any:
    reply = await api.get(scope, evals_pb2.GetScoreConfigRequest(config_id=config_id))
    return orjson.loads(reply.config_json)


async def test_configs_are_kept_per_project(
    pool: asyncpg.Pool, generations: GenerationCache
) -> None:
    api = ScoreConfigApi(pool, generations)
    first = await create(api, A, name="accuracy", dataType="NUMERIC", minValue=0, maxValue=1)
    second = await create(api, A, name="tone", dataType="CATEGORICAL",
                          categories=[{"label": "good", "value": 1}])  # fmt: skip
    assert await get(api, A, first["id"]) == first
    with pytest.raises(NotFound):
        await get(api, B, first["id"])
    with pytest.raises(NotFound):
        await update(api, B, first["id"], isArchived=True)
    page = common_pb2.PageRequest(page=1, limit=1)
    listed = await api.list(A, evals_pb2.ListScoreConfigsRequest(page=page))
    assert [orjson.loads(c)["id"] for c in listed.configs_json] == [second["id"]]
    assert (listed.meta.total_items, listed.meta.total_pages) == (2, 2)
    other = await api.list(B, evals_pb2.ListScoreConfigsRequest(page=page))
    assert (list(other.configs_json), other.meta.total_items) == ([], 0)
    assert (await get(api, A, first["id"]))["isArchived"] is False


async def test_concurrent_updates_keep_each_others_fields(
    pool: asyncpg.Pool, generations: GenerationCache
) -> None:
    api = ScoreConfigApi(pool, generations)
    config = await create(api, A, name="n", dataType="NUMERIC")
    await asyncio.gather(
        update(api, A, config["id"], isArchived=True),
        update(api, A, config["id"], description="why"),
        update(api, A, config["id"], maxValue=10),
        update(api, A, config["id"], name="renamed"),
    )
    final = await get(api, A, config["id"])
    assert (final["isArchived"], final["description"], final["maxValue"], final["name"]) == (
        True, "why", 10, "renamed")  # fmt: skip


async def test_every_change_starts_a_new_generation_before_it_is_answered(
    pool: asyncpg.Pool, generations: GenerationCache
) -> None:
    api = ScoreConfigApi(pool, generations)
    before = await generations.generation(A.project_id)
    config = await create(api, A, name="n", dataType="BOOLEAN")
    after_create = await generations.generation(A.project_id)
    assert after_create != before
    await update(api, A, config["id"], isArchived=True)
    assert await generations.generation(A.project_id) not in (before, after_create)


async def test_without_redis_an_update_changes_nothing(
    pool: asyncpg.Pool, generations: GenerationCache
) -> None:
    unreachable = redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        reachable = ScoreConfigApi(pool, generations)
        blind = ScoreConfigApi(pool, score_config_generations(unreachable))
        with pytest.raises(Unavailable, match="was saved, but"):
            await create(blind, A, name="n", dataType="NUMERIC", maxValue=1)
        listed = await reachable.list(A, evals_pb2.ListScoreConfigsRequest())
        config = orjson.loads(listed.configs_json[0])
        with pytest.raises(Unavailable, match="was not saved"):
            await update(blind, A, config["id"], isArchived=True)
        assert await get(reachable, A, config["id"]) == config
    finally:
        await unreachable.aclose()

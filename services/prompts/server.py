"""Composition root of the prompts service: PostgreSQL, the Redis-backed cache, the Kafka
producer and change listener, and gRPC."""

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import redis.asyncio as redis

from libs.common.gen.obs.prompts.v1 import prompts_pb2, prompts_pb2_grpc
from libs.common.gencache import GenerationCache
from libs.common.health import HealthWatch
from libs.common.kafka import BatchConsumer, Topic, ensure_topics, make_producer
from libs.common.lifecycle import stop_on_signals
from libs.common.metrics import serve_metrics
from libs.common.migrate import migrate_postgres
from libs.common.project_deletions import consumer_settings, decode_deletion
from libs.common.prompt_changes import decode_change, listener_settings
from libs.common.rpc import make_server
from services.prompts.config import PromptsConfig
from services.prompts.consumer import ChangeListener
from services.prompts.handlers import PromptsServicer
from services.prompts.project_deletions import ProjectPurger
from services.prompts.store import PromptStore

MIGRATIONS = Path(__file__).parent / "migrations" / "postgres"
SERVICE_NAME = prompts_pb2.DESCRIPTOR.services_by_name["PromptsService"].full_name


async def run(cfg: PromptsConfig) -> None:
    stop = stop_on_signals()
    serve_metrics(cfg.metrics_port)
    async with AsyncExitStack() as stack:
        pool = await asyncpg.create_pool(cfg.database_url, min_size=2, max_size=16)
        stack.push_async_callback(pool.close)
        client = redis.from_url(cfg.redis_url)
        stack.push_async_callback(client.aclose)
        producer = make_producer(cfg.kafka, client_id="prompts")
        await producer.start()
        stack.push_async_callback(producer.stop)
        cache = GenerationCache(client, "prompts")
        servicer = PromptsServicer(PromptStore(pool), cache, producer, cfg.kafka)
        add = prompts_pb2_grpc.add_PromptsServiceServicer_to_server
        server = make_server(
            [(add, servicer, SERVICE_NAME)],
            cfg.grpc_host,
            cfg.grpc_port,
            token=cfg.internal_auth_token,
        )
        listener = BatchConsumer(
            listener_settings(cfg.kafka, "prompts"),
            decode_change,
            ChangeListener(cache).handle,
            producer,
        )
        purger = BatchConsumer(
            consumer_settings(cfg.kafka, "prompts"),
            decode_deletion,
            ProjectPurger(PromptStore(pool), cache).handle,
            producer,
        )
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(server.serve(stop, cfg.drain_seconds))
            tasks.create_task(listener.run(stop))
            tasks.create_task(purger.run(stop))
            # Redis is left out on purpose: without it the caches step aside and reads go to
            # PostgreSQL, so this replica still serves.
            health = HealthWatch(
                {"postgresql": lambda: pool.fetchval("SELECT 1")}, [listener, purger]
            )
            tasks.create_task(health.run(stop, server.set_serving))


async def migrate(cfg: PromptsConfig) -> None:
    await migrate_postgres(cfg.database_url, MIGRATIONS)
    await ensure_topics(cfg.kafka, {Topic.PROMPT_CHANGES: 1})

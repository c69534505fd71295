"""Composition root of the prompts service: PostgreSQL, the Redis cache and gRPC."""

from pathlib import Path

import asyncpg
import redis.asyncio as redis

from libs.common.gen.obs.prompts.v1 import prompts_pb2, prompts_pb2_grpc
from libs.common.kafka import Topic, ensure_topics
from libs.common.lifecycle import stop_on_signals
from libs.common.metrics import serve_metrics
from libs.common.migrate import migrate_postgres
from libs.common.rpc import make_server
from services.prompts.config import PromptsConfig
from services.prompts.handlers import PromptsServicer

MIGRATIONS = Path(__file__).parent / "migrations" / "postgres"
SERVICE_NAME = prompts_pb2.DESCRIPTOR.services_by_name["PromptsService"].full_name


async def run(cfg: PromptsConfig) -> None:
    stop = stop_on_signals()
    serve_metrics(cfg.metrics_port)
    pool = await asyncpg.create_pool(cfg.database_url, min_size=2, max_size=16)
    cache = redis.from_url(cfg.redis_url)
    try:
        await cache.ping()
        servicer = PromptsServicer(pool, cache)
        binding = (prompts_pb2_grpc.add_PromptsServiceServicer_to_server, servicer, SERVICE_NAME)
        server = make_server([binding], cfg.grpc_host, cfg.grpc_port)
        await server.serve(stop, cfg.drain_seconds)
    finally:
        await cache.aclose()
        await pool.close()


async def migrate(cfg: PromptsConfig) -> None:
    await migrate_postgres(cfg.database_url, MIGRATIONS)
    await ensure_topics(cfg.kafka_bootstrap_servers, {Topic.PROMPT_CHANGES: 1})

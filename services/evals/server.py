"""Composition root of the evals service: PostgreSQL and gRPC."""

from pathlib import Path

import asyncpg
import redis.asyncio as redis

from libs.common.gen.obs.evals.v1 import evals_pb2, evals_pb2_grpc
from libs.common.lifecycle import stop_on_signals
from libs.common.metrics import serve_metrics
from libs.common.migrate import migrate_postgres
from libs.common.rpc import make_server
from libs.common.score_config_cache import score_config_generations
from services.evals.config import EvalsConfig
from services.evals.handlers import EvalsServicer

MIGRATIONS = Path(__file__).parent / "migrations" / "postgres"
SERVICE_NAME = evals_pb2.DESCRIPTOR.services_by_name["EvalsService"].full_name


async def run(cfg: EvalsConfig) -> None:
    stop = stop_on_signals()
    serve_metrics(cfg.metrics_port)
    pool = await asyncpg.create_pool(cfg.database_url, min_size=1, max_size=8)
    client = redis.from_url(cfg.redis_url)
    try:
        servicer = EvalsServicer(pool, score_config_generations=score_config_generations(client))
        binding = (evals_pb2_grpc.add_EvalsServiceServicer_to_server, servicer, SERVICE_NAME)
        server = make_server([binding], cfg.grpc_host, cfg.grpc_port, token=cfg.internal_auth_token)
        await server.serve(stop, cfg.drain_seconds)
    finally:
        await client.aclose()
        await pool.close()


async def migrate(cfg: EvalsConfig) -> None:
    await migrate_postgres(cfg.database_url, MIGRATIONS)

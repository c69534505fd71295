"""Composition root of the query service: ClickHouse (chDB or server) and the gRPC read API.
Its PostgreSQL database (model prices) is migrated here and used from the tracing issue on."""

import asyncio
from pathlib import Path

import structlog

from libs.common.gen.obs.query.v1 import query_pb2, query_pb2_grpc
from libs.common.lifecycle import stop_on_signals
from libs.common.metrics import serve_metrics
from libs.common.migrate import load_migrations, migrate_postgres
from libs.common.migrate import migrate as apply_migrations
from libs.common.rpc import make_server
from services.query.clickhouse import ClickHouseTarget, open_clickhouse
from services.query.config import QueryConfig
from services.query.handlers import QueryServicer

log = structlog.get_logger()

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name


async def run(cfg: QueryConfig) -> None:
    stop = stop_on_signals()
    serve_metrics(cfg.metrics_port)
    clickhouse = open_clickhouse(cfg.clickhouse_url)
    servicer = QueryServicer(clickhouse)
    binding = (query_pb2_grpc.add_QueryServiceServicer_to_server, servicer, SERVICE_NAME)
    server = make_server([binding], cfg.grpc_host, cfg.grpc_port)
    try:
        await server.serve(stop, cfg.drain_seconds)
    finally:
        await asyncio.to_thread(clickhouse.close)


async def migrate(cfg: QueryConfig) -> None:
    await migrate_postgres(cfg.database_url, MIGRATIONS / "postgres")
    clickhouse = open_clickhouse(cfg.clickhouse_url)
    try:
        migrations = load_migrations(MIGRATIONS / "clickhouse")
        await apply_migrations(ClickHouseTarget(clickhouse), migrations)
    finally:
        clickhouse.close()

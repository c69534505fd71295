"""Composition root of the query service: ClickHouse (chDB or server), the Kafka writer that
fills it, PostgreSQL for project models and blob-storage exports, the exporter, and the gRPC
read API."""

import asyncio
from datetime import timedelta
from pathlib import Path

import asyncpg
import structlog

from libs.common.gen.obs.query.v1 import query_pb2, query_pb2_grpc
from libs.common.health import HealthWatch
from libs.common.kafka import BatchConsumer, Topic, make_producer
from libs.common.lifecycle import stop_on_signals
from libs.common.metrics import serve_metrics
from libs.common.migrate import load_migrations, migrate_postgres
from libs.common.migrate import migrate as apply_migrations
from libs.common.project_deletions import consumer_settings as deletion_settings
from libs.common.project_deletions import decode_deletion
from libs.common.retention import consumer_settings as retention_settings
from libs.common.retention import decode_retention
from libs.common.rpc import make_server
from libs.common.secret_box import open_box
from services.query.blob_export import BlobExporter
from services.query.clickhouse import ClickHouseTarget, open_clickhouse
from services.query.config import QueryConfig
from services.query.consumer import (
    EventWriter,
    decode_events,
    is_transient_for_writer,
    writer_settings,
)
from services.query.deletions import DeletionListener, DeletionNotices, listener_settings
from services.query.export_api import ExportApi
from services.query.export_store import ExportStore
from services.query.export_targets import parse_networks
from services.query.handlers import QueryServicer
from services.query.models import ModelCatalogs, ModelStore
from services.query.project_deletions import ProjectPurger, WriterBacklog
from services.query.recent_state import RecentState
from services.query.retention import RetentionPass
from services.query.store import TraceStore

log = structlog.get_logger()

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name


async def run(cfg: QueryConfig) -> None:
    stop = stop_on_signals()
    serve_metrics(cfg.metrics_port)
    clickhouse = open_clickhouse(cfg.clickhouse_url)
    store = TraceStore(clickhouse)
    pool = await asyncpg.create_pool(cfg.database_url, min_size=1, max_size=8)
    models = ModelStore(pool)
    catalogs = ModelCatalogs(models)
    # One producer for the writer's dead letters and the deletion notices.
    producer = make_producer(cfg.kafka, client_id="query")
    await producer.start()
    # The writer's memory of what it wrote last, which deletions must reach (deletions.py).
    recent = RecentState(cfg.writer_state_entities)
    deletions = DeletionNotices(producer, cfg.kafka.topic(Topic.INGESTION_DELETIONS), recent)
    exports = ExportStore(pool)
    box = open_box(cfg.encryption_key, cfg.encryption_key_previous)
    allowed = parse_networks(cfg.export_allowed_networks)
    exporter = BlobExporter(
        exports,
        clickhouse,
        box,
        lag=timedelta(seconds=cfg.export_lag_seconds),
        allowed_networks=allowed,
    )
    export_api = ExportApi(exports, box, allowed_networks=allowed)
    servicer = QueryServicer(store, models, catalogs, deletions, export_api)
    binding = (query_pb2_grpc.add_QueryServiceServicer_to_server, servicer, SERVICE_NAME)
    server = make_server([binding], cfg.grpc_host, cfg.grpc_port, token=cfg.internal_auth_token)
    event_writer = EventWriter(store, catalogs, recent)
    writing = writer_settings(cfg.kafka, cfg.writer_batch_bytes)
    writer = BatchConsumer(
        writing,
        decode_events,
        event_writer.write,
        producer,
        transient=is_transient_for_writer,
        on_rebalance=event_writer.forget_recent,
    )
    purger = BatchConsumer(
        deletion_settings(cfg.kafka, "query"),
        decode_deletion,
        ProjectPurger(store, models, catalogs, exports, WriterBacklog(writing)).handle,
        producer,
    )
    retention = BatchConsumer(
        retention_settings(cfg.kafka, "query"),
        decode_retention,
        RetentionPass(clickhouse).handle,
        producer,
    )
    deletion_listener = DeletionListener(cfg.kafka, recent)
    listener = BatchConsumer(
        listener_settings(cfg.kafka), deletion_listener.decode, deletion_listener.handle, producer
    )
    health = HealthWatch(
        {
            "postgresql": lambda: pool.fetchval("SELECT 1"),
            "clickhouse": lambda: clickhouse.select("SELECT 1"),
        },
        [writer, purger, retention, listener],
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(server.serve(stop, cfg.drain_seconds))
            tasks.create_task(writer.run(stop))
            tasks.create_task(purger.run(stop))
            tasks.create_task(retention.run(stop))
            tasks.create_task(listener.run(stop))
            tasks.create_task(exporter.run(stop))
            tasks.create_task(health.run(stop, server.set_serving))
    finally:
        await producer.stop()
        await pool.close()
        await asyncio.to_thread(clickhouse.close)


async def migrate(cfg: QueryConfig) -> None:
    await migrate_postgres(cfg.database_url, MIGRATIONS / "postgres")
    clickhouse = open_clickhouse(cfg.clickhouse_url)
    try:
        migrations = load_migrations(MIGRATIONS / "clickhouse")
        await apply_migrations(ClickHouseTarget(clickhouse), migrations)
    finally:
        clickhouse.close()

"""Composition root of the ingestion service: the S3 event log and its index in PostgreSQL, the
Kafka producer, gRPC, and the consumers that delete the event log's part of deleted traces and
projects."""

import asyncio
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import asyncpg
import redis.asyncio as redis

from libs.common.gen.obs.evals.v1 import evals_pb2_grpc
from libs.common.gen.obs.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from libs.common.health import HealthWatch, Ping
from libs.common.kafka import BatchConsumer, Topic, ensure_topics, make_producer
from libs.common.lifecycle import stop_on_signals
from libs.common.metrics import serve_metrics
from libs.common.migrate import migrate_postgres
from libs.common.project_deletions import consumer_settings, decode_deletion
from libs.common.retention import consumer_settings as retention_settings
from libs.common.retention import decode_retention
from libs.common.rpc import make_channel, make_server
from libs.common.score_config_cache import score_config_generations
from services.ingestion.config import IngestionConfig
from services.ingestion.deletions import EventLogCleaner, cleaner_settings, decode_notice
from services.ingestion.event_index import EventLogIndex
from services.ingestion.handlers import IngestionServicer
from services.ingestion.media import Media, MediaObjects
from services.ingestion.project_deletions import ProjectPurger
from services.ingestion.retention import RetentionPass
from services.ingestion.score_configs import ScoreConfigs
from services.ingestion.store import EventLog, open_s3

MIGRATIONS = Path(__file__).parent / "migrations" / "postgres"
SERVICE_NAME = ingestion_pb2.DESCRIPTOR.services_by_name["IngestionService"].full_name


async def run(cfg: IngestionConfig) -> None:
    stop = stop_on_signals()
    serve_metrics(cfg.metrics_port)
    async with AsyncExitStack() as stack:
        s3 = await open_s3(cfg, stack)
        event_log = EventLog(s3, cfg.s3_bucket)
        await event_log.ping()
        # The event log's index and the media records: every request writes the index.
        pool = await asyncpg.create_pool(
            cfg.database_url, min_size=1, max_size=8, reset=_keep_session
        )
        stack.push_async_callback(pool.close)
        index = EventLogIndex(pool)
        pings: dict[str, Ping] = {
            "s3": event_log.ping,
            "postgresql": partial(pool.fetchval, "SELECT 1"),
        }
        # Media URLs are signed for the endpoint the SDKs reach, which may differ from ours.
        presigner = await open_s3(cfg, stack, cfg.s3_public_endpoint_url)
        objects = MediaObjects(s3, presigner, cfg.s3_bucket, cfg.media_url_seconds)
        media = Media(pool, objects, cfg.media_max_bytes)
        producer = make_producer(cfg.kafka, client_id="ingestion")
        await producer.start()
        stack.push_async_callback(producer.stop)
        client = redis.from_url(cfg.redis_url)
        stack.push_async_callback(client.aclose)
        evals = make_channel(cfg.evals_addr, token=cfg.internal_auth_token)
        stack.push_async_callback(evals.close)
        score_configs = ScoreConfigs(
            evals_pb2_grpc.EvalsServiceStub(evals), score_config_generations(client)
        )
        servicer = IngestionServicer(
            event_log, index, producer, cfg.kafka.topic(Topic.INGESTION_EVENTS),
            score_configs=score_configs, max_otlp_bytes=cfg.max_otlp_bytes, media=media,
        )  # fmt: skip
        add = ingestion_pb2_grpc.add_IngestionServiceServicer_to_server
        server = make_server(
            [(add, servicer, SERVICE_NAME)],
            cfg.grpc_host,
            cfg.grpc_port,
            token=cfg.internal_auth_token,
        )
        cleaner = BatchConsumer(
            cleaner_settings(cfg.kafka),
            decode_notice,
            EventLogCleaner(event_log, index, media).handle,
            producer,
        )
        purger = BatchConsumer(
            consumer_settings(cfg.kafka, "ingestion"),
            decode_deletion,
            ProjectPurger(event_log, index, media).handle,
            producer,
        )
        retention = BatchConsumer(
            retention_settings(cfg.kafka, "ingestion"),
            decode_retention,
            RetentionPass(s3, cfg.s3_bucket, pool, media).handle,
            producer,
        )
        consumers = [cleaner, purger, retention]
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(server.serve(stop, cfg.drain_seconds))
            for consumer in consumers:
                tasks.create_task(consumer.run(stop))
            tasks.create_task(HealthWatch(pings, consumers).run(stop, server.set_serving))


async def migrate(cfg: IngestionConfig) -> None:
    """Ingestion owns its bucket and the topics it produces."""
    async with AsyncExitStack() as stack:
        await EventLog(await open_s3(cfg, stack), cfg.s3_bucket).ensure_bucket()
    await migrate_postgres(cfg.database_url, MIGRATIONS)
    await ensure_topics(
        cfg.kafka,
        {Topic.INGESTION_EVENTS: cfg.events_partitions, Topic.INGESTION_DELETIONS: 1},
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A released connection is not reset: no code here changes session state (settings,
    LISTEN, advisory locks, cursors), and asyncpg's reset statement was a second round trip
    after every index insert. Open transactions are still rolled back by the pool."""

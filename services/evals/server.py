"""Composition root of the evals service: PostgreSQL, gRPC, and the Kafka consumer that learns
experiments from spans."""

import asyncio
from pathlib import Path

import asyncpg
import redis.asyncio as redis

from libs.common.gen.obs.evals.v1 import evals_pb2, evals_pb2_grpc
from libs.common.gen.obs.ingestion.v1.ingestion_pb2_grpc import IngestionServiceStub
from libs.common.gen.obs.prompts.v1.prompts_pb2_grpc import PromptsServiceStub
from libs.common.gen.obs.query.v1.query_pb2_grpc import QueryServiceStub
from libs.common.health import HealthWatch
from libs.common.kafka import WRITER_GROUP, BatchConsumer, GroupLag, Topic, make_producer
from libs.common.lifecycle import stop_on_signals
from libs.common.metrics import serve_metrics
from libs.common.migrate import migrate_postgres
from libs.common.project_deletions import consumer_settings as deletion_settings
from libs.common.project_deletions import decode_deletion
from libs.common.retention import consumer_settings as retention_settings
from libs.common.retention import decode_retention
from libs.common.rpc import make_channel, make_server
from libs.common.score_config_cache import score_config_generations
from libs.common.secret_box import SecretBox, open_box
from services.evals import trigger
from services.evals.annotation_queues import AnnotationQueueApi
from services.evals.comments import CommentApi
from services.evals.config import EvalsConfig
from services.evals.connections import ConnectionApi
from services.evals.consumer import ExperimentWriter, consumer_settings, decode_items
from services.evals.dataset_api import DatasetApi
from services.evals.evaluators import EvaluatorApi
from services.evals.handlers import EvalsServicer
from services.evals.jobs import JobStore
from services.evals.judge import JudgeWorker
from services.evals.judge_api import JudgeApi
from services.evals.project_deletions import ProjectPurger
from services.evals.references import ObjectLookup
from services.evals.results import ExperimentReads
from services.evals.retention import RetentionPass
from services.evals.rules import RuleApi
from services.evals.score_configs import ScoreConfigApi
from services.evals.writer_load import WriterLoad

MIGRATIONS = Path(__file__).parent / "migrations" / "postgres"
SERVICE_NAME = evals_pb2.DESCRIPTOR.services_by_name["EvalsService"].full_name


async def run(cfg: EvalsConfig) -> None:
    stop = stop_on_signals()
    serve_metrics(cfg.metrics_port)
    pool = await asyncpg.create_pool(cfg.database_url, min_size=1, max_size=8)
    client = redis.from_url(cfg.redis_url)
    query_channel = make_channel(cfg.query_addr, token=cfg.internal_auth_token)
    prompts_channel = make_channel(cfg.prompts_addr, token=cfg.internal_auth_token)
    ingestion_channel = make_channel(cfg.ingestion_addr, token=cfg.internal_auth_token)
    producer = make_producer(cfg.kafka, client_id="evals")
    try:
        query = QueryServiceStub(query_channel)
        objects = ObjectLookup(query, PromptsServiceStub(prompts_channel))
        connections = ConnectionApi(pool, secret_box(cfg))
        evaluators, rules, jobs = EvaluatorApi(pool, connections), RuleApi(pool), JobStore(pool)
        rule_cache = trigger.RuleCache(rules)
        writer_lag = GroupLag(cfg.kafka.bootstrap_servers, cfg.kafka.group(WRITER_GROUP),
                              [cfg.kafka.topic(Topic.INGESTION_EVENTS)])  # fmt: skip
        writer_load = WriterLoad(writer_lag, cfg.judge_yield_lag_records)
        worker = JudgeWorker(
            jobs=jobs, evaluators=evaluators, rules=rules, connections=connections, query=query,
            ingestion=IngestionServiceStub(ingestion_channel),
            concurrency=cfg.judge_concurrency, max_attempts=cfg.judge_max_attempts,
            timeout=cfg.judge_timeout_seconds, writer=writer_load, busy_jobs=cfg.judge_busy_jobs,
        )  # fmt: skip
        servicer = EvalsServicer(
            pool,
            score_configs=ScoreConfigApi(pool, score_config_generations(client)),
            experiments=ExperimentReads(pool, query),
            datasets=DatasetApi(pool, query),
            comments=CommentApi(pool, objects),
            annotation_queues=AnnotationQueueApi(pool, objects),
            judge=JudgeApi(connections, evaluators, rules, jobs, rule_cache),
        )
        # Spans with experiment attributes become runs and run items; the producer takes its
        # dead letters.
        await producer.start()
        experiment_consumer = BatchConsumer(
            consumer_settings(cfg.kafka), decode_items, ExperimentWriter(pool).write, producer
        )
        # LLM-as-a-judge: matching events become jobs (its own group: never holds back the
        # experiments consumer, ingestion or the query writer).
        # Loaded before the consumer starts, which skips projects without rules.
        await rule_cache.reload()
        judge_trigger = trigger.Trigger(rule_cache, jobs, worker.wake)
        judge_consumer = BatchConsumer(
            trigger.consumer_settings(cfg.kafka), judge_trigger.decode, judge_trigger.handle,
            producer,
        )  # fmt: skip
        purger = BatchConsumer(
            deletion_settings(cfg.kafka, "evals"),
            decode_deletion,
            ProjectPurger(pool, score_config_generations(client)).handle,
            producer,
        )
        retention = BatchConsumer(
            retention_settings(cfg.kafka, "evals"),
            decode_retention,
            RetentionPass(pool, objects).handle,
            producer,
        )
        binding = (evals_pb2_grpc.add_EvalsServiceServicer_to_server, servicer, SERVICE_NAME)
        server = make_server([binding], cfg.grpc_host, cfg.grpc_port, token=cfg.internal_auth_token)
        health = HealthWatch(
            {"postgresql": lambda: pool.fetchval("SELECT 1")},
            [experiment_consumer, judge_consumer, purger, retention],
        )
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(server.serve(stop, cfg.drain_seconds))
            tasks.create_task(experiment_consumer.run(stop))
            tasks.create_task(judge_consumer.run(stop))
            tasks.create_task(purger.run(stop))
            tasks.create_task(retention.run(stop))
            tasks.create_task(rule_cache.run(stop))
            tasks.create_task(worker.run(stop))
            tasks.create_task(writer_load.run(stop))
            tasks.create_task(health.run(stop, server.set_serving))
    finally:
        await producer.stop()
        await query_channel.close()
        await prompts_channel.close()
        await ingestion_channel.close()
        await client.aclose()
        await pool.close()


async def migrate(cfg: EvalsConfig) -> None:
    await migrate_postgres(cfg.database_url, MIGRATIONS)


def secret_box(cfg: EvalsConfig) -> SecretBox | None:
    """None without EVALS_ENCRYPTION_KEY: LLM connections are then refused with a clear 503."""
    return open_box(cfg.encryption_key, cfg.encryption_key_previous)

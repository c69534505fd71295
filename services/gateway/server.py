"""Composition root of the gateway: PostgreSQL pool, authenticator, backend stubs, Starlette app
under uvicorn, with a drain phase on SIGTERM (readiness fails, then the server stops)."""

import asyncio
import contextlib
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import redis.asyncio as redis
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware

from libs.common import VERSION
from libs.common.gencache import GenerationCache
from libs.common.kafka import BatchConsumer, Topic, ensure_topics, make_producer
from libs.common.lifecycle import stop_on_signals
from libs.common.metrics import serve_metrics
from libs.common.migrate import migrate_postgres
from libs.common.project_deletions import consumer_settings, decode_deletion
from libs.common.prompt_changes import decode_change, listener_settings
from services.gateway import clients, ratelimit
from services.gateway.auth import Authenticator
from services.gateway.config import GatewayConfig, load_init_settings
from services.gateway.errors import EXCEPTION_HANDLERS
from services.gateway.init import apply_init
from services.gateway.middleware import BodyLimit, RequestContext
from services.gateway.project_deletions import DeletionAnnouncer, ProjectPurger
from services.gateway.protocol import bounded_header_protocol
from services.gateway.readiness import BackendReadiness
from services.gateway.retention import RetentionAnnouncer
from services.gateway.routes import all_routes
from services.gateway.routes.prompts import PromptChangeListener
from services.gateway.state import GatewayState
from services.gateway.store import ProjectStore

log = structlog.get_logger()

MIGRATIONS = Path(__file__).parent / "migrations" / "postgres"


def build_app(
    state: GatewayState, max_body_bytes: int, body_timeout_seconds: float = 60.0
) -> Starlette:
    app = Starlette(
        routes=all_routes(),
        middleware=[
            Middleware(RequestContext),
            Middleware(BodyLimit, max_bytes=max_body_bytes, timeout_seconds=body_timeout_seconds),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
    app.state.gateway = state
    app.state.readiness = BackendReadiness(state.backends)
    return app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: our stop event drives the drain."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


async def run(cfg: GatewayConfig) -> None:
    stop = stop_on_signals()
    serve_metrics(cfg.metrics_port)
    async with AsyncExitStack() as stack:
        pool = await asyncpg.create_pool(cfg.database_url, min_size=2, max_size=16)
        stack.push_async_callback(pool.close)
        cache_client = redis.from_url(cfg.redis_url)
        stack.push_async_callback(cache_client.aclose)
        limiter_client = ratelimit.connect(cfg.redis_url)
        stack.push_async_callback(limiter_client.aclose)
        producer = make_producer(cfg.kafka, client_id="gateway")
        await producer.start()
        stack.push_async_callback(producer.stop)
        store = ProjectStore(pool)
        await apply_init(store, load_init_settings(), cfg.api_key_salt)
        backends = clients.connect(
            cfg.ingestion_addr,
            cfg.query_addr,
            cfg.prompts_addr,
            cfg.evals_addr,
            token=cfg.internal_auth_token,
        )
        stack.push_async_callback(backends.close)
        state = GatewayState(
            store=store,
            authenticator=Authenticator(
                store,
                cfg.api_key_salt,
                cfg.auth_cache_seconds,
                revocations=GenerationCache(limiter_client, "gateway.auth"),
            ),
            backends=backends,
            backend_timeout=cfg.backend_timeout_seconds,
            version=VERSION,
            prompt_cache=GenerationCache(cache_client, "gateway.prompts"),
            rate_limiter=ratelimit.RateLimiter(limiter_client, ratelimit.limits(cfg)),
            deletions=DeletionAnnouncer(producer, cfg.kafka),
        )
        # Prompt writes made without this gateway (another service over gRPC) reach its cache
        # through the change topic.
        listener = BatchConsumer(
            listener_settings(cfg.kafka, "gateway"),
            decode_change,
            PromptChangeListener(state.prompt_cache).handle,
            producer,
        )
        # The gateway's own part of a project deletion: its tombstone row and Redis keys.
        purger = BatchConsumer(
            consumer_settings(cfg.kafka, "gateway"),
            decode_deletion,
            ProjectPurger(store, state.prompt_cache, state.rate_limiter).handle,
            producer,
        )
        # Once a day per project with a retention, its cutoff for every owning service.
        retention = RetentionAnnouncer(pool, producer, cfg.kafka)
        server = _Server(
            uvicorn.Config(
                build_app(state, cfg.max_body_bytes, cfg.body_timeout_seconds),
                host=cfg.http_host,
                port=cfg.http_port,
                http=bounded_header_protocol(cfg.header_timeout_seconds),
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=30,
            )
        )

        async def drain_on_stop() -> None:
            await stop.wait()
            state.draining = True
            log.info("gateway_draining", seconds=cfg.drain_seconds)
            await asyncio.sleep(cfg.drain_seconds)
            server.should_exit = True

        async def serve() -> None:
            await server.serve()
            if not server.started:
                raise RuntimeError(f"gateway could not listen on {cfg.http_host}:{cfg.http_port}")
            stop.set()

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(drain_on_stop())
            tasks.create_task(serve())
            tasks.create_task(listener.run(stop))
            tasks.create_task(purger.run(stop))
            tasks.create_task(retention.run(stop))


async def migrate(cfg: GatewayConfig) -> None:
    await migrate_postgres(cfg.database_url, MIGRATIONS)
    await ensure_topics(cfg.kafka, {Topic.PROJECT_DELETIONS: 1, Topic.PROJECT_RETENTION: 1})

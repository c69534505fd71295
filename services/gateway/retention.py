"""The gateway's part of retention (libs/common/retention.py): it owns each project's
`retentionDays`, so it announces, once a day per project that keeps its data a limited time,
the cutoff every owning service then deletes before.

Any replica may do it: each claims due projects with a row lock (FOR UPDATE SKIP LOCKED), announces
them and marks them announced in the same transaction, so a project is announced once a day
however many gateways run, and a crash before the commit leaves it due for the next round (an
announcement repeated is harmless: handling is idempotent). `python -m services.gateway retention
run` announces every such project at once, for operators and tests."""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from libs.common.kafka import KafkaCluster, Producer, make_producer
from libs.common.metrics import RETENTION_ANNOUNCED
from libs.common.retention import announce
from libs.common.scope import retention_cutoff
from services.gateway.config import GatewayConfig

log = structlog.get_logger()

# How often a replica looks for projects due (each is due a day after its last announcement).
CHECK_SECONDS = 600.0
EVERY = timedelta(days=1)
_BATCH = 100

_CLAIM = (
    "SELECT id, retention_days FROM projects"
    " WHERE retention_days IS NOT NULL AND deleted_at IS NULL"
    " AND (retention_announced_at IS NULL OR retention_announced_at < $1)"
    " ORDER BY retention_announced_at NULLS FIRST, id LIMIT $2 FOR UPDATE SKIP LOCKED"
)


class RetentionAnnouncer:
    def __init__(self, pool: asyncpg.Pool, producer: Producer, cluster: KafkaCluster) -> None:
        self._pool = pool
        self._producer = producer
        self._cluster = cluster

    async def announce_due(self, announced_before: datetime | None = None) -> int:
        """Announces every project last announced before `announced_before` (default: a day
        ago); returns how many it announced."""
        before = announced_before or datetime.now(UTC) - EVERY
        total = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                due = await conn.fetch(_CLAIM, before, _BATCH)
                now = datetime.now(UTC)
                for project in due:
                    days = project["retention_days"]
                    # None: a retention longer than anything stored holds nothing to delete.
                    if (cutoff := retention_cutoff(days, now)) is None:
                        continue
                    await announce(self._producer, self._cluster, project["id"], days, cutoff)
                    log.info("retention_announced", project_id=project["id"], days=days,
                             cutoff=cutoff.isoformat())  # fmt: skip
                await conn.execute(
                    "UPDATE projects SET retention_announced_at = $2 WHERE id = ANY($1)",
                    [project["id"] for project in due],
                    now,
                )
            RETENTION_ANNOUNCED.inc(len(due))
            total += len(due)
            if len(due) < _BATCH:
                return total

    async def run(self, stop: asyncio.Event) -> None:
        """Announces what is due every CHECK_SECONDS until `stop`; a failure (PostgreSQL or Kafka
        away) is logged and the projects stay due for the next round."""
        while not stop.is_set():
            try:
                await self.announce_due()
            except Exception as exc:
                log.warning("retention_announcement_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK_SECONDS)


async def run_now(cfg: GatewayConfig) -> None:
    """`python -m services.gateway retention run`: announces every project that keeps its data a
    limited time now, whenever it was last announced."""
    pool = await asyncpg.create_pool(cfg.database_url, min_size=1, max_size=2)
    producer = make_producer(cfg.kafka, client_id="gateway-retention")
    await producer.start()
    try:
        count = await RetentionAnnouncer(pool, producer, cfg.kafka).announce_due(datetime.now(UTC))
        print(f"announced the retention cutoff of {count} projects")
    finally:
        await producer.stop()
        await pool.close()

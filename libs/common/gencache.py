"""A read cache, in-process and in Redis, that is provably fresh: used for prompts by the
prompts service and by the gateway.

Every entry is filed under its scope's current *generation*, a random token in Redis. A write
replaces the token after its change is durable and before it is answered; every read fetches the
token first. So once a change has been answered, no replica can serve an entry made before it: the
old entries are simply never looked up again (they expire). Without Redis the cache steps aside
and reads go to the source, which is fresh by definition.
"""

import asyncio
import uuid
from collections import OrderedDict

import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

log = structlog.get_logger()

_TTL_SECONDS = 3600


class GenerationCache:
    def __init__(
        self, client: redis.Redis, namespace: str, max_local_entries: int = 10_000
    ) -> None:
        self._redis = client
        self._namespace = namespace
        self._local: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._max_local = max_local_entries

    async def generation(self, scope: str) -> str | None:
        """The scope's current token (created on first use); None when Redis is unreachable."""
        key = f"{self._namespace}:gen:{scope}"
        try:
            token = await self._redis.get(key)
            if token is None:
                await self._redis.set(key, uuid.uuid4().hex, nx=True)
                token = await self._redis.get(key)
        except RedisError:
            log.warning("cache_unavailable", namespace=self._namespace)
            return None
        return token.decode() if isinstance(token, bytes) else token

    async def get(self, scope: str, generation: str, key: str) -> bytes | None:
        local_key = (scope, generation, key)
        value = self._local.get(local_key)
        if value is not None:
            self._local.move_to_end(local_key)
            return value
        try:
            value = await self._redis.get(self._redis_key(scope, generation, key))
        except RedisError:
            return None
        if value is not None:
            self._remember(local_key, value)
        return value

    async def put(self, scope: str, generation: str, key: str, value: bytes) -> None:
        self._remember((scope, generation, key), value)
        try:
            await self._redis.set(self._redis_key(scope, generation, key), value, ex=_TTL_SECONDS)
        except RedisError:
            log.warning("cache_write_failed", namespace=self._namespace)

    async def invalidate(self, scope: str, attempts: int = 3) -> None:
        """Starts a new generation. Raises RedisError if Redis cannot take it after `attempts`
        tries: callers must not report the change as done while replicas could still serve the
        old entries."""
        self.forget(scope)
        for attempt in range(1, attempts + 1):
            try:
                await self._redis.set(f"{self._namespace}:gen:{scope}", uuid.uuid4().hex)
                return
            except RedisError:
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.05 * attempt)

    async def drop(self, scope: str) -> int:
        """Deletes a scope that is gone for good (a deleted project): its token and its entries,
        here and in Redis; returns how many Redis keys went. Raises RedisError when Redis is
        unreachable, so the caller retries. Idempotent."""
        self.forget(scope)
        pattern = f"{self._namespace}:v:{_glob_literal(scope)}:*"
        deleted = await self._redis.delete(f"{self._namespace}:gen:{scope}")
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 500:
                deleted += await self._redis.delete(*batch)
                batch = []
        if batch:
            deleted += await self._redis.delete(*batch)
        return int(deleted)

    def forget(self, scope: str) -> None:
        """Drops this replica's local entries of a scope (on a change event from any replica)."""
        for local_key in [k for k in self._local if k[0] == scope]:
            del self._local[local_key]

    def _remember(self, local_key: tuple[str, str, str], value: bytes) -> None:
        self._local[local_key] = value
        if len(self._local) > self._max_local:
            self._local.popitem(last=False)

    def _redis_key(self, scope: str, generation: str, key: str) -> str:
        return f"{self._namespace}:v:{scope}:{generation}:{key}"


def _glob_literal(text: str) -> str:
    """`text` matched literally inside a Redis MATCH pattern (scopes may hold `*`, `?`, `[`)."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)

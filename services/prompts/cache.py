"""Resolved prompts, cached in-process and in Redis, and provably fresh.

Every entry is filed under its project's current *generation*, a random token in Redis. A write
replaces the token after its transaction commits and before it is answered; every read fetches the
token first. So once a change has been answered, no replica can serve an entry made before it:
the old entries are simply never looked up again (they expire). One token per project, not per
name, because composed prompts embed other names. Without Redis the cache steps aside and reads
go to PostgreSQL, which is fresh by definition.
"""

import uuid
from collections import OrderedDict

import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

log = structlog.get_logger()

_TTL_SECONDS = 3600


class PromptCache:
    def __init__(self, client: redis.Redis, max_local_entries: int = 10_000) -> None:
        self._redis = client
        self._local: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._max_local = max_local_entries

    async def generation(self, project_id: str) -> str | None:
        """The project's current token (created on first use); None when Redis is unreachable."""
        key = f"prompts:gen:{project_id}"
        try:
            token = await self._redis.get(key)
            if token is None:
                await self._redis.set(key, uuid.uuid4().hex, nx=True)
                token = await self._redis.get(key)
        except RedisError:
            log.warning("prompt_cache_unavailable")
            return None
        return token.decode() if isinstance(token, bytes) else token

    async def get(self, project_id: str, generation: str, key: str) -> bytes | None:
        local_key = (project_id, generation, key)
        value = self._local.get(local_key)
        if value is not None:
            self._local.move_to_end(local_key)
            return value
        try:
            value = await self._redis.get(self._redis_key(project_id, generation, key))
        except RedisError:
            return None
        if value is not None:
            self._remember(local_key, value)
        return value

    async def put(self, project_id: str, generation: str, key: str, value: bytes) -> None:
        self._remember((project_id, generation, key), value)
        try:
            await self._redis.set(
                self._redis_key(project_id, generation, key), value, ex=_TTL_SECONDS
            )
        except RedisError:
            log.warning("prompt_cache_write_failed")

    async def invalidate(self, project_id: str) -> None:
        """Starts a new generation. Raises RedisError if Redis cannot take it: callers must not
        report the change as done while replicas could still serve the old entries."""
        self.forget(project_id)
        await self._redis.set(f"prompts:gen:{project_id}", uuid.uuid4().hex)

    def forget(self, project_id: str) -> None:
        """Drops this replica's local entries of a project (on a change event from any replica)."""
        for local_key in [k for k in self._local if k[0] == project_id]:
            del self._local[local_key]

    def _remember(self, local_key: tuple[str, str, str], value: bytes) -> None:
        self._local[local_key] = value
        if len(self._local) > self._max_local:
            self._local.popitem(last=False)

    @staticmethod
    def _redis_key(project_id: str, generation: str, key: str) -> str:
        return f"prompts:v:{project_id}:{generation}:{key}"

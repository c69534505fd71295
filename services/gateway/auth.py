"""API-key authentication: the Authorization header resolved to a project scope.

Basic `public:secret` finds the key by the hash of its secret (Langfuse does the same; a mismatched
public key is tolerated). Bearer `public` alone grants score creation only. Results are cached
in-process for a short time, so a burst of SDK requests costs one database lookup. Successes and
failures live in separate bounded caches: a flood of made-up credentials fills only the failure
cache (and costs one lookup per distinct header every few seconds), never evicting a valid key.

Revocation (a deleted key or project) must hold at once on every replica, so cached successes are
filed under a *revocation generation*, a token in Redis that every revocation replaces after its
database change: each request reads the token (one Redis GET beside the rate limit's call) and a
success cached under an older one is resolved again. Without Redis the success cache steps aside
and every request is resolved in PostgreSQL, which is fresh by definition.
"""

import asyncio
import base64
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from libs.common.gencache import GenerationCache
from libs.common.scope import AccessLevel, ProjectScope
from services.gateway.errors import ApiError
from services.gateway.keys import hash_secret
from services.gateway.store import ApiKey, KeyScope, ProjectStore

log = structlog.get_logger()

_HINT = ". Confirm that you've configured the correct host."
ORG_KEY_MESSAGE = "Project ID not found for API token. Are you using an organization key?"
PROJECT_KEY_MESSAGE = "Invalid API key. Organization-scoped API key required for this operation."
# The one scope of the revocation generation: any revocation renews every replica's cache.
_REVOCATION_SCOPE = "keys"
# A failed lookup is cached briefly too, so retries of a bad credential cannot flood the database.
_NEGATIVE_CACHE_SECONDS = 5.0
_MAX_CACHED = 10_000

V = TypeVar("V")


class ExpiringLru(Generic[V]):
    """At most `size` entries, each valid until its deadline; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: V, until: float) -> None:
        self._entries[key] = (until, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


class CoalescedRead(Generic[V]):
    """One read for every caller that asks before it is sent: under load, concurrent requests
    share a Redis round trip instead of each paying one. A caller never joins a read that was
    sent before it asked, so each still sees a value read after it arrived (what makes a
    revocation answered before a request visible to that request)."""

    def __init__(self, read: Callable[[], Awaitable[V]]) -> None:
        self._read = read
        self._pending: asyncio.Future[V] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self) -> V:
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._send(self._pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Shielded: a caller that goes away does not cancel the others' read.
        return await asyncio.shield(self._pending)

    async def _send(self, result: asyncio.Future[V]) -> None:
        self._pending = None  # whoever asks from now on needs a read sent after this one
        try:
            result.set_result(await self._read())
        except Exception as exc:
            result.set_exception(exc)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a project key (Basic), a public key alone (Bearer) or an org key."""

    key: ApiKey
    access: AccessLevel

    def project_scope(self, *, scores_only: bool = False) -> ProjectScope:
        """The scope for a project route; `scores_only` routes also accept a Bearer public key."""
        if self.key.scope is KeyScope.ORGANIZATION or self.key.project_id is None:
            raise ApiError(403, ORG_KEY_MESSAGE)
        if self.access is AccessLevel.SCORES and not scores_only:
            raise ApiError(401, "Access Scope Denied" + _HINT)
        return ProjectScope(self.key.project_id, self.access, self.key.retention_days)

    def org_id(self) -> str:
        """The organization of a management route: organization keys only."""
        if self.key.scope is not KeyScope.ORGANIZATION or self.access is not AccessLevel.PROJECT:
            raise ApiError(403, PROJECT_KEY_MESSAGE)
        return self.key.org_id


class Authenticator:
    def __init__(
        self,
        store: ProjectStore,
        salt: str,
        cache_seconds: float,
        max_cached: int = _MAX_CACHED,
        revocations: GenerationCache | None = None,
    ) -> None:
        """`revocations` None: no other replica can revoke keys (a single process, unit tests)."""
        self._store = store
        self.salt = salt
        self._cache_seconds = cache_seconds
        self._revocations = revocations
        self._reads: CoalescedRead[str | None] = CoalescedRead(self._read_generation)
        self._max_cached = max_cached
        # Successes with the revocation generation they were resolved under.
        self.successes: ExpiringLru[tuple[str, Principal]] = ExpiringLru(max_cached)
        self.failures: ExpiringLru[ApiError] = ExpiringLru(max_cached)

    async def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise ApiError(401, "No authorization header" + _HINT)
        cache_key = hashlib.sha256(header.encode()).hexdigest()
        generation = await self._generation()
        now = time.monotonic()
        cached = self.successes.get(cache_key, now)
        if cached is not None and generation is not None and cached[0] == generation:
            return cached[1]
        failure = self.failures.get(cache_key, now)
        if failure is not None:
            raise failure
        result = await self._resolve(header)
        if isinstance(result, ApiError):
            self.failures.put(cache_key, result, now + _NEGATIVE_CACHE_SECONDS)
            raise result
        if generation is not None:
            self.successes.put(cache_key, (generation, result), now + self._cache_seconds)
        return result

    async def revoked(self) -> None:
        """Call after a key or project left the database and before answering: no replica
        accepts a cached success from before. Raises RedisError when Redis cannot take the new
        generation (the caller answers 503; a retry renews it)."""
        if self._revocations is not None:
            await self._revocations.invalidate(_REVOCATION_SCOPE)
        self.successes = ExpiringLru(self._max_cached)

    async def _generation(self) -> str | None:
        """The current revocation generation; "" without a revocation source; None when Redis
        cannot tell (then nothing cached is trusted)."""
        if self._revocations is None:
            return ""
        return await self._reads.read()

    async def _read_generation(self) -> str | None:
        assert self._revocations is not None
        return await self._revocations.generation(_REVOCATION_SCOPE)

    async def _resolve(self, header: str) -> Principal | ApiError:
        kind, _, credentials = header.strip().partition(" ")
        kind = kind.lower()
        credentials = credentials.strip()
        if kind == "basic":
            return await self._basic(credentials)
        if kind == "bearer" and credentials:
            key = await self._store.key_by_public_key(credentials)
            if key is None or key.scope is KeyScope.ORGANIZATION:
                return ApiError(401, "Invalid public key" + _HINT)
            return Principal(key, AccessLevel.SCORES)
        return ApiError(401, "Invalid authorization header" + _HINT)

    async def _basic(self, credentials: str) -> Principal | ApiError:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        # binascii.Error and UnicodeDecodeError, and the ValueError of non-ASCII input.
        except ValueError:
            return ApiError(401, "Invalid authorization header" + _HINT)
        public_key, sep, secret_key = decoded.partition(":")
        if not sep or not public_key or not secret_key:
            return ApiError(401, "Invalid authorization header" + _HINT)
        key = await self._store.key_by_secret_hash(hash_secret(secret_key, self.salt))
        if key is None:
            return ApiError(401, "Invalid credentials" + _HINT)
        if key.public_key != public_key:
            log.warning("public_key_mismatch", given=public_key, stored=key.public_key)
        return Principal(key, AccessLevel.PROJECT)

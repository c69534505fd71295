"""API-key authentication: the Authorization header resolved to a project scope.

Basic `public:secret` finds the key by the hash of its secret (Langfuse does the same; a mismatched
public key is tolerated). Bearer `public` alone grants score creation only. Results are cached
in-process for a short time, so a burst of SDK requests costs one database lookup.
"""

import base64
import binascii
import hashlib
import time
from dataclasses import dataclass

import structlog

from libs.common.scope import AccessLevel, ProjectScope
from services.gateway.errors import ApiError
from services.gateway.keys import hash_secret
from services.gateway.store import ApiKey, KeyScope, ProjectStore

log = structlog.get_logger()

_HINT = ". Confirm that you've configured the correct host."
ORG_KEY_MESSAGE = "Project ID not found for API token. Are you using an organization key?"
# A failed lookup is cached briefly too, so a flood of bad credentials cannot flood the database.
_NEGATIVE_CACHE_SECONDS = 5.0
_MAX_CACHED = 10_000


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
        return ProjectScope(self.key.project_id, self.access)


class Authenticator:
    def __init__(self, store: ProjectStore, salt: str, cache_seconds: float) -> None:
        self._store = store
        self._salt = salt
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | ApiError]] = {}

    async def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise ApiError(401, "No authorization header" + _HINT)
        cache_key = hashlib.sha256(header.encode()).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(cache_key)
        if cached is None or cached[0] < now:
            result = await self._resolve(header)
            ttl = _NEGATIVE_CACHE_SECONDS if isinstance(result, ApiError) else self._cache_seconds
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            cached = (now + ttl, result)
            self._cache[cache_key] = cached
        if isinstance(cached[1], ApiError):
            raise cached[1]
        return cached[1]

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
        except (binascii.Error, UnicodeDecodeError):
            return ApiError(401, "Invalid authorization header" + _HINT)
        public_key, sep, secret_key = decoded.partition(":")
        if not sep or not public_key or not secret_key:
            return ApiError(401, "Invalid authorization header" + _HINT)
        key = await self._store.key_by_secret_hash(hash_secret(secret_key, self._salt))
        if key is None:
            return ApiError(401, "Invalid credentials" + _HINT)
        if key.public_key != public_key:
            log.warning("public_key_mismatch", given=public_key, stored=key.public_key)
        return Principal(key, AccessLevel.PROJECT)

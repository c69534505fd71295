"""Per-project rate limits: a token bucket per project and kind of route, in Redis, so every
gateway replica draws from the same buckets.

A bucket holds up to `burst` tokens and refills at `per_second`; each request takes one. The
refill and the take happen in one Lua script on Redis's own clock, so concurrent requests on any
replica never both take the last token. Ingestion routes (/ingestion, /otel, POST /scores) have
their own bucket, every other authenticated route shares the second one, so a heavy reader cannot
starve a project's ingestion. A request over its limit gets 429 with `Retry-After`. Without Redis
the limit steps aside (fail open): an outage of the limiter's store must not stop the API.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as redis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.config import GatewayConfig
from services.gateway.errors import error_response

log = structlog.get_logger()

# A limiter's Redis that does not answer at once is treated as down: requests wait this long at
# most (and are not retried) before going through unlimited.
REDIS_TIMEOUT_SECONDS = 0.25

# KEYS[1]: the bucket; ARGV: per second, burst. Returns {1, "0"} when a token was taken, else
# {0, seconds until one is available} (a string: Redis truncates Lua numbers to integers).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
if taken == 1 then
  return {1, '0'}
end
return {0, tostring((1 - tokens) / rate)}
"""


def connect(url: str) -> redis.Redis:
    """The limiter's own client: short timeouts and no retries (redis-py's default retries would
    hold every request for seconds while Redis is down)."""
    return redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


class Bucket(StrEnum):
    INGESTION = "ingestion"
    API = "api"


@dataclass(frozen=True, slots=True)
class Limit:
    """`per_second` of 0 turns the limit off."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.enabled and self.burst < 1:
            raise ValueError("a rate limit's burst must be at least 1")

    @property
    def enabled(self) -> bool:
        return self.per_second > 0


def limits(cfg: GatewayConfig) -> dict[Bucket, Limit]:
    return {
        Bucket.INGESTION: Limit(
            cfg.rate_limit_ingestion_per_second, cfg.rate_limit_ingestion_burst
        ),
        Bucket.API: Limit(cfg.rate_limit_api_per_second, cfg.rate_limit_api_burst),
    }


def bucket_of(request: Request) -> Bucket:
    path = request.url.path
    if path == "/api/public/ingestion" or path.startswith("/api/public/otel/"):
        return Bucket.INGESTION
    if path == "/api/public/scores" and request.method == "POST":
        return Bucket.INGESTION
    return Bucket.API


def too_many_requests(retry_after: int) -> Response:
    response = error_response(429, "Rate limit exceeded")
    response.headers["Retry-After"] = str(retry_after)
    return response


class RateLimiter:
    """Takes a token from a project's bucket per request; a bucket without a limit is free."""

    def __init__(
        self,
        client: redis.Redis,
        limits: Mapping[Bucket, Limit],
        namespace: str = "gateway.ratelimit",
    ) -> None:
        self._redis = client
        self._take = client.register_script(_TAKE)
        self._limits = dict(limits)
        self._namespace = namespace

    async def forget(self, project_id: str) -> None:
        """Deletes a deleted project's buckets (they would expire on their own within seconds).
        Raises RedisError when Redis is unreachable, so the caller retries."""
        await self._redis.delete(*(f"{self._namespace}:{b.value}:{project_id}" for b in Bucket))

    async def retry_after(self, project_id: str, bucket: Bucket) -> int | None:
        """None when the project may make this request now; otherwise the whole seconds (≥ 1)
        until it may."""
        limit = self._limits.get(bucket)
        if limit is None or not limit.enabled:
            return None
        key = f"{self._namespace}:{bucket.value}:{project_id}"
        try:
            taken, wait = await self._take(keys=[key], args=[limit.per_second, limit.burst])
        except RedisError as exc:
            log.warning("rate_limit_unavailable", error=str(exc))
            return None
        if int(taken):
            return None
        return max(1, math.ceil(float(wait)))

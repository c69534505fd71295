"""Which failures belong to the infrastructure rather than to the data.

A consumer retries a transient failure (a broker, S3, PostgreSQL, ClickHouse or Redis that cannot
be reached or answers "try later") without limit, and dead-letters a record whose handling fails
for any other reason. Retrying a data error forever would block every project behind one bad
record; dead-lettering an outage would empty the topic into its DLQ, so the line is drawn here,
once. A service with failures of its own to add passes `lambda exc: is_transient(exc) or ...`.
"""

import asyncpg
import botocore.exceptions
import clickhouse_driver.errors
import redis.exceptions
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from libs.common.errors import Unavailable

_TRANSIENT: tuple[type[BaseException], ...] = (
    # ConnectionError (refused, reset), TimeoutError (also asyncio's) and socket errors.
    OSError,
    KafkaConnectionError,
    KafkaTimeoutError,
    botocore.exceptions.ConnectionError,  # EndpointConnectionError, connect timeouts
    botocore.exceptions.HTTPClientError,  # ConnectionClosedError, ReadTimeoutError
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    clickhouse_driver.errors.NetworkError,
    clickhouse_driver.errors.SocketTimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # A dependency of ours said it is unavailable.
    Unavailable,
)


def is_transient(exc: BaseException) -> bool:
    """True for an infrastructure failure, looking through `raise ... from` causes and the
    members of exception groups (a TaskGroup's), so wrapping an outage never hides it."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 16:
        if isinstance(current, BaseExceptionGroup):
            return any(is_transient(member) for member in current.exceptions)
        if _is_transient_itself(current):
            return True
        current = current.__cause__
        seen += 1
    return False


def _is_transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    if isinstance(exc, botocore.exceptions.ClientError):
        # An answer, but "later": throttling or a server error (e.g. MinIO with disks offline).
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return (
            status >= 500
            or status == 429
            or exc.response.get("Error", {}).get("Code")
            in (
                "SlowDown",
                "RequestTimeout",
            )
        )
    return False

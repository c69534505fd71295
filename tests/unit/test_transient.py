"""What a consumer waits out (an outage) and what it dead-letters (everything else)."""

import asyncpg
import botocore.exceptions
import clickhouse_driver.errors
import pytest
import redis.exceptions
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from libs.common.errors import InvalidArgument, Unavailable
from libs.common.transient import is_transient
from services.query.consumer import is_transient_for_writer


def s3_error(status: int, code: str) -> botocore.exceptions.ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, "ListObjectsV2")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("refused"),
        ConnectionResetError("reset"),
        TimeoutError(),
        OSError("network unreachable"),
        KafkaConnectionError("broker down"),
        KafkaTimeoutError(),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3"),
        botocore.exceptions.ConnectionClosedError(endpoint_url="http://s3"),
        s3_error(503, "SlowDown"),
        s3_error(500, "InternalError"),
        asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
        asyncpg.exceptions.CannotConnectNowError("starting"),
        asyncpg.exceptions.TooManyConnectionsError("full"),
        clickhouse_driver.errors.NetworkError("down"),
        clickhouse_driver.errors.SocketTimeoutError("slow"),
        redis.exceptions.ConnectionError("down"),
        Unavailable("evals unavailable"),
    ],
    ids=repr,
)
def test_outages_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("cost out of range"),
        RuntimeError("Code: 69. DB::Exception: Decimal value is too big"),
        KeyError("model"),
        s3_error(400, "XMinioInvalidObjectName"),
        asyncpg.exceptions.DataError("invalid input"),
        MessageSizeTooLargeError(),
        InvalidArgument("bad"),
    ],
    ids=repr,
)
def test_data_errors_are_not(error: BaseException) -> None:
    assert not is_transient(error)


def test_an_outage_wrapped_in_another_error_or_a_group_is_still_one() -> None:
    try:
        try:
            raise ConnectionRefusedError("store down")
        except ConnectionRefusedError as cause:
            raise RuntimeError("write failed") from cause
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
        assert is_transient(ExceptionGroup("tasks", [ValueError("x"), wrapped]))
    # An outage merely handled before the error (context, not cause) does not count.
    try:
        try:
            raise ConnectionRefusedError("earlier")
        except ConnectionRefusedError:
            raise ValueError("bad row") from None
    except ValueError as unrelated:
        assert not is_transient(unrelated)


def test_the_writer_also_waits_out_clickhouse_saying_not_now() -> None:
    assert is_transient_for_writer(RuntimeError("Code: 241. DB::Exception: Memory limit exceeded"))
    assert is_transient_for_writer(ConnectionRefusedError())
    assert not is_transient_for_writer(RuntimeError("Code: 69. DB::Exception: too big"))
    # 252 is also "too many partitions in one insert": the rows' doing.
    assert not is_transient_for_writer(RuntimeError("Code: 252. DB::Exception: Too many parts"))

"""What datasets, items and runs share: reading the fields of a public request body (every check
raises InvalidArgument naming the field, Langfuse's 400) and printing stored values in the public
documents (times as Langfuse prints them, JSON columns read as text)."""

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from libs.common.errors import InvalidArgument
from libs.common.gen.obs.common.v1 import common_pb2

# Langfuse bounds no names; we refuse absurd ones before they reach an index.
NAME_MAX_LENGTH = 1000
# Values in an index (names, ids): well inside PostgreSQL's btree entry limit with the other
# columns of the index.
INDEXED_MAX_BYTES = 2000
# Item ids are project-unique and at most 255 characters (Langfuse's CreateDatasetItemRequest).
ID_MAX_LENGTH = 255


def invalid(reason: str) -> InvalidArgument:
    return InvalidArgument(f"Invalid request data: {reason}")


def text(value: Any, field: str, *, max_length: int = NAME_MAX_LENGTH) -> str:
    """A required, non-empty string without NUL (PostgreSQL text cannot hold it)."""
    if not isinstance(value, str) or not value:
        raise invalid(f"{field} must be a non-empty string")
    return checked_text(value, field, max_length)


def optional_text(
    value: Any, field: str, *, max_length: int | None = NAME_MAX_LENGTH
) -> str | None:
    """A string or null (absent); `max_length` None: any length."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{field} must be a string")
    return checked_text(value, field, max_length)


def checked_text(value: str, field: str, max_length: int | None = NAME_MAX_LENGTH) -> str:
    if max_length is not None and len(value) > max_length:
        raise invalid(f"{field} must be at most {max_length} characters")
    if "\x00" in value:
        raise invalid(f"{field} must not contain NUL characters")
    return value


def indexable(value: str, field: str) -> str:
    """A value kept in a btree index, whose entries PostgreSQL limits to about 2,700 bytes: 1,000
    characters of four bytes each do not fit, so the bytes are bounded too (a 400, not a 500)."""
    if len(value.encode()) > INDEXED_MAX_BYTES:
        raise invalid(f"{field} must be at most {INDEXED_MAX_BYTES} bytes in UTF-8")
    return value


def findable(value: str) -> bool:
    """False for an id no row can have (PostgreSQL text cannot hold NUL): such a lookup is a plain
    404 instead of a store error."""
    return "\x00" not in value


def optional_time(value: Any, field: str) -> datetime | None:
    """An ISO 8601 timestamp or null; a time without offset is UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{field} must be an ISO 8601 timestamp")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise invalid(f"{field} must be an ISO 8601 timestamp") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def json_text(value: Any) -> str | None:
    """A JSON value for a jsonb parameter; null stays SQL NULL."""
    return None if value is None else orjson.dumps(value).decode()


def stored_json(stored: str | None) -> orjson.Fragment | None:
    """A jsonb column selected as text, embedded in a document as it is (no parse and re-dump)."""
    return None if stored is None else orjson.Fragment(stored)


def iso(moment: datetime) -> str:
    """Langfuse's time format: UTC, milliseconds, `Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def checked_page(request: common_pb2.PageRequest) -> tuple[int, int]:
    """A page request's page and limit (defaults 1 and 50), a 400 out of range."""
    page, limit = request.page or 1, request.limit or 50
    if page < 1 or not 1 <= limit <= 100:
        raise invalid("page must be >= 1 and limit between 1 and 100")
    return page, limit


def page_meta(page: int, limit: int, total: int) -> common_pb2.PageMeta:
    return common_pb2.PageMeta(
        page=page, limit=limit, total_items=total, total_pages=-(-total // limit)
    )


@contextlib.contextmanager
def nul_refused() -> Iterator[None]:
    """Turns PostgreSQL's refusal of `\\u0000` into the client's 400: in a jsonb value
    (UntranslatableCharacter) and in a text parameter, such as an id from the path
    (CharacterNotInRepertoire)."""
    try:
        yield
    except (asyncpg.UntranslatableCharacterError, asyncpg.CharacterNotInRepertoireError) as exc:
        raise invalid("values must not contain NUL characters (\\u0000)") from exc

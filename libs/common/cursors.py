"""The cursors of the public API's cursor lists (v2 observations, v3 scores, experiments and
experiment items): an offset as base64url JSON, opaque to clients. Anything else a client sends
as a cursor is a 400."""

import base64

import orjson

from libs.common.errors import InvalidArgument

# Both stores take offsets below 2^63 (ClickHouse UInt64, PostgreSQL bigint).
MAX_OFFSET = 2**63


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset})).decode()


def decode_cursor(cursor: str) -> int:
    """The offset of a cursor; 0 for none (the first page)."""
    if not cursor:
        return 0
    try:
        offset = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"]
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidArgument("Invalid cursor") from exc
    if not isinstance(offset, int) or not 0 <= offset < MAX_OFFSET:
        raise InvalidArgument("Invalid cursor")
    return offset

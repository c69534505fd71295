"""What the stores can hold, checked at the door: every value that reaches Kafka must be writable
into its ClickHouse column (services/query/migrations/clickhouse) and readable back as JSON. The
ingestion bodies, the OTLP mapping and the models API all check against these, so each range is
written once. Pure."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

# Entity and event ids (Langfuse: 1-800 characters); control characters break logs, S3 keys and
# the read routes' paths.
MAX_ID_LENGTH = 800
ID_PATTERN = r"^[^\x00-\x1f\x7f]+\Z"  # \Z: "$" would let one trailing \n through
_ID = re.compile(ID_PATTERN)

# DateTime64(3) columns, sorted by toDate() (a Date: 1970 to 2149): from the Unix epoch (where an
# OTLP span without times lands) to the end of 2099.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
EARLIEST_NS = 0
LATEST_NS = (int(LATEST.timestamp()) + 1) * 1_000_000_000 - 1
TIME_RANGE = "between 1970-01-01 and 2099-12-31"

# Decimal64(12) keeps 6 digits before the point: each cost, and their sum, below 1,000,000 USD.
MAX_COST = 1_000_000
# Map(String, UInt64) usage: each count and their sum (the stored `total`) below 2^63.
MAX_USAGE = 2**63
# Nullable(UInt16).
MAX_PROMPT_VERSION = 65_535
# JSON values (input, output, metadata, ...): read documents wrap them a few levels deeper, and
# orjson refuses to write more than 254 levels.
MAX_DEPTH = 100


Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
Time = Annotated[datetime, msgspec.Meta(tz=True)]  # checked against the range after decoding
PromptVersion = Annotated[int, msgspec.Meta(ge=0, le=MAX_PROMPT_VERSION)]

_MESSAGE = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def is_id(value: Any) -> bool:
    return (
        isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and _ID.match(value) is not None
    )


def time_in_range(moment: datetime) -> bool:
    return EARLIEST <= moment <= LATEST


def is_cost(value: Any) -> bool:
    """A non-negative number a Decimal64(12) column holds."""
    return _is_number(value) and 0 <= value < MAX_COST


def is_usage(value: Any) -> bool:
    """A non-negative count a UInt64 column holds, with room for the sum."""
    return _is_number(value) and 0 <= value < MAX_USAGE


def is_prompt_version(value: Any) -> bool:
    """What `PromptVersion` accepts: an int its Nullable(UInt16) column holds."""
    return type(value) is int and 0 <= value <= MAX_PROMPT_VERSION


def usage_fits(counts: dict[str, Any]) -> bool:
    """A usageDetails map of counts whose sum (the stored `total`) stays below 2^63 too."""
    return all(map(is_usage, counts.values())) and sum(counts.values()) < MAX_USAGE


def costs_fit(costs: dict[str, Any]) -> bool:
    """A costDetails map of costs whose sum (the stored total cost) stays below MAX_COST too."""
    return all(map(is_cost, costs.values())) and sum(costs.values()) < MAX_COST


def within_depth(value: Any, levels: int = MAX_DEPTH) -> bool:
    """False when `value` nests lists and objects more than `levels` deep. Walks containers
    only, and stops at the first one too deep."""
    if type(value) is dict:
        children: Any = value.values()
    elif type(value) is list:
        children = value
    else:
        return True
    if levels <= 0:
        return False
    for child in children:
        if (type(child) is dict or type(child) is list) and not within_depth(child, levels - 1):
            return False
    return True


def _is_number(value: Any) -> bool:
    # bool is an int in Python, not in JSON; NaN fails every comparison, so it fails the ranges.
    return type(value) is int or type(value) is float


def describe(error: msgspec.ValidationError, prefix: str = "") -> str:
    """msgspec's "Expected `int`, got `str` - at `$.body.x`" as "body.x: Expected int, got str":
    the field first, as Langfuse's messages name it."""
    match = _MESSAGE.match(str(error))
    what, path = (match["what"], match["path"] or "") if match else (str(error), "")
    missing = _MISSING.match(what)
    if missing:
        what, path = "required", f"{path}.{missing['field']}"
    if what.startswith("Expected `str` matching regex"):  # the one pattern: ids
        what = "must have no control characters"
    where = f"{prefix}{path}".strip(".")
    return f"{where}: {what.replace('`', '')}" if where else what.replace("`", "")

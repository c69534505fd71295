"""Model definitions: the project's own in PostgreSQL, the built-in defaults shipped as data.
Both use the default-prices entry shape (`modelName`, `matchPattern`, `pricingTiers`, ...), so
one Catalog prices with either, and one function shapes the public `Model` document."""

import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
import orjson
import structlog

from libs.common import limits
from libs.common.errors import Conflict, InvalidArgument
from libs.common.regex import compile_pattern
from services.query.pricing import DEFAULT_PRICES, Catalog, model_from_entry

log = structlog.get_logger()

_CACHE_SECONDS = 10.0
_USAGE_KEYS = {"inputPrice": "input", "outputPrice": "output", "totalPrice": "total"}


class ModelStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def entries(self, project_id: str) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT id, model_name, match_pattern, start_date, unit, tokenizer_id,"
            " tokenizer_config::text AS tokenizer_config, pricing_tiers::text AS pricing_tiers,"
            " created_at FROM models WHERE project_id = $1"
            " ORDER BY start_date DESC NULLS LAST, created_at DESC",
            project_id,
        )
        return [
            {
                "id": row["id"],
                "modelName": row["model_name"],
                "matchPattern": row["match_pattern"],
                "startDate": _iso(row["start_date"]),
                "unit": row["unit"],
                "tokenizerId": row["tokenizer_id"],
                "tokenizerConfig": orjson.loads(row["tokenizer_config"] or "null"),
                "pricingTiers": orjson.loads(row["pricing_tiers"]),
                "createdAt": _iso(row["created_at"]),
                "projectId": project_id,
            }
            for row in rows
        ]

    async def create(self, project_id: str, entry: dict[str, Any]) -> None:
        try:
            await self._pool.execute(
                "INSERT INTO models (id, project_id, model_name, match_pattern, start_date, unit,"
                " tokenizer_id, tokenizer_config, pricing_tiers)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb)",
                entry["id"],
                project_id,
                entry["modelName"],
                entry["matchPattern"],
                _parse_time(entry.get("startDate")),
                entry.get("unit"),
                entry.get("tokenizerId"),
                orjson.dumps(entry.get("tokenizerConfig")).decode(),
                orjson.dumps(entry["pricingTiers"]).decode(),
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(
                f"A model named {entry['modelName']!r} with this start date already exists"
            ) from exc

    async def delete_project(self, project_id: str) -> int:
        """Deletes every model of a deleted project; returns how many there were."""
        status = await self._pool.execute("DELETE FROM models WHERE project_id = $1", project_id)
        return int(status.rpartition(" ")[2])

    async def delete(self, project_id: str, model_id: str) -> bool:
        result = await self._pool.execute(
            "DELETE FROM models WHERE project_id = $1 AND id = $2", project_id, model_id
        )
        return result.endswith(" 1")


class ModelCatalogs:
    """Per project: its models before the defaults. Cached briefly; a change made through this
    process is seen at once, one made through another replica within the cache time."""

    def __init__(self, store: ModelStore) -> None:
        self._store = store
        self.default_entries: list[dict[str, Any]] = orjson.loads(DEFAULT_PRICES.read_bytes())
        self._defaults = [model_from_entry(entry) for entry in self.default_entries]
        self._cached: dict[str, tuple[float, Catalog]] = {}

    async def for_project(self, project_id: str) -> Catalog:
        cached = self._cached.get(project_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        own = []
        for entry in await self._store.entries(project_id):
            try:
                own.append(model_from_entry(entry))
            except (ValueError, KeyError, TypeError):
                # Stored before the models API checked what it accepts: priced by the defaults.
                log.warning("model_skipped", project_id=project_id, model_id=entry["id"])
        catalog = Catalog([*own, *self._defaults])
        self._cached[project_id] = (time.monotonic() + _CACHE_SECONDS, catalog)
        return catalog

    def forget(self, project_id: str) -> None:
        self._cached.pop(project_id, None)


Price = Annotated[float, msgspec.Meta(ge=0, lt=limits.MAX_COST)]  # USD per unit
Pattern = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
Operator = Literal["gt", "gte", "lt", "lte", "eq", "neq", "in"]
Unit = Literal["CHARACTERS", "TOKENS", "MILLISECONDS", "SECONDS", "IMAGES", "REQUESTS"]
TokenCount = Annotated[int, msgspec.Meta(ge=-1000, le=1000)]  # gpt-3.5-turbo-0301 has -1


class ConditionBody(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A tier condition: usage keys matching `usageDetailPattern` summed and compared with
    `value`, or a top-level model parameter or metadata `key` being `in` `values`."""

    operator: Operator
    usage_detail_pattern: Pattern | None = None
    value: float | None = None
    case_sensitive: bool | None = None  # false when a usage condition leaves it out
    source: Literal["model_parameters", "metadata"] | None = None
    key: str | None = None
    values: list[str] | None = None

    def __post_init__(self) -> None:
        if self.usage_detail_pattern is not None:
            if self.operator == "in" or self.value is None:
                raise ValueError("a usage condition needs operator gt|gte|lt|lte|eq|neq and value")
            self.case_sensitive = bool(self.case_sensitive)
            _compiles(self.usage_detail_pattern, "usageDetailPattern", self.case_sensitive)
        elif self.source is not None:
            if self.operator != "in" or self.key is None or self.values is None:
                raise ValueError("an attribute condition needs key, operator in and values")
        else:
            raise ValueError("a condition needs usageDetailPattern or source")


class TierBody(msgspec.Struct, rename="camel", kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    is_default: bool = False
    priority: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] = 0
    conditions: list[ConditionBody] = []
    prices: Annotated[dict[str, Price], msgspec.Meta(min_length=1)]


class TokenizerConfigBody(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """What the `openai` tokenizer reads (services/query/tokens.py); other keys are dropped."""

    tokenizer_model: str | None = None
    tokens_per_message: TokenCount | None = None
    tokens_per_name: TokenCount | None = None


class ModelBody(msgspec.Struct, rename="camel", kw_only=True):
    """The body of `POST /api/public/models`, with Langfuse's rules: flat prices or tiers, not
    both; exactly one default tier (priority 0, no conditions); unique tier names and
    priorities. Patterns must compile under RE2."""

    model_name: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    match_pattern: Pattern
    start_date: limits.Time | None = None
    unit: Unit | None = None
    input_price: Price | None = None
    output_price: Price | None = None
    total_price: Price | None = None
    pricing_tiers: list[TierBody] | None = None
    tokenizer_id: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    tokenizer_config: TokenizerConfigBody | None = None

    def __post_init__(self) -> None:
        _compiles(self.match_pattern, "matchPattern")
        if self.start_date is not None and not limits.time_in_range(self.start_date):
            raise ValueError(f"startDate must be {limits.TIME_RANGE}")
        flat = self.flat_prices()
        if not flat and self.pricing_tiers is None:
            raise ValueError(
                "give flat prices (inputPrice, outputPrice, totalPrice) or pricingTiers"
            )
        if flat and self.pricing_tiers:
            raise ValueError("give either flat prices or pricingTiers")
        if "total" in flat and ("input" in flat or "output" in flat):
            raise ValueError("totalPrice cannot go with inputPrice or outputPrice")
        if self.pricing_tiers is not None:
            _check_tiers(self.pricing_tiers)

    def flat_prices(self) -> dict[str, float]:
        given = {"input": self.input_price, "output": self.output_price, "total": self.total_price}
        return {usage: price for usage, price in given.items() if price is not None}


def new_entry(body: Any) -> dict[str, Any]:
    """A validated project model from the create body: flat prices become the default tier."""
    try:
        model = msgspec.convert(body, ModelBody)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"Invalid request data: {limits.describe(exc)}") from exc
    model_id = uuid.uuid4().hex
    tiers = model.pricing_tiers or [
        TierBody(name="Standard", is_default=True, priority=0, prices=model.flat_prices())
    ]
    return {
        "id": model_id,
        "modelName": model.model_name,
        "matchPattern": model.match_pattern,
        "startDate": _iso(model.start_date),
        "unit": model.unit,
        "tokenizerId": model.tokenizer_id,
        "tokenizerConfig": msgspec.to_builtins(model.tokenizer_config),
        "pricingTiers": [
            {"id": f"{model_id}_tier_{index}", **msgspec.to_builtins(tier)}
            for index, tier in enumerate(tiers)
        ],
        "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def model_document(entry: dict[str, Any]) -> dict[str, Any]:
    """The public `Model`: flat prices and `prices` come from the default tier."""
    tiers = entry.get("pricingTiers") or []
    default = next((t for t in tiers if t.get("isDefault")), {"prices": {}})
    prices = default.get("prices", {})
    return {
        "id": entry["id"],
        "modelName": entry["modelName"],
        "matchPattern": entry["matchPattern"],
        "startDate": entry.get("startDate"),
        "unit": entry.get("unit"),
        "inputPrice": prices.get("input"),
        "outputPrice": prices.get("output"),
        "totalPrice": prices.get("total"),
        "tokenizerId": entry.get("tokenizerId"),
        "tokenizerConfig": entry.get("tokenizerConfig"),
        "isLangfuseManaged": "projectId" not in entry,
        "createdAt": entry.get("createdAt"),
        "prices": {usage: {"price": value} for usage, value in prices.items()},
        "pricingTiers": tiers,
    }


def _check_tiers(tiers: list[TierBody]) -> None:
    defaults = [t for t in tiers if t.is_default]
    if len(defaults) != 1 or defaults[0].priority != 0 or defaults[0].conditions:
        raise ValueError("pricingTiers need exactly one default tier, priority 0, no conditions")
    if len({t.name for t in tiers}) != len(tiers) or len({t.priority for t in tiers}) != len(tiers):
        raise ValueError("tier names and priorities must be unique")


def _compiles(pattern: str, field: str, case_sensitive: bool = True) -> None:
    try:
        compile_pattern(pattern, case_sensitive)
    except ValueError as exc:
        raise ValueError(f"{field} is not a regex RE2 accepts: {exc}") from exc


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None

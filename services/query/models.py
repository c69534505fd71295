"""Model definitions: the project's own in PostgreSQL, the built-in defaults shipped as data.
Both use the default-prices entry shape (`modelName`, `matchPattern`, `pricingTiers`, ...), so
one Catalog prices with either, and one function shapes the public `Model` document."""

import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from libs.common.errors import Conflict, InvalidArgument
from services.query.pricing import DEFAULT_PRICES, Catalog, model_from_entry

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
        own = [model_from_entry(e) for e in await self._store.entries(project_id)]
        catalog = Catalog([*own, *self._defaults])
        self._cached[project_id] = (time.monotonic() + _CACHE_SECONDS, catalog)
        return catalog

    def forget(self, project_id: str) -> None:
        self._cached.pop(project_id, None)


def new_entry(body: Any) -> dict[str, Any]:
    """A validated project model from the create body: flat prices become the default tier."""
    if not isinstance(body, dict):
        raise InvalidArgument("Invalid request data: expected a JSON object")
    name, pattern = body.get("modelName"), body.get("matchPattern")
    if not isinstance(name, str) or not name or not isinstance(pattern, str) or not pattern:
        raise InvalidArgument("Invalid request data: modelName and matchPattern are required")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise InvalidArgument(f"Invalid request data: matchPattern is not a regex: {exc}") from exc
    flat = {key: body[field] for field, key in _USAGE_KEYS.items() if body.get(field) is not None}
    tiers = body.get("pricingTiers")
    if flat and tiers:
        raise InvalidArgument("Invalid request data: give either flat prices or pricingTiers")
    if "total" in flat and ("input" in flat or "output" in flat):
        raise InvalidArgument("Invalid request data: totalPrice cannot go with input/output prices")
    if not all(isinstance(v, int | float) and v >= 0 for v in flat.values()):
        raise InvalidArgument("Invalid request data: prices must be non-negative numbers")
    model_id = uuid.uuid4().hex
    if tiers is None:
        tiers = [{"name": "Standard", "isDefault": True, "priority": 0, "conditions": [],
                  "prices": flat}]  # fmt: skip
    _check_tiers(tiers)
    for index, tier in enumerate(tiers):
        tier.setdefault("id", f"{model_id}_tier_{index}")
    return {
        "id": model_id,
        "modelName": name,
        "matchPattern": pattern,
        "startDate": body.get("startDate"),
        "unit": body.get("unit"),
        "tokenizerId": body.get("tokenizerId"),
        "tokenizerConfig": body.get("tokenizerConfig"),
        "pricingTiers": tiers,
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


def _check_tiers(tiers: Any) -> None:
    if not isinstance(tiers, list) or not tiers or not all(isinstance(t, dict) for t in tiers):
        raise InvalidArgument("Invalid request data: pricingTiers must be a list of tiers")
    defaults = [t for t in tiers if t.get("isDefault")]
    if len(defaults) != 1 or defaults[0].get("priority", 0) != 0 or defaults[0].get("conditions"):
        raise InvalidArgument(
            "Invalid request data: exactly one default tier, priority 0, without conditions"
        )
    names = [t.get("name") for t in tiers]
    priorities = [t.get("priority", 0) for t in tiers]
    if len(set(names)) != len(names) or len(set(priorities)) != len(priorities):
        raise InvalidArgument("Invalid request data: tier names and priorities must be unique")
    for tier in tiers:
        prices = tier.get("prices")
        if not isinstance(prices, dict) or not prices:
            raise InvalidArgument("Invalid request data: every tier needs at least one price")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidArgument("Invalid request data: startDate must be ISO 8601") from exc

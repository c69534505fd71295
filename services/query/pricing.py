"""Model matching and cost, following Langfuse: the first model whose pattern matches the
observation's model name; its first non-default pricing tier whose conditions all hold, else the
default tier; client-given cost wins over usage × price. Patterns are projects' own regexes, so
they run on RE2 (linear time: `^(a+)+$` cannot stall the writer) and are compiled once. A cost
the column cannot hold is left out rather than written. Pure: the catalog is loaded once."""

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from libs.common import limits
from libs.common.regex import compile_pattern

log = structlog.get_logger()

DEFAULT_PRICES = Path(__file__).parent / "data" / "model-prices.json"
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
    "eq": operator.eq, "neq": operator.ne,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Condition:
    """Either usage keys matching `usage_pattern` summed and compared with `value`, or the
    top-level `key` of the model parameters or metadata (`source`) being one of `values`."""

    operator: str
    usage_pattern: Any = None  # a compiled RE2 pattern
    value: float = 0.0
    source: str = ""
    key: str = ""
    values: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    priority: int
    is_default: bool
    conditions: tuple[Condition, ...]
    prices: dict[str, float]


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    name: str
    pattern: Any  # a compiled RE2 pattern
    tiers: tuple[Tier, ...]  # in the order they are tried: by priority, the default one last
    tokenizer_id: str | None = None
    tokenizer_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Priced:
    usage_details: dict[str, int]  # what was priced: given, or counted by the tokenizer
    cost_details: dict[str, float]
    total_cost: float | None
    model_id: str | None
    tier_name: str | None


class Catalog:
    """Models searched in order (project models first when they exist); lookups are cached by
    model name, since one name repeats across most of a batch."""

    def __init__(self, models: list[Model]) -> None:
        self._models = models
        self._by_name: dict[str, Model | None] = {}

    @classmethod
    def defaults(cls, path: Path = DEFAULT_PRICES) -> "Catalog":
        return cls([model_from_entry(entry) for entry in orjson.loads(path.read_bytes())])

    def match(self, model_name: str) -> Model | None:
        if model_name not in self._by_name:
            self._by_name[model_name] = next(
                (m for m in self._models if m.pattern.search(model_name)), None
            )
        return self._by_name[model_name]


def price(
    model: Model | None,
    usage: dict[str, int],
    provided_cost: dict[str, float],
    model_parameters: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
) -> Priced:
    """Cost of `usage` with the matched model (`Catalog.match`), unless the client gave one."""
    model_id = model.id if model else None
    if provided_cost:
        cost = dict(provided_cost)
        if "total" not in cost and set(cost) <= {"input", "output"}:
            cost["total"] = cost.get("input", 0.0) + cost.get("output", 0.0)
        return Priced(usage, cost, cost.get("total"), model_id, None)
    if model is None or not usage:
        return Priced(usage, {}, None, model_id, None)
    tier = _tier(model, usage, model_parameters or {}, metadata or {})
    cost = {key: count * tier.prices[key] for key, count in usage.items() if key in tier.prices}
    if not cost:
        return Priced(usage, {}, None, model_id, tier.name)
    total = cost["total"] if "total" in cost else sum(cost.values())
    cost["total"] = total
    if max(cost.values()) >= limits.MAX_COST:  # a huge usage at a project's own prices
        log.warning("cost_out_of_range", model=model.name, tier=tier.name, total=total)
        return Priced(usage, {}, None, model_id, tier.name)
    return Priced(usage, cost, total, model_id, tier.name)


def _tier(
    model: Model, usage: dict[str, int], parameters: dict[str, Any], metadata: dict[str, Any]
) -> Tier:
    for tier in model.tiers:
        if tier.is_default or all(_holds(c, usage, parameters, metadata) for c in tier.conditions):
            return tier
    raise ValueError(f"model {model.name} has no default pricing tier")


def _holds(
    condition: Condition,
    usage: dict[str, int],
    parameters: dict[str, Any],
    metadata: dict[str, Any],
) -> bool:
    if condition.usage_pattern is not None:
        total = sum(count for key, count in usage.items() if condition.usage_pattern.search(key))
        compare = _COMPARE.get(condition.operator)
        return compare is not None and compare(total, condition.value)
    source = parameters if condition.source == "model_parameters" else metadata
    value = source.get(condition.key)
    return condition.operator == "in" and str(value) in condition.values


def model_from_entry(entry: dict[str, Any]) -> Model:
    """A model of the default-prices entry shape (shipped, or validated by the models API);
    ValueError, KeyError or TypeError for one that is not."""
    tiers = tuple(
        Tier(
            name=str(tier["name"]),
            priority=int(tier.get("priority", 0)),
            is_default=bool(tier.get("isDefault")),
            conditions=tuple(_condition(c) for c in tier.get("conditions") or ()),
            prices={k: float(v) for k, v in tier["prices"].items()},
        )
        for tier in entry["pricingTiers"]
    )
    tiers = tuple(sorted(tiers, key=lambda tier: (tier.is_default, tier.priority)))
    config = entry.get("tokenizerConfig")
    return Model(
        entry["id"], entry["modelName"], compile_pattern(entry["matchPattern"]), tiers,
        entry.get("tokenizerId"), config if isinstance(config, dict) else {},
    )  # fmt: skip


def _condition(condition: dict[str, Any]) -> Condition:
    if "usageDetailPattern" in condition:
        pattern = compile_pattern(
            condition["usageDetailPattern"], bool(condition.get("caseSensitive"))
        )
        return Condition(str(condition.get("operator")), pattern, float(condition["value"]))
    return Condition(
        "in" if condition.get("operator") == "in" else "",
        source=str(condition.get("source")),
        key=str(condition.get("key")),
        values=frozenset(str(v) for v in condition.get("values") or ()),
    )

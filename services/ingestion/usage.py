"""Usage and cost shapes of generation bodies, normalized to Langfuse's stored maps:
`usageDetails` {key: non-negative int} and `costDetails` {key: non-negative USD}. Entries that
are not counts or costs are dropped, as Langfuse drops them; counts or costs too large for their
columns (libs.common.limits) are refused with a ValueError naming them. Pure."""

from typing import Any

from libs.common import limits


def normalize_usage(
    usage: Any, usage_details: Any, cost_details: Any
) -> tuple[dict[str, int] | None, dict[str, float] | None]:
    """(usageDetails, costDetails) from the body's `usage` (legacy), `usageDetails` and
    `costDetails`; None where the body gave nothing (so a later update's absence never erases a
    value)."""
    counts: dict[str, int] | None = None
    costs: dict[str, float] | None = None
    if isinstance(usage, dict):
        counts, costs = _legacy(usage)
    if isinstance(usage_details, dict):
        counts = _details(usage_details)
    if isinstance(cost_details, dict):
        costs = {k: float(v) for k, v in cost_details.items() if _cost(v, f"costDetails.{k}")}
    if counts and not limits.usage_fits(counts):
        raise ValueError("usageDetails must sum to less than 2^63")
    if costs and not limits.costs_fit(costs):
        raise ValueError(f"costDetails must sum to less than {limits.MAX_COST:,} USD")
    return counts or None, costs or None


def _legacy(usage: dict[str, Any]) -> tuple[dict[str, int], dict[str, float]]:
    if "promptTokens" in usage or "completionTokens" in usage or "totalTokens" in usage:
        usage = {
            "input": usage.get("promptTokens"),
            "output": usage.get("completionTokens"),
            "total": usage.get("totalTokens"),
        }
    counts = {k: _count(usage.get(k), f"usage.{k}") for k in ("input", "output", "total")}
    result = {k: v for k, v in counts.items() if v is not None}
    if "total" not in result and ("input" in result or "output" in result):
        result["total"] = result.get("input", 0) + result.get("output", 0)
    costs = {
        key: float(usage[field])
        for key, field in (("input", "inputCost"), ("output", "outputCost"), ("total", "totalCost"))
        if _cost(usage.get(field), f"usage.{field}")
    }
    return result, costs


def _details(details: dict[str, Any]) -> dict[str, int]:
    if "prompt_tokens" in details or "completion_tokens" in details:
        return _openai(details, "prompt_tokens", "completion_tokens", "prompt_tokens_details",
                       "completion_tokens_details")  # fmt: skip
    if "input_tokens" in details and "output_tokens" in details:
        return _openai(details, "input_tokens", "output_tokens", "input_tokens_details",
                       "output_tokens_details")  # fmt: skip
    counts = {k: _count(v, f"usageDetails.{k}") for k, v in details.items()}
    return {k: v for k, v in counts.items() if v is not None}


def _openai(
    details: dict[str, Any], input_key: str, output_key: str, input_more: str, output_more: str
) -> dict[str, int]:
    """OpenAI usage: each detail becomes input_<k>/output_<k> and is subtracted from its side."""
    result: dict[str, int] = {}
    for side, key, more in (("input", input_key, input_more), ("output", output_key, output_more)):
        total = _count(details.get(key), f"usageDetails.{key}")
        extra: dict[str, Any] = details[more] if isinstance(details.get(more), dict) else {}
        for name, value in extra.items():
            count = _count(value, f"usageDetails.{more}.{name}")
            if count is not None:
                result[f"{side}_{name}"] = count
                if total is not None:
                    total = max(total - count, 0)
        if total is not None:
            result[side] = total
    total_tokens = _count(details.get("total_tokens"), "usageDetails.total_tokens")
    if total_tokens is not None:
        result["total"] = total_tokens
    return result


def _count(value: Any, field: str) -> int | None:
    """A count, or None for what is not one (dropped); ValueError past the column's range."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int | float) or not value >= 0:  # `not >=` also drops NaN
        return None
    if value >= limits.MAX_USAGE:
        raise ValueError(f"{field} must be less than 2^63")
    return int(value)


def _cost(value: Any, field: str) -> bool:
    """True for a cost to keep; False for what is not one (dropped); ValueError when too large."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        return False
    if value >= limits.MAX_COST:
        raise ValueError(f"{field} must be less than {limits.MAX_COST:,} USD")
    return True

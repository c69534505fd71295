"""Usage and cost shapes of generation bodies, normalized to Langfuse's stored maps:
`usageDetails` {key: non-negative int} and `costDetails` {key: non-negative USD}. Pure."""

from typing import Any


def normalize_usage(body: dict[str, Any]) -> tuple[dict[str, int] | None, dict[str, float] | None]:
    """(usageDetails, costDetails) from `usageDetails`, legacy `usage` and `costDetails`;
    None where the body gave nothing (so a later update's absence never erases a value)."""
    usage: dict[str, int] | None = None
    cost: dict[str, float] | None = None
    legacy = body.get("usage")
    if isinstance(legacy, dict):
        usage, cost = _legacy(legacy)
    details = body.get("usageDetails")
    if isinstance(details, dict):
        usage = _details(details)
    given_cost = body.get("costDetails")
    if isinstance(given_cost, dict):
        cost = {
            k: float(v)
            for k, v in given_cost.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
        }
    return usage or None, cost or None


def _legacy(usage: dict[str, Any]) -> tuple[dict[str, int], dict[str, float]]:
    if "promptTokens" in usage or "completionTokens" in usage or "totalTokens" in usage:
        usage = {
            "input": usage.get("promptTokens"),
            "output": usage.get("completionTokens"),
            "total": usage.get("totalTokens"),
        }
    counts = {k: _count(usage.get(k)) for k in ("input", "output", "total")}
    result = {k: v for k, v in counts.items() if v is not None}
    if "total" not in result and ("input" in result or "output" in result):
        result["total"] = result.get("input", 0) + result.get("output", 0)
    costs = {
        key: float(usage[field])
        for key, field in (("input", "inputCost"), ("output", "outputCost"), ("total", "totalCost"))
        if isinstance(usage.get(field), int | float) and usage[field] >= 0
    }
    return result, costs


def _details(details: dict[str, Any]) -> dict[str, int]:
    if "prompt_tokens" in details or "completion_tokens" in details:
        return _openai(details, "prompt_tokens", "completion_tokens", "prompt_tokens_details",
                       "completion_tokens_details")  # fmt: skip
    if "input_tokens" in details and "output_tokens" in details:
        return _openai(details, "input_tokens", "output_tokens", "input_tokens_details",
                       "output_tokens_details")  # fmt: skip
    counts = {k: _count(v) for k, v in details.items()}
    return {k: v for k, v in counts.items() if v is not None}


def _openai(
    details: dict[str, Any], input_key: str, output_key: str, input_more: str, output_more: str
) -> dict[str, int]:
    """OpenAI usage: each detail becomes input_<k>/output_<k> and is subtracted from its side."""
    result: dict[str, int] = {}
    for side, key, more in (("input", input_key, input_more), ("output", output_key, output_more)):
        total = _count(details.get(key))
        extra = details.get(more) if isinstance(details.get(more), dict) else {}
        for name, value in extra.items():
            count = _count(value)
            if count is not None:
                result[f"{side}_{name}"] = count
                if total is not None:
                    total = max(total - count, 0)
        if total is not None:
            result[side] = total
    total_tokens = _count(details.get("total_tokens"))
    if total_tokens is not None:
        result["total"] = total_tokens
    return result


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int | float) and value >= 0:
        return int(value)
    return None

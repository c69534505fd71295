from typing import Any

import pytest

from services.ingestion.usage import normalize_usage


@pytest.mark.parametrize(
    ("body", "usage", "cost"),
    [
        ({}, None, None),
        ({"usage": {"input": 3, "output": 4}}, {"input": 3, "output": 4, "total": 7}, None),
        (
            {"usage": {"promptTokens": 3, "completionTokens": 4, "totalTokens": 9}},
            {"input": 3, "output": 4, "total": 9},
            None,
        ),
        (
            {"usage": {"input": 1, "inputCost": 0.5, "totalCost": 0.7}},
            {"input": 1, "total": 1},
            {"input": 0.5, "total": 0.7},
        ),
        ({"usageDetails": {"input": "12", "bad": -1, "x": "y"}}, {"input": 12}, None),
        (
            {"usageDetails": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18,
                              "prompt_tokens_details": {"cached_tokens": 4},
                              "completion_tokens_details": {"reasoning_tokens": 3}}},
            {"input": 6, "input_cached_tokens": 4, "output": 5, "output_reasoning_tokens": 3,
             "total": 18},
            None,
        ),
        (
            {"usageDetails": {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12,
                              "input_tokens_details": {"cached_tokens": 1}}},
            {"input": 9, "input_cached_tokens": 1, "output": 2, "total": 12},
            None,
        ),
        ({"costDetails": {"input": 0.1, "neg": -1, "s": "1"}}, None, {"input": 0.1}),
    ],
)  # fmt: skip
def test_usage_and_cost_shapes(body: dict[str, Any], usage: Any, cost: Any) -> None:
    given = (body.get("usage"), body.get("usageDetails"), body.get("costDetails"))
    assert normalize_usage(*given) == (usage, cost)


@pytest.mark.parametrize(
    ("usage_details", "cost_details", "named"),
    [
        ({"input": 2**63}, None, "usageDetails.input"),
        ({"input": 2**62, "output": 2**62}, None, "sum"),
        ({"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": 1e30}}, None, "cached"),
        (None, {"input": 1_000_000}, "costDetails.input"),
        (None, {"input": 600_000, "output": 500_000}, "sum"),
    ],
)
def test_counts_and_costs_past_their_columns_are_refused(
    usage_details: Any, cost_details: Any, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        normalize_usage(None, usage_details, cost_details)

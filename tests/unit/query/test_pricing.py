import pytest

from services.query.pricing import Catalog, price

CATALOG = Catalog.defaults()


def test_usage_times_price_with_an_auto_total() -> None:
    usage = {"input": 1000, "output": 100, "total": 1100}
    priced = price(CATALOG.match("gpt-4o"), usage, {}, None, None)
    assert priced.cost_details == pytest.approx({"input": 0.0025, "output": 0.001, "total": 0.0035})
    assert priced.tier_name == "Standard" and priced.model_id is not None


def test_patterns_match_provider_prefixes_case_insensitively() -> None:
    assert CATALOG.match("OpenAI/GPT-4o") is not None
    assert CATALOG.match("gpt-4o-but-not-really") is None


def test_a_tier_condition_on_model_parameters_picks_its_prices() -> None:
    priced = price(CATALOG.match("gpt-4o"), {"input": 1000}, {}, {"service_tier": "priority"}, None)
    assert priced.tier_name == "Fast mode"
    assert priced.cost_details["input"] == pytest.approx(0.00425)


def test_client_cost_wins_over_prices() -> None:
    given_cost = {"input": 1.0, "output": 2.0}
    priced = price(CATALOG.match("gpt-4o"), {"input": 1000}, given_cost, None, None)
    assert priced.cost_details == {"input": 1.0, "output": 2.0, "total": 3.0}
    assert priced.total_cost == 3.0


def test_unknown_models_and_missing_usage_cost_nothing() -> None:
    assert price(CATALOG.match("my-own-model"), {"input": 5}, {}, None, None).total_cost is None
    assert price(CATALOG.match("gpt-4o"), {}, {}, None, None).cost_details == {}

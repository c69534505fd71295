"""The models API body: Langfuse's rules, the shapes pricing and token counting read, and
patterns RE2 compiles; anything else is a 400 naming the field and is never stored."""

from typing import Any

import pytest

from libs.common.errors import InvalidArgument
from services.query.models import ModelCatalogs, new_entry
from services.query.pricing import model_from_entry, price

DEFAULT_TIER = {"name": "Standard", "isDefault": True, "priority": 0, "conditions": [],
                "prices": {"input": 1e-6}}  # fmt: skip


def model(**fields: Any) -> dict[str, Any]:
    return {"modelName": "mine", "matchPattern": "(?i)^mine$", **fields}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"matchPattern": "x", "inputPrice": 1}, "modelName: required"),
        (model(), "give flat prices"),
        (model(inputPrice="1"), "inputPrice: Expected float"),
        (model(inputPrice=-1), "inputPrice: Expected float >= 0"),
        (model(inputPrice=1e6), "inputPrice: Expected float < 1000000"),
        (model(totalPrice=1, inputPrice=1), "totalPrice cannot go with"),
        (model(inputPrice=1, pricingTiers=[DEFAULT_TIER]), "either flat prices or pricingTiers"),
        (model(matchPattern="("), "matchPattern is not a regex RE2 accepts: missing )"),
        (model(matchPattern="(a)\\1", inputPrice=1), "matchPattern is not a regex RE2 accepts"),
        (model(inputPrice=1, startDate="0999-01-01T00:00:00Z"), "startDate must be between"),
        (model(inputPrice=1, unit="PARSECS"), "unit: Invalid enum value"),
        (model(pricingTiers=[{**DEFAULT_TIER, "name": None}]), "pricingTiers[0].name"),
        (model(pricingTiers=[{"isDefault": True, "prices": {"input": 1}}]),
         "pricingTiers[0].name: required"),
        (model(pricingTiers=[{**DEFAULT_TIER, "prices": {"input": "1"}}]), "Expected float"),
        (model(pricingTiers=[{**DEFAULT_TIER, "prices": {}}]), "prices: Expected object of length"),
        (model(pricingTiers=[{**DEFAULT_TIER, "isDefault": False}]), "exactly one default tier"),
        (model(pricingTiers=[DEFAULT_TIER, {**DEFAULT_TIER, "isDefault": False, "priority": 1,
                                            "conditions": []}]), "names and priorities"),
        (model(pricingTiers=[DEFAULT_TIER, {**DEFAULT_TIER, "name": "big", "isDefault": False,
                                            "priority": 1, "conditions": [
                                                {"usageDetailPattern": "(?<=x)", "operator": "gt",
                                                 "value": 1}]}]), "usageDetailPattern is not a"),
        (model(pricingTiers=[DEFAULT_TIER, {**DEFAULT_TIER, "name": "big", "isDefault": False,
                                            "priority": 1, "conditions": [
                                                {"usageDetailPattern": "x", "operator": "in",
                                                 "value": 1}]}]), "a usage condition needs"),
        (model(inputPrice=1, tokenizerConfig="gpt-4o"), "tokenizerConfig: Expected object"),
        (model(inputPrice=1, tokenizerConfig={"tokensPerMessage": "3"}),
         "tokenizerConfig.tokensPerMessage: Expected int"),
        ("a model", "Expected object, got str"),
    ],
)  # fmt: skip
def test_bad_definitions_are_refused_naming_the_field(body: Any, error: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        new_entry(body)
    assert str(raised.value).startswith("Invalid request data: ")
    assert error in str(raised.value)


def test_a_created_model_prices_with_its_tiers_and_tokenizer() -> None:
    big = {
        "name": "big",
        "isDefault": False,
        "priority": 1,
        "prices": {"input": 2e-6},
        "conditions": [{"usageDetailPattern": "^INPUT", "operator": "gt", "value": 100}],
    }
    entry = new_entry(model(
        pricingTiers=[DEFAULT_TIER, big], tokenizerId="openai",
        tokenizerConfig={"tokenizerModel": "gpt-4o", "tokensPerMessage": 3, "extra": 1},
    ))  # fmt: skip
    assert entry["tokenizerConfig"] == {"tokenizerModel": "gpt-4o", "tokensPerMessage": 3}
    assert entry["pricingTiers"][1]["conditions"][0]["caseSensitive"] is False
    mine = model_from_entry(entry)
    assert mine.pattern.search("MINE") and price(
        mine, {"input": 101}, {}, None, None
    ).tier_name == ("big")


def test_a_catastrophic_pattern_matches_in_linear_time() -> None:
    entry = new_entry(model(matchPattern="^(a+)+$", inputPrice=1))
    assert model_from_entry(entry).pattern.search("a" * 100_000 + "!") is None


def test_a_cost_the_column_cannot_hold_is_left_out() -> None:
    mine = model_from_entry(new_entry(model(inputPrice=999_999)))
    priced = price(mine, {"input": 2}, {}, None, None)
    assert (priced.cost_details, priced.total_cost) == ({}, None)


class StoredModels:
    """A project's stored rows, as ModelStore.entries returns them."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self._entries = entries

    async def entries(self, project_id: str) -> list[dict[str, Any]]:
        return self._entries


async def test_models_stored_before_these_checks_are_skipped_not_fatal() -> None:
    broken = {**new_entry(model(inputPrice=1)), "matchPattern": "(a)\\1"}
    nameless = new_entry(model(inputPrice=1))
    del nameless["pricingTiers"][0]["name"]
    good = new_entry(model(modelName="good", matchPattern="^good$", inputPrice=1))
    catalogs = ModelCatalogs(StoredModels([broken, nameless, good]))  # type: ignore[arg-type]
    catalog = await catalogs.for_project("proj")
    assert catalog.match("good") is not None and catalog.match("gpt-4o") is not None

"""Score config bodies: what a create or an update may say for each data type."""

from typing import Any

import pytest

from libs.common.errors import InvalidArgument
from services.evals.score_configs import (
    BOOLEAN_CATEGORIES,
    ConfigFields,
    new_config,
    updated_config,
)

GOOD_BAD = [{"label": "good", "value": 1}, {"label": "bad", "value": 0}]


def test_each_data_type_is_created_with_its_own_fields() -> None:
    numeric = new_config({"name": "accuracy", "dataType": "NUMERIC", "minValue": 0,
                          "maxValue": 1, "description": "share correct"})  # fmt: skip
    assert (numeric.min_value, numeric.max_value, numeric.categories) == (0.0, 1.0, None)
    assert numeric.description == "share correct" and not numeric.is_archived
    unbounded = new_config({"name": "latency", "dataType": "NUMERIC"})
    assert (unbounded.min_value, unbounded.max_value) == (None, None)
    categorical = new_config({"name": "tone", "dataType": "CATEGORICAL", "categories": GOOD_BAD})
    assert categorical.categories == tuple(GOOD_BAD)
    text = new_config({"name": "feedback", "dataType": "TEXT"})
    assert (text.categories, text.min_value, text.max_value) == (None, None, None)


def test_boolean_configs_get_true_and_false_by_themselves() -> None:
    boolean = new_config({"name": "correct", "dataType": "BOOLEAN"})
    assert boolean.categories == BOOLEAN_CATEGORIES
    assert [c["label"] for c in BOOLEAN_CATEGORIES] == ["True", "False"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"name": "x"}, "dataType must be one of"),
        ({"name": "x", "dataType": "CORRECTION"}, "dataType must be one of"),
        ({"dataType": "NUMERIC"}, "name is required"),
        ({"name": "", "dataType": "NUMERIC"}, "name is required"),
        ({"name": "x" * 1001, "dataType": "NUMERIC"}, "at most 35 characters"),
        ({"name": "x" * 36, "dataType": "NUMERIC"}, "at most 35 characters"),
        ({"name": "a/b", "dataType": "NUMERIC"}, "may only contain"),
        ({"name": "x", "dataType": "NUMERIC", "minValue": 2, "maxValue": 1}, "greater than"),
        ({"name": "x", "dataType": "NUMERIC", "minValue": 1, "maxValue": 1}, "greater than"),
        ({"name": "x", "dataType": "NUMERIC", "minValue": "0"}, "minValue must be a finite"),
        ({"name": "x", "dataType": "NUMERIC", "maxValue": True}, "maxValue must be a finite"),
        ({"name": "x", "dataType": "NUMERIC", "categories": GOOD_BAD}, "not allowed for NUMERIC"),
        ({"name": "x", "dataType": "CATEGORICAL"}, "categories are required"),
        ({"name": "x", "dataType": "CATEGORICAL", "categories": []}, "categories are required"),
        ({"name": "x", "dataType": "CATEGORICAL", "categories": "good"}, "must be a list"),
        ({"name": "x", "dataType": "CATEGORICAL", "categories": [{"label": "a"}]},
         "needs a finite number"),
        ({"name": "x", "dataType": "CATEGORICAL", "categories": [{"label": "", "value": 1}]},
         "non-empty string label"),
        ({"name": "x", "dataType": "CATEGORICAL",
          "categories": [{"label": "a", "value": 1}, {"label": "a", "value": 2}]},
         "duplicate category label 'a'"),
        ({"name": "x", "dataType": "CATEGORICAL",
          "categories": [{"label": "a", "value": 1}, {"label": "b", "value": 1.0}]},
         "duplicate category value 1"),
        ({"name": "x", "dataType": "CATEGORICAL", "categories": GOOD_BAD, "minValue": 0},
         "only allowed for NUMERIC"),
        ({"name": "x", "dataType": "BOOLEAN", "categories": GOOD_BAD}, "set automatically"),
        ({"name": "x", "dataType": "BOOLEAN", "maxValue": 1}, "only allowed for NUMERIC"),
        ({"name": "x", "dataType": "TEXT", "categories": GOOD_BAD}, "not allowed for TEXT"),
        ({"name": "x", "dataType": "TEXT", "minValue": 0}, "only allowed for NUMERIC"),
        ({"name": "x", "dataType": "NUMERIC", "description": 5}, "description must be a string"),
        ({"name": "x", "dataType": "NUMERIC", "description": "a\x00"}, "must not contain NUL"),
        ({"name": "x", "dataType": "CATEGORICAL", "categories": [{"label": "\x00", "value": 1}]},
         "must not contain NUL"),
    ],
)  # fmt: skip
def test_bad_create_bodies_are_refused_naming_the_field(body: Any, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason) as raised:
        new_config(body)
    assert str(raised.value).startswith("Invalid request data: ")


def test_an_update_changes_only_what_it_gives() -> None:
    current = new_config({"name": "accuracy", "dataType": "NUMERIC", "minValue": 0,
                          "maxValue": 1, "description": "d"})  # fmt: skip
    archived = updated_config(current, {"isArchived": True, "minValue": None})
    assert archived == ConfigFields(
        "accuracy", "NUMERIC", min_value=0.0, max_value=1.0, description="d", is_archived=True
    )
    renamed = updated_config(archived, {"name": "acc (v2)", "maxValue": 10, "dataType": "TEXT"})
    assert (renamed.name, renamed.data_type, renamed.max_value) == ("acc (v2)", "NUMERIC", 10.0)
    assert updated_config(renamed, {"isArchived": False}).is_archived is False


def test_an_update_is_checked_like_a_create_on_the_whole_config() -> None:
    numeric = new_config({"name": "n", "dataType": "NUMERIC", "minValue": 0, "maxValue": 1})
    with pytest.raises(InvalidArgument, match="greater than"):
        updated_config(numeric, {"minValue": 5})
    with pytest.raises(InvalidArgument, match="not allowed for NUMERIC"):
        updated_config(numeric, {"categories": GOOD_BAD})
    categorical = new_config({"name": "c", "dataType": "CATEGORICAL", "categories": GOOD_BAD})
    more = [*GOOD_BAD, {"label": "neutral", "value": 0.5}]
    assert updated_config(categorical, {"categories": more}).categories == tuple(more)
    with pytest.raises(InvalidArgument, match="duplicate category label"):
        updated_config(categorical, {"categories": [*GOOD_BAD, {"label": "good", "value": 9}]})
    with pytest.raises(InvalidArgument, match="categories are required"):
        updated_config(categorical, {"categories": []})
    with pytest.raises(InvalidArgument, match="only allowed for NUMERIC"):
        updated_config(categorical, {"maxValue": 3})
    boolean = new_config({"name": "b", "dataType": "BOOLEAN"})
    with pytest.raises(InvalidArgument, match="cannot be changed"):
        updated_config(boolean, {"categories": GOOD_BAD})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "at least one of"),
        ({"dataType": "TEXT"}, "at least one of"),
        ({"isArchived": None}, "at least one of"),
        ({"isArchived": "yes"}, "isArchived must be a boolean"),
        ({"name": "x" * 1001}, "at most 35 characters"),
    ],
)
def test_bad_update_bodies_are_refused(body: Any, reason: str) -> None:
    current = new_config({"name": "n", "dataType": "NUMERIC"})
    with pytest.raises(InvalidArgument, match=reason):
        updated_config(current, body)

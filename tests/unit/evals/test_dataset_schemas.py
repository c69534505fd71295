"""Dataset JSON Schemas: what a schema may hold, and how items are checked against it."""

from typing import Any

import orjson
import pytest

from libs.common.errors import InvalidArgument
from services.evals.schemas import ItemSchemas, checked_schema


def schemas(input_schema: Any) -> ItemSchemas:
    return ItemSchemas.of(orjson.dumps(checked_schema(input_schema, "inputSchema")).decode(), None)


def test_a_violation_names_the_field_and_the_path() -> None:
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
    }
    with pytest.raises(InvalidArgument, match=r"input does not match .* at input\.tags\[1\]: 2 is"):
        schemas(schema).check({"tags": ["a", 2]}, None)
    schemas(schema).check({"tags": ["a"]}, None)
    schemas(schema).check(None, None)  # unset values are not checked


def test_patterns_run_in_linear_time() -> None:
    # Backtracking engines take about 2^40 steps here; RE2 answers at once.
    evil = {"type": "string", "pattern": "^(a+)+$"}
    with pytest.raises(InvalidArgument, match="does not match"):
        schemas(evil).check("a" * 40 + "!", None)
    keyed = {"type": "object", "patternProperties": {"^(a+)+$": {"type": "integer"}},
             "additionalProperties": False}  # fmt: skip
    with pytest.raises(InvalidArgument, match=r"input\.aaa: 'x' is not of type 'integer'"):
        schemas(keyed).check({"aaa": "x"}, None)
    with pytest.raises(InvalidArgument, match="Additional properties are not allowed"):
        schemas(keyed).check({"a" * 40 + "!": 1}, None)


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "nope"}, "not a valid JSON Schema"),
        ([], "must be a JSON Schema"),
        ({"type": "string", "pattern": "(a)\\1"}, "is not supported"),
        ({"patternProperties": {"(?=x)": {}}}, "is not supported"),
        ({"patternProperties": {"a": {}}, "unevaluatedProperties": False}, "not supported"),
    ],
)
def test_schemas_refused_when_set(schema: Any, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        checked_schema(schema, "inputSchema")


def test_an_unresolvable_reference_is_the_clients_error() -> None:
    with pytest.raises(InvalidArgument, match=r"\$ref that cannot be resolved"):
        schemas({"$ref": "https://example.com/elsewhere.json"}).check({"a": 1}, None)

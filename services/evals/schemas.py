"""JSON Schema of dataset items (a dataset's `inputSchema` and `expectedOutputSchema`): a schema
is checked against its own metaschema when it is set, and an item's value against the schema
whenever the item is written; a violation names the field and the path inside it."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from services.evals.fields import invalid


def checked_schema(value: Any, field: str) -> Any:
    """A schema given in a request (null: none given); a schema that is not valid JSON Schema
    is the client's 400."""
    if value is None:
        return None
    if not isinstance(value, dict | bool):
        raise invalid(f"{field} must be a JSON Schema (an object)")
    try:
        jsonschema.validators.validator_for(value).check_schema(value)
    except SchemaError as exc:
        raise invalid(f"{field} is not a valid JSON Schema: {exc.message}") from exc
    return value


@dataclass(frozen=True, slots=True)
class ItemSchemas:
    """A dataset's schemas, compiled once for all the items a request writes."""

    input: Validator | None
    expected_output: Validator | None

    @classmethod
    def of(cls, input_schema: str | None, expected_output_schema: str | None) -> "ItemSchemas":
        """From the dataset's jsonb columns selected as text."""
        return cls(_compiled(input_schema), _compiled(expected_output_schema))

    @property
    def empty(self) -> bool:
        return self.input is None and self.expected_output is None

    def check(self, input_value: Any, expected_output: Any, *, item_id: str = "") -> None:
        """Null values are not checked (an item may leave a field unset)."""
        for validator, value, field in (
            (self.input, input_value, "input"),
            (self.expected_output, expected_output, "expectedOutput"),
        ):
            if validator is None or value is None:
                continue
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
            if error is not None:
                item = f"item {item_id}: " if item_id else ""
                raise invalid(
                    f"{item}{field} does not match the dataset's {field}Schema at"
                    f" {_path(field, error.absolute_path)}: {error.message}"
                )


def _compiled(schema: str | None) -> Validator | None:
    if schema is None:
        return None
    value = orjson.loads(schema)
    validator: Validator = jsonschema.validators.validator_for(value)(value)
    return validator


def _path(field: str, parts: Iterable[str | int]) -> str:
    """`input.country`, `expectedOutput.answers[2]`: where in the value the violation is."""
    path = field
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path

"""JSON Schema of dataset items (a dataset's `inputSchema` and `expectedOutputSchema`): a schema
is checked against its own metaschema when it is set, and an item's value against the schema
whenever the item is written; a violation names the field and the path inside it.

Schemas come from clients, and their regular expressions run in the evals service: `pattern`,
`patternProperties` and `additionalProperties` match with RE2 (linear time) instead of Python's
backtracking `re`, a schema whose expressions RE2 cannot compile is refused when it is set, and
so is `unevaluatedProperties` beside `patternProperties` (jsonschema would match those with `re`).
"""

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from libs.common.regex import compile_pattern
from services.evals.fields import invalid


def checked_schema(value: Any, field: str) -> Any:
    """A schema given in a request (null: none given); a schema that is not valid JSON Schema,
    or whose regular expressions RE2 cannot run, is the client's 400."""
    if value is None:
        return None
    if not isinstance(value, dict | bool):
        raise invalid(f"{field} must be a JSON Schema (an object)")
    try:
        jsonschema.validators.validator_for(value).check_schema(value)
    except SchemaError as exc:
        raise invalid(f"{field} is not a valid JSON Schema: {exc.message}") from exc
    keywords = set(_keywords(value))
    if "unevaluatedProperties" in keywords and "patternProperties" in keywords:
        raise invalid(f"{field}: unevaluatedProperties beside patternProperties is not supported")
    for pattern in _patterns(value):
        try:
            compile_pattern(pattern)
        except ValueError as exc:
            raise invalid(f"{field}: the pattern {pattern!r} is not supported ({exc})") from exc
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
        item = f"item {item_id}: " if item_id else ""
        for validator, value, field in (
            (self.input, input_value, "input"),
            (self.expected_output, expected_output, "expectedOutput"),
        ):
            if validator is None or value is None:
                continue
            try:
                error = jsonschema.exceptions.best_match(validator.iter_errors(value))
            except Unresolvable as exc:
                raise invalid(f"{field}Schema has a $ref that cannot be resolved: {exc}") from exc
            except RecursionError as exc:
                raise invalid(f"{item}{field} is nested too deeply for {field}Schema") from exc
            if error is not None:
                raise invalid(
                    f"{item}{field} does not match the dataset's {field}Schema at"
                    f" {_path(field, error.absolute_path)}: {error.message}"
                )


def _compiled(schema: str | None) -> Validator | None:
    if schema is None:
        return None
    value = orjson.loads(schema)
    validator: Validator = _linear(jsonschema.validators.validator_for(value))(value)
    return validator


@functools.cache
def _linear(base: type[Validator]) -> type[Validator]:
    """The validator class of a draft with its regular expressions matched by RE2."""
    linear: type[Validator] = jsonschema.validators.extend(
        base,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    )
    return linear


def _pattern(validator: Validator, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not compile_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Validator, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        regex = compile_pattern(pattern)
        for key, value in instance.items():
            if regex.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Validator, allowed: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = [compile_pattern(pattern) for pattern in schema.get("patternProperties", {})]
    extras = [
        key
        for key in instance
        if key not in known and not any(regex.search(key) for regex in patterns)
    ]
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif allowed is False and extras:
        unexpected = ", ".join(repr(extra) for extra in sorted(extras))
        yield ValidationError(f"Additional properties are not allowed ({unexpected} unexpected)")


def _keywords(schema: Any) -> Iterator[str]:
    """Every key of every object in the schema (property names included: a stricter test)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield key
            yield from _keywords(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _keywords(value)


def _patterns(schema: Any) -> Iterator[str]:
    """The regular expressions of a schema: `pattern` strings and `patternProperties` keys."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            if key == "patternProperties" and isinstance(value, dict):
                yield from value
            yield from _patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _patterns(value)


def _path(field: str, parts: Iterable[str | int]) -> str:
    """`input.country`, `expectedOutput.answers[2]`: where in the value the violation is."""
    path = field
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path

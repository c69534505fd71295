"""Prompt versions and the rules a new version or label must follow (Langfuse's semantics).
Pure: no I/O."""

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from libs.common.errors import InvalidArgument

LATEST = "latest"
PRODUCTION = "production"
_RESERVED_NAMES = {"new", "metrics", "prompt-detail"}
_LABEL = re.compile(r"^[a-z0-9_\-.]+$")
_HTML = re.compile(r"<[^>]*>")
# A variable name is a unicode letter followed by letters, digits or underscores.
_VARIABLE = re.compile(r"\{\{\s*([^\W\d_]\w*)\s*\}\}")


class PromptType(StrEnum):
    TEXT = "text"
    CHAT = "chat"


@dataclass(frozen=True, slots=True)
class PromptVersion:
    id: str
    project_id: str
    name: str
    version: int
    type: PromptType
    # A string for text prompts, a list of message dicts for chat prompts.
    prompt: str | list[dict[str, Any]]
    config: Any
    labels: tuple[str, ...]
    tags: tuple[str, ...]
    commit_message: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewPrompt:
    """A create request, validated by `validate_new`."""

    name: str
    type: PromptType
    prompt: str | list[dict[str, Any]]
    config: Any
    labels: tuple[str, ...]
    # None means "inherit the tags of the latest version".
    tags: tuple[str, ...] | None
    commit_message: str | None


def validate_name(name: str) -> None:
    if not name or not name.strip():
        raise InvalidArgument("Prompt name must not be empty")
    if len(name) > 255:
        raise InvalidArgument("Prompt name must be at most 255 characters")
    if "|" in name:
        raise InvalidArgument("Prompt name cannot contain '|'")
    if _HTML.search(name):
        raise InvalidArgument("Prompt name cannot contain HTML")
    if name in _RESERVED_NAMES:
        raise InvalidArgument(f"Prompt name cannot be '{name}'")


def validate_labels(labels: list[str] | tuple[str, ...], *, allow_latest: bool) -> tuple[str, ...]:
    """The labels without duplicates, in order; `latest` only where the server sets it."""
    unique: list[str] = []
    for label in labels:
        if not isinstance(label, str) or not _LABEL.match(label) or len(label) > 36:
            raise InvalidArgument(
                f"Invalid label '{label}': labels are at most 36 characters of a-z, 0-9, _, - and ."
            )
        if label == LATEST and not allow_latest:
            raise InvalidArgument("The 'latest' label is managed by the server and cannot be set")
        if label not in unique:
            unique.append(label)
    return tuple(unique)


def validate_new(prompt: NewPrompt) -> None:
    validate_name(prompt.name)
    if prompt.commit_message is not None and len(prompt.commit_message) > 500:
        raise InvalidArgument("commitMessage must be at most 500 characters")
    if prompt.type is PromptType.TEXT:
        if not isinstance(prompt.prompt, str):
            raise InvalidArgument("A text prompt must be a string")
        return
    if not isinstance(prompt.prompt, list):
        raise InvalidArgument("A chat prompt must be a list of messages")
    placeholders: set[str] = set()
    variables: set[str] = set()
    for message in prompt.prompt:
        if not isinstance(message, dict):
            raise InvalidArgument("Each chat message must be an object")
        if message.get("type") == "placeholder":
            name = message.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidArgument("A placeholder needs a name")
            placeholders.add(name)
            continue
        if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise InvalidArgument("A chat message needs a string role and content")
        variables |= variables_in(message["content"])
    clash = placeholders & variables
    if clash:
        raise InvalidArgument(
            f"Variables and placeholders must not share names: {', '.join(sorted(clash))}"
        )


def variables_in(text: str) -> set[str]:
    return set(_VARIABLE.findall(text))


def fill_variables(text: str, values: dict[str, str]) -> str:
    """Mustache-style `{{name}}` substitution; unknown variables stay as they are."""
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

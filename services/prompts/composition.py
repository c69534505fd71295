"""Composed prompts: text may embed `@@@langfusePrompt:name=<name>|version=<n>@@@` or
`...|label=<label>@@@`. Tags are checked when a version is created (the target exists, is a text
prompt, no cycle, nesting below 5) and replaced by the target's resolved text on read."""

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from libs.common.errors import InvalidArgument
from services.prompts.versions import PromptType, PromptVersion

_TAG = re.compile(r"@@@langfusePrompt:(.*?)@@@")
MAX_DEPTH = 5


@dataclass(frozen=True, slots=True)
class Reference:
    name: str
    version: int | None
    label: str | None

    def describe(self) -> str:
        selector = (
            f"version {self.version}" if self.version is not None else f"label '{self.label}'"
        )
        return f"'{self.name}' with {selector}"


Lookup = Callable[[Reference], Awaitable[PromptVersion | None]]


def parse_reference(inner: str) -> Reference:
    parts = inner.split("|")
    if len(parts) != 2 or not parts[0].startswith("name=") or len(parts[0]) == len("name="):
        raise InvalidArgument(f"Invalid prompt reference '@@@langfusePrompt:{inner}@@@'")
    name = parts[0].removeprefix("name=")
    key, _, value = parts[1].partition("=")
    if key == "version" and value.isdigit():
        return Reference(name, int(value), None)
    if key == "label" and value:
        return Reference(name, None, value)
    raise InvalidArgument(f"Invalid prompt reference '@@@langfusePrompt:{inner}@@@'")


def has_references(prompt: PromptVersion) -> bool:
    return any(_TAG.search(text) for text in _texts(prompt.prompt))


@dataclass
class Resolution:
    """Expands references depth-first and records the graph Langfuse returns as
    `resolutionGraph`: {root: {name, version, id},
    dependencies: {parentId: [{id, name, version}]}}."""

    lookup: Lookup
    dependencies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    async def resolve(self, root: PromptVersion) -> tuple[str | list[dict[str, Any]], Any]:
        content = await self._expand_content(root, depth=1, names=frozenset({root.name}))
        if not self.dependencies:
            return content, None
        graph_root = {"name": root.name, "version": root.version, "id": root.id}
        return content, {"root": graph_root, "dependencies": self.dependencies}

    async def _expand_content(
        self, prompt: PromptVersion, depth: int, names: frozenset[str]
    ) -> str | list[dict[str, Any]]:
        if isinstance(prompt.prompt, str):
            return await self._expand_text(prompt.prompt, prompt, depth, names)
        messages = []
        for message in prompt.prompt:
            content = message.get("content")
            if isinstance(content, str) and _TAG.search(content):
                content = await self._expand_text(content, prompt, depth, names)
                message = {**message, "content": content}
            messages.append(message)
        return messages

    async def _expand_text(
        self, text: str, parent: PromptVersion, depth: int, names: frozenset[str]
    ) -> str:
        pieces: list[str] = []
        position = 0
        for match in _TAG.finditer(text):
            reference = parse_reference(match.group(1))
            if depth >= MAX_DEPTH:
                raise InvalidArgument(f"Prompt nesting is limited to depth {MAX_DEPTH - 1}")
            if reference.name in names:
                raise InvalidArgument(f"Circular prompt dependency on '{reference.name}'")
            target = await self.lookup(reference)
            if target is None:
                raise InvalidArgument(f"Prompt dependency not found: {reference.describe()}")
            if target.type is not PromptType.TEXT:
                raise InvalidArgument(f"Prompt dependency '{target.name}' must be a text prompt")
            self.dependencies.setdefault(parent.id, []).append(
                {"id": target.id, "name": target.name, "version": target.version}
            )
            expanded = await self._expand_content(target, depth + 1, names | {target.name})
            pieces.append(text[position : match.start()])
            pieces.append(str(expanded))
            position = match.end()
        pieces.append(text[position:])
        return "".join(pieces)


def _texts(prompt: str | list[dict[str, Any]]) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    return [m["content"] for m in prompt if isinstance(m.get("content"), str)]

from datetime import UTC, datetime

import pytest

from libs.common.errors import InvalidArgument
from services.prompts.composition import Reference, Resolution, parse_reference
from services.prompts.versions import PromptType, PromptVersion

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def version(name: str, prompt: str, number: int = 1, labels: tuple[str, ...] = ("production",),
            kind: PromptType = PromptType.TEXT) -> PromptVersion:  # fmt: skip
    return PromptVersion(
        f"{name}-v{number}", "p", name, number, kind, prompt, {}, labels, (), None, NOW, NOW
    )


class Catalog:
    def __init__(self, *versions: PromptVersion) -> None:
        self.versions = versions

    async def find(self, ref: Reference) -> PromptVersion | None:
        for v in self.versions:
            if v.name == ref.name and (v.version == ref.version or ref.label in v.labels):
                return v
        return None


def test_references_need_a_name_then_a_version_or_label() -> None:
    assert parse_reference("name=a/b|version=3") == Reference("a/b", 3, None)
    assert parse_reference("name=a|label=prod") == Reference("a", None, "prod")
    for bad in ["label=x|name=a", "name=a", "name=a|version=x", "name=a|label=x|version=1"]:
        with pytest.raises(InvalidArgument):
            parse_reference(bad)


async def test_resolution_replaces_tags_and_records_the_graph() -> None:
    inner = version("inner", "world")
    middle = version("middle", "hello @@@langfusePrompt:name=inner|version=1@@@")
    root = version("root", "<@@@langfusePrompt:name=middle|label=production@@@>")
    content, graph = await Resolution(Catalog(inner, middle).find).resolve(root)
    assert content == "<hello world>"
    assert graph == {
        "root": {"name": "root", "version": 1, "id": "root-v1"},
        "dependencies": {
            "root-v1": [{"id": "middle-v1", "name": "middle", "version": 1}],
            "middle-v1": [{"id": "inner-v1", "name": "inner", "version": 1}],
        },
    }


async def test_chat_messages_are_resolved_too() -> None:
    root = version("chat", "", kind=PromptType.CHAT)
    root = PromptVersion(**{**_fields(root), "prompt": [
        {"role": "system", "content": "@@@langfusePrompt:name=inner|version=1@@@"},
        {"type": "placeholder", "name": "history"},
    ]})  # fmt: skip
    content, _ = await Resolution(Catalog(version("inner", "be brief")).find).resolve(root)
    assert content == [
        {"role": "system", "content": "be brief"},
        {"type": "placeholder", "name": "history"},
    ]


async def test_no_references_means_no_graph() -> None:
    content, graph = await Resolution(Catalog().find).resolve(version("plain", "text"))
    assert (content, graph) == ("text", None)


async def test_missing_dependencies_are_refused() -> None:
    root = version("root", "@@@langfusePrompt:name=ghost|version=1@@@")
    with pytest.raises(InvalidArgument, match="not found"):
        await Resolution(Catalog().find).resolve(root)


async def test_cycles_and_self_references_are_refused() -> None:
    a = version("a", "@@@langfusePrompt:name=b|label=production@@@")
    b = version("b", "@@@langfusePrompt:name=a|label=production@@@")
    with pytest.raises(InvalidArgument, match="Circular"):
        await Resolution(Catalog(a, b).find).resolve(a)
    other_version = version("a", "@@@langfusePrompt:name=a|version=1@@@", number=2)
    with pytest.raises(InvalidArgument, match="Circular"):
        await Resolution(Catalog(a).find).resolve(other_version)


async def test_depth_of_five_is_refused() -> None:
    chain = [version("p0", "end")]
    for i in range(1, 6):
        chain.append(version(f"p{i}", f"@@@langfusePrompt:name=p{i - 1}|version=1@@@"))
    catalog = Catalog(*chain)
    content, _ = await Resolution(catalog.find).resolve(chain[4])
    assert content == "end"
    with pytest.raises(InvalidArgument, match="depth"):
        await Resolution(catalog.find).resolve(chain[5])


async def test_only_text_prompts_can_be_dependencies() -> None:
    target = version("chatty", "", kind=PromptType.CHAT)
    root = version("root", "@@@langfusePrompt:name=chatty|version=1@@@")
    with pytest.raises(InvalidArgument, match="text prompt"):
        await Resolution(Catalog(target).find).resolve(root)


def _fields(v: PromptVersion) -> dict[str, object]:
    return {name: getattr(v, name) for name in PromptVersion.__slots__}

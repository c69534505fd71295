import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.common.errors import InvalidArgument, NotFound
from libs.common.migrate import migrate_postgres
from services.prompts.composition import Reference
from services.prompts.server import MIGRATIONS
from services.prompts.store import Finder, ListFilter, PromptStore
from services.prompts.versions import NewPrompt, PromptType, PromptVersion

PROJECT = "project-a"


def text(name: str, prompt: str = "hi", labels: tuple[str, ...] = (), tags=None) -> NewPrompt:  # type: ignore[no-untyped-def]
    return NewPrompt(name, PromptType.TEXT, prompt, {"t": 1}, labels, tags, None)


async def accept(draft: PromptVersion, finder: Finder) -> None:
    return None


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[PromptStore]:
    await migrate_postgres(pg_dsn, MIGRATIONS)
    pool = await asyncpg.create_pool(pg_dsn, min_size=2, max_size=20)
    yield PromptStore(pool)
    await pool.close()


async def labels_by_version(store: PromptStore, name: str, versions: int) -> dict[int, set[str]]:
    found = [await store.find(PROJECT, Reference(name, v, None)) for v in range(1, versions + 1)]
    return {v.version: set(v.labels) for v in found if v is not None}


async def test_fifty_concurrent_creates_get_versions_one_to_fifty(store: PromptStore) -> None:
    created = await asyncio.gather(
        *(store.create(PROJECT, text("same"), accept) for _ in range(50))
    )
    assert sorted(v.version for v in created) == list(range(1, 51))
    latest = await store.find(PROJECT, Reference("same", None, "latest"))
    assert latest is not None and latest.version == 50


async def test_a_label_lives_on_one_version_only(store: PromptStore) -> None:
    await store.create(PROJECT, text("p", labels=("production",)), accept)
    await store.create(PROJECT, text("p", labels=("production", "staging")), accept)
    assert await labels_by_version(store, "p", 2) == {
        1: set(),
        2: {"production", "staging", "latest"},
    }
    await store.add_labels(PROJECT, "p", 1, ("production",))
    assert await labels_by_version(store, "p", 2) == {1: {"production"}, 2: {"staging", "latest"}}


async def test_tags_are_shared_and_inherited(store: PromptStore) -> None:
    await store.create(PROJECT, text("t", tags=("a", "b")), accept)
    second = await store.create(PROJECT, text("t"), accept)
    assert second.tags == ("a", "b")
    await store.create(PROJECT, text("t", tags=("c",)), accept)
    first = await store.find(PROJECT, Reference("t", 1, None))
    assert first is not None and first.tags == ("c",)


async def test_the_type_of_a_name_is_fixed(store: PromptStore) -> None:
    await store.create(PROJECT, text("typed"), accept)
    chat = NewPrompt("typed", PromptType.CHAT, [], {}, (), None, None)
    with pytest.raises(InvalidArgument, match="type"):
        await store.create(PROJECT, chat, accept)


async def test_a_refused_draft_leaves_nothing_behind(store: PromptStore) -> None:
    async def refuse(draft: PromptVersion, finder: Finder) -> None:
        raise InvalidArgument("bad dependency")

    with pytest.raises(InvalidArgument):
        await store.create(PROJECT, text("refused"), refuse)
    assert await store.find(PROJECT, Reference("refused", 1, None)) is None


async def test_deleting_the_newest_version_moves_latest(store: PromptStore) -> None:
    for _ in range(3):
        await store.create(PROJECT, text("d"), accept)
    assert await store.delete(PROJECT, "d", 3, None) == 1
    latest = await store.find(PROJECT, Reference("d", None, "latest"))
    assert latest is not None and latest.version == 2
    assert await store.delete(PROJECT, "d", None, None) == 2
    assert await store.delete(PROJECT, "d", None, None) == 0


async def test_labelling_a_missing_version_is_not_found(store: PromptStore) -> None:
    with pytest.raises(NotFound):
        await store.add_labels(PROJECT, "ghost", 1, ("production",))


async def test_a_version_is_found_by_its_id_in_its_project_only(store: PromptStore) -> None:
    created = await store.create(PROJECT, text("by-id"), accept)
    assert await store.name_and_version(PROJECT, created.id) == ("by-id", 1)
    assert await store.name_and_version("another-project", created.id) is None
    assert await store.name_and_version(PROJECT, "no-such-id") is None


async def test_list_groups_versions_by_name_with_exact_meta(store: PromptStore) -> None:
    for name in ("a", "a", "b", "c"):
        await store.create(PROJECT, text(name, labels=("production",)), accept)
    await store.create("another-project", text("a"), accept)
    page, total = await store.list(PROJECT, ListFilter(), page=1, limit=2)
    assert total == 3 and len(page) == 2
    everything, _ = await store.list(PROJECT, ListFilter(name="a"), page=1, limit=10)
    [a] = everything
    assert (
        a.versions == [1, 2] and a.labels == ["latest", "production"] and a.last_config == {"t": 1}
    )

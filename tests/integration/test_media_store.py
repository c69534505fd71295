"""Media records on the real PostgreSQL and MinIO: a trace deletion unlinks its media and deletes
(row and object) only the media nothing else references, also while uploads of the same content
for other traces run beside it."""

import asyncio
import base64
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import asyncpg
import httpx
import orjson
import pytest

from libs.common.errors import Conflict, NotFound
from libs.common.migrate import migrate_postgres
from services.ingestion.media import Media, MediaObjects
from services.ingestion.server import MIGRATIONS
from services.ingestion.store import EventLog, open_s3
from tests.integration.test_stores import s3_config

PROJECT = "p/1"  # a slash: keys quote the project


def sha(content: bytes) -> str:
    return base64.b64encode(hashlib.sha256(content).digest()).decode()


def request(content: bytes, **context: str | None) -> bytes:
    body = {"field": "input", "contentType": "text/plain", "contentLength": len(content),
            "sha256Hash": sha(content)}  # fmt: skip
    return orjson.dumps({**body, **context})


@pytest.fixture
async def media(pg_dsn: str) -> AsyncIterator[tuple[Media, MediaObjects]]:
    await migrate_postgres(pg_dsn, MIGRATIONS)
    cfg = s3_config("it-media")
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=8)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(pool.close)
        s3 = await open_s3(cfg, stack)
        await EventLog(s3, cfg.s3_bucket).ensure_bucket()
        objects = MediaObjects(s3, s3, cfg.s3_bucket, 60)
        yield Media(pool, objects, max_bytes=1000), objects


async def uploaded(media: Media, content: bytes, trace_id: str) -> str:
    media_id, url = await media.create_upload(PROJECT, request(content, traceId=trace_id))
    if url is not None:
        headers = {"Content-Type": "text/plain", "x-amz-checksum-sha256": sha(content)}
        async with httpx.AsyncClient() as client:
            (await client.put(url, content=content, headers=headers)).raise_for_status()
        patch = {"uploadedAt": "2026-12-01T00:00:00Z", "uploadHttpStatus": 200}
        await media.patch(PROJECT, media_id, orjson.dumps(patch))
    return media_id


async def test_deleting_a_trace_deletes_only_media_nothing_else_references(
    media: tuple[Media, MediaObjects],
) -> None:
    api, objects = media
    alone = await uploaded(api, b"only in trace a", "a")
    shared = await uploaded(api, b"in a and b", "a")
    assert await uploaded(api, b"in a and b", "b") == shared
    in_item = await uploaded(api, b"in a and an item", "a")
    await api.create_upload(PROJECT, request(b"in a and an item", datasetId="d",
                                             datasetItemId="i"))  # fmt: skip

    assert await api.forget_traces(PROJECT, ["a", "unknown"]) == 1
    with pytest.raises(NotFound):
        await api.get(PROJECT, alone)
    assert await objects.stored(MediaObjects.key(PROJECT, alone)) is None
    for kept in (shared, in_item):
        record = orjson.loads(await api.get(PROJECT, kept))
        assert httpx.get(record["url"]).is_success
    assert await api.forget_traces(PROJECT, ["a"]) == 0  # replayed notice
    assert await api.forget_traces(PROJECT, ["b"]) == 1
    assert await objects.stored(MediaObjects.key(PROJECT, shared)) is None
    # Content deleted can come again: a new record that needs an upload.
    assert (await api.create_upload(PROJECT, request(b"only in trace a", traceId="c")))[1]


async def test_deletions_beside_new_links_never_lose_a_referenced_media(
    media: tuple[Media, MediaObjects],
) -> None:
    """Deleting trace t{n} while trace u{n} links the same content: afterwards either the record
    is uploaded and its object exists, or it awaits an upload; never a record without its object."""
    api, objects = media

    async def race(n: int) -> None:
        content = f"race {n} {uuid.uuid4()}".encode()
        media_id = await uploaded(api, content, f"t{n}")
        await asyncio.gather(
            api.forget_traces(PROJECT, [f"t{n}"]),
            api.create_upload(PROJECT, request(content, traceId=f"u{n}")),
        )
        try:
            record = orjson.loads(await api.get(PROJECT, media_id))
        except NotFound:
            return
        assert await objects.stored(MediaObjects.key(PROJECT, media_id)) == (
            record["contentLength"],
            "text/plain",
        )

    await asyncio.gather(*(race(n) for n in range(20)))


async def test_an_id_taken_by_other_content_is_a_conflict(
    media: tuple[Media, MediaObjects],
) -> None:
    api, _ = media
    first = sha(b"first")
    # Another digest with the same first 22 characters: the same media id, other content.
    other = first[:30] + ("A" if first[30] != "A" else "B") + first[31:]
    body = orjson.loads(request(b"first", traceId="t"))
    media_id, _ = await api.create_upload(PROJECT, orjson.dumps(body))
    with pytest.raises(Conflict):
        await api.create_upload(PROJECT, orjson.dumps({**body, "sha256Hash": other,
                                                       "contentType": "image/png"}))  # fmt: skip
    pending = await api.create_upload(PROJECT, orjson.dumps(body))
    assert pending[0] == media_id and pending[1] is not None

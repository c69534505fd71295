"""Media (`/api/public/media`), as Langfuse's SDKs use it: the SDK asks for an upload URL naming
the content's SHA-256, PUTs the bytes straight to S3 with that URL, reports the outcome, and later
reads the media back through a presigned GET URL. The bytes never pass through a service.

Records and their links to traces, observations and dataset items live in PostgreSQL: one row per
(project, media id), so the same content uploaded twice is one object, and a trace deletion
unlinks its media and deletes, in one transaction, the media nothing else references. The bytes
live in the ingestion bucket under `media/<project>/<media id>`. The presigned PUT (SigV4) signs
the content type, the declared length and `x-amz-checksum-sha256`, so S3 refuses any other body,
and a media counts as uploaded only once S3 holds its object (checked when the client reports
success)."""

import base64
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar, get_args
from urllib.parse import quote

import asyncpg
import msgspec
import orjson
from botocore.exceptions import ClientError

from libs.common import limits
from libs.common.errors import Conflict, InvalidArgument, NotFound, Unavailable
from libs.common.limits import Id, Time
from libs.common.scope import read_cutoff
from libs.common.transient import is_transient
from services.ingestion.store import delete_prefix

# The SDKs' MediaContentType enum (Langfuse's OpenAPI file); anything else is a 400.
ContentType = Literal[
    "image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif", "image/svg+xml",
    "image/tiff", "image/bmp", "image/avif", "image/heic",
    "audio/mpeg", "audio/mp3", "audio/wav", "audio/ogg", "audio/oga", "audio/aac", "audio/mp4",
    "audio/flac", "audio/opus", "audio/webm",
    "video/mp4", "video/webm", "video/ogg", "video/mpeg", "video/quicktime", "video/x-msvideo",
    "video/x-matroska",
    "text/plain", "text/html", "text/css", "text/csv", "text/markdown", "text/x-python",
    "application/javascript", "text/x-typescript", "application/x-yaml",
    "application/pdf", "application/msword", "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/zip", "application/json", "application/xml", "application/octet-stream",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/rtf", "application/x-ndjson", "application/vnd.apache.parquet",
    "application/gzip", "application/x-tar", "application/x-7z-compressed",
]  # fmt: skip
CONTENT_TYPES: frozenset[str] = frozenset(get_args(ContentType))
TRACE_FIELDS = ("input", "output", "metadata")
DATASET_ITEM_FIELDS = ("input", "expectedOutput", "metadata")
_MAX_UPLOAD_ERROR = 2000  # characters of the client's upload error kept


class UploadRequest(msgspec.Struct, rename="camel", kw_only=True):
    """`POST /media`: exactly one context, a trace (and maybe an observation) or a dataset item."""

    content_type: str
    content_length: Annotated[int, msgspec.Meta(ge=1)]
    sha256_hash: str
    field: str
    trace_id: Id | None = None
    observation_id: Id | None = None
    dataset_id: Id | None = None
    dataset_item_id: Id | None = None


class PatchRequest(msgspec.Struct, rename="camel", kw_only=True):
    """`PATCH /media/{id}`: what the client saw when it uploaded."""

    uploaded_at: Time
    upload_http_status: Annotated[int, msgspec.Meta(ge=100, le=599)]
    upload_http_error: str | None = None
    upload_time_ms: Annotated[int, msgspec.Meta(ge=0, le=2**62)] | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """Where a media is referenced; unused parts are empty strings (unique in PostgreSQL)."""

    field: str
    trace_id: str = ""
    observation_id: str = ""
    dataset_id: str = ""
    dataset_item_id: str = ""


def media_id_of(sha256_hash: str) -> str:
    """The SDKs' media id: the first 22 characters of the base64url form of the SHA-256 they send
    in standard base64. They compare it with the server's and cancel the upload on a mismatch."""
    return sha256_hash.replace("+", "-").replace("/", "_")[:22]


def parse_upload(body: bytes, max_bytes: int) -> tuple[UploadRequest, Link]:
    request = _decode(body, UploadRequest)
    if request.content_type not in CONTENT_TYPES:
        raise InvalidArgument(
            f"Invalid request data: contentType: unsupported media type {request.content_type!r}"
        )
    if request.content_length > max_bytes:
        raise InvalidArgument(
            f"Invalid request data: contentLength: {request.content_length} bytes is over the "
            f"limit of {max_bytes}"
        )
    try:
        digest = base64.b64decode(request.sha256_hash, validate=True)
    except ValueError:  # binascii.Error, or characters outside ASCII
        digest = b""
    if len(digest) != 32:
        raise InvalidArgument("Invalid request data: sha256Hash: must be a base64 SHA-256 digest")
    return request, _link_of(request)


def _link_of(request: UploadRequest) -> Link:
    if request.trace_id is not None:
        if request.dataset_id is not None or request.dataset_item_id is not None:
            raise InvalidArgument(
                "Invalid request data: give either traceId or datasetId and datasetItemId"
            )
        if request.field not in TRACE_FIELDS:
            raise InvalidArgument("Invalid request data: field: must be input, output or metadata")
        return Link(request.field, trace_id=request.trace_id,
                    observation_id=request.observation_id or "")  # fmt: skip
    if request.dataset_id is None or request.dataset_item_id is None:
        raise InvalidArgument(
            "Invalid request data: give either traceId or datasetId and datasetItemId"
        )
    if request.observation_id is not None:
        raise InvalidArgument("Invalid request data: observationId needs a traceId")
    if request.field not in DATASET_ITEM_FIELDS:
        raise InvalidArgument(
            "Invalid request data: field: must be input, expectedOutput or metadata"
        )
    return Link(request.field, dataset_id=request.dataset_id,
                dataset_item_id=request.dataset_item_id)  # fmt: skip


def parse_patch(body: bytes) -> PatchRequest:
    request = _decode(body, PatchRequest)
    if not limits.time_in_range(request.uploaded_at):
        raise InvalidArgument(f"Invalid request data: uploadedAt: must be {limits.TIME_RANGE}")
    return request


T = TypeVar("T")


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"Invalid request data: {limits.describe(exc)}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidArgument("Invalid request data: the body is not valid JSON") from exc


class MediaObjects:
    """The media's S3 objects: `s3` talks to S3, `presigner` signs URLs for the endpoint the
    clients see (no request leaves for signing)."""

    def __init__(self, s3: Any, presigner: Any, bucket: str, url_seconds: int) -> None:
        self._s3 = s3
        self._presigner = presigner
        self._bucket = bucket
        self.url_seconds = url_seconds

    @staticmethod
    def key(project_id: str, media_id: str) -> str:
        return f"media/{quote(project_id, safe='')}/{media_id}"

    async def upload_url(self, key: str, content_type: str, length: int, sha256_hash: str) -> str:
        """A PUT URL that signs the body's type, length and checksum: S3 refuses any other."""
        params = {"Bucket": self._bucket, "Key": key, "ContentType": content_type,
                  "ContentLength": length, "ChecksumSHA256": sha256_hash}  # fmt: skip
        url: str = await self._presigner.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=self.url_seconds
        )
        return url

    async def download_url(self, key: str) -> str:
        url: str = await self._presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=self.url_seconds
        )
        return url

    async def stored(self, key: str) -> tuple[int, str] | None:
        """The object's length and content type, or None when S3 has no such object."""
        try:
            head = await self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"]), str(head.get("ContentType") or "")

    async def delete_project(self, project_id: str) -> int:
        """Removes every media object of a deleted project; returns how many there were."""
        return await delete_prefix(self._s3, self._bucket, f"media/{quote(project_id, safe='')}/")

    async def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # S3's per-call limit
            chunk = keys[start : start + 1000]
            reply = await self._s3.delete_objects(
                Bucket=self._bucket,
                Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
            )
            if errors := reply.get("Errors"):
                raise RuntimeError(f"{len(errors)} media objects not deleted, e.g. {errors[0]}")


class Media:
    """The media RPCs' logic: records and links in ingestion's PostgreSQL, bytes in S3."""

    def __init__(self, pool: asyncpg.Pool, objects: MediaObjects, max_bytes: int) -> None:
        self._pool = pool
        self._objects = objects
        self._max_bytes = max_bytes

    async def create_upload(self, project_id: str, body: bytes) -> tuple[str, str | None]:
        """The media id and a presigned PUT URL, or None for the URL when this content is
        already uploaded. Either way the link to the trace or dataset item is recorded."""
        request, link = parse_upload(body, self._max_bytes)
        media_id = media_id_of(request.sha256_hash)
        # One statement (one round trip): the upsert locks the media row, so a concurrent
        # deletion of its last link waits for this link, or this waits for the deletion and
        # starts a new record. No row comes back when the id belongs to other content.
        with _outage_is_unavailable():
            row = await self._pool.fetchrow(
                _UPSERT_MEDIA_AND_LINK, project_id, media_id, request.sha256_hash,
                request.content_type, request.content_length, link.trace_id,
                link.observation_id, link.dataset_id, link.dataset_item_id, link.field,
            )  # fmt: skip
        if row is None:
            raise Conflict("Invalid request data: another content has this media id")
        if row["uploaded_at"] is not None:
            return media_id, None
        key = MediaObjects.key(project_id, media_id)
        return media_id, await self._objects.upload_url(
            key, request.content_type, request.content_length, request.sha256_hash
        )

    async def patch(self, project_id: str, media_id: str, body: bytes) -> None:
        """Records the reported upload; the media is uploaded only if S3 holds its object (a PUT
        whose checksum differed was refused, whatever the client says)."""
        request = parse_patch(body)
        pool = self._pool
        if not limits.is_id(media_id):
            raise NotFound("Media asset not found")
        # S3's XML error, kept short; PostgreSQL text holds no NUL.
        error = (request.upload_http_error or "").replace("\x00", "")[:_MAX_UPLOAD_ERROR] or None
        with _outage_is_unavailable():
            stored = None
            if 200 <= request.upload_http_status < 300:
                stored = await self._objects.stored(MediaObjects.key(project_id, media_id))
            length, content_type = stored or (None, None)
            updated = await pool.fetchval(
                _PATCH_MEDIA, project_id, media_id, request.upload_http_status, error,
                request.upload_time_ms, request.uploaded_at if stored else None, length,
                content_type or None,
            )  # fmt: skip
        if not updated:
            raise NotFound("Media asset not found")

    async def get(self, project_id: str, media_id: str) -> bytes:
        pool = self._pool
        if not limits.is_id(media_id):
            raise NotFound("Media asset not found")
        with _outage_is_unavailable():
            row = await pool.fetchrow(_SELECT_MEDIA, project_id, media_id, read_cutoff())
        if row is None:
            raise NotFound("Media asset not found")
        if row["uploaded_at"] is None:
            raise NotFound("Media not yet uploaded")
        url = await self._objects.download_url(MediaObjects.key(project_id, media_id))
        expiry = datetime.now(UTC) + timedelta(seconds=self._objects.url_seconds)
        return orjson.dumps({
            "mediaId": media_id,
            "contentType": row["content_type"],
            "contentLength": row["content_length"],
            "uploadedAt": _iso(row["uploaded_at"]),
            "url": url,
            "urlExpiry": _iso(expiry),
        })  # fmt: skip

    async def forget_project(self, project_id: str) -> int:
        """Deletes every medium of a deleted project, objects and rows (links go with their
        media); returns how many objects there were. Idempotent."""
        objects = await self._objects.delete_project(project_id)
        await self._pool.execute("DELETE FROM media WHERE project_id = $1", project_id)
        return objects

    async def forget_traces(self, project_id: str, trace_ids: Iterable[str]) -> int:
        """Unlinks the traces' media and deletes the media no other trace or dataset item
        references (rows and objects); returns how many media were deleted. Idempotent."""
        traces = list(trace_ids)
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_TRACE_MEDIA, project_id, traces)
            media_ids = sorted(row["media_id"] for row in rows)
            if not media_ids:
                return 0
            # The media rows are locked before their links change, in the order a create takes
            # them (the row, then its link), so the two never deadlock; the orphans are counted
            # by a statement of its own, whose snapshot has every link committed before the lock.
            await conn.execute(_LOCK_MEDIA, project_id, media_ids)
            await conn.execute(_DELETE_TRACE_LINKS, project_id, traces, media_ids)
            orphans = [
                row["id"] for row in await conn.fetch(_DELETE_ORPHANS, project_id, media_ids)
            ]
            # Objects go before the commit: if S3 fails, the rows stay and the notice is retried.
            await self._objects.delete([MediaObjects.key(project_id, m) for m in orphans])
            return len(orphans)


@contextmanager
def _outage_is_unavailable() -> Iterator[None]:
    """PostgreSQL or S3 down (or saying "later"): the client gets a 503 and retries, not a 500."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise Unavailable("media storage is unavailable, retry later") from exc
        raise


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_UPSERT_MEDIA_AND_LINK = """
WITH upserted AS (
    INSERT INTO media (project_id, id, sha256_hash, content_type, content_length)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (project_id, id) DO UPDATE SET
        content_type = CASE WHEN media.uploaded_at IS NULL
                            THEN EXCLUDED.content_type ELSE media.content_type END,
        content_length = CASE WHEN media.uploaded_at IS NULL
                              THEN EXCLUDED.content_length ELSE media.content_length END
    WHERE media.sha256_hash = EXCLUDED.sha256_hash
    RETURNING uploaded_at
), linked AS (
    INSERT INTO media_links
        (project_id, media_id, trace_id, observation_id, dataset_id, dataset_item_id, field)
    SELECT $1, $2, $6, $7, $8, $9, $10 FROM upserted
    ON CONFLICT DO NOTHING
)
SELECT uploaded_at FROM upserted
"""
_PATCH_MEDIA = """
UPDATE media SET
    upload_http_status = $3,
    upload_http_error = $4,
    upload_time_ms = $5,
    uploaded_at = COALESCE(uploaded_at, $6),
    content_length = COALESCE($7, content_length),
    content_type = COALESCE($8, content_type)
WHERE project_id = $1 AND id = $2
RETURNING true
"""
# Without a link the project's retention keeps (a dataset item's, or a trace's made since the
# cutoff), a medium is gone for reads before the retention pass deletes it (retention.py).
_SELECT_MEDIA = """
SELECT content_type, content_length, uploaded_at FROM media m WHERE project_id = $1 AND id = $2
    AND ($3::timestamptz IS NULL OR EXISTS (
        SELECT 1 FROM media_links l WHERE l.project_id = m.project_id AND l.media_id = m.id
            AND (l.trace_id = '' OR l.created_at >= $3)))
"""
_TRACE_MEDIA = """
SELECT DISTINCT media_id FROM media_links
WHERE project_id = $1 AND trace_id = ANY($2::text[]) AND trace_id <> ''
"""
_DELETE_TRACE_LINKS = """
DELETE FROM media_links
WHERE project_id = $1 AND trace_id = ANY($2::text[]) AND trace_id <> ''
    AND media_id = ANY($3::text[])
"""
_LOCK_MEDIA = """
SELECT id FROM media WHERE project_id = $1 AND id = ANY($2::text[]) ORDER BY id FOR UPDATE
"""
_DELETE_ORPHANS = """
DELETE FROM media m WHERE m.project_id = $1 AND m.id = ANY($2::text[])
    AND NOT EXISTS (SELECT 1 FROM media_links l WHERE l.project_id = m.project_id
                                                  AND l.media_id = m.id)
RETURNING m.id
"""

"""The event log in S3: the accepted events of each request are written here as one object (every
trace of the request, in the encoding of libs/common/event_batches.py), under the hour they
arrived: `events/{project}/{yyyy}/{mm}/{dd}/{hh}/{time}-{uuid}`. Which objects hold a trace's
events is kept in PostgreSQL (services/ingestion/event_index.py), so that deleting a trace
rewrites exactly those objects without its events; a project is deleted by its prefix."""

import hashlib
import uuid
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from libs.common.event_batches import decode_event_batch, encode_event_batch
from libs.common.gen.obs.events.v1 import events_pb2
from services.ingestion.config import IngestionConfig


async def open_s3(cfg: IngestionConfig, stack: AsyncExitStack, endpoint_url: str = "") -> Any:
    """A client of S3 at `endpoint_url`, by default S3_ENDPOINT_URL."""
    session = aioboto3.Session(
        aws_access_key_id=cfg.s3_access_key or None,
        aws_secret_access_key=cfg.s3_secret_key or None,
        region_name=cfg.s3_region,
    )
    # Path-style addressing: local and most self-hosted S3 servers have no per-bucket DNS.
    # Checksums only where S3 requires them: botocore's per-request CRC work showed in profiles,
    # and the objects are small and re-creatable from the SDKs' retries until acknowledged.
    # Signature V4 also for presigned URLs (botocore presigns with V2 otherwise, which AWS no
    # longer accepts and which cannot sign the media's content length).
    client_config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        retries={"max_attempts": 5},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=50,
    )
    return await stack.enter_async_context(
        session.client(
            "s3", endpoint_url=endpoint_url or cfg.s3_endpoint_url or None, config=client_config
        )
    )


class EventLog:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    async def ensure_bucket(self) -> None:
        try:
            await self._s3.head_bucket(Bucket=self._bucket)
        except ClientError:
            await self._s3.create_bucket(Bucket=self._bucket)

    async def ping(self) -> None:
        await self._s3.head_bucket(Bucket=self._bucket)

    @staticmethod
    def key(project_id: str, received_at: datetime) -> str:
        """A fresh key for one request's events; a project's keys sort by arrival."""
        return (
            f"events/{_segment(project_id)}/{received_at:%Y/%m/%d/%H}/"
            f"{received_at:%Y%m%dT%H%M%S.%f}-{uuid.uuid4().hex}"
        )

    async def put(self, key: str, body: bytes) -> None:
        await self._s3.put_object(Bucket=self._bucket, Key=key, Body=body)

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        got = await self._get(key)
        return None if got is None else got[0]

    async def remove_traces(self, key: str, trace_ids: set[str]) -> str:
        """Rewrites the object without the events of these traces, or deletes it when nothing
        else is left; returns what it did: "rewritten", "deleted" or "unchanged" (no such
        object, or none of its events belong to these traces: a replayed deletion). The rewrite
        is conditional on the object read (If-Match), so an object deleted meanwhile (its
        project's deletion, retention) is never written back."""
        while True:
            got = await self._get(key)
            if got is None:
                return "unchanged"
            body, etag = got
            events = decode_event_batch(body).events
            kept = [event for event in events if trace_of(event) not in trace_ids]
            if len(kept) == len(events):
                return "unchanged"
            if not kept:
                await self._s3.delete_object(Bucket=self._bucket, Key=key)
                return "deleted"
            rewritten = encode_event_batch(events_pb2.IngestionEventBatch(events=kept))
            try:
                await self._s3.put_object(
                    Bucket=self._bucket, Key=key, Body=rewritten, IfMatch=etag
                )
            except ClientError as exc:
                if _error_code(exc) in ("PreconditionFailed", "NoSuchKey"):
                    continue  # changed or deleted since it was read: read it again
                raise
            return "rewritten"

    async def _get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when there is no such object."""
        try:
            reply = await self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) == "NoSuchKey":
                return None
            raise
        async with reply["Body"] as stream:
            return bytes(await stream.read()), reply["ETag"]

    async def delete_project(self, project_id: str) -> int:
        """Removes every event-log object of a deleted project; returns how many there were."""
        return await delete_prefix(self._s3, self._bucket, f"events/{_segment(project_id)}/")


async def delete_prefix(s3: Any, bucket: str, prefix: str) -> int:
    """Removes every object under `prefix`, a listed page (at most 1,000 keys, S3's limit of one
    delete call) at a time, so memory stays flat however many there are; returns the count."""
    deleted = 0
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if not keys:
            continue
        reply = await s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        if failed := reply.get("Errors"):
            raise RuntimeError(f"{len(failed)} objects under {prefix} not deleted: {failed[0]}")
        deleted += len(keys)
    return deleted


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def trace_of(event: events_pb2.IngestionEvent) -> str:
    """The trace an event is filed under: its trace, or for a score of a session or a dataset
    run (no trace), the score itself."""
    return event.trace_id or event.entity_id


def _segment(name: str) -> str:
    """One key segment of a client string: quoted, so that one id's prefix never contains
    another's ("p/" and "p/2/"); hashed when long (S3 keys end at 1,024 bytes) and when it would
    be empty, "." or "..", which S3 servers such as MinIO refuse as a path segment."""
    quoted = quote(name, safe="")
    if len(quoted) > 200 or quoted in ("", ".", ".."):
        return "sha256-" + hashlib.sha256(name.encode()).hexdigest()
    return quoted

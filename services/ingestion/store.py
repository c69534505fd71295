"""The event log in S3: every accepted event is written here before it is published, grouped by
trace, so that a trace can be replayed or deleted by one key prefix (as Langfuse keeps its event
files per entity)."""

import asyncio
import hashlib
import uuid
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

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
    def key(project_id: str, trace_id: str, received_at: datetime) -> str:
        """A fresh key under the trace's prefix; keys of one trace sort by arrival."""
        return f"{_prefix(project_id, trace_id)}{received_at:%Y%m%dT%H%M%S.%f}-{uuid.uuid4().hex}"

    async def put(self, key: str, body: bytes) -> None:
        await self._s3.put_object(Bucket=self._bucket, Key=key, Body=body)

    async def delete_traces(self, project_id: str, trace_ids: list[str]) -> int:
        """Removes every object of these traces; returns how many there were."""
        keys: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for trace_id in trace_ids:
            prefix = _prefix(project_id, trace_id)
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                keys += [item["Key"] for item in page.get("Contents", [])]
        chunks = [keys[i : i + 1000] for i in range(0, len(keys), 1000)]  # S3's per-call limit
        replies = await asyncio.gather(*(
            self._s3.delete_objects(
                Bucket=self._bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )
            for chunk in chunks
        ))  # fmt: skip
        # A quiet delete answers 200 and lists only the keys it could not delete.
        if failed := [error for reply in replies for error in reply.get("Errors", [])]:
            raise RuntimeError(f"{len(failed)} event-log objects not deleted, e.g. {failed[0]}")
        return len(keys)

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


def _prefix(project_id: str, trace_id: str) -> str:
    return f"events/{_segment(project_id)}/{_segment(trace_id)}/"


def _segment(name: str) -> str:
    """One key segment of a client string: quoted, so that one id's prefix never contains
    another's ("a/" and "a/b/"); hashed when long (S3 keys end at 1,024 bytes) and when it would
    be empty, "." or "..", which S3 servers such as MinIO refuse as a path segment."""
    quoted = quote(name, safe="")
    if len(quoted) > 200 or quoted in ("", ".", ".."):
        return "sha256-" + hashlib.sha256(name.encode()).hexdigest()
    return quoted

"""The customer's bucket a blob-storage export writes to: a client for it, the probe run when an
integration is saved, and an object written as a stream of multipart-upload parts (at most one
part in memory)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# S3 parts are at least 5 MiB (the last excepted); an object smaller than one part is one PUT.
PART_BYTES = 8 * 2**20
PROBE_KEY = "langfuse-blob-storage-check.txt"


class TargetError(Exception):
    """The bucket refused or could not be reached; the message is the store's own words."""


@dataclass(frozen=True, slots=True)
class Target:
    endpoint: str | None
    region: str
    bucket: str
    access_key_id: str
    secret_access_key: str
    force_path_style: bool


@asynccontextmanager
async def s3_client(target: Target) -> AsyncIterator[Any]:
    session = aioboto3.Session(
        aws_access_key_id=target.access_key_id,
        aws_secret_access_key=target.secret_access_key,
        region_name=target.region,
    )
    config = Config(
        s3={"addressing_style": "path" if target.force_path_style else "auto"},
        signature_version="s3v4",
        connect_timeout=10,
        read_timeout=60,
        retries={"max_attempts": 3},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    async with session.client("s3", endpoint_url=target.endpoint, config=config) as client:
        yield client


def describe(exc: Exception) -> str:
    """A store's error as a client can read it: S3's code and message, or botocore's text."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "Error"
        return f"{code}: {error.get('Message') or exc}"
    return str(exc)


async def probe(target: Target, prefix: str) -> None:
    """Writes (and then removes, where allowed) a small object under the prefix: what an export
    needs. Raises TargetError with the store's answer."""
    key = f"{prefix}{PROBE_KEY}"
    try:
        async with s3_client(target) as client:
            await client.put_object(
                Bucket=target.bucket, Key=key, Body=b"Written to check a blob-storage export.\n"
            )
            # Writing is all an export needs; a check file left behind is harmless.
            with suppress(ClientError):
                await client.delete_object(Bucket=target.bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise TargetError(describe(exc)) from exc


class ObjectUpload:
    """One object written as it is produced: whole parts are uploaded as they fill up, and
    `complete` makes the object appear at once (a reader never sees half a file). An object
    that fits in one part is a single PUT. Writing the same key again replaces the object."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    async def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= PART_BYTES:
            await self._upload_part()

    async def complete(self) -> None:
        if self._upload_id is None:
            await self._client.put_object(
                Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer)
            )
            return
        if self._buffer or not self._parts:
            await self._upload_part()
        await self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    async def abort(self) -> None:
        """After a failure: the parts already sent are dropped (best effort)."""
        if self._upload_id is not None:
            with suppress(ClientError, BotoCoreError):
                await self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )

    async def _upload_part(self) -> None:
        if self._upload_id is None:
            created = await self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        data, self._buffer = bytes(self._buffer), bytearray()
        answer = await self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

"""The customer's bucket a blob-storage export writes to: a client for it, the probe run when an
integration is saved, and an object written as a stream of multipart-upload parts (at most one
part in memory).

The endpoint is a client's choice, so before any connection its host is resolved and every address
must be public, or inside a network the operator allowed (QUERY_EXPORT_ALLOWED_NETWORKS, e.g. an
in-cluster MinIO): a project may not make the query service probe internal addresses. (A host whose
DNS answer changes between this check and botocore's own lookup is not caught.)"""

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# S3 parts are at least 5 MiB (the last excepted); an object smaller than one part is one PUT.
PART_BYTES = 5 * 2**20
PROBE_KEY = "langfuse-blob-storage-check.txt"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetError(Exception):
    """The bucket refused or could not be reached; the message is the store's own words."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (`127.0.0.0/8, 10.1.0.0/16`); ValueError names a bad one."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a network (CIDR)") from exc
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class Target:
    endpoint: str | None
    region: str
    bucket: str
    access_key_id: str
    secret_access_key: str
    force_path_style: bool
    # Private networks the endpoint may resolve into (public addresses always may).
    allowed_networks: tuple[Network, ...] = ()


async def check_endpoint(target: Target) -> None:
    """Raises TargetError unless every address of the endpoint's host is public or allowed.
    No endpoint means AWS S3 itself."""
    if target.endpoint is None:
        return
    url = urlsplit(target.endpoint)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetError(f"endpoint host {host!r} does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global and not any(address in n for n in target.allowed_networks):
            raise TargetError(
                f"endpoint host {host!r} resolves to {address}, a private address this"
                " deployment does not export to (QUERY_EXPORT_ALLOWED_NETWORKS)"
            )


@asynccontextmanager
async def s3_client(target: Target) -> AsyncIterator[Any]:
    await check_endpoint(target)
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

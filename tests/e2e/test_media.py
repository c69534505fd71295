"""Media: the official SDK uploads `LangfuseMedia` and base64 data URIs straight to MinIO through
presigned URLs, the stored input keeps the reference strings, and `api.media.get` hands back a URL
of the very bytes. Checksums, limits, other projects and trace deletion as the issue asks."""

import base64
import hashlib
import json
import re
import signal
import struct
import subprocess
import uuid
import zlib
from typing import Any

import httpx
import pytest
from langfuse import Langfuse, LangfuseMedia

from libs.common.rpc import check_health
from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack, free_port
from tests.e2e.node import run_node_script
from tests.e2e.test_ingestion_batch import admin
from tests.support.devenv import ROOT
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)
REFERENCE = re.compile(r"@@@langfuseMedia:type=([^|]+)\|id=([^|]+)\|source=([^@]+)@@@")


def png(seed: str, side: int = 8) -> bytes:
    """A valid RGB PNG whose pixels depend on `seed` (so each test has content of its own)."""
    noise = hashlib.sha256(seed.encode()).digest()
    rows = b"".join(b"\x00" + bytes(noise[(y * side + x) % 32] for x in range(side * 3))
                    for y in range(side))  # fmt: skip

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))  # fmt: skip


def sha256_b64(content: bytes) -> str:
    return base64.b64encode(hashlib.sha256(content).digest()).decode()


def media_id_of(content: bytes) -> str:
    return sha256_b64(content).replace("+", "-").replace("/", "_")[:22]


def upload_request(content: bytes, trace_id: str, **changes: Any) -> dict[str, Any]:
    body = {"traceId": trace_id, "field": "input", "contentType": "image/png",
            "contentLength": len(content), "sha256Hash": sha256_b64(content)}  # fmt: skip
    return {**body, **changes}


def put_headers(content: bytes, content_type: str = "image/png") -> dict[str, str]:
    """The headers the Python SDK sends with its PUT."""
    return {"Content-Type": content_type, "x-ms-blob-type": "BlockBlob",
            "x-amz-checksum-sha256": sha256_b64(content)}  # fmt: skip


async def upload(client: httpx.AsyncClient, content: bytes, trace_id: str) -> str:
    """The SDK's three steps over plain HTTP; returns the media id."""
    created = (
        await client.post("/api/public/media", json=upload_request(content, trace_id))
    ).json()
    if created["uploadUrl"] is not None:
        put = await client.put(created["uploadUrl"], content=content, headers=put_headers(content),
                               auth=None)  # fmt: skip
        patch = {"uploadedAt": "2026-12-01T00:00:00Z", "uploadHttpStatus": put.status_code}
        assert (
            await client.patch(f"/api/public/media/{created['mediaId']}", json=patch)
        ).is_success
    return str(created["mediaId"])


async def stored(client: httpx.AsyncClient, observation_id: str, field: str) -> Any:
    """The observation's `field` as stored, once the observation is readable."""

    async def read() -> Any:
        response = await client.get(f"/api/public/observations/{observation_id}")
        return response.json().get(field) if response.is_success else None

    return await eventually(read, lambda value: value is not None)


@pytest.fixture
def sdk(stack: Stack) -> Langfuse:
    return Langfuse(public_key=PUBLIC_KEY, secret_key=SECRET_KEY, host=stack.gateway_url)


async def test_sdk5_uploads_media_and_reads_it_back(stack: Stack, sdk: Langfuse) -> None:
    image = png(f"bytes {uuid.uuid4()}")
    pasted = png(f"uri {uuid.uuid4()}")
    data_uri = "data:image/png;base64," + base64.b64encode(pasted).decode()
    with sdk.start_as_current_observation(name="with media") as span:
        span.update(input={"image": LangfuseMedia(content_bytes=image, content_type="image/png"),
                           "pasted": data_uri})  # fmt: skip
        observation_id = span.id
    sdk.flush()

    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        value = await stored(client, observation_id, "input")
    assert REFERENCE.fullmatch(value["image"]).groups() == (  # type: ignore[union-attr]
        "image/png",
        media_id_of(image),
        "bytes",
    )
    assert REFERENCE.fullmatch(value["pasted"]).groups() == (  # type: ignore[union-attr]
        "image/png",
        media_id_of(pasted),
        "base64_data_uri",
    )

    for content in (image, pasted):
        media = sdk.api.media.get(media_id_of(content))
        assert (media.content_type, media.content_length) == ("image/png", len(content))
        assert media.url.startswith(stack.env["S3_ENDPOINT_URL"] + "/")
        assert httpx.get(media.url).content == content
    resolved = LangfuseMedia.resolve_media_references(
        obj=value, langfuse_client=sdk, resolve_with="base64_data_uri"
    )
    assert resolved["pasted"] == data_uri


async def test_the_same_content_twice_is_one_media_without_a_second_upload(stack: Stack) -> None:
    content = png(f"twice {uuid.uuid4()}")
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        media_id = await upload(client, content, uuid.uuid4().hex)
        again = await client.post("/api/public/media", json=upload_request(content, "other-trace"))
        assert again.json() == {"mediaId": media_id, "uploadUrl": None}
        record = (await client.get(f"/api/public/media/{media_id}")).json()
    assert record["uploadedAt"] == "2026-12-01T00:00:00.000Z"
    assert record["urlExpiry"] > record["uploadedAt"]


async def test_a_body_whose_checksum_differs_is_refused_by_s3(stack: Stack) -> None:
    content = png(f"checksum {uuid.uuid4()}")
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        created = await client.post("/api/public/media", json=upload_request(content, "t"))
        media_id, url = created.json()["mediaId"], created.json()["uploadUrl"]
        signed = "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bx-amz-checksum-sha256"
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and signed in url
        tampered = content[:-1] + bytes([content[-1] ^ 1])  # the signed length, other bytes
        put = await client.put(url, content=tampered, headers=put_headers(content), auth=None)
        assert put.status_code == 400 and b"XAmzContentChecksumMismatch" in put.content
        # The SDK reports the failure; a client that claims success is not believed either.
        for status in (put.status_code, 200):
            patch = {"uploadedAt": "2026-12-01T00:00:00Z", "uploadHttpStatus": status,
                     "uploadHttpError": put.text}  # fmt: skip
            assert (
                await client.patch(f"/api/public/media/{media_id}", json=patch)
            ).status_code == 204
            missing = await client.get(f"/api/public/media/{media_id}")
            assert missing.status_code == 404
            assert missing.json()["message"] == "Media not yet uploaded"
        # Another content type than the signed one is refused too.
        wrong_type = await client.put(url, content=content, auth=None,
                                      headers=put_headers(content, "image/jpeg"))  # fmt: skip
        assert wrong_type.status_code == 403
        # The length is signed too: a URL for another length than the body's is refused.
        longer = upload_request(content, "t", contentLength=len(content) + 1)
        longer_url = (await client.post("/api/public/media", json=longer)).json()["uploadUrl"]
        put = await client.put(longer_url, content=content, headers=put_headers(content), auth=None)
        assert put.status_code == 403
        # Still not uploaded: a second request gets an upload URL again, and the right bytes pass.
        assert await upload(client, content, "t") == media_id
        assert (await client.get(f"/api/public/media/{media_id}")).status_code == 200


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"contentType": "image/x-unknown"}, "contentType"),
        ({"contentLength": 1_000_000_001}, "contentLength"),
        ({"contentLength": 0}, "contentLength"),
        ({"sha256Hash": "not base64!"}, "sha256Hash"),
        ({"sha256Hash": base64.b64encode(b"short").decode()}, "sha256Hash"),
        ({"field": "expectedOutput"}, "field"),
        ({"traceId": None}, "traceId"),
        ({"datasetId": "d", "datasetItemId": "i"}, "traceId"),
        ({"traceId": "a\x00b"}, "traceId"),
    ],
)
async def test_bad_upload_requests_are_400(
    stack: Stack, changes: dict[str, Any], message: str
) -> None:
    body = upload_request(b"content", "t", **changes)
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post("/api/public/media", json=body)
    assert response.status_code == 400
    assert message in response.json()["message"]


async def test_bad_patches_and_unknown_media(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        created = await client.post("/api/public/media", json=upload_request(b"patched", "t"))
        media_id = created.json()["mediaId"]
        for body in ({}, {"uploadedAt": "yesterday", "uploadHttpStatus": 200},
                     {"uploadedAt": "2026-12-01T00:00:00Z", "uploadHttpStatus": 42}):  # fmt: skip
            response = await client.patch(f"/api/public/media/{media_id}", json=body)
            assert response.status_code == 400, body
        ok = {"uploadedAt": "2026-12-01T00:00:00Z", "uploadHttpStatus": 200}
        for unknown in ("nope", "a%00b"):
            assert (await client.get(f"/api/public/media/{unknown}")).status_code == 404
            assert (await client.patch(f"/api/public/media/{unknown}", json=ok)).status_code == 404


async def test_dataset_item_media_are_accepted(stack: Stack) -> None:
    content = png(f"dataset {uuid.uuid4()}")
    body = upload_request(content, "", traceId=None, datasetId="d", datasetItemId="item",
                          field="expectedOutput")  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        created = await client.post("/api/public/media", json=body)
    assert created.status_code == 200 and created.json()["mediaId"] == media_id_of(content)


async def test_another_project_sees_no_media_and_urls_cover_their_key(stack: Stack) -> None:
    other = f"media-{uuid.uuid4().hex[:6]}"
    admin(stack, "create-project", "--org-id", "e2e-org", "--project-id", other, "--name", "M")
    keys = admin(stack, "create-key", "--org-id", "e2e-org", "--project-id", other)
    content, second = png(f"mine {uuid.uuid4()}"), png(f"second {uuid.uuid4()}")
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as owner:
        media_id = await upload(owner, content, "t")
        url = (await owner.get(f"/api/public/media/{media_id}")).json()["url"]
        pending = (await owner.post("/api/public/media", json=upload_request(second, "t"))).json()
    stranger_auth = (keys["publicKey"], keys["secretKey"])
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=stranger_auth) as stranger:
        assert (await stranger.get(f"/api/public/media/{media_id}")).status_code == 404
        patch = {"uploadedAt": "2026-12-01T00:00:00Z", "uploadHttpStatus": 200}
        assert (
            await stranger.patch(f"/api/public/media/{media_id}", json=patch)
        ).status_code == 404
        # The same content in the other project is a media of its own, still to be uploaded.
        theirs = await stranger.post("/api/public/media", json=upload_request(content, "t"))
        assert theirs.json()["mediaId"] == media_id and theirs.json()["uploadUrl"] is not None
    # A presigned URL signs its object's key: replayed for another object, S3 refuses it.
    assert httpx.get(url.replace(media_id, media_id_of(second))).status_code == 403
    upload_url = pending["uploadUrl"].replace(pending["mediaId"], media_id_of(content))
    replayed = httpx.put(upload_url, content=second, headers=put_headers(second))
    assert replayed.status_code == 403


async def test_js_span_processor_uploads_a_data_uri(stack: Stack) -> None:
    content = png(f"js {uuid.uuid4()}")
    data_uri = "data:image/png;base64," + base64.b64encode(content).decode()
    printed = run_node_script(stack, "media.mjs", MEDIA_DATA_URI=data_uri)
    observation_id = printed["observationId"]
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        value = await stored(client, observation_id, "input")
        reference = REFERENCE.fullmatch(value["image"])
        assert reference is not None
        assert reference.groups() == ("image/png", media_id_of(content), "base64_data_uri")
        record = (await client.get(f"/api/public/media/{media_id_of(content)}")).json()
    assert httpx.get(record["url"]).content == content


async def test_deleting_a_trace_deletes_the_media_only_it_references(stack: Stack) -> None:
    trace_id, other_trace = uuid.uuid4().hex, uuid.uuid4().hex
    alone, shared = png(f"alone {uuid.uuid4()}"), png(f"shared {uuid.uuid4()}")
    batch = {"batch": [
        {"id": uuid.uuid4().hex, "type": "trace-create", "timestamp": "2026-12-01T10:00:00Z",
         "body": {"id": trace_id, "name": "with media"}},
    ]}  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        (await client.post("/api/public/ingestion", json=batch)).raise_for_status()
        alone_id = await upload(client, alone, trace_id)
        shared_id = await upload(client, shared, trace_id)
        await upload(client, shared, other_trace)
        alone_url = (await client.get(f"/api/public/media/{alone_id}")).json()["url"]
        await eventually(
            lambda: client.get(f"/api/public/traces/{trace_id}"), lambda r: r.is_success
        )
        assert (await client.delete(f"/api/public/traces/{trace_id}")).is_success

        async def gone() -> int:
            return (await client.get(f"/api/public/media/{alone_id}")).status_code

        await eventually(gone, lambda status: status == 404)
        assert httpx.get(alone_url).status_code == 404  # the object is gone from S3
        kept = (await client.get(f"/api/public/media/{shared_id}")).json()
    assert httpx.get(kept["url"]).content == shared


SDK3_PYTHON = ROOT / ".dev" / "venvs" / "langfuse3" / "bin" / "python"
SDK3_SCRIPT = """
import base64, json, sys
from langfuse import Langfuse
from langfuse.media import LangfuseMedia
public_key, secret_key, host, content = sys.argv[1:5]
client = Langfuse(public_key=public_key, secret_key=secret_key, host=host)
media = LangfuseMedia(content_bytes=base64.b64decode(content), content_type="image/png")
with client.start_as_current_span(name="sdk3 media") as span:
    span.update(output={"image": media})
    observation_id = span.id
client.flush()
print(json.dumps({"observationId": observation_id}))
"""


async def test_sdk3_uploads_media_too(stack: Stack) -> None:
    content = png(f"sdk3 {uuid.uuid4()}")
    encoded = base64.b64encode(content).decode()
    result = subprocess.run(
        [str(SDK3_PYTHON), "-c", SDK3_SCRIPT, PUBLIC_KEY, SECRET_KEY, stack.gateway_url, encoded],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    observation_id = json.loads(result.stdout.strip().splitlines()[-1])["observationId"]
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        value = await stored(client, observation_id, "output")
        reference = REFERENCE.fullmatch(value["image"])
        assert reference is not None and reference.group(2) == media_id_of(content)
        record = (await client.get(f"/api/public/media/{media_id_of(content)}")).json()
    assert httpx.get(record["url"]).content == content


async def test_urls_are_signed_for_the_public_s3_endpoint(stack: Stack) -> None:
    """An ingestion replica with INGESTION_S3_PUBLIC_ENDPOINT_URL set (here another name of the
    same MinIO) hands out URLs for that endpoint, and they work there; its own calls still go to
    S3_ENDPOINT_URL."""
    public = stack.env["S3_ENDPOINT_URL"].replace("127.0.0.1", "localhost")
    grpc_port, http_port = free_port(), free_port()
    ingestion = stack.start("ingestion", INGESTION_GRPC_PORT=str(grpc_port),
                            INGESTION_S3_PUBLIC_ENDPOINT_URL=public)  # fmt: skip
    gateway = stack.start(
        "gateway", GATEWAY_HTTP_PORT=str(http_port), INGESTION_ADDR=f"127.0.0.1:{grpc_port}"
    )
    try:
        await eventually(lambda: check_health(f"127.0.0.1:{grpc_port}"), lambda s: s == "SERVING")
        url = f"http://127.0.0.1:{http_port}"
        async with httpx.AsyncClient(base_url=url, auth=AUTH) as client:

            async def ready() -> int:
                try:
                    return (await client.get("/api/public/ready")).status_code
                except httpx.TransportError:
                    return 0

            await eventually(ready, lambda status: status == 200, timeout=30)
            content = png(f"public {uuid.uuid4()}")
            created = await client.post("/api/public/media", json=upload_request(content, "t"))
            assert created.json()["uploadUrl"].startswith(f"{public}/")
            media_id = await upload(client, content, "t")
            record = (await client.get(f"/api/public/media/{media_id}")).json()
    finally:
        for process in (gateway, ingestion):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert record["url"].startswith(f"{public}/")
    assert httpx.get(record["url"]).content == content

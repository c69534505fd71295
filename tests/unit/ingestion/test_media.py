"""Media requests as the SDKs send them: the id the SDK computes, the content-type enum, the
length limit and the one-context rule, each refused with a message naming its field."""

import base64
import hashlib
from datetime import UTC, datetime

import orjson
import pytest
from botocore.exceptions import EndpointConnectionError

from libs.common.config import ConfigError, load
from libs.common.errors import InvalidArgument, Unavailable
from services.ingestion.config import IngestionConfig
from services.ingestion.media import (
    CONTENT_TYPES,
    Link,
    Media,
    MediaObjects,
    media_id_of,
    parse_patch,
    parse_upload,
)

CONTENT = b"\x89PNG not really"
SHA = base64.b64encode(hashlib.sha256(CONTENT).digest()).decode()


def request(**changes: object) -> bytes:
    body = {"traceId": "t", "observationId": None, "datasetId": None, "datasetItemId": None,
            "field": "input", "contentType": "image/png", "contentLength": len(CONTENT),
            "sha256Hash": SHA}  # fmt: skip
    return orjson.dumps({**body, **changes})


def test_the_media_id_is_the_sdks() -> None:
    # The SDK: base64 digest, "+" -> "-", "/" -> "_", the first 22 characters.
    digest = bytes(range(32))  # its base64 has both "+" and "/" early on
    sha = base64.b64encode(digest).decode()
    assert media_id_of(sha) == base64.urlsafe_b64encode(digest).decode()[:22]
    assert len(media_id_of(SHA)) == 22 and "+" not in media_id_of(sha)


def test_trace_and_dataset_item_contexts() -> None:
    _, link = parse_upload(request(observationId="o", field="output"), max_bytes=100)
    assert link == Link("output", trace_id="t", observation_id="o")
    body = request(traceId=None, datasetId="d", datasetItemId="i", field="expectedOutput")
    assert parse_upload(body, max_bytes=100)[1] == Link(
        "expectedOutput", dataset_id="d", dataset_item_id="i"
    )


def test_the_sdks_content_types_are_accepted() -> None:
    assert {"image/png", "audio/mpeg", "application/pdf", "text/x-python"} <= CONTENT_TYPES
    for content_type in CONTENT_TYPES:
        parse_upload(request(contentType=content_type), max_bytes=100)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"contentType": "image/x-icon"}, "contentType"),
        ({"contentType": 5}, "contentType"),
        ({"contentLength": 101}, "contentLength"),
        ({"contentLength": 0}, "contentLength"),
        ({"contentLength": "12"}, "contentLength"),
        ({"contentLength": 2**64 - 1}, "contentLength"),
        ({"sha256Hash": SHA[:-2]}, "sha256Hash"),
        ({"sha256Hash": base64.b64encode(b"x" * 31).decode()}, "sha256Hash"),
        ({"sha256Hash": None}, "sha256Hash"),
        ({"sha256Hash": "é" * 44}, "sha256Hash"),
        ({"field": "expectedOutput"}, "field"),
        ({"field": None}, "field"),
        ({"traceId": None}, "traceId"),
        ({"traceId": ""}, "traceId"),
        ({"traceId": "t\n"}, "traceId"),
        ({"datasetId": "d"}, "traceId"),
        ({"traceId": None, "datasetId": "d"}, "datasetItemId"),
        ({"traceId": None, "datasetId": "d", "datasetItemId": "i", "field": "output"}, "field"),
        ({"traceId": None, "datasetId": "d", "datasetItemId": "i", "observationId": "o"},
         "observationId"),
    ],
)  # fmt: skip
def test_bad_upload_requests(changes: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidArgument, match=named):
        parse_upload(request(**changes), max_bytes=100)


@pytest.mark.parametrize("body", [b"", b"[]", b"{", b'"x"'])
def test_bodies_that_are_no_object(body: bytes) -> None:
    with pytest.raises(InvalidArgument, match="Invalid request data"):
        parse_upload(body, max_bytes=100)


def test_patches() -> None:
    patch = parse_patch(b'{"uploadedAt": "2026-12-01T10:00:00.5+00:00", "uploadHttpStatus": 200,'
                        b' "uploadHttpError": null, "uploadTimeMs": 12}')  # fmt: skip
    assert patch.uploaded_at == datetime(2026, 12, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert (patch.upload_http_status, patch.upload_time_ms) == (200, 12)
    for bad in (
        b'{"uploadHttpStatus": 200}',
        b'{"uploadedAt": "2026-12-01T10:00:00Z", "uploadHttpStatus": 1000}',
        b'{"uploadedAt": "2026-12-01T10:00:00", "uploadHttpStatus": 200}',  # no time zone
        b'{"uploadedAt": "2200-01-01T00:00:00Z", "uploadHttpStatus": 200}',
        b'{"uploadedAt": "2026-12-01T10:00:00Z", "uploadHttpStatus": 200, "uploadTimeMs": -1}',
    ):
        with pytest.raises(InvalidArgument, match="Invalid request data"):
            parse_patch(bad)


class DownPool:
    """A PostgreSQL pool whose server is gone."""

    async def fetchrow(self, *args: object) -> None:
        raise ConnectionRefusedError("connection refused")

    async def fetchval(self, *args: object) -> None:
        raise ConnectionRefusedError("connection refused")


class DownS3:
    async def head_object(self, **kwargs: object) -> None:
        raise EndpointConnectionError(endpoint_url="http://s3")


PATCHED = b'{"uploadedAt": "2026-12-01T10:00:00Z", "uploadHttpStatus": 200}'


async def test_store_outages_are_unavailable() -> None:
    media = Media(DownPool(), MediaObjects(DownS3(), None, "b", 60), max_bytes=100)  # type: ignore[arg-type]
    with pytest.raises(Unavailable):
        await media.create_upload("p", request())
    with pytest.raises(Unavailable):
        await media.get("p", "m")
    with pytest.raises(Unavailable):
        await media.patch("p", "m", PATCHED)


REQUIRED = {"INGESTION_S3_BUCKET": "b", "EVALS_ADDR": "e:1", "INGESTION_REDIS_URL": "redis://r",
            "KAFKA_BOOTSTRAP_SERVERS": "k:1", "INTERNAL_AUTH_TOKEN": "x" * 16,
            "INGESTION_DATABASE_URL": "postgresql://db"}  # fmt: skip


def test_media_settings_and_their_bounds() -> None:
    cfg = load(IngestionConfig, "INGESTION_", REQUIRED)
    assert (cfg.media_max_bytes, cfg.media_url_seconds) == (10**9, 3600)
    assert cfg.s3_public_endpoint_url == ""  # S3_ENDPOINT_URL then
    for name, value in (
        ("INGESTION_MEDIA_MAX_BYTES", "0"),
        ("INGESTION_MEDIA_MAX_BYTES", str(5 * 1024**3 + 1)),
        ("INGESTION_MEDIA_URL_SECONDS", "604801"),
    ):
        with pytest.raises(ConfigError, match=name):
            load(IngestionConfig, "INGESTION_", {**REQUIRED, name: value})
    # The event log's index lives there: ingestion does not start without it.
    without_database = {k: v for k, v in REQUIRED.items() if k != "INGESTION_DATABASE_URL"}
    with pytest.raises(ConfigError, match="INGESTION_DATABASE_URL is required"):
        load(IngestionConfig, "INGESTION_", without_database)

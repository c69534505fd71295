"""Langfuse's blob-storage integration of a project (`/api/public/integrations/blob-storage`):
the create-or-update body checked field by field, a test write to the bucket before anything is
saved (refused credentials are a 400 with the store's answer), the secret sealed and never shown,
and the integration and sync-status documents. The gateway checks that the project belongs to
the organization key; the project comes here in the call's scope."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from libs.common.errors import InvalidArgument, NotFound, Unavailable
from libs.common.json_bodies import parse_body
from libs.common.secret_box import SecretBox, SecretKeyError
from services.query.blob_export import FREQUENCIES, target_of
from services.query.export_files import FIELD_GROUPS
from services.query.export_store import ExportSettings, ExportStore, Integration
from services.query.export_targets import Network, TargetError, probe

_TYPES = ("S3", "S3_COMPATIBLE", "AZURE_BLOB_STORAGE")
_FILE_TYPES = ("JSON", "CSV", "JSONL", "PARQUET")
_MODES = ("FULL_HISTORY", "FROM_TODAY", "FROM_CUSTOM_DATE")
_SOURCES = (
    "LEGACY_TRACES_OBSERVATIONS",
    "OBSERVATIONS_V2",
    "LEGACY_TRACES_AND_ENRICHED_OBSERVATIONS",
)
_SERVED_SOURCE = "LEGACY_TRACES_OBSERVATIONS"  # the only data model stored here
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_ENDPOINT = re.compile(r"https?://[^\s/?#@]+(/[^\s?#]*)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_PREFIX = 512
_MAX_KEY = 1024
_START_TOLERANCE = timedelta(hours=27)  # Langfuse's allowance for time zones
_NOT_FOUND = "Blob storage integration not found"


class ExportApi:
    def __init__(
        self,
        store: ExportStore,
        box: SecretBox | None,
        *,
        allowed_networks: tuple[Network, ...] = (),
    ) -> None:
        self._store = store
        self._box = box
        self._allowed_networks = allowed_networks

    async def upsert(self, project_id: str, body_json: bytes) -> bytes:
        if self._box is None:
            raise Unavailable(
                "Blob storage integrations need QUERY_ENCRYPTION_KEY to store credentials"
            )
        body = parse_body(body_json)
        existing = await self._store.get(project_id)
        settings = parse_settings(body, existing)
        secret = _optional_text(body, "secretAccessKey", _MAX_KEY)
        if secret is None:
            if existing is None:
                raise InvalidArgument("Invalid request data: secretAccessKey is required")
            try:
                secret = self._box.open(existing.sealed_secret, project_id)
            except SecretKeyError as exc:
                raise InvalidArgument(
                    "Invalid request data: the stored secretAccessKey cannot be read; send it again"
                ) from exc
        try:
            await probe(target_of(settings, secret, self._allowed_networks), settings.prefix)
        except TargetError as exc:
            raise InvalidArgument(
                f"Could not write to bucket {settings.bucket_name!r}: {exc}"
            ) from exc
        sealed = self._box.seal(secret, project_id)
        integration = await self._store.upsert(project_id, settings, sealed)
        return orjson.dumps(integration_document(integration))

    async def documents(self, project_id: str) -> tuple[bytes, bytes] | None:
        """The integration and its sync status, or None when the project has none."""
        integration = await self._store.get(project_id)
        if integration is None:
            return None
        return (
            orjson.dumps(integration_document(integration)),
            orjson.dumps(status_document(integration)),
        )

    async def delete(self, project_id: str) -> None:
        if not await self._store.delete(project_id):
            raise NotFound(_NOT_FOUND)


def parse_settings(body: dict[str, Any], existing: Integration | None) -> ExportSettings:
    """The settings a create-or-update body asks for; omitted exportSource and exportFieldGroups
    keep the existing integration's."""
    kind = _choice(body, "type", _TYPES)
    if kind == "AZURE_BLOB_STORAGE":
        raise InvalidArgument(
            "Invalid request data: this deployment exports to S3 and S3_COMPATIBLE"
        )
    bucket = _text(body, "bucketName", 63)
    if not _BUCKET.fullmatch(bucket):
        raise InvalidArgument(
            "Invalid request data: bucketName must be 3-63 lowercase letters, digits, dots or"
            " hyphens, starting and ending with a letter or digit"
        )
    endpoint = _optional_text(body, "endpoint", 2048)
    if endpoint is not None and not _ENDPOINT.fullmatch(endpoint):
        raise InvalidArgument(
            "Invalid request data: endpoint must be an http(s) URL without credentials, query"
            " or fragment"
        )
    if kind == "S3_COMPATIBLE" and endpoint is None:
        raise InvalidArgument("Invalid request data: endpoint is required for S3_COMPATIBLE")
    region = _text(body, "region", 64)
    if not _REGION.fullmatch(region):
        raise InvalidArgument("Invalid request data: region must be letters, digits, - or _")
    prefix = _optional_text(body, "prefix", _MAX_PREFIX) or ""
    if prefix and (not prefix.endswith("/") or prefix.startswith("/")):
        raise InvalidArgument(
            "Invalid request data: prefix must end with a forward slash and not start with one"
        )
    mode = _choice(body, "exportMode", _MODES)
    start = _start_date(body, mode)
    source = body.get("exportSource")
    groups = body.get("exportFieldGroups")
    if groups is not None and source is None:
        raise InvalidArgument("Invalid request data: exportFieldGroups requires exportSource")
    if source is None:
        source = existing.settings.export_source if existing else _SERVED_SOURCE
    elif source not in _SOURCES:
        raise InvalidArgument(f"Invalid request data: exportSource must be one of {_SOURCES}")
    elif source != _SERVED_SOURCE:
        raise InvalidArgument(
            f"Invalid request data: this deployment stores only the legacy tables;"
            f" exportSource must be {_SERVED_SOURCE}"
        )
    if groups is None:
        groups = existing.settings.export_field_groups if existing else None
    else:
        groups = _field_groups(groups)
    compressed = body.get("compressed")
    if compressed is not None and not isinstance(compressed, bool):
        raise InvalidArgument("Invalid request data: compressed must be a boolean")
    return ExportSettings(
        type=kind,
        bucket_name=bucket,
        endpoint=endpoint,
        region=region,
        access_key_id=_text(body, "accessKeyId", _MAX_KEY),
        prefix=prefix,
        force_path_style=_flag(body, "forcePathStyle"),
        export_frequency=_choice(body, "exportFrequency", tuple(FREQUENCIES)),
        file_type=_choice(body, "fileType", _FILE_TYPES),
        compressed=True if compressed is None else compressed,
        export_mode=mode,
        export_start_date=start,
        export_source=source,
        export_field_groups=groups,
        enabled=_flag(body, "enabled"),
    )


def _start_date(body: dict[str, Any], mode: str) -> datetime | None:
    now = datetime.now(UTC)
    if mode == "FULL_HISTORY":
        return None
    if mode == "FROM_TODAY":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    raw = body.get("exportStartDate")
    if not isinstance(raw, str):
        raise InvalidArgument(
            "Invalid request data: exportStartDate is required for FROM_CUSTOM_DATE"
        )
    try:
        start = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        start.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument("Invalid request data: exportStartDate must be ISO 8601") from exc
    if start > now + _START_TOLERANCE or start.year < 1970:
        raise InvalidArgument("Invalid request data: exportStartDate must not be in the future")
    return start


def _field_groups(groups: Any) -> list[str]:
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise InvalidArgument("Invalid request data: exportFieldGroups must be a list of strings")
    if unknown := sorted(set(groups) - set(FIELD_GROUPS)):
        raise InvalidArgument(f"Invalid request data: unknown exportFieldGroups {unknown}")
    if "core" not in groups:
        raise InvalidArgument("Invalid request data: exportFieldGroups must include core")
    return sorted(set(groups), key=FIELD_GROUPS.index)


def _text(body: dict[str, Any], name: str, max_chars: int) -> str:
    value = _optional_text(body, name, max_chars)
    if value is None:
        raise InvalidArgument(f"Invalid request data: {name} is required")
    return value


def _optional_text(body: dict[str, Any], name: str, max_chars: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise InvalidArgument(
            f"Invalid request data: {name} must be a string of 1-{max_chars} characters"
        )
    if _CONTROL.search(value):
        raise InvalidArgument(f"Invalid request data: {name} must not hold control characters")
    return value


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = body.get(name)
    if value not in allowed:
        raise InvalidArgument(f"Invalid request data: {name} must be one of {', '.join(allowed)}")
    return str(value)


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise InvalidArgument(f"Invalid request data: {name} is required and must be a boolean")
    return value


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def integration_document(integration: Integration) -> dict[str, Any]:
    """Langfuse's BlobStorageIntegrationResponse; the secret is never part of it."""
    settings = integration.settings
    return {
        "id": integration.project_id,
        "projectId": integration.project_id,
        "type": settings.type,
        "bucketName": settings.bucket_name,
        "endpoint": settings.endpoint,
        "region": settings.region,
        "accessKeyId": settings.access_key_id,
        "prefix": settings.prefix,
        "exportFrequency": settings.export_frequency,
        "enabled": settings.enabled,
        "forcePathStyle": settings.force_path_style,
        "fileType": settings.file_type,
        "exportMode": settings.export_mode,
        "exportStartDate": _iso(settings.export_start_date),
        "compressed": settings.compressed,
        "exportSource": settings.export_source,
        "exportFieldGroups": settings.export_field_groups,
        "nextSyncAt": _iso(integration.next_sync_at),
        "lastSyncAt": _iso(integration.last_sync_at),
        "lastError": integration.last_error,
        "lastErrorAt": _iso(integration.last_error_at),
        "createdAt": _iso(integration.created_at),
        "updatedAt": _iso(integration.updated_at),
    }


def status_document(integration: Integration) -> dict[str, Any]:
    """Langfuse's BlobStorageIntegrationStatusResponse."""
    now = datetime.now(UTC)
    if not integration.settings.enabled:
        status = "disabled"
    elif integration.running:
        status = "running"
    elif integration.last_error is not None:
        status = "error"
    elif integration.next_sync_at is not None and integration.next_sync_at <= now:
        status = "queued"
    elif integration.last_sync_at is None:
        status = "idle"
    else:
        status = "up_to_date"
    return {
        "id": integration.project_id,
        "projectId": integration.project_id,
        "syncStatus": status,
        "enabled": integration.settings.enabled,
        "lastSyncAt": _iso(integration.last_sync_at),
        "nextSyncAt": _iso(integration.next_sync_at),
        "lastError": integration.last_error,
        "lastErrorAt": _iso(integration.last_error_at),
    }

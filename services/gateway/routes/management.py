"""The management API of organization keys (the OpenAPI file's Projects and Organizations tags):
projects (create, update, delete), their API keys, and the organization's lists.

Every route takes an organization key (a project key is a 403) and reaches only that key's
organization: another organization's project is a 404, exactly like a project that does not
exist. There are no users here, so membership lists are empty and changing the membership of a
user is a 404, as Langfuse answers for a user it does not know.
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.endpoint import read_json, state_of
from services.gateway.errors import ApiError, JsonResponse
from services.gateway.keys import display_secret, hash_secret, new_key_pair
from services.gateway.ratelimit import Bucket, too_many_requests
from services.gateway.store import KeyConflict, KeySummary, OrgProject, Project

log = structlog.get_logger()

OrgHandler = Callable[[Request, str], Awaitable[Response]]

MAX_NAME_CHARS = 1000
MIN_RETENTION_DAYS = 3
_MAX_RETENTION_DAYS = 2**31 - 1  # the integer column it is stored in
_MAX_KEY_CHARS = 256
_MAX_NOTE_CHARS = 1000
_ROLES = ("OWNER", "ADMIN", "MEMBER", "VIEWER")
_PROJECT_NOT_FOUND = "Project not found or you don't have access to it"


def org_endpoint(handler: OrgHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wraps a management route: an organization key, rate-limited per organization."""

    async def authenticated(request: Request) -> Response:
        state = state_of(request)
        principal = await state.authenticator.authenticate(request.headers.get("authorization"))
        org_id = principal.org_id()
        retry_after = await state.rate_limiter.retry_after(f"org:{org_id}", Bucket.API)
        if retry_after is not None:
            return too_many_requests(retry_after)
        return await handler(request, org_id)

    return authenticated


# ---- projects


async def create_project(request: Request, org_id: str) -> Response:
    body = await _object_body(request)
    retention = _retention(body) if _has_retention(body) else None
    project = await state_of(request).store.create_project(
        org_id, _name(body), _metadata(body) or {}, retention
    )
    log.info("project_created", org_id=org_id, project_id=project.id)
    return JsonResponse(_project_document(project))


async def update_project(request: Request, org_id: str) -> Response:
    project_id = _path_id(request, "projectId")
    body = await _object_body(request)
    set_retention = _has_retention(body)
    project = await state_of(request).store.update_project(
        org_id,
        project_id,
        name=_name(body),
        metadata=_metadata(body),
        retention_days=_retention(body) if set_retention else None,
        set_retention=set_retention,
    )
    if project is None:
        raise ApiError(404, _PROJECT_NOT_FOUND)
    if set_retention:
        # Resolved keys carry the retention that reads apply: none may keep the old one.
        await _revoked(request)
    return JsonResponse(_project_document(project))


async def delete_project(request: Request, org_id: str) -> Response:
    """Tombstones the project and deletes its keys, renews the revocation generation (no replica
    accepts its keys from then on), announces the deletion and answers 202; each owning service
    deletes the project's data on its own. A tombstone is found again until the gateway's consumer
    removes it, so a retry re-announces (as Langfuse answers 202 until its worker deleted the row);
    afterwards the project is a 404."""
    project_id = _path_id(request, "projectId")
    state = state_of(request)
    if not await state.store.mark_project_deleted(org_id, project_id):
        raise ApiError(404, _PROJECT_NOT_FOUND)
    await _revoked(request)
    if state.deletions is None:
        raise ApiError(503, "Project deletion is unavailable, please retry")
    try:
        await state.deletions.announce(org_id, project_id)
    except KafkaError as exc:
        # The project is tombstoned and its keys are gone; a retry finds the tombstone and
        # announces it again.
        log.warning("project_deletion_not_announced", project_id=project_id, error=repr(exc))
        raise ApiError(503, "Project deletion could not be announced, please retry") from exc
    log.info("project_deleted", org_id=org_id, project_id=project_id)
    return JsonResponse(
        {
            "success": True,
            "message": "Project deletion has been initiated and is being processed asynchronously",
        },
        status_code=202,
    )


async def list_org_projects(request: Request, org_id: str) -> Response:
    projects = await state_of(request).store.org_projects(org_id)
    return JsonResponse({"projects": [_org_project_document(p) for p in projects]})


# ---- API keys


async def list_project_keys(request: Request, org_id: str) -> Response:
    project = await _project(request, org_id)
    keys = await state_of(request).store.project_keys(project.id)
    return JsonResponse({"apiKeys": [_key_document(k) for k in keys]})


async def create_project_key(request: Request, org_id: str) -> Response:
    project = await _project(request, org_id)
    body = await _object_body(request, empty_ok=True)
    note = _optional_text(body, "note", _MAX_NOTE_CHARS)
    public_key = _optional_text(body, "publicKey", _MAX_KEY_CHARS)
    secret_key = _optional_text(body, "secretKey", _MAX_KEY_CHARS)
    if (public_key is None) != (secret_key is None):
        raise ApiError(400, "Invalid request data: publicKey and secretKey go together")
    if public_key is None or secret_key is None:
        pair = new_key_pair()
        public_key, secret_key = pair.public_key, pair.secret_key
    elif not public_key.startswith("pk-lf-") or not secret_key.startswith("sk-lf-"):
        raise ApiError(400, "Invalid request data: keys must start with 'pk-lf-' and 'sk-lf-'")
    state = state_of(request)
    try:
        key = await state.store.create_key(
            public_key=public_key,
            secret_hash=hash_secret(secret_key, state.authenticator.salt),
            display_secret_key=display_secret(secret_key),
            org_id=org_id,
            project_id=project.id,
            note=note,
        )
    except KeyConflict as exc:
        raise ApiError(409, "An API key with this public key or secret key exists") from exc
    log.info("api_key_created", org_id=org_id, project_id=project.id, key_id=key.id)
    document = _key_document(key)
    # The only time the secret is shown: only its hash is stored.
    return JsonResponse(
        {
            "id": key.id,
            "createdAt": document["createdAt"],
            "publicKey": key.public_key,
            "secretKey": secret_key,
            "displaySecretKey": key.display_secret_key,
            "note": key.note,
        }
    )


async def delete_project_key(request: Request, org_id: str) -> Response:
    project = await _project(request, org_id)
    key_id = _path_id(request, "apiKeyId")
    if not await state_of(request).store.delete_key(project.id, key_id):
        raise ApiError(404, "API key not found")
    await _revoked(request)
    log.info("api_key_deleted", org_id=org_id, project_id=project.id, key_id=key_id)
    return JsonResponse({"success": True})


async def list_org_keys(request: Request, org_id: str) -> Response:
    keys = await state_of(request).store.org_keys(org_id)
    return JsonResponse({"apiKeys": [_key_document(k) for k in keys]})


# ---- memberships: no users here


async def list_org_memberships(request: Request, org_id: str) -> Response:
    return JsonResponse({"memberships": []})


async def put_org_membership(request: Request, org_id: str) -> Response:
    _membership_request(await _object_body(request), with_role=True)
    raise ApiError(404, "User not found")


async def delete_org_membership(request: Request, org_id: str) -> Response:
    _membership_request(await _object_body(request), with_role=False)
    raise ApiError(404, "User not found")


async def list_project_memberships(request: Request, org_id: str) -> Response:
    await _project(request, org_id)
    return JsonResponse({"memberships": []})


async def put_project_membership(request: Request, org_id: str) -> Response:
    await _project(request, org_id)
    _membership_request(await _object_body(request), with_role=True)
    raise ApiError(404, "User is not a member of this organization")


async def delete_project_membership(request: Request, org_id: str) -> Response:
    await _project(request, org_id)
    _membership_request(await _object_body(request), with_role=False)
    raise ApiError(404, "User is not a member of this organization")


# ---- helpers


async def _project(request: Request, org_id: str) -> Project:
    project = await state_of(request).store.org_project(org_id, _path_id(request, "projectId"))
    if project is None:
        raise ApiError(404, _PROJECT_NOT_FOUND)
    return project


async def _revoked(request: Request) -> None:
    try:
        await state_of(request).authenticator.revoked()
    except RedisError as exc:
        # The database change stands; until a retry renews the generation, other replicas could
        # accept the key from their caches, so this is not reported as done.
        log.error("revocation_not_published", error=str(exc))
        raise ApiError(503, "The revocation could not be published, please retry") from exc


def _path_id(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: no such row can exist
        raise ApiError(404, _PROJECT_NOT_FOUND if name == "projectId" else "API key not found")
    return value


async def _object_body(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    if empty_ok and not await request.body():
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid request data: the body must be a JSON object")
    if _holds_nul(body):
        raise ApiError(400, "Invalid request data: text must not contain NUL characters")
    return body


def _holds_nul(value: Any) -> bool:
    """PostgreSQL text and jsonb refuse U+0000 anywhere, in keys too."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "Invalid request data: name is required and must be a string")
    if len(name) > MAX_NAME_CHARS:
        raise ApiError(
            400, f"Invalid request data: name must be at most {MAX_NAME_CHARS} characters"
        )
    return name


def _metadata(body: dict[str, Any]) -> dict[str, Any] | None:
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ApiError(400, "Invalid request data: metadata must be an object")
    return metadata


def _has_retention(body: dict[str, Any]) -> bool:
    return "retention" in body or "retentionDays" in body


def _retention(body: dict[str, Any]) -> int | None:
    """Langfuse's `retention` (our documents' `retentionDays` is accepted too): 0 or null for
    keeping data forever, else at least 3 days."""
    if "retention" in body and "retentionDays" in body:
        raise ApiError(400, "Invalid request data: give retention or retentionDays, not both")
    days = body["retention"] if "retention" in body else body["retentionDays"]
    if days is None:
        return None
    if (
        isinstance(days, bool)
        or not isinstance(days, int)
        or not (days == 0 or MIN_RETENTION_DAYS <= days <= _MAX_RETENTION_DAYS)
    ):
        raise ApiError(
            400,
            f"Invalid request data: retention must be 0 (keep forever) or an integer number of"
            f" days of at least {MIN_RETENTION_DAYS}",
        )
    return days or None


def _optional_text(body: dict[str, Any], name: str, max_chars: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_chars:
        raise ApiError(
            400, f"Invalid request data: {name} must be a string of at most {max_chars} characters"
        )
    return value


def _membership_request(body: dict[str, Any], *, with_role: bool) -> None:
    user_id = body.get("userId")
    if not isinstance(user_id, str) or not user_id:
        raise ApiError(400, "Invalid request data: userId is required and must be a string")
    if with_role and body.get("role") not in _ROLES:
        raise ApiError(400, f"Invalid request data: role must be one of {', '.join(_ROLES)}")


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _project_document(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "organization": {"id": project.org_id, "name": project.org_name},
        "metadata": project.metadata,
        "retentionDays": project.retention_days,
    }


def _org_project_document(project: OrgProject) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "metadata": project.metadata,
        "createdAt": _timestamp(project.created_at),
        "updatedAt": _timestamp(project.updated_at),
    }


def _key_document(key: KeySummary) -> dict[str, Any]:
    return {
        "id": key.id,
        "createdAt": _timestamp(key.created_at),
        "expiresAt": None,
        "lastUsedAt": None,
        "publicKey": key.public_key,
        "displaySecretKey": key.display_secret_key,
        "note": key.note,
    }


_PROJECT = "/api/public/projects/{projectId}"
ROUTES = [
    Route("/api/public/projects", org_endpoint(create_project), methods=["POST"]),
    Route(_PROJECT, org_endpoint(update_project), methods=["PUT"]),
    Route(_PROJECT, org_endpoint(delete_project), methods=["DELETE"]),
    Route(f"{_PROJECT}/apiKeys", org_endpoint(list_project_keys), methods=["GET"]),
    Route(f"{_PROJECT}/apiKeys", org_endpoint(create_project_key), methods=["POST"]),
    Route(f"{_PROJECT}/apiKeys/{{apiKeyId}}", org_endpoint(delete_project_key), methods=["DELETE"]),
    Route(f"{_PROJECT}/memberships", org_endpoint(list_project_memberships), methods=["GET"]),
    Route(f"{_PROJECT}/memberships", org_endpoint(put_project_membership), methods=["PUT"]),
    Route(f"{_PROJECT}/memberships", org_endpoint(delete_project_membership), methods=["DELETE"]),
    Route("/api/public/organizations/projects", org_endpoint(list_org_projects), methods=["GET"]),
    Route("/api/public/organizations/apiKeys", org_endpoint(list_org_keys), methods=["GET"]),
    Route(
        "/api/public/organizations/memberships",
        org_endpoint(list_org_memberships),
        methods=["GET"],
    ),
    Route(
        "/api/public/organizations/memberships", org_endpoint(put_org_membership), methods=["PUT"]
    ),
    Route(
        "/api/public/organizations/memberships",
        org_endpoint(delete_org_membership),
        methods=["DELETE"],
    ),
]

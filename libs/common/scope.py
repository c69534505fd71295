"""The project scope of a call, carried in gRPC metadata.

The gateway authenticates the API key and passes the project id and access level to the backends;
backends never take a project id from a request message. Internal callers set the same metadata.
A backend trusts this metadata only on calls that carry the internal token, which its server
checks before any handler runs (libs/common/rpc.py), so a caller that is not one of the services
cannot name a project.

The project's retention travels the same way: reads of a call never show data older than
`read_cutoff()`, even before the retention pass deleted it (the server interceptor in
libs/common/rpc.py sets it for the call from the metadata).
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import grpc

from libs.common.errors import PermissionDenied, Unauthenticated
from libs.common.limits import EARLIEST

PROJECT_ID_KEY = "x-obs-project-id"
ACCESS_LEVEL_KEY = "x-obs-access-level"
REQUEST_ID_KEY = "x-request-id"
RETENTION_DAYS_KEY = "x-obs-retention-days"


class AccessLevel(StrEnum):
    PROJECT = "project"
    # A public key alone (Bearer): may only create scores, as in Langfuse.
    SCORES = "scores"


@dataclass(frozen=True, slots=True)
class ProjectScope:
    project_id: str
    access: AccessLevel = AccessLevel.PROJECT
    # Days the project keeps its data; None: forever.
    retention_days: int | None = None

    def metadata(self, request_id: str = "") -> tuple[tuple[str, str], ...]:
        pairs = ((PROJECT_ID_KEY, self.project_id), (ACCESS_LEVEL_KEY, self.access.value))
        if self.retention_days is not None:
            pairs = (*pairs, (RETENTION_DAYS_KEY, str(self.retention_days)))
        return (*pairs, (REQUEST_ID_KEY, request_id)) if request_id else pairs

    def require_project_access(self) -> None:
        if self.access is not AccessLevel.PROJECT:
            raise PermissionDenied("Access Scope Denied")


def scope_from(context: grpc.aio.ServicerContext) -> ProjectScope:
    """The caller's scope; raises Unauthenticated when the metadata carries none."""
    metadata = dict(context.invocation_metadata() or ())
    project_id = metadata.get(PROJECT_ID_KEY, "")
    if not isinstance(project_id, str) or not project_id:
        raise Unauthenticated(f"missing {PROJECT_ID_KEY} metadata")
    try:
        access = AccessLevel(metadata.get(ACCESS_LEVEL_KEY, AccessLevel.PROJECT.value))
    except ValueError as exc:
        raise Unauthenticated(f"unknown {ACCESS_LEVEL_KEY}") from exc
    return ProjectScope(project_id, access, _retention_days(metadata))


def _retention_days(metadata: Mapping[str, Any]) -> int | None:
    raw = metadata.get(RETENTION_DAYS_KEY)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise Unauthenticated(f"invalid {RETENTION_DAYS_KEY}")
    return int(raw)


def retention_cutoff(days: int | None, now: datetime | None = None) -> datetime | None:
    """The oldest moment a project keeping `days` days of data still shows; None: forever, also
    for a retention reaching before anything storable (limits.EARLIEST)."""
    now = now or datetime.now(UTC)
    if days is None or days > (now - EARLIEST).days:
        return None
    return now - timedelta(days=days)


_read_cutoff: ContextVar[datetime | None] = ContextVar("read_cutoff", default=None)


def read_cutoff() -> datetime | None:
    """The oldest moment the current call may read of its project's data; None: no limit (the
    project keeps data forever, or this is no project call: the writer, a background job)."""
    return _read_cutoff.get()


@contextmanager
def reading_within(metadata: Mapping[str, Any]) -> Iterator[None]:
    """Sets read_cutoff() for the call carrying `metadata` while the block runs."""
    token = _read_cutoff.set(retention_cutoff(_retention_days(metadata)))
    try:
        yield
    finally:
        _read_cutoff.reset(token)

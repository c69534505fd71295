"""The project scope of a call, carried in gRPC metadata.

The gateway authenticates the API key and passes the project id and access level to the backends;
backends never take a project id from a request message. Internal callers set the same metadata.
A backend trusts this metadata only on calls that carry the internal token, which its server
checks before any handler runs (libs/common/rpc.py), so a caller that is not one of the services
cannot name a project.
"""

from dataclasses import dataclass
from enum import StrEnum

import grpc

from libs.common.errors import PermissionDenied, Unauthenticated

PROJECT_ID_KEY = "x-obs-project-id"
ACCESS_LEVEL_KEY = "x-obs-access-level"
REQUEST_ID_KEY = "x-request-id"


class AccessLevel(StrEnum):
    PROJECT = "project"
    # A public key alone (Bearer): may only create scores, as in Langfuse.
    SCORES = "scores"


@dataclass(frozen=True, slots=True)
class ProjectScope:
    project_id: str
    access: AccessLevel = AccessLevel.PROJECT

    def metadata(self, request_id: str = "") -> tuple[tuple[str, str], ...]:
        pairs = ((PROJECT_ID_KEY, self.project_id), (ACCESS_LEVEL_KEY, self.access.value))
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
    return ProjectScope(project_id=project_id, access=access)

"""`GET /api/public/projects`: the key's own project, which the SDKs' auth_check() reads."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.scope import ProjectScope
from services.gateway.endpoint import endpoint, state_of
from services.gateway.errors import ApiError, JsonResponse


async def list_projects(request: Request, scope: ProjectScope) -> Response:
    project = await state_of(request).store.project(scope.project_id)
    if project is None:
        raise ApiError(404, "Project not found")
    item = {
        "id": project.id,
        "name": project.name,
        "organization": {"id": project.org_id, "name": project.org_name},
        "metadata": project.metadata,
        "retentionDays": project.retention_days,
    }
    return JsonResponse({"data": [item]})


ROUTES = [Route("/api/public/projects", endpoint(list_projects), methods=["GET"])]

"""Blob-storage integrations (`/api/public/integrations/blob-storage[/{id}]`), Langfuse's
scheduled exports of a project's traces, observations and scores to the customer's bucket. They
take an organization key, as in Langfuse, and reach only that organization's projects (another
organization's is a 404). The query service keeps and runs them, one per project, so an
integration's id is its project's id; the gateway checks the project and passes it on as the
call's scope."""

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.query.v1 import query_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import backend_options, read_json, state_of
from services.gateway.errors import ApiError, JsonResponse
from services.gateway.routes.management import org_endpoint

_NOT_FOUND = "Blob storage integration not found"
_PROJECT_NOT_FOUND = "Project not found or you don't have access to it"


async def list_integrations(request: Request, org_id: str) -> Response:
    projects = await state_of(request).store.org_projects(org_id)
    replies = await asyncio.gather(*(_integration(request, project.id) for project in projects))
    documents = [reply.integration_json for reply in replies if reply.integration_json]
    return Response(b'{"data":[' + b",".join(documents) + b"]}", media_type="application/json")


async def upsert_integration(request: Request, org_id: str) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid request data: the body must be a JSON object")
    project_id = body.get("projectId")
    if not isinstance(project_id, str) or not project_id:
        raise ApiError(400, "Invalid request data: projectId is required and must be a string")
    await _org_project(request, org_id, project_id, _PROJECT_NOT_FOUND)
    reply = await state_of(request).backends.query.UpsertBlobStorageIntegration(
        query_pb2.UpsertBlobStorageIntegrationRequest(body_json=await request.body()),
        **backend_options(request, ProjectScope(project_id)),
    )
    return Response(reply.integration_json, media_type="application/json")


async def integration_status(request: Request, org_id: str) -> Response:
    project_id = await _org_project(request, org_id, request.path_params["id"], _NOT_FOUND)
    reply = await _integration(request, project_id)
    if not reply.status_json:
        raise ApiError(404, _NOT_FOUND)
    return Response(reply.status_json, media_type="application/json")


async def delete_integration(request: Request, org_id: str) -> Response:
    project_id = await _org_project(request, org_id, request.path_params["id"], _NOT_FOUND)
    await state_of(request).backends.query.DeleteBlobStorageIntegration(
        query_pb2.DeleteBlobStorageIntegrationRequest(),
        **backend_options(request, ProjectScope(project_id)),
    )
    return JsonResponse({"message": "Blob storage integration deleted successfully"})


async def _org_project(request: Request, org_id: str, project_id: str, not_found: str) -> str:
    """The project id when it is one of the organization's projects; else a 404."""
    if "\x00" in project_id:  # no stored id holds NUL
        raise ApiError(404, not_found)
    if await state_of(request).store.org_project(org_id, project_id) is None:
        raise ApiError(404, not_found)
    return project_id


async def _integration(
    request: Request, project_id: str
) -> query_pb2.GetBlobStorageIntegrationResponse:
    reply: query_pb2.GetBlobStorageIntegrationResponse = await state_of(
        request
    ).backends.query.GetBlobStorageIntegration(
        query_pb2.GetBlobStorageIntegrationRequest(),
        **backend_options(request, ProjectScope(project_id)),
    )
    return reply


_PATH = "/api/public/integrations/blob-storage"
ROUTES = [
    Route(_PATH, org_endpoint(list_integrations), methods=["GET"]),
    Route(_PATH, org_endpoint(upsert_integration), methods=["PUT"]),
    Route(f"{_PATH}/{{id}}", org_endpoint(integration_status), methods=["GET"]),
    Route(f"{_PATH}/{{id}}", org_endpoint(delete_integration), methods=["DELETE"]),
]

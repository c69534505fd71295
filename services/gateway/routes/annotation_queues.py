"""Annotation queues, their items and assignments: `/api/public/annotation-queues[/{queueId}
[/items[/{itemId}]|/assignments]]`, kept by the evals service. Bodies travel as they came; evals
validates them. Item changes carry the caller's public key, recorded as who completed an item."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import (
    backend_options,
    endpoint,
    list_response,
    page_meta,
    page_params,
    state_of,
)
from services.gateway.errors import JsonResponse

PREFIX = "/api/public/annotation-queues"


def _json(document: bytes) -> Response:
    return Response(document, media_type="application/json")


# Queues.


async def list_queues(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    reply = await state_of(request).backends.evals.ListAnnotationQueues(
        evals_pb2.ListAnnotationQueuesRequest(page=common_pb2.PageRequest(page=page, limit=limit)),
        **backend_options(request, scope),
    )
    return list_response(reply.queues_json, page_meta(reply.meta))


async def create_queue(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.CreateAnnotationQueue(
        evals_pb2.CreateAnnotationQueueRequest(body_json=await request.body()),
        **backend_options(request, scope),
    )
    return _json(reply.queue_json)


async def get_queue(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.GetAnnotationQueue(
        evals_pb2.GetAnnotationQueueRequest(queue_id=request.path_params["queue_id"]),
        **backend_options(request, scope),
    )
    return _json(reply.queue_json)


# Items.


async def list_items(request: Request, scope: ProjectScope) -> Response:
    page, limit = page_params(request, default_limit=50)
    reply = await state_of(request).backends.evals.ListAnnotationQueueItems(
        evals_pb2.ListAnnotationQueueItemsRequest(
            page=common_pb2.PageRequest(page=page, limit=limit),
            queue_id=request.path_params["queue_id"],
            status=request.query_params.get("status", ""),
        ),
        **backend_options(request, scope),
    )
    return list_response(reply.items_json, page_meta(reply.meta))


async def create_item(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.CreateAnnotationQueueItem(
        evals_pb2.CreateAnnotationQueueItemRequest(
            queue_id=request.path_params["queue_id"],
            body_json=await request.body(),
            actor=request.state.public_key,
        ),
        **backend_options(request, scope),
    )
    return _json(reply.item_json)


async def get_item(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.GetAnnotationQueueItem(
        evals_pb2.GetAnnotationQueueItemRequest(
            queue_id=request.path_params["queue_id"], item_id=request.path_params["item_id"]
        ),
        **backend_options(request, scope),
    )
    return _json(reply.item_json)


async def update_item(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.UpdateAnnotationQueueItem(
        evals_pb2.UpdateAnnotationQueueItemRequest(
            queue_id=request.path_params["queue_id"],
            item_id=request.path_params["item_id"],
            body_json=await request.body(),
            actor=request.state.public_key,
        ),
        **backend_options(request, scope),
    )
    return _json(reply.item_json)


async def delete_item(request: Request, scope: ProjectScope) -> Response:
    await state_of(request).backends.evals.DeleteAnnotationQueueItem(
        evals_pb2.DeleteAnnotationQueueItemRequest(
            queue_id=request.path_params["queue_id"], item_id=request.path_params["item_id"]
        ),
        **backend_options(request, scope),
    )
    return JsonResponse({"success": True, "message": "Annotation queue item deleted successfully"})


# Assignments.


async def assign(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.CreateAnnotationQueueAssignment(
        evals_pb2.CreateAnnotationQueueAssignmentRequest(
            queue_id=request.path_params["queue_id"], body_json=await request.body()
        ),
        **backend_options(request, scope),
    )
    return _json(reply.assignment_json)


async def unassign(request: Request, scope: ProjectScope) -> Response:
    await state_of(request).backends.evals.DeleteAnnotationQueueAssignment(
        evals_pb2.DeleteAnnotationQueueAssignmentRequest(
            queue_id=request.path_params["queue_id"], body_json=await request.body()
        ),
        **backend_options(request, scope),
    )
    return JsonResponse({"success": True})


ROUTES = [
    Route(PREFIX, endpoint(list_queues), methods=["GET"]),
    Route(PREFIX, endpoint(create_queue), methods=["POST"]),
    Route(PREFIX + "/{queue_id}", endpoint(get_queue), methods=["GET"]),
    Route(PREFIX + "/{queue_id}/items", endpoint(list_items), methods=["GET"]),
    Route(PREFIX + "/{queue_id}/items", endpoint(create_item), methods=["POST"]),
    Route(PREFIX + "/{queue_id}/items/{item_id}", endpoint(get_item), methods=["GET"]),
    Route(PREFIX + "/{queue_id}/items/{item_id}", endpoint(update_item), methods=["PATCH"]),
    Route(PREFIX + "/{queue_id}/items/{item_id}", endpoint(delete_item), methods=["DELETE"]),
    Route(PREFIX + "/{queue_id}/assignments", endpoint(assign), methods=["POST"]),
    Route(PREFIX + "/{queue_id}/assignments", endpoint(unassign), methods=["DELETE"]),
]

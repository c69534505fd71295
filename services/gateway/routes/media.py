"""Media: `POST /api/public/media` (an upload URL for a content's SHA-256), `PATCH` and `GET
/api/public/media/{mediaId}` (the upload's outcome; the record with a download URL). The ingestion
service keeps the records; the bytes go between the client and S3 through presigned URLs."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.ingestion.v1 import ingestion_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import backend_options, endpoint, state_of
from services.gateway.errors import JsonResponse


async def create_upload(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.ingestion.CreateMediaUpload(
        ingestion_pb2.CreateMediaUploadRequest(body=await request.body()),
        **backend_options(request, scope),
    )
    return JsonResponse({"mediaId": reply.media_id, "uploadUrl": reply.upload_url or None})


async def patch_media(request: Request, scope: ProjectScope) -> Response:
    await state_of(request).backends.ingestion.PatchMedia(
        ingestion_pb2.PatchMediaRequest(
            media_id=request.path_params["media_id"], body=await request.body()
        ),
        **backend_options(request, scope),
    )
    return Response(status_code=204)


async def get_media(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.ingestion.GetMedia(
        ingestion_pb2.GetMediaRequest(media_id=request.path_params["media_id"]),
        **backend_options(request, scope),
    )
    return Response(reply.media_json, media_type="application/json")


ROUTES = [
    Route("/api/public/media", endpoint(create_upload), methods=["POST"]),
    Route("/api/public/media/{media_id}", endpoint(get_media), methods=["GET"]),
    Route("/api/public/media/{media_id}", endpoint(patch_media), methods=["PATCH"]),
]

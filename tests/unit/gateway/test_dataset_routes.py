"""The dataset routes in the gateway: which evals call each path makes, how names with `/` are
decoded, and what the gateway itself refuses before any call."""

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.evals.v1 import evals_pb2
from services.gateway.server import build_app
from services.gateway.state import GatewayState
from tests.unit.gateway.conftest import MAX_BODY, basic

AUTH = basic("pk-1", "sk-1")
DATASET = b'{"id":"d1","name":"folder/set"}'
# Each RPC's answer: a response message with one fixed document.
ANSWERS: dict[str, Any] = {
    "UpsertDataset": evals_pb2.UpsertDatasetResponse(dataset_json=DATASET),
    "GetDataset": evals_pb2.GetDatasetResponse(dataset_json=DATASET),
    "ListDatasets": evals_pb2.ListDatasetsResponse(datasets_json=[DATASET]),
    "DeleteDataset": evals_pb2.DeleteDatasetResponse(),
    "UpsertDatasetItem": evals_pb2.UpsertDatasetItemResponse(item_json=b'{"id":"i1"}'),
    "GetDatasetItem": evals_pb2.GetDatasetItemResponse(item_json=b'{"id":"i1"}'),
    "ListDatasetItems": evals_pb2.ListDatasetItemsResponse(
        items_json=[b'{"id":"i1"}'],
        meta=common_pb2.PageMeta(page=1, limit=50, total_items=1, total_pages=1),
    ),
    "DeleteDatasetItem": evals_pb2.DeleteDatasetItemResponse(),
    "CreateDatasetRunItem": evals_pb2.CreateDatasetRunItemResponse(run_item_json=b'{"id":"r"}'),
    "ListDatasetRunItems": evals_pb2.ListDatasetRunItemsResponse(),
    "ListDatasetRuns": evals_pb2.ListDatasetRunsResponse(),
    "GetDatasetRun": evals_pb2.GetDatasetRunResponse(run_json=b'{"id":"run"}'),
    "DeleteDatasetRun": evals_pb2.DeleteDatasetRunResponse(),
}


class RecordingEvalsStub:
    """Stands in for the evals gRPC stub: records (method, request), answers ANSWERS."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, **kwargs: Any) -> Any:
            self.calls.append((method, request))
            return ANSWERS[method]

        return call


@pytest.fixture
def evals() -> RecordingEvalsStub:
    return RecordingEvalsStub()


@pytest.fixture
async def client(
    state: GatewayState, evals: RecordingEvalsStub
) -> AsyncIterator[httpx.AsyncClient]:
    backends = dataclasses.replace(state.backends, evals=evals)  # type: ignore[arg-type]
    app = build_app(dataclasses.replace(state, backends=backends), MAX_BODY)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "rpc", "fields"),
    [
        ("GET", "/api/public/v2/datasets/folder%2Fmy%20set", "GetDataset",
         {"dataset_name": "folder/my set", "legacy_v1": False}),
        ("DELETE", "/api/public/v2/datasets/a%2Fb", "DeleteDataset", {"dataset_name": "a/b"}),
        ("GET", "/api/public/datasets/a%2Fb", "GetDataset",
         {"dataset_name": "a/b", "legacy_v1": True}),
        ("GET", "/api/public/datasets/a%2Fb/runs?page=2&limit=5", "ListDatasetRuns",
         {"dataset_name": "a/b", "page": common_pb2.PageRequest(page=2, limit=5)}),
        ("GET", "/api/public/datasets/a%2Fb/runs/run%201", "GetDatasetRun",
         {"dataset_name": "a/b", "run_name": "run 1"}),
        ("DELETE", "/api/public/datasets/a%2Fb/runs/r%2Fx", "DeleteDatasetRun",
         {"dataset_name": "a/b", "run_name": "r/x"}),
        ("GET", "/api/public/dataset-items/id%2Fwith%20slash", "GetDatasetItem",
         {"item_id": "id/with slash"}),
        ("DELETE", "/api/public/dataset-items/plain", "DeleteDatasetItem", {"item_id": "plain"}),
        ("GET", "/api/public/dataset-items?datasetName=a%2Fb&sourceTraceId=t"
         "&version=2026-01-21T14:35:42Z", "ListDatasetItems",
         {"dataset_name": "a/b", "source_trace_id": "t"}),
        ("GET", "/api/public/dataset-run-items?datasetId=d1&runName=r", "ListDatasetRunItems",
         {"dataset_id": "d1", "run_name": "r"}),
        ("GET", "/api/public/datasets?page=3", "ListDatasets", {"legacy_v1": True}),
        ("GET", "/api/public/v2/datasets", "ListDatasets", {"legacy_v1": False}),
    ],
)  # fmt: skip
async def test_each_path_makes_its_evals_call(
    client: httpx.AsyncClient,
    evals: RecordingEvalsStub,
    method: str,
    path: str,
    rpc: str,
    fields: dict[str, Any],
) -> None:
    response = await client.request(method, path, headers=AUTH)
    assert response.status_code == 200, response.text
    [(called, request)] = evals.calls
    assert called == rpc
    assert {name: getattr(request, name) for name in fields} == fields


async def test_a_version_travels_as_a_timestamp(
    client: httpx.AsyncClient, evals: RecordingEvalsStub
) -> None:
    path = "/api/public/dataset-items?datasetName=d&version=2026-01-21T14:35:42.123456Z"
    assert (await client.get(path, headers=AUTH)).status_code == 200
    [(_, request)] = evals.calls
    assert request.version.ToJsonString() == "2026-01-21T14:35:42.123456Z"


async def test_bodies_travel_unparsed_and_answers_are_the_documents(
    client: httpx.AsyncClient, evals: RecordingEvalsStub
) -> None:
    sent = b'{"datasetName":"d","input":{"q":1}}'
    response = await client.post("/api/public/dataset-items", content=sent, headers=AUTH)
    assert response.json() == {"id": "i1"}
    assert evals.calls == [
        ("UpsertDatasetItem", evals_pb2.UpsertDatasetItemRequest(body_json=sent))
    ]


async def test_the_legacy_create_answers_empty_items_and_runs(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/public/datasets", json={"name": "folder/set"}, headers=AUTH)
    assert response.json() == {"id": "d1", "name": "folder/set", "items": [], "runs": []}


async def test_deletions_answer_langfuses_messages(client: httpx.AsyncClient) -> None:
    item = await client.delete("/api/public/dataset-items/x", headers=AUTH)
    run = await client.delete("/api/public/datasets/d/runs/r", headers=AUTH)
    assert item.json() == {"message": "Dataset item successfully deleted"}
    assert run.json() == {"message": "Dataset run successfully deleted"}


@pytest.mark.parametrize(
    ("method", "path", "status", "named"),
    [
        ("GET", "/api/public/dataset-items?datasetName=d&version=yesterday", 400, "version"),
        ("GET", "/api/public/dataset-items?limit=101", 400, "limit"),
        ("GET", "/api/public/v2/datasets/%FF%FE", 400, "UTF-8"),
        ("DELETE", "/api/public/datasets/only-a-name", 405, "not allowed"),
        ("PUT", "/api/public/dataset-items", 405, "not allowed"),
    ],
)
async def test_what_the_gateway_refuses_before_calling_evals(
    client: httpx.AsyncClient,
    evals: RecordingEvalsStub,
    method: str,
    path: str,
    status: int,
    named: str,
) -> None:
    response = await client.request(method, path, headers=AUTH)
    assert response.status_code == status
    assert named in response.json()["message"] and evals.calls == []

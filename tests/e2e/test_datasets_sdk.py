"""Datasets, versioned items, dataset runs and run items through the official SDKs, unmodified,
on the whole stack: Python 5.x (this venv), Python 3.x (its own virtualenv) and the JS client;
plus what no SDK sends: another project's key, bad input, run items naming only an observation."""

import json
import subprocess
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from langfuse import Langfuse
from langfuse.api import DatasetStatus

from tests.e2e.admin import new_project
from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.e2e.node import run_node_script
from tests.e2e.run_ids import stable_run_id
from tests.support.devenv import ROOT
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)
SDK3_PYTHON = ROOT / ".dev" / "venvs" / "langfuse3" / "bin" / "python"
SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def unique(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:8]} set"


@pytest.fixture
def sdk(stack: Stack) -> Langfuse:
    return Langfuse(
        public_key=PUBLIC_KEY, secret_key=SECRET_KEY, host=stack.gateway_url, tracing_enabled=False
    )


def test_sdk5_items_are_upserted_archived_and_read_at_a_version(sdk: Langfuse) -> None:
    name = unique("sdk5")
    created = sdk.create_dataset(
        name=name, description="d", metadata={"team": "e2e"}, input_schema=SCHEMA
    )
    assert (created.name, created.input_schema, created.metadata) == (name, SCHEMA, {"team": "e2e"})
    a, b = f"{uuid.uuid4().hex}-a", f"{uuid.uuid4().hex}-b"
    first = sdk.create_dataset_item(
        dataset_name=name, id=a, input={"q": "one"}, expected_output="1"
    )
    sdk.create_dataset_item(dataset_name=name, id=b, input={"q": "two"}, metadata={"k": 1})
    updated = sdk.create_dataset_item(dataset_name=name, id=a, input={"q": "uno"})
    # Python 5 archives by sending the values as null: they stay as they were.
    archived = sdk.create_dataset_item(dataset_name=name, id=b, status=DatasetStatus.ARCHIVED)
    assert (archived.status, archived.input, archived.metadata) == (
        "ARCHIVED",
        {"q": "two"},
        {"k": 1},
    )
    assert updated.expected_output == "1" and updated.created_at == first.created_at

    def state(dataset: Any) -> dict[str, tuple[Any, str]]:
        return {item.id: (item.input, item.status) for item in dataset.items}

    assert state(sdk.get_dataset(name)) == {
        a: ({"q": "uno"}, "ACTIVE"),
        b: ({"q": "two"}, "ARCHIVED"),
    }
    assert first.version is not None
    assert state(sdk.get_dataset(name, version=first.version)) == {a: ({"q": "one"}, "ACTIVE")}
    before = first.version - timedelta(milliseconds=1)
    assert state(sdk.get_dataset(name, version=before)) == {}
    paged = sdk.get_dataset(name, fetch_items_page_size=1)
    assert [item.id for item in paged.items] == [b, a]  # newest first, across two pages


def test_sdk5_lists_and_schema_violations(sdk: Langfuse) -> None:
    name = unique("sdk5-lists")
    sdk.create_dataset(name=name, input_schema=SCHEMA)
    for q in ("x", "y", "z"):
        sdk.create_dataset_item(dataset_name=name, input={"q": q})
    page = sdk.api.dataset_items.list(dataset_name=name, page=1, limit=2)
    assert (page.meta.total_items, page.meta.total_pages, len(page.data)) == (3, 2, 2)
    assert all(item.dataset_name == name and item.media_references == [] for item in page.data)
    datasets = sdk.api.datasets.list(page=1, limit=100)
    assert name in [d.name for d in datasets.data]
    with pytest.raises(Exception) as refused:
        sdk.create_dataset_item(dataset_name=name, input={"q": 5})
    assert getattr(refused.value, "status_code", None) == 400
    assert "input.q" in json.dumps(getattr(refused.value, "body", ""))
    with pytest.raises(Exception) as missing:
        sdk.get_dataset(unique("missing"))
    assert getattr(missing.value, "status_code", None) == 404


SDK3_SCRIPT = """
import json, sys
from langfuse import Langfuse
public_key, secret_key, host, name = sys.argv[1:5]
client = Langfuse(public_key=public_key, secret_key=secret_key, host=host)
client.create_dataset(name=name, description="sdk3")
for n in range(3):
    client.create_dataset_item(dataset_name=name, input={"n": n}, expected_output=n * 2)
dataset = client.get_dataset(name)
traces = {}
for item in dataset.items:
    with item.run(run_name="sdk3 run", run_description="loop", run_metadata={"model": "m"}) as span:
        span.update(output=item.input["n"] * 2)
        traces[item.id] = span.trace_id
client.flush()
run = client.get_dataset_run(dataset_name=name, run_name="sdk3 run")
runs = client.get_dataset_runs(dataset_name=name)
client.create_score(name="run-accuracy", value=0.9, dataset_run_id=run.id)
client.flush()
print(json.dumps({
    "dataset_id": dataset.id,
    "items": len(dataset.items),
    "run_id": run.id,
    "description": run.description,
    "metadata": run.metadata,
    "run_items": {i.dataset_item_id: i.trace_id for i in run.dataset_run_items},
    "traces": traces,
    "runs": [r.name for r in runs.data],
}))
"""


async def test_sdk3_item_run_loop_run_reads_and_a_run_level_score(stack: Stack) -> None:
    name = unique("sdk3")
    result = subprocess.run(
        [str(SDK3_PYTHON), "-c", SDK3_SCRIPT, PUBLIC_KEY, SECRET_KEY, stack.gateway_url, name],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["items"] == 3 and seen["runs"] == ["sdk3 run"]
    assert seen["run_id"] == stable_run_id(seen["dataset_id"], "sdk3 run")
    assert (seen["description"], seen["metadata"]) == ("loop", {"model": "m"})
    assert seen["run_items"] == seen["traces"]
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:

        async def run_scores() -> list[str]:
            response = await client.get(
                "/api/public/v2/scores", params={"datasetRunId": seen["run_id"]}
            )
            return [score["name"] for score in response.json()["data"]]

        assert await eventually(run_scores, lambda names: names == ["run-accuracy"]) == [
            "run-accuracy"
        ]
        # The traces item.run() exported arrive as well.
        some_trace = next(iter(seen["traces"].values()))

        async def trace_status() -> int:
            return (await client.get(f"/api/public/traces/{some_trace}")).status_code

        await eventually(trace_status, lambda status: status == 200)


def test_js_client_dataset_get_item_create_and_run_items(stack: Stack) -> None:
    name, item_id, trace_id = unique("js"), uuid.uuid4().hex, uuid.uuid4().hex
    seen = run_node_script(
        stack, "datasets.mjs", DATASET_NAME=name, ITEM_ID=item_id, TRACE_ID=trace_id
    )
    assert seen["updated"] == {"input": {"n": 1}, "expectedOutput": 2, "metadata": {"v": 2}}
    assert seen["datasetName"] == name and seen["itemInputs"] == [{"n": 2}, {"n": 1}]
    assert seen["mediaReferences"] == [[], []]
    run_id = stable_run_id(seen["datasetId"], "js run")
    assert seen["runItem"] == {
        "datasetRunId": run_id,
        "datasetRunName": "js run",
        "traceId": trace_id,
    }
    assert seen["listedRunItems"] == [item_id] and seen["runs"] == ["js run"]
    assert seen["run"] == {
        "id": run_id,
        "description": "js run",
        "metadata": {"model": "m"},
        "items": 1,
    }


async def test_a_run_item_naming_only_an_observation_gets_its_trace(stack: Stack) -> None:
    trace_id, observation_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    batch = {
        "batch": [
            {
                "id": uuid.uuid4().hex,
                "type": "span-create",
                "timestamp": "2026-01-21T14:35:42.000Z",
                "body": {"id": observation_id, "traceId": trace_id, "name": "task",
                         "startTime": "2026-01-21T14:35:42.000Z"},
            }
        ]
    }  # fmt: skip
    name = unique("old-sdk")
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        await client.post("/api/public/v2/datasets", json={"name": name})
        item = (await client.post("/api/public/dataset-items", json={"datasetName": name})).json()
        unknown = await client.post(
            "/api/public/dataset-run-items",
            json={"runName": "r", "datasetItemId": item["id"], "observationId": "no-such-span"},
        )
        assert unknown.status_code == 404 and unknown.json()["message"] == "Observation not found"
        assert (await client.post("/api/public/ingestion", json=batch)).status_code == 207

        async def observation_status() -> int:
            return (await client.get(f"/api/public/observations/{observation_id}")).status_code

        await eventually(observation_status, lambda status: status == 200)
        linked = await client.post(
            "/api/public/dataset-run-items",
            json={"runName": "r", "datasetItemId": item["id"], "observationId": observation_id},
        )
    assert linked.status_code == 200, linked.text
    assert (linked.json()["traceId"], linked.json()["observationId"]) == (trace_id, observation_id)


async def test_another_projects_key_sees_none_of_it(stack: Stack) -> None:
    stranger_auth = new_project(stack, "datasets")
    name = unique("isolated")
    encoded = name.replace("/", "%2F").replace(" ", "%20")
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as owner:
        dataset = (await owner.post("/api/public/v2/datasets", json={"name": name})).json()
        item = (await owner.post("/api/public/dataset-items", json={"datasetName": name})).json()
        run_item = await owner.post(
            "/api/public/dataset-run-items",
            json={"runName": "r", "datasetItemId": item["id"], "traceId": uuid.uuid4().hex},
        )
        assert run_item.status_code == 200
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=stranger_auth) as stranger:
        reads = [
            await stranger.get(f"/api/public/v2/datasets/{encoded}"),
            await stranger.get(f"/api/public/datasets/{encoded}"),
            await stranger.get(f"/api/public/datasets/{encoded}/runs"),
            await stranger.get(f"/api/public/datasets/{encoded}/runs/r"),
            await stranger.get(f"/api/public/dataset-items/{item['id']}"),
            await stranger.get("/api/public/dataset-items", params={"datasetName": name}),
            await stranger.get(
                "/api/public/dataset-run-items", params={"datasetId": dataset["id"], "runName": "r"}
            ),
            await stranger.delete(f"/api/public/dataset-items/{item['id']}"),
            await stranger.delete(f"/api/public/datasets/{encoded}/runs/r"),
            await stranger.delete(f"/api/public/v2/datasets/{encoded}"),
            await stranger.post(
                "/api/public/dataset-run-items",
                json={"runName": "r", "datasetItemId": item["id"], "traceId": "t"},
            ),
            await stranger.post(
                "/api/public/dataset-items", json={"datasetName": name, "id": item["id"]}
            ),
        ]
        assert [r.status_code for r in reads] == [404] * len(reads)
        assert all(r.json()["error"] == "LangfuseNotFoundError" for r in reads)
        everything = [
            await stranger.get("/api/public/v2/datasets"),
            await stranger.get("/api/public/datasets"),
            await stranger.get("/api/public/dataset-items"),
        ]
        assert [r.json()["meta"]["totalItems"] for r in everything] == [0, 0, 0]
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as owner:
        still = await owner.get(f"/api/public/datasets/{encoded}/runs/r")
        assert len(still.json()["datasetRunItems"]) == 1


DATASETS, ITEMS, RUN_ITEMS = (
    "/api/public/v2/datasets",
    "/api/public/dataset-items",
    "/api/public/dataset-run-items",
)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "named"),
    [
        ("POST", DATASETS, {"name": "x" * 1001}, 400, "name"),
        ("POST", DATASETS, {"name": "s", "inputSchema": {"type": 7}}, 400, "inputSchema"),
        ("POST", DATASETS, [1], 400, "object"),
        ("POST", ITEMS, {"datasetName": "no-such-dataset"}, 404, "not found"),
        ("POST", ITEMS, {"datasetName": "d", "status": "GONE"}, 400, "status"),
        ("POST", ITEMS, {"datasetName": "d", "id": "i" * 256}, 400, "id"),
        ("POST", RUN_ITEMS, {"runName": "r"}, 400, "datasetItemId"),
        ("GET", "/api/public/dataset-items?datasetName=d&version=last-week", None, 400, "version"),
        ("GET", "/api/public/dataset-items?version=2026-01-21T14:35:42Z", None, 400, "datasetName"),
        ("GET", "/api/public/dataset-items/no-such-item", None, 404, "not found"),
        ("GET", "/api/public/v2/datasets/no-such-dataset", None, 404, "not found"),
        ("GET", "/api/public/dataset-run-items?datasetId=x", None, 400, "runName"),
        ("GET", "/api/public/dataset-items?sourceTraceId=%00", None, 400, "sourceTraceId"),
        ("GET", "/api/public/dataset-items/nul%00id", None, 400, "id"),
        ("GET", "/api/public/datasets/d/runs/nul%00run", None, 400, "runName"),
        ("POST", ITEMS, {"datasetName": "d\u0000"}, 400, "datasetName"),
    ],
)  # fmt: skip
async def test_bad_input_is_a_4xx_naming_the_problem(
    stack: Stack, method: str, path: str, body: Any, status: int, named: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert named in response.json()["message"]


async def test_a_run_item_for_an_archived_item_is_a_404(stack: Stack) -> None:
    name = unique("archived")
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        await client.post("/api/public/v2/datasets", json={"name": name})
        item = await client.post(
            "/api/public/dataset-items", json={"datasetName": name, "status": "ARCHIVED"}
        )
        response = await client.post(
            "/api/public/dataset-run-items",
            json={"runName": "r", "datasetItemId": item.json()["id"], "traceId": "t"},
        )
    assert response.status_code == 404
    assert response.json()["message"] == "Dataset item not found or not active"

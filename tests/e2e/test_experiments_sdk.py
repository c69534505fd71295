"""Experiments through the official SDKs, unmodified: Python 5's run_experiment (spans only: it
never calls POST /dataset-run-items) on dataset items and on local data, with item and run
evaluators; re-runs with the same run name; run items from POST /dataset-run-items and from the
JS and Python 3 experiment runners (run items, then spans) landing in the same run;
`api.experiments` reads; a run's results with their numbers."""

import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from langfuse import Evaluation, Langfuse

from tests.e2e.admin import new_project
from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.e2e.node import run_node_script
from tests.e2e.run_ids import stable_run_id
from tests.support.devenv import ROOT
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)
SDK3_PYTHON = ROOT / ".dev" / "venvs" / "langfuse3" / "bin" / "python"
SINCE = datetime.now(UTC) - timedelta(hours=1)


@pytest.fixture
def sdk(stack: Stack) -> Langfuse:
    return Langfuse(public_key=PUBLIC_KEY, secret_key=SECRET_KEY, host=stack.gateway_url)


def double(*, item: Any, **kwargs: Any) -> int:
    value = item["input"] if isinstance(item, dict) else item.input
    return int(value["n"]) * 2


def exact(*, output: Any, expected_output: Any, **kwargs: Any) -> Evaluation:
    return Evaluation(name="exact", value=1.0 if output == expected_output else 0.0)


def pass_rate(*, item_results: list[Any], **kwargs: Any) -> Evaluation:
    values = [e.value for r in item_results for e in r.evaluations if e.name == "exact"]
    return Evaluation(name="pass_rate", value=sum(values) / len(values))


def dataset_of(sdk: Langfuse, size: int) -> Any:
    name = f"experiments/{uuid.uuid4().hex[:8]}"
    sdk.create_dataset(name=name)
    for n in range(size):
        # Item 2 expects a wrong answer, so the scores differ between items.
        expected = n * 2 if n != 2 else -1
        sdk.create_dataset_item(dataset_name=name, input={"n": n}, expected_output=expected)
    return sdk.get_dataset(name)


async def get(stack: Stack, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        return await client.get(path, params=params)


async def run_of(stack: Stack, dataset: str, run: str, items: int) -> dict[str, Any]:
    """The run once it has `items` run items, each with its trace's numbers."""

    async def read() -> dict[str, Any]:
        response = await get(stack, f"/api/public/datasets/{dataset}/runs/{run}")
        return response.json() if response.status_code == 200 else {}

    def complete(run: dict[str, Any]) -> bool:
        run_items = run.get("datasetRunItems", [])
        return len(run_items) == items and all(i.get("latency") is not None for i in run_items)

    return await eventually(read, complete)


async def test_sdk5_run_experiment_on_a_dataset_records_the_run_from_its_spans(
    stack: Stack, sdk: Langfuse
) -> None:
    dataset = dataset_of(sdk, 3)
    result = dataset.run_experiment(
        name="doubling", run_name="run-1", description="doubles n", metadata={"model": "x"},
        task=double, evaluators=[exact], run_evaluators=[pass_rate],
    )  # fmt: skip
    sdk.flush()
    assert result.experiment_id == stable_run_id(dataset.id, "run-1")
    encoded = dataset.name.replace("/", "%2F")
    run = await run_of(stack, encoded, "run-1", items=3)
    assert run["id"] == result.experiment_id and run["datasetId"] == dataset.id
    assert run["description"] == "doubles n" and run["metadata"] == {"model": "x"}
    traces = {r.item.id: r.trace_id for r in result.item_results}
    assert {i["datasetItemId"]: i["traceId"] for i in run["datasetRunItems"]} == traces
    # The numbers: each item's trace latency, cost and scores, and the run's aggregates.
    assert run["countRunItems"] == 3 and run["avgLatency"] >= 0 and run["totalCost"] == 0
    run = await eventually(
        lambda: run_of(stack, encoded, "run-1", items=3),
        lambda r: all(i["scores"] for i in r["datasetRunItems"]) and r["runScores"],
    )
    assert run["avgScores"] == {"exact": pytest.approx(2 / 3)}
    assert [(s["name"], s["value"]) for s in run["runScores"]] == [
        ("pass_rate", pytest.approx(2 / 3))
    ]

    experiments = sdk.api.experiments.list(
        from_start_time=SINCE, id=result.experiment_id, fields="core,metadata,scores"
    )
    [experiment] = experiments.data
    assert (experiment.name, experiment.dataset_id, experiment.item_count) == (
        "run-1",
        dataset.id,
        3,
    )
    assert experiment.description == "doubles n" and experiment.metadata == {"model": "x"}
    assert [s.name for s in experiment.scores or []] == ["pass_rate"]
    run_scores = sdk.api.scores.get_many(experiment_id=result.experiment_id).data
    assert [(s.name, s.subject.kind) for s in run_scores] == [("pass_rate", "experiment")]

    items = sdk.api.experiments.list_items(
        from_start_time=SINCE, experiment_id=result.experiment_id,
        fields="core,dataset,io,itemMetadata,experimentMetadata,scores",
    )  # fmt: skip
    assert {i.experiment_item_id for i in items.data} == set(traces)
    for item in items.data:
        assert item.trace_id == traces[item.experiment_item_id]
        assert item.environment == "sdk-experiment" and item.level == "DEFAULT"
        assert item.experiment_dataset_id == dataset.id and item.experiment_name == "run-1"
        assert item.output == item.input["n"] * 2
        assert item.expected_output == (-1 if item.input["n"] == 2 else item.input["n"] * 2)
        assert item.experiment_metadata == {"model": "x"}
        assert [s.name for s in item.scores or []] == ["exact"]


async def test_reruns_and_run_items_of_every_sdk_land_in_one_run(
    stack: Stack, sdk: Langfuse
) -> None:
    dataset = dataset_of(sdk, 2)
    encoded = dataset.name.replace("/", "%2F")
    first = dataset.run_experiment(name="doubling", run_name="shared", task=double)
    again = dataset.run_experiment(name="doubling", run_name="shared", task=double)
    sdk.flush()
    assert first.experiment_id == again.experiment_id == stable_run_id(dataset.id, "shared")
    await run_of(stack, encoded, "shared", items=4)

    # Python 3 and JS record run items with POST /dataset-run-items: same run.
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        created = await client.post(
            "/api/public/dataset-run-items",
            json={"runName": "shared", "datasetItemId": dataset.items[0].id,
                  "traceId": uuid.uuid4().hex},
        )  # fmt: skip
    assert created.status_code == 200
    assert created.json()["datasetRunId"] == first.experiment_id

    # The JS and Python 3 runners post run items, then send spans whose item root is their
    # experiment-item-run span: the spans describe the same run items.
    js = run_js_experiment(stack, dataset.name, "shared")
    sdk3 = run_sdk3_experiment(stack, dataset.name, "shared")
    assert js["datasetRunId"] == sdk3["datasetRunId"] == first.experiment_id
    posted_traces = {t["traceId"] for t in js["traces"] + sdk3["traces"]}

    def described(page: Any) -> bool:
        items = [i for i in page.data if i.trace_id in posted_traces and i.output is not None]
        return len(items) == 4

    items = await eventually(lambda: _list_items(sdk, first.experiment_id), described)
    assert len(items.data) == 9
    for item in (i for i in items.data if i.trace_id in posted_traces):
        assert item.output == item.input["n"] * 2 and item.environment == "sdk-experiment"
    [experiment] = sdk.api.experiments.list(from_start_time=SINCE, id=first.experiment_id).data
    assert experiment.item_count == 9


async def _list_items(sdk: Langfuse, experiment_id: str) -> Any:
    return sdk.api.experiments.list_items(
        from_start_time=SINCE, experiment_id=experiment_id, fields="core,io", limit=100
    )


SDK3_EXPERIMENT = """
import json, sys
from langfuse import Langfuse
public_key, secret_key, host, dataset_name, run_name = sys.argv[1:6]
client = Langfuse(public_key=public_key, secret_key=secret_key, host=host)
result = client.get_dataset(dataset_name).run_experiment(
    name="doubling", run_name=run_name, task=lambda *, item, **kwargs: item.input["n"] * 2
)
client.flush()
print(json.dumps({"datasetRunId": result.dataset_run_id,
                  "traces": [{"traceId": r.trace_id} for r in result.item_results]}))
"""


def run_sdk3_experiment(stack: Stack, dataset_name: str, run_name: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(SDK3_PYTHON), "-c", SDK3_EXPERIMENT, PUBLIC_KEY, SECRET_KEY, stack.gateway_url,
         dataset_name, run_name],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_js_experiment(stack: Stack, dataset_name: str, run_name: str) -> dict[str, Any]:
    return run_node_script(stack, "experiment.mjs", DATASET_NAME=dataset_name, RUN_NAME=run_name)


async def test_sdk5_experiment_on_local_data_is_listed_with_its_run_score(
    stack: Stack, sdk: Langfuse
) -> None:
    data = [{"input": {"n": 1}, "expected_output": 2}, {"input": {"n": 2}, "expected_output": 5}]
    run_name = f"local-{uuid.uuid4().hex[:8]}"
    result = sdk.run_experiment(
        name="local", run_name=run_name, data=data, task=double,
        evaluators=[exact], run_evaluators=[pass_rate],
    )  # fmt: skip
    sdk.flush()

    def scored(page: Any) -> bool:
        return len(page.data) == 1 and page.data[0].item_count == 2 and bool(page.data[0].scores)

    page = await eventually(lambda: _experiments(sdk, name=run_name, fields="core,scores"), scored)
    [experiment] = page.data
    assert experiment.id == result.experiment_id and experiment.dataset_id is None
    assert [(s.name, s.value) for s in experiment.scores or []] == [("pass_rate", 0.5)]
    items = (await _list_items(sdk, result.experiment_id)).data
    assert sorted(i.input["n"] for i in items) == [1, 2]
    assert all(i.experiment_item_id and i.experiment_name == run_name for i in items)


async def _experiments(sdk: Langfuse, **params: Any) -> Any:
    return sdk.api.experiments.list(from_start_time=SINCE, **params)


async def test_experiment_lists_page_with_cursors_and_check_their_parameters(
    stack: Stack, sdk: Langfuse
) -> None:
    run_name = f"paged-{uuid.uuid4().hex[:8]}"
    data = [{"input": {"n": n}} for n in range(3)]
    result = sdk.run_experiment(name="paged", run_name=run_name, data=data, task=double)
    sdk.flush()
    await eventually(
        lambda: _list_items(sdk, result.experiment_id), lambda page: len(page.data) == 3
    )
    params = {"fromStartTime": SINCE.isoformat(), "experimentName": run_name, "limit": 2}
    first = (await get(stack, "/api/public/experiment-items", **params)).json()
    params["cursor"] = first["meta"]["cursor"]
    rest = (await get(stack, "/api/public/experiment-items", **params)).json()
    assert len(first["data"]) == 2 and len(rest["data"]) == 1 and "cursor" not in rest["meta"]
    assert "input" not in first["data"][0] and "experimentDatasetId" in first["data"][0]
    condition = [{"type": "stringOptions", "column": "name", "operator": "any of",
                  "value": [run_name]}]  # fmt: skip
    filtered = await get(stack, "/api/public/experiments", fromStartTime=SINCE.isoformat(),
                         filter=json.dumps(condition))  # fmt: skip
    assert [e["id"] for e in filtered.json()["data"]] == [result.experiment_id]

    bad = [
        await get(stack, "/api/public/experiments"),
        await get(stack, "/api/public/experiments", fromStartTime="yesterday"),
        await get(stack, "/api/public/experiments", fromStartTime=SINCE.isoformat(), limit=101),
        await get(stack, "/api/public/experiment-items", fromStartTime=SINCE.isoformat(),
                  fields="everything"),
        await get(stack, "/api/public/experiment-items", fromStartTime=SINCE.isoformat(),
                  cursor="not-a-cursor"),
        await get(stack, "/api/public/experiments", fromStartTime=SINCE.isoformat(),
                  filter=json.dumps([{"type": "number", "column": "itemCount"}])),
    ]  # fmt: skip
    assert [r.status_code for r in bad] == [400] * len(bad)
    assert all(set(r.json()) >= {"message"} for r in bad)


async def test_another_projects_key_sees_no_experiments(stack: Stack, sdk: Langfuse) -> None:
    run_name = f"private-{uuid.uuid4().hex[:8]}"
    result = sdk.run_experiment(
        name="p", run_name=run_name, data=[{"input": {"n": 1}}], task=double
    )
    sdk.flush()
    await eventually(lambda: _list_items(sdk, result.experiment_id), lambda p: len(p.data) == 1)
    public_key, secret_key = new_project(stack)
    stranger = Langfuse(public_key=public_key, secret_key=secret_key, host=stack.gateway_url)
    assert stranger.api.experiments.list(from_start_time=SINCE, name=run_name).data == []
    items = stranger.api.experiments.list_items(
        from_start_time=SINCE, experiment_id=result.experiment_id
    )
    assert items.data == []

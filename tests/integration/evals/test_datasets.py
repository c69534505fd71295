"""Datasets, versioned items, runs and run items in the evals service, against a real PostgreSQL:
the dataset RPCs (services/evals/dataset_api.py) as the gateway and internal callers use them."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from libs.common.errors import InvalidArgument, NotFound
from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.gen.obs.query.v1 import query_pb2
from libs.common.migrate import migrate_postgres
from libs.common.scope import ProjectScope
from libs.common.timestamps import to_timestamp
from services.evals.dataset_api import DatasetApi
from services.evals.items import PositionCache
from services.evals.runs import run_id
from services.evals.server import MIGRATIONS

A = ProjectScope("project-a")
B = ProjectScope("project-b")


class EmptyQueryService:
    """The query service of a stack that stores no traces: a run's numbers come back empty.
    Run items here always name their trace; the observation lookup is covered end to end."""

    async def GetTraceMetrics(self, request: Any, **kwargs: Any) -> Any:  # noqa: N802
        return query_pb2.GetTraceMetricsResponse()

    async def ListScores(self, request: Any, **kwargs: Any) -> Any:  # noqa: N802
        return query_pb2.ListScoresResponse()

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the query service was called ({name})")


@pytest.fixture
async def api(pg_dsn: str) -> AsyncIterator[DatasetApi]:
    await migrate_postgres(pg_dsn, MIGRATIONS)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=10)
    # Anchors every 3 rows, so a few items have deep pages.
    positions = PositionCache(anchor_every=3)
    yield DatasetApi(pool, EmptyQueryService(), positions)  # type: ignore[arg-type]
    await pool.close()


def body(**fields: Any) -> bytes:
    return orjson.dumps(fields)


async def dataset(api: DatasetApi, scope: ProjectScope = A, **fields: Any) -> dict[str, Any]:
    reply = await api.upsert_dataset(
        scope, evals_pb2.UpsertDatasetRequest(body_json=body(**fields))
    )
    return orjson.loads(reply.dataset_json)  # type: ignore[no-any-return]


async def item(api: DatasetApi, scope: ProjectScope = A, **fields: Any) -> dict[str, Any]:
    reply = await api.upsert_item(
        scope, evals_pb2.UpsertDatasetItemRequest(body_json=body(**fields))
    )
    return orjson.loads(reply.item_json)  # type: ignore[no-any-return]


async def listed(
    api: DatasetApi,
    scope: ProjectScope = A,
    *,
    page: int = 1,
    limit: int = 50,
    version: datetime | None = None,
    **filters: str,
) -> tuple[list[dict[str, Any]], common_pb2.PageMeta]:
    request = evals_pb2.ListDatasetItemsRequest(
        page=common_pb2.PageRequest(page=page, limit=limit), **filters
    )
    if version is not None:
        request.version.CopyFrom(to_timestamp(version))
    reply = await api.list_items(scope, request)
    return [orjson.loads(i) for i in reply.items_json], reply.meta


async def run_item(api: DatasetApi, scope: ProjectScope = A, **fields: Any) -> dict[str, Any]:
    reply = await api.create_run_item(
        scope, evals_pb2.CreateDatasetRunItemRequest(body_json=body(**fields))
    )
    return orjson.loads(reply.run_item_json)  # type: ignore[no-any-return]


def instant(document: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(document["updatedAt"].replace("Z", "+00:00"))


async def test_a_dataset_is_upserted_by_name_and_keeps_what_an_update_leaves_out(
    api: DatasetApi,
) -> None:
    first = await dataset(api, name="folder/sub set", description="d", metadata={"k": 1})
    again = await dataset(api, name="folder/sub set", metadata={"k": 2})
    assert again["id"] == first["id"] and again["description"] == "d"
    assert again["metadata"] == {"k": 2} and again["projectId"] == "project-a"
    fetched = await api.get_dataset(A, evals_pb2.GetDatasetRequest(dataset_name="folder/sub set"))
    assert orjson.loads(fetched.dataset_json)["metadata"] == {"k": 2}
    with pytest.raises(NotFound):
        await api.get_dataset(B, evals_pb2.GetDatasetRequest(dataset_name="folder/sub set"))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 1001}, "name"),
        ({"name": "ok", "inputSchema": {"type": "no-such-type"}}, "inputSchema"),
        ({"name": "ok", "expectedOutputSchema": [1]}, "expectedOutputSchema"),
        ({"name": "ok", "description": 5}, "description"),
    ],
)
async def test_bad_dataset_bodies_are_refused_naming_the_field(
    api: DatasetApi, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidArgument, match=named):
        await dataset(api, **fields)


async def test_items_are_checked_against_the_dataset_schemas_naming_the_path(
    api: DatasetApi,
) -> None:
    schema = {
        "type": "object",
        "properties": {"country": {"type": "string"}},
        "required": ["country"],
    }
    await dataset(api, name="s", inputSchema=schema, expectedOutputSchema={"type": "string"})
    await item(api, datasetName="s", input={"country": "Italy"}, expectedOutput="Rome")
    with pytest.raises(InvalidArgument, match=r"input\.country: 5 is not of type 'string'"):
        await item(api, datasetName="s", input={"country": 5})
    with pytest.raises(InvalidArgument, match="expectedOutput does not match"):
        await item(api, datasetName="s", input={"country": "x"}, expectedOutput=1)


async def test_a_new_schema_is_refused_while_a_current_item_breaks_it(api: DatasetApi) -> None:
    await dataset(api, name="later")
    await item(api, datasetName="later", id="bad-one", input={"n": "not a number"})
    number = {"type": "object", "properties": {"n": {"type": "number"}}}
    with pytest.raises(InvalidArgument, match=r"item bad-one: input does not match.*input\.n"):
        await dataset(api, name="later", inputSchema=number)
    assert (await dataset(api, name="later"))["inputSchema"] is None
    await item(api, datasetName="later", id="bad-one", input={"n": 1})
    assert (await dataset(api, name="later", inputSchema=number))["inputSchema"] == number


async def test_an_item_is_upserted_by_id_and_null_fields_leave_values_unchanged(
    api: DatasetApi,
) -> None:
    await dataset(api, name="d")
    created = await item(
        api, datasetName="d", id="item-1", input={"q": 1}, expectedOutput="a",
        metadata={"m": True}, sourceTraceId="trace-1",
    )  # fmt: skip
    assert created["status"] == "ACTIVE" and created["mediaReferences"] == []
    # Python SDKs archive an item by sending the values as null.
    archived = await item(
        api, datasetName="d", id="item-1", status="ARCHIVED",
        input=None, expectedOutput=None, metadata=None,
    )  # fmt: skip
    assert archived["status"] == "ARCHIVED"
    assert (archived["input"], archived["expectedOutput"], archived["metadata"]) == (
        {"q": 1}, "a", {"m": True},
    )  # fmt: skip
    assert archived["sourceTraceId"] == "trace-1"
    assert archived["createdAt"] == created["createdAt"]
    assert instant(archived) > instant(created)
    # The same values again change nothing: no new version.
    same = await item(api, datasetName="d", id="item-1", status="ARCHIVED", input={"q": 1})
    assert same["updatedAt"] == archived["updatedAt"]


async def test_an_item_id_belongs_to_one_dataset_of_its_project(api: DatasetApi) -> None:
    await dataset(api, name="first")
    await dataset(api, name="second")
    await item(api, datasetName="first", id="shared")
    with pytest.raises(NotFound, match="already exists in a dataset other than second"):
        await item(api, datasetName="second", id="shared")
    await dataset(api, B, name="first")
    assert (await item(api, B, datasetName="first", id="shared"))["id"] == "shared"
    with pytest.raises(NotFound, match="Dataset missing not found"):
        await item(api, datasetName="missing")
    # PostgreSQL's jsonb cannot hold NUL characters: a 400, not a store error.
    with pytest.raises(InvalidArgument, match="NUL"):
        await item(api, datasetName="first", input={"text": "a\u0000b"})
    with pytest.raises(InvalidArgument, match="NUL"):
        await dataset(api, name="first", metadata={"k\u0000": 1})


async def test_a_version_shows_the_items_exactly_as_they_were_then(api: DatasetApi) -> None:
    await dataset(api, name="v")
    one = await item(api, datasetName="v", id="one", input="first")
    t_one = instant(one)
    await asyncio.sleep(0.01)
    changed = await item(api, datasetName="v", id="one", input="second")
    two = await item(api, datasetName="v", id="two", input="two")
    await asyncio.sleep(0.01)
    archived = await item(api, datasetName="v", id="one", status="ARCHIVED")
    await asyncio.sleep(0.01)
    await api.delete_item(A, evals_pb2.DeleteDatasetItemRequest(item_id="two"))

    def seen(found: list[dict[str, Any]]) -> list[tuple[str, Any, str]]:
        return [(i["id"], i["input"], i["status"]) for i in found]

    at = {
        "before": t_one - timedelta(milliseconds=1),
        "one": t_one,
        "changed": instant(changed),
        "two": instant(two),
        "archived": instant(archived),
    }
    results = {
        name: seen((await listed(api, dataset_name="v", version=t))[0]) for name, t in at.items()
    }
    assert results == {
        "before": [],
        "one": [("one", "first", "ACTIVE")],
        "changed": [("one", "second", "ACTIVE")],
        "two": [("two", "two", "ACTIVE"), ("one", "second", "ACTIVE")],
        "archived": [("two", "two", "ACTIVE"), ("one", "second", "ARCHIVED")],
    }
    now, meta = await listed(api, dataset_name="v")
    assert seen(now) == [("one", "second", "ARCHIVED")] and meta.total_items == 1
    with pytest.raises(NotFound):
        await api.get_item(A, evals_pb2.GetDatasetItemRequest(item_id="two"))
    # A version is what the SDKs print as the item's `version`.
    assert one["version"] == one["updatedAt"]


async def test_a_version_needs_a_dataset_name(api: DatasetApi) -> None:
    with pytest.raises(InvalidArgument, match="version requires datasetName"):
        await listed(api, version=datetime.now(UTC))


async def test_concurrent_upserts_of_one_item_each_make_a_version(api: DatasetApi) -> None:
    await dataset(api, name="c")
    await asyncio.gather(*(item(api, datasetName="c", id="hot", input=n) for n in range(20)))
    found, meta = await listed(api, dataset_name="c")
    assert meta.total_items == 1 and found[0]["input"] in range(20)
    versions = await api._pool.fetchval("SELECT count(*) FROM dataset_items WHERE id = 'hot'")
    assert versions == 20


async def test_pages_are_newest_first_with_exact_counts_and_filters(api: DatasetApi) -> None:
    await dataset(api, name="p")
    await dataset(api, name="other")
    for n in range(7):
        await item(api, datasetName="p", id=f"i{n}", input=n, sourceTraceId=f"t{n % 2}")
        await asyncio.sleep(0.002)  # times are kept in milliseconds: no two items share one
    await item(api, datasetName="other", id="elsewhere", sourceTraceId="t0")
    first, meta = await listed(api, dataset_name="p", limit=3)
    last, _ = await listed(api, dataset_name="p", limit=3, page=3)
    assert [i["id"] for i in first] == ["i6", "i5", "i4"] and [i["id"] for i in last] == ["i0"]
    # Every page size lands on the same order, whichever anchor a page seeks to.
    now = datetime.now(UTC)
    for limit, version in [(1, None), (2, None), (4, now), (5, None), (5, now)]:
        pages = [
            await listed(api, dataset_name="p", limit=limit, page=n, version=version)
            for n in range(1, 9)
        ]
        assert [i["id"] for found, _ in pages for i in found] == [f"i{n}" for n in range(6, -1, -1)]
    assert (meta.total_items, meta.total_pages, meta.page, meta.limit) == (7, 3, 1, 3)
    # Totals are kept between pages, and every change of the dataset's items renews them.
    await item(api, datasetName="p", id="i7")
    assert (await listed(api, dataset_name="p", limit=3))[1].total_items == 8
    await api.delete_item(A, evals_pb2.DeleteDatasetItemRequest(item_id="i7"))
    assert (await listed(api, dataset_name="p", limit=3))[1].total_items == 7
    by_trace, trace_meta = await listed(api, source_trace_id="t0")
    assert trace_meta.total_items == 5 and "elsewhere" in [i["id"] for i in by_trace]
    assert all(i["datasetName"] in ("p", "other") for i in by_trace)
    assert (await listed(api, B))[1].total_items == 0


async def test_run_items_land_in_the_run_of_the_stable_experiment_id(api: DatasetApi) -> None:
    created = await dataset(api, name="runs")
    await item(api, datasetName="runs", id="a")
    await item(api, datasetName="runs", id="b")
    first = await run_item(
        api, runName="exp 1", datasetItemId="a", traceId="t-a", observationId="o-a",
        runDescription="first", metadata={"model": "x"},
    )  # fmt: skip
    expected_id = run_id("project-a", created["id"], "exp 1")
    assert first["datasetRunId"] == expected_id and first["datasetRunName"] == "exp 1"
    # A retry of the same execution is the same run item; another item joins the run.
    again = await run_item(api, runName="exp 1", datasetItemId="a", traceId="t-a")
    assert again["id"] == first["id"] and again["observationId"] == "o-a"
    await run_item(
        api, runName="exp 1", datasetItemId="b", traceId="t-b",
        datasetVersion="2026-01-21T14:35:42Z",
    )  # fmt: skip
    run = orjson.loads(
        (
            await api.get_run(
                A, evals_pb2.GetDatasetRunRequest(dataset_name="runs", run_name="exp 1")
            )
        ).run_json
    )
    assert run["id"] == expected_id and run["description"] == "first"
    assert run["metadata"] == {"dataset_version": "2026-01-21T14:35:42Z"}
    assert sorted(i["datasetItemId"] for i in run["datasetRunItems"]) == ["a", "b"]
    listed_runs = await api.list_runs(
        A,
        evals_pb2.ListDatasetRunsRequest(
            dataset_name="runs", page=common_pb2.PageRequest(page=1, limit=10)
        ),
    )
    assert [orjson.loads(r)["name"] for r in listed_runs.runs_json] == ["exp 1"]
    page = await api.list_run_items(
        A,
        evals_pb2.ListDatasetRunItemsRequest(
            dataset_id=created["id"], run_name="exp 1", page=common_pb2.PageRequest(page=1, limit=1)
        ),
    )
    assert (
        page.meta.total_items == 2 and page.meta.total_pages == 2 and len(page.run_items_json) == 1
    )


async def test_run_items_need_an_active_item_of_the_project(api: DatasetApi) -> None:
    await dataset(api, name="r")
    await item(api, datasetName="r", id="archived", status="ARCHIVED")
    with pytest.raises(NotFound, match="Dataset item not found or not active"):
        await run_item(api, runName="x", datasetItemId="archived", traceId="t")
    await item(api, datasetName="r", id="mine")
    with pytest.raises(NotFound, match="not found or not active"):
        await run_item(api, B, runName="x", datasetItemId="mine", traceId="t")
    with pytest.raises(InvalidArgument, match="observationId or traceId"):
        await run_item(api, runName="x", datasetItemId="mine")
    with pytest.raises(InvalidArgument, match="datasetVersion"):
        await run_item(api, runName="x", datasetItemId="mine", traceId="t", datasetVersion="soon")


async def test_deletions_take_what_hangs_on_them(api: DatasetApi) -> None:
    created = await dataset(api, name="gone")
    await item(api, datasetName="gone", id="x")
    await item(api, datasetName="gone", id="y")
    await run_item(api, runName="r1", datasetItemId="x", traceId="t1")
    await run_item(api, runName="r2", datasetItemId="x", traceId="t2")
    await run_item(api, runName="r2", datasetItemId="y", traceId="t3")
    await api.delete_item(A, evals_pb2.DeleteDatasetItemRequest(item_id="y"))
    run = await api.get_run(A, evals_pb2.GetDatasetRunRequest(dataset_name="gone", run_name="r2"))
    assert [i["datasetItemId"] for i in orjson.loads(run.run_json)["datasetRunItems"]] == ["x"]
    await api.delete_run(A, evals_pb2.DeleteDatasetRunRequest(dataset_name="gone", run_name="r1"))
    with pytest.raises(NotFound):
        await api.get_run(A, evals_pb2.GetDatasetRunRequest(dataset_name="gone", run_name="r1"))
    with pytest.raises(NotFound):
        await api.delete_dataset(B, evals_pb2.DeleteDatasetRequest(dataset_name="gone"))
    await api.delete_dataset(A, evals_pb2.DeleteDatasetRequest(dataset_name="gone"))
    left = await api._pool.fetchval(
        "SELECT (SELECT count(*) FROM dataset_items) + (SELECT count(*) FROM dataset_runs)"
        " + (SELECT count(*) FROM dataset_run_items)"
    )
    assert left == 0
    with pytest.raises(NotFound):
        await api.list_run_items(
            A, evals_pb2.ListDatasetRunItemsRequest(dataset_id=created["id"], run_name="r2")
        )


async def test_the_legacy_v1_shapes_carry_items_and_run_names(api: DatasetApi) -> None:
    await dataset(api, name="old")
    await item(api, datasetName="old", id="active")
    await item(api, datasetName="old", id="archived", status="ARCHIVED")
    await run_item(api, runName="run", datasetItemId="active", traceId="t")
    one = orjson.loads(
        (
            await api.get_dataset(
                A, evals_pb2.GetDatasetRequest(dataset_name="old", legacy_v1=True)
            )
        ).dataset_json
    )
    assert [i["id"] for i in one["items"]] == ["active"] and one["runs"] == ["run"]
    page = await api.list_datasets(A, evals_pb2.ListDatasetsRequest(legacy_v1=True))
    listed_one = orjson.loads(page.datasets_json[0])
    assert sorted(listed_one["items"]) == ["active", "archived"] and listed_one["runs"] == ["run"]


async def test_writes_racing_a_dataset_deletion_succeed_or_find_nothing(api: DatasetApi) -> None:
    for round_ in range(3):
        name = f"race-{round_}"
        await dataset(api, name=name)
        await item(api, datasetName=name, id=f"{name}-seed")
        writes = [item(api, datasetName=name, id=f"{name}-{n % 3}", input=n) for n in range(12)]
        writes += [
            run_item(api, runName="r", datasetItemId=f"{name}-seed", traceId=f"t{n}")
            for n in range(6)
        ]
        writes.append(api.delete_item(A, evals_pb2.DeleteDatasetItemRequest(item_id=f"{name}-0")))
        deletion = api.delete_dataset(A, evals_pb2.DeleteDatasetRequest(dataset_name=name))
        outcomes = await asyncio.gather(*writes[:9], deletion, *writes[9:], return_exceptions=True)
        unexpected = [
            o for o in outcomes if isinstance(o, Exception) and not isinstance(o, NotFound)
        ]
        assert unexpected == []


async def test_a_schema_change_and_item_writes_never_leave_a_breaking_item(
    api: DatasetApi,
) -> None:
    number = {"type": "number"}
    for round_ in range(3):
        name = f"schema-race-{round_}"
        await dataset(api, name=name)
        writes = [item(api, datasetName=name, input="text" if n % 2 else n) for n in range(10)]
        change = dataset(api, name=name, inputSchema=number)
        await asyncio.gather(*writes[:5], change, *writes[5:], return_exceptions=True)
        schema = (await dataset(api, name=name))["inputSchema"]
        found, _ = await listed(api, dataset_name=name)
        if schema == number:
            assert all(isinstance(i["input"], int) for i in found)

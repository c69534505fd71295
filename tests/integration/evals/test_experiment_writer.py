"""The experiments consumer's writes against a real PostgreSQL: items from spans create their run
when it is missing, replays change nothing, an experiment id chosen by the caller lands in the
dataset's run of that name, a dataset of another project is never joined, and a value PostgreSQL
refuses costs only its own item."""

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from libs.common.migrate import migrate_postgres
from services.evals.consumer import ExperimentWriter
from services.evals.experiments import ExperimentItemSpan
from services.evals.runs import run_id
from services.evals.server import MIGRATIONS

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate_postgres(pg_dsn, MIGRATIONS)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    await pool.execute(
        "INSERT INTO datasets (id, project_id, name, created_at, updated_at)"
        " VALUES ('ds-a', 'project-a', 'qa', now(), now())"
    )
    yield pool
    await pool.close()


def item(n: int, **changes: Any) -> ExperimentItemSpan:
    fields: dict[str, Any] = {
        "project_id": "project-a", "experiment_id": "exp-1", "run_name": "run-1",
        "description": "first", "experiment_metadata": {"model": "m"}, "dataset_id": None,
        "item_id": f"item-{n}", "item_version": None, "item_metadata": {"n": n},
        "expected_output": n * 2, "trace_id": f"trace-{n}", "observation_id": f"span-{n}",
        "start_time": START + timedelta(seconds=n), "end_time": START + timedelta(seconds=n + 1),
        "level": "DEFAULT", "environment": "sdk-experiment", "input": {"n": n},
        "output": n * 2, "metadata": {"k": "v"},
    }  # fmt: skip
    return ExperimentItemSpan(**{**fields, **changes})


async def rows(pool: asyncpg.Pool, table: str) -> list[dict[str, Any]]:
    records = await pool.fetch(f"SELECT * FROM {table} ORDER BY project_id, id")
    return [dict(r) for r in records]


async def test_items_create_their_run_and_replays_change_nothing(pool: asyncpg.Pool) -> None:
    writer = ExperimentWriter(pool)
    await writer.write([[item(1), item(2)], [item(2)]])
    runs, items = await rows(pool, "dataset_runs"), await rows(pool, "dataset_run_items")
    [run] = runs
    assert (run["id"], run["name"], run["dataset_id"], run["description"]) == (
        "exp-1", "run-1", None, "first",
    )  # fmt: skip
    assert run["created_at"] == START + timedelta(seconds=1)
    assert sorted((i["dataset_item_id"], i["trace_id"], i["observation_id"]) for i in items) == [
        ("item-1", "trace-1", "span-1"),
        ("item-2", "trace-2", "span-2"),
    ]

    await writer.write([[item(1), item(2)]])
    assert await rows(pool, "dataset_runs") == runs
    assert await rows(pool, "dataset_run_items") == items

    await writer.write([[item(3, description="second")]])
    [run] = await rows(pool, "dataset_runs")
    assert run["description"] == "second" and len(await rows(pool, "dataset_run_items")) == 3


async def test_a_dataset_run_is_found_by_name_whatever_experiment_id(pool: asyncpg.Pool) -> None:
    stable = run_id("project-a", "ds-a", "run-1")
    writer = ExperimentWriter(pool)
    await writer.write([[item(1, experiment_id=stable, dataset_id="ds-a")]])
    await writer.write([[item(2, experiment_id="chosen-by-caller", dataset_id="ds-a")]])
    [run] = await rows(pool, "dataset_runs")
    assert (run["id"], run["dataset_id"]) == (stable, "ds-a")
    assert {i["dataset_run_id"] for i in await rows(pool, "dataset_run_items")} == {stable}


async def test_another_projects_dataset_is_never_joined(pool: asyncpg.Pool) -> None:
    await ExperimentWriter(pool).write(
        [[item(1, project_id="project-b", dataset_id="ds-a"), item(2)]]
    )
    assert [r["project_id"] for r in await rows(pool, "dataset_runs")] == ["project-a"]
    assert [i["dataset_item_id"] for i in await rows(pool, "dataset_run_items")] == ["item-2"]


async def test_a_value_postgresql_refuses_costs_only_its_item(pool: asyncpg.Pool) -> None:
    refused = dataclasses.replace(item(1), input={"text": "nul \x00 inside"})
    await ExperimentWriter(pool).write([[refused, item(2)]])
    assert [i["dataset_item_id"] for i in await rows(pool, "dataset_run_items")] == ["item-2"]

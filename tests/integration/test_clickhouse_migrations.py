from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from libs.common.migrate import load_migrations, migrate
from services.query.clickhouse import ClickHouseTarget, EmbeddedClickHouse
from services.query.server import MIGRATIONS


async def test_query_schema_applies_once_on_chdb(tmp_path: Path) -> None:
    clickhouse = EmbeddedClickHouse(str(tmp_path / "chdb"))
    try:
        migrations = load_migrations(MIGRATIONS / "clickhouse")
        first = await migrate(ClickHouseTarget(clickhouse), migrations)
        again = await migrate(ClickHouseTarget(clickhouse), migrations)
        tables = {row["name"] for row in await clickhouse.select("SHOW TABLES")}
    finally:
        clickhouse.close()
    assert [m.version for m in first] == [m.version for m in migrations] and again == []
    assert {"traces", "observations", "scores", "schema_migrations"} <= tables


async def test_parameters_bind_server_side(tmp_path: Path) -> None:
    clickhouse = EmbeddedClickHouse(str(tmp_path / "chdb"))
    try:
        rows = await clickhouse.select(
            "SELECT {name:String} AS name, {n:UInt32} + 1 AS n", {"name": "x'); DROP", "n": 41}
        )
    finally:
        clickhouse.close()
    assert rows == [{"name": "x'); DROP", "n": 42}]


@asynccontextmanager
async def migrated_through(
    tmp_path: Path, version: int, table: str, **row: str
) -> AsyncIterator[EmbeddedClickHouse]:
    """A store migrated to just before `version`, holding one row of `table` (its columns as SQL
    literals, its times now), then through `version` twice: a rerun of a migration (as after a
    crash) must leave the same result."""
    clickhouse = EmbeddedClickHouse(str(tmp_path / "chdb"))
    migrations = load_migrations(MIGRATIONS / "clickhouse")
    row |= dict.fromkeys(("created_at", "updated_at", "event_ts"), "now64(3)")
    try:
        await migrate(ClickHouseTarget(clickhouse), [m for m in migrations if m.version < version])
        await clickhouse.execute(
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(row.values())})"
        )
        [migration] = [m for m in migrations if m.version == version]
        await migrate(ClickHouseTarget(clickhouse), [migration])
        for statement in migration.statements():
            await clickhouse.execute(statement)
        yield clickhouse
    finally:
        clickhouse.close()


async def test_observations_move_to_the_trace_sorted_table_with_their_data(tmp_path: Path) -> None:
    async with migrated_through(
        tmp_path, 4, "observations", project_id="'p'", id="'o1'", trace_id="'t1'",
        type="'SPAN'", name="'kept'", start_time="now64(3)",
    ) as clickhouse:  # fmt: skip
        rows = await clickhouse.select("SELECT id, name FROM observations")
        [table] = await clickhouse.select(
            "SELECT sorting_key FROM system.tables WHERE name = 'observations'"
        )
        leftovers = await clickhouse.select("SHOW TABLES LIKE 'observations_by_trace'")
    assert rows == [{"id": "o1", "name": "kept"}]
    assert table["sorting_key"] == "project_id, toDate(start_time), trace_id, id"
    assert leftovers == []


async def test_scores_move_to_the_id_sorted_table_and_every_table_keeps_merge_clocks(
    tmp_path: Path,
) -> None:
    async with migrated_through(
        tmp_path, 5, "scores", project_id="'p'", id="'s1'", timestamp="now64(3)", name="'kept'",
        value="1", data_type="'NUMERIC'", source="'API'",
    ) as clickhouse:  # fmt: skip
        rows = await clickhouse.select("SELECT id, name, merge_clocks FROM scores")
        [table] = await clickhouse.select(
            "SELECT sorting_key FROM system.tables WHERE name = 'scores'"
        )
        clocks = await clickhouse.select(
            "SELECT table FROM system.columns WHERE name = 'merge_clocks' ORDER BY table"
        )
    assert rows == [{"id": "s1", "name": "kept", "merge_clocks": ""}]
    assert table["sorting_key"] == "project_id, toDate(timestamp), id"
    assert [c["table"] for c in clocks] == ["observations", "scores", "traces"]


async def test_traces_move_to_the_small_granule_table_with_their_data(tmp_path: Path) -> None:
    async with migrated_through(
        tmp_path, 12, "traces", project_id="'p'", id="'t1'", timestamp="now64(3)",
        name="'kept'", tags="['a']", input="'\"in\"'", merge_clocks="'clocks'",
    ) as clickhouse:  # fmt: skip
        rows = await clickhouse.select("SELECT id, name, tags, input, merge_clocks FROM traces")
        [table] = await clickhouse.select(
            "SELECT sorting_key, create_table_query FROM system.tables WHERE name = 'traces'"
        )
        leftovers = await clickhouse.select("SHOW TABLES LIKE 'traces_small_granules'")
    assert rows == [
        {"id": "t1", "name": "kept", "tags": ["a"], "input": '"in"', "merge_clocks": "clocks"}
    ]
    assert table["sorting_key"] == "project_id, toDate(timestamp), id"
    assert "index_granularity_bytes = 1048576" in table["create_table_query"]
    assert leftovers == []


async def test_inputs_and_outputs_change_codec_and_keep_their_data(tmp_path: Path) -> None:
    async with migrated_through(
        tmp_path, 13, "observations", project_id="'p'", id="'o1'", trace_id="'t1'",
        type="'SPAN'", name="'kept'", start_time="now64(3)", input="'\"in\"'",
        output="'\"out\"'",
    ) as clickhouse:  # fmt: skip
        rows = await clickhouse.select("SELECT input, output FROM observations")
        codecs = await clickhouse.select(
            "SELECT compression_codec FROM system.columns WHERE database = currentDatabase()"
            " AND table IN ('traces', 'observations') AND name IN ('input', 'output')"
        )
    assert rows == [{"input": '"in"', "output": '"out"'}]
    assert [c["compression_codec"] for c in codecs] == ["CODEC(ZSTD(1))"] * 4

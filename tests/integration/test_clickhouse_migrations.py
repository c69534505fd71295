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
    tmp_path: Path, version: int, insert: str
) -> AsyncIterator[EmbeddedClickHouse]:
    """A store migrated to just before `version`, holding the rows `insert` writes, then through
    `version` twice: a rerun of a migration (as after a crash) must leave the same result."""
    clickhouse = EmbeddedClickHouse(str(tmp_path / "chdb"))
    migrations = load_migrations(MIGRATIONS / "clickhouse")
    try:
        await migrate(ClickHouseTarget(clickhouse), [m for m in migrations if m.version < version])
        await clickhouse.execute(insert)
        [migration] = [m for m in migrations if m.version == version]
        await migrate(ClickHouseTarget(clickhouse), [migration])
        for statement in migration.statements():
            await clickhouse.execute(statement)
        yield clickhouse
    finally:
        clickhouse.close()


async def test_observations_move_to_the_trace_sorted_table_with_their_data(tmp_path: Path) -> None:
    async with migrated_through(
        tmp_path, 4,
        "INSERT INTO observations (project_id, id, trace_id, type, name, start_time, created_at,"
        " updated_at, event_ts) VALUES ('p', 'o1', 't1', 'SPAN', 'kept', now64(3), now64(3),"
        " now64(3), now64(3))",
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
        tmp_path, 5,
        "INSERT INTO scores (project_id, id, timestamp, name, value, data_type, source,"
        " created_at, updated_at, event_ts) VALUES ('p', 's1', now64(3), 'kept', 1, 'NUMERIC',"
        " 'API', now64(3), now64(3), now64(3))",
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
        tmp_path, 12,
        "INSERT INTO traces (project_id, id, timestamp, name, tags, input, created_at, updated_at,"
        " event_ts, merge_clocks) VALUES ('p', 't1', now64(3), 'kept', ['a'], '\"in\"',"
        " now64(3), now64(3), now64(3), 'clocks')",
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
        tmp_path, 13,
        "INSERT INTO observations (project_id, id, trace_id, type, name, start_time, input,"
        " output, created_at, updated_at, event_ts) VALUES ('p', 'o1', 't1', 'SPAN', 'kept',"
        " now64(3), '\"in\"', '\"out\"', now64(3), now64(3), now64(3))",
    ) as clickhouse:  # fmt: skip
        rows = await clickhouse.select("SELECT input, output FROM observations")
        codecs = await clickhouse.select(
            "SELECT compression_codec FROM system.columns WHERE database = currentDatabase()"
            " AND table IN ('traces', 'observations') AND name IN ('input', 'output')"
        )
    assert rows == [{"input": '"in"', "output": '"out"'}]
    assert [c["compression_codec"] for c in codecs] == ["CODEC(ZSTD(1))"] * 4

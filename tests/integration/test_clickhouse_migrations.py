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

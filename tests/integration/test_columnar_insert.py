"""Columnar inserts (Arrow into chDB) store exactly what the row-by-row JSONEachRow inserts they
replaced stored: the same rows written both ways into twin tables read back identical, down to
decimals with more digits than a column keeps, times finer than milliseconds (before 1970 too),
nulls, empty maps and text that needs escaping."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from libs.common.migrate import load_migrations, migrate
from services.query.clickhouse import ClickHouseTarget, EmbeddedClickHouse
from services.query.pricing import Priced
from services.query.rows import to_row
from services.query.server import MIGRATIONS

NOW = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
AWKWARD_TEXT = 'tab\there, "quotes", back\\slash, newline\n, unicode é ✓ 🚀, NUL-free'


def states(kind: str) -> list[dict[str, Any]]:
    before_1970 = datetime(1969, 12, 31, 23, 59, 59, 999900, tzinfo=UTC)
    times = [NOW, NOW - timedelta(days=400, microseconds=999), before_1970]
    result = []
    for n, at in enumerate(times):
        state: dict[str, Any] = {
            "id": f"{kind}-{n}",
            "metadata": {"k": n, "text": AWKWARD_TEXT} if n else {},
            "environment": "prod" if n else None,
        }
        if kind == "trace":
            state.update(timestamp=at.isoformat(), name=AWKWARD_TEXT, tags=["b", "a"][: n + 1],
                         public=n == 1, input={"q": AWKWARD_TEXT}, output=n or None)  # fmt: skip
        elif kind == "observation":
            end = (at + timedelta(seconds=1.5)).isoformat() if n else None
            state.update(traceId="t", type="GENERATION", startTime=at.isoformat(), endTime=end,
                         usageDetails={"input": 10**n, "output": 2**62},
                         costDetails={"input": 0.1 + 0.2} if n else {},
                         promptVersion=n or None, modelParameters={"t": 0.7},
                         input=[AWKWARD_TEXT])  # fmt: skip
        else:
            state.update(timestamp=at.isoformat(), traceId="t", name="s",
                         value=[0.5, "good", 1][n], dataType=[None, None, "BOOLEAN"][n],
                         comment=AWKWARD_TEXT)  # fmt: skip
        result.append(state)
    return result


def priced(n: int) -> Priced | None:
    if n == 0:
        return None
    cost = 0.0000025 * 456 + 123456.123456789012345 * (n - 1) + 1.5e-13
    return Priced({"input": 10, "total": 10}, {"input": cost, "total": cost}, cost, "m", "tier")


@pytest.fixture
async def clickhouse(tmp_path: Any) -> AsyncIterator[EmbeddedClickHouse]:
    clickhouse = EmbeddedClickHouse(str(tmp_path / "chdb"))
    await migrate(ClickHouseTarget(clickhouse), load_migrations(MIGRATIONS / "clickhouse"))
    yield clickhouse
    clickhouse.close()


@pytest.mark.parametrize(("kind", "table"), [
    ("trace", "traces"), ("observation", "observations"), ("score", "scores"),
])  # fmt: skip
async def test_columnar_insert_stores_what_row_inserts_stored(
    clickhouse: EmbeddedClickHouse, kind: str, table: str
) -> None:
    rows = [
        to_row(kind, "p", state, NOW, priced(n) if kind == "observation" else None)
        for n, state in enumerate(states(kind))
    ]
    await clickhouse.execute(f"CREATE TABLE {table}_by_rows AS {table}")
    await clickhouse.insert(table, rows)
    lines = b"\n".join(orjson.dumps(row) for row in rows).decode()
    await clickhouse.execute(
        f"INSERT INTO {table}_by_rows SETTINGS date_time_input_format = 'best_effort'"
        f" FORMAT JSONEachRow\n{lines}"
    )
    columnar = await clickhouse.select(f"SELECT * FROM {table} ORDER BY id")
    by_rows = await clickhouse.select(f"SELECT * FROM {table}_by_rows ORDER BY id")
    assert len(columnar) == len(rows)
    assert columnar == by_rows

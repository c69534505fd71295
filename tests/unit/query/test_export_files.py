"""The export's encoders: a file written batch by batch reads back as the rows, in every format,
compressed or not, and a window with no rows is still a valid, readable file."""

import csv
import gzip
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.query.export_files import OBSERVATIONS, encoder, extension

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("start_time", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("metadata", pa.map_(pa.string(), pa.string()), nullable=False),
        pa.field("total_cost", pa.decimal128(18, 12)),
        pa.field("tags", pa.list_(pa.string()), nullable=False),
        pa.field("public", pa.bool_(), nullable=False),
    ]
)
ROWS = [
    {"id": f"o{n}", "start_time": datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
     "metadata": {"k": '"v,\n"'}, "total_cost": Decimal("0.000125") if n else None,
     "tags": ["a", "b"], "public": bool(n % 2)}
    for n in range(5)
]  # fmt: skip


def encoded(file_type: str, compressed: bool, batches: list[list[dict]]) -> bytes:
    encode = encoder(file_type, compressed, SCHEMA)
    out = b"".join(encode.encode(pa.RecordBatch.from_pylist(b, schema=SCHEMA)) for b in batches)
    return out + encode.finish()


def as_json(row: dict) -> dict:
    return {**row, "start_time": "2026-01-02T03:04:05.006Z",
            "total_cost": None if row["total_cost"] is None else 0.000125}  # fmt: skip


@pytest.mark.parametrize("compressed", [True, False])
def test_jsonl_and_json_hold_one_object_per_row(compressed: bool) -> None:
    for file_type in ("JSONL", "JSON"):
        data = encoded(file_type, compressed, [ROWS[:2], ROWS[2:]])
        data = gzip.decompress(data) if compressed else data
        rows = (
            [json.loads(line) for line in data.splitlines()]
            if file_type == "JSONL"
            else json.loads(data)
        )
        assert rows == [as_json(row) for row in ROWS]


def test_csv_has_a_header_and_json_text_for_maps_and_lists() -> None:
    data = encoded("CSV", False, [ROWS[:3], ROWS[3:]])
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [row["id"] for row in rows] == [row["id"] for row in ROWS]
    assert json.loads(rows[0]["metadata"]) == {"k": '"v,\n"'}
    assert (rows[0]["total_cost"], rows[1]["total_cost"]) == ("", "0.000125")
    assert (rows[0]["public"], rows[1]["public"], rows[0]["tags"]) == ("false", "true", '["a","b"]')


def test_parquet_keeps_the_column_types() -> None:
    table = pq.read_table(io.BytesIO(encoded("PARQUET", True, [ROWS[:2], ROWS[2:]])))
    assert table.schema.equals(SCHEMA)
    assert table.to_pylist()[1]["metadata"] == [("k", '"v,\n"')]
    assert [row["total_cost"] for row in table.to_pylist()] == [None, *[Decimal("0.000125")] * 4]


def test_an_empty_window_is_still_a_readable_file() -> None:
    assert pq.read_table(io.BytesIO(encoded("PARQUET", True, []))).schema.equals(SCHEMA)
    assert json.loads(gzip.decompress(encoded("JSON", True, []))) == []
    assert encoded("JSONL", False, []) == b""
    assert encoded("CSV", False, []).decode().splitlines() == [",".join(SCHEMA.names)]


def test_file_names_and_field_groups() -> None:
    assert extension("PARQUET", True) == "parquet"
    assert (extension("CSV", True), extension("JSONL", False)) == ("csv.gz", "jsonl")
    core = OBSERVATIONS.columns(["core"]).names
    assert "input" not in core and {"id", "trace_id", "start_time", "event_ts"} <= set(core)
    assert OBSERVATIONS.columns(None) == OBSERVATIONS.schema

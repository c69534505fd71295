"""Public filters become bound SQL conditions; trace attributes filter through the trace."""

from datetime import UTC, datetime

import orjson
import pytest

from libs.common.errors import InvalidArgument
from services.query.filters import (
    OBSERVATION_FILTER_COLUMNS,
    TRACE_FILTER_COLUMNS,
    Where,
    equality_filters,
    json_filters,
)


def test_own_columns_are_compared_directly_with_bound_values() -> None:
    where = Where()
    equality_filters(where, OBSERVATION_FILTER_COLUMNS, {"type": ["SPAN", "GENERATION"]})
    assert where.sql() == "type IN {f0:Array(String)}"
    assert where.params == {"f0": ["SPAN", "GENERATION"]}


def test_a_user_filter_on_observations_selects_the_users_traces() -> None:
    where = Where()
    equality_filters(where, OBSERVATION_FILTER_COLUMNS, {"userId": ["u1"]})
    assert where.sql() == (
        "trace_id IN (SELECT id FROM traces FINAL WHERE project_id = {project_id:String}"
        " AND user_id IN {f0:Array(String)})"
    )
    assert where.params == {"f0": ["u1"]}


def test_unknown_filters_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        equality_filters(Where(), OBSERVATION_FILTER_COLUMNS, {"color": ["red"]})


def json_where(conditions: object) -> Where:
    where = Where()
    json_filters(where, OBSERVATION_FILTER_COLUMNS, orjson.dumps(conditions).decode())
    return where


def test_a_filter_parameter_becomes_bound_conditions() -> None:
    where = json_where([
        {"type": "string", "column": "name", "operator": "starts with", "value": "llm"},
        {"type": "stringOptions", "column": "level", "operator": "none of", "value": ["ERROR"]},
        {"type": "datetime", "column": "startTime", "operator": ">=",
         "value": "2026-11-01T00:00:00Z"},
        {"type": "stringObject", "column": "metadata", "key": "team", "operator": "=",
         "value": "core"},
        {"type": "null", "column": "endTime", "operator": "is null"},
    ])  # fmt: skip
    assert where.conditions == [
        "startsWith(name, {j0:String})",
        "level NOT IN {j1:Array(String)}",
        "start_time >= {j2:DateTime64(3, 'UTC')}",
        "JSONExtract(metadata[{j3k:String}], 'String') = {j3:String}",
        "end_time IS NULL",
    ]
    assert where.params["j0"] == "llm" and where.params["j3k"] == "team"
    assert where.params["j2"] == datetime(2026, 11, 1, tzinfo=UTC)


def test_a_filter_on_a_trace_column_goes_through_the_trace() -> None:
    where = json_where(
        [{"type": "arrayOptions", "column": "traceTags", "operator": "all of", "value": ["a"]}]
    )
    assert where.conditions == [
        "trace_id IN (SELECT id FROM traces FINAL WHERE project_id = {project_id:String}"
        " AND hasAll(tags, {j0:Array(String)}))"
    ]


@pytest.mark.parametrize(
    "conditions",
    [
        "not json",
        {"column": "name"},
        [{"type": "string", "column": "color", "operator": "=", "value": "red"}],
        [{"type": "string", "column": "name", "operator": "~", "value": "x"}],
        [{"type": "datetime", "column": "startTime", "operator": ">", "value": "yesterday"}],
        [{"type": "stringObject", "column": "name", "operator": "=", "value": "x"}],
        [{"type": "datetime", "column": "name", "operator": ">", "value": "2026-11-01T00:00:00Z"}],
        [{"type": "number", "column": "traceTags", "operator": ">", "value": 1}],
        [{"type": "stringObject", "column": "metadata", "operator": "=", "value": "x"}],
    ],
)
def test_filters_it_cannot_express_are_refused(conditions: object) -> None:
    raw = conditions if isinstance(conditions, str) else orjson.dumps(conditions).decode()
    with pytest.raises(InvalidArgument):
        json_filters(Where(), OBSERVATION_FILTER_COLUMNS, raw)


def test_repeated_tags_must_all_be_present() -> None:
    where = Where()
    equality_filters(where, TRACE_FILTER_COLUMNS, {"tags": ["a", "b"]})
    assert where.sql() == "hasAll(tags, {f0:Array(String)})"
    assert where.params == {"f0": ["a", "b"]}


def test_only_text_and_array_columns_take_query_parameter_filters() -> None:
    with pytest.raises(InvalidArgument):
        equality_filters(Where(), TRACE_FILTER_COLUMNS, {"timestamp": ["2026-11-01"]})

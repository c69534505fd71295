"""The metrics query builder: a query (JSON) becomes one SELECT whose client values are all bound
parameters; anything it cannot answer is a 400 naming it."""

import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from libs.common.errors import InvalidArgument
from services.query.analytics import VIEWS, build, daily_documents

RANGE = {"fromTimestamp": "2025-01-01T00:00:00Z", "toTimestamp": "2025-01-31T00:00:00Z"}


def query(**fields: Any) -> str:
    body = {"view": "observations", "metrics": [{"measure": "count", "aggregation": "count"}]}
    return orjson.dumps({**body, **RANGE, **fields}).decode()


def test_cost_per_model_sums_the_current_rows_of_the_project_in_the_range() -> None:
    built = build(2, query(
        dimensions=[{"field": "providedModelName"}],
        metrics=[{"measure": "totalCost", "aggregation": "sum"},
                 {"measure": "totalTokens", "aggregation": "sum"}],
    ))  # fmt: skip
    assert built.sql == (
        "SELECT provided_model_name AS `providedModelName`,"
        " sum(toFloat64(total_cost)) AS `sum_totalCost`,"
        " sum(usage_details['total']) AS `sum_totalTokens`"
        " FROM (SELECT * FROM observations FINAL WHERE project_id = {project_id:String}"
        " AND start_time >= {m_from:DateTime64(3, 'UTC')}"
        " AND start_time <= {m_to:DateTime64(3, 'UTC')} AND 1) AS base"
        " GROUP BY `providedModelName` ORDER BY `sum_totalCost` DESC"
        " LIMIT {m_limit:UInt32} SETTINGS join_use_nulls = 1,"
        " do_not_merge_across_partitions_select_final = 1"
    )
    assert built.params == {
        "m_from": datetime(2025, 1, 1, tzinfo=UTC),
        "m_to": datetime(2025, 1, 31, tzinfo=UTC),
        "m_limit": 100,
    }
    assert built.metric_keys == ["sum_totalCost", "sum_totalTokens"]


def test_percentiles_and_histograms_use_clickhouse_quantiles_and_bound_bins() -> None:
    built = build(2, query(
        dimensions=[{"field": "name"}],
        metrics=[{"measure": "latency", "aggregation": "p95"},
                 {"measure": "latency", "aggregation": "histogram"}],
        config={"bins": 7, "row_limit": 1000},
    ))  # fmt: skip
    assert "quantile(0.95)(date_diff('millisecond', start_time, end_time)) AS `p95_latency`" in (
        built.sql
    )
    assert "histogram({m_bins:UInt32})(toFloat64(date_diff(" in built.sql
    assert built.params["m_bins"] == 7 and built.params["m_limit"] == 1000


def test_filters_are_bound_and_trace_fields_go_through_the_trace() -> None:
    built = build(2, query(
        dimensions=[{"field": "traceName"}],
        filters=[
            {"column": "tags", "type": "arrayOptions", "operator": "any of", "value": ["x'y"]},
            {"column": "name", "type": "string", "operator": "contains", "value": "'; DROP"},
            {"column": "metadata", "type": "stringObject", "key": "k", "operator": "=",
             "value": "v"},
        ],
    ))  # fmt: skip
    assert (
        "trace_id IN (SELECT id FROM traces FINAL WHERE project_id = {project_id:String}"
        " AND hasAny(tags, {j0:Array(String)}))"
    ) in built.sql
    assert "positionUTF8(name, {j1:String}) > 0" in built.sql
    assert "JSONExtract(metadata[{j2k:String}], 'String') = {j2:String}" in built.sql
    assert built.params["j0"] == ["x'y"] and built.params["j1"] == "'; DROP"
    # A trace field as a dimension joins the current traces, under names of their own.
    assert "t_name AS `traceName`" in built.sql
    assert (
        " LEFT JOIN (SELECT id AS t_id, name AS t_name, user_id AS t_user_id,"
        " session_id AS t_session_id, release AS t_release, version AS t_version,"
        " tags AS t_tags FROM traces FINAL WHERE project_id = {project_id:String} AND 1)"
        " AS t ON t.t_id = base.trace_id"
    ) in built.sql


def test_no_client_text_reaches_the_sql() -> None:
    hostile = "x`) OR 1=1 --"
    built = build(2, query(filters=[
        {"column": "name", "type": "string", "operator": "=", "value": hostile},
        {"column": "metadata", "type": "numberObject", "key": hostile, "operator": ">",
         "value": 1},
    ]))  # fmt: skip
    assert hostile not in built.sql and hostile in built.params.values()


def test_a_time_dimension_buckets_and_fills_the_range() -> None:
    built = build(2, query(timeDimension={"granularity": "day"}))
    assert "toDateTime(toStartOfDay(start_time), 'UTC') AS time_dimension" in built.sql
    assert built.sql.endswith(
        " GROUP BY time_dimension ORDER BY time_dimension ASC WITH FILL FROM"
        " toDateTime(toStartOfDay({m_from:DateTime64(3, 'UTC')}), 'UTC')"
        " TO toDateTime({m_to:DateTime64(3, 'UTC')}, 'UTC') STEP INTERVAL 1 DAY"
        " LIMIT {m_limit:UInt32} SETTINGS join_use_nulls = 1,"
        " do_not_merge_across_partitions_select_final = 1"
    )
    assert built.time_dimension


@pytest.mark.parametrize(
    ("start", "end", "bucket"),
    [
        ("2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z", "toStartOfMinute"),
        ("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", "toStartOfHour"),
        ("2025-01-01T00:00:00Z", "2025-01-31T00:00:00Z", "toStartOfDay"),
        ("2025-01-01T00:00:00Z", "2025-06-01T00:00:00Z", "toMonday"),
        ("2024-01-01T00:00:00Z", "2025-06-01T00:00:00Z", "toStartOfMonth"),
    ],
)
def test_auto_granularity_picks_about_fifty_buckets(start: str, end: str, bucket: str) -> None:
    built = build(2, query(
        timeDimension={"granularity": "auto"}, fromTimestamp=start, toTimestamp=end
    ))  # fmt: skip
    assert f"toDateTime({bucket}(start_time), 'UTC') AS time_dimension" in built.sql


def test_order_by_names_dimensions_and_metric_keys_and_skips_the_fill() -> None:
    built = build(2, query(
        dimensions=[{"field": "name"}], timeDimension={"granularity": "hour"},
        orderBy=[{"field": "count_count", "direction": "desc"},
                 {"field": "name", "direction": "asc"}],
    ))  # fmt: skip
    assert "ORDER BY `count_count` DESC, `name` ASC LIMIT" in built.sql
    assert "WITH FILL" not in built.sql


def test_score_views_hold_their_data_types() -> None:
    segments = {
        "scores-numeric": "data_type IN ('NUMERIC', 'BOOLEAN')",
        "scores-boolean": "data_type = 'BOOLEAN'",
        "scores-categorical": "data_type = 'CATEGORICAL'",
    }
    for view, segment in segments.items():
        built = build(2, query(view=view, dimensions=[{"field": "observationName"}]))
        assert f"AND {segment}) AS base" in built.sql
        assert "AS ob ON ob.ob_id = base.observation_id" in built.sql


def test_the_traces_view_is_v1_only_and_rolls_up_its_observations() -> None:
    built = build(1, query(view="traces", metrics=[
        {"measure": "totalCost", "aggregation": "sum"},
        {"measure": "uniqueUserIds", "aggregation": "count"},
    ]))  # fmt: skip
    assert "sum(r_cost) AS `sum_totalCost`" in built.sql
    assert "uniqExact(user_id) AS `count_uniqueUserIds`" in built.sql
    assert "AS r ON r.r_trace_id = base.id" in built.sql
    with pytest.raises(InvalidArgument, match="unknown view 'traces'"):
        build(2, query(view="traces"))


def test_v1_groups_by_high_cardinality_fields_v2_refuses_them() -> None:
    for view in ("observations", "scores-numeric"):
        for name in VIEWS[view].high_cardinality:
            assert f"AS `{name}`" in build(1, query(view=view, dimensions=[{"field": name}])).sql
            with pytest.raises(InvalidArgument, match=f"dimension '{name}' has too high"):
                build(2, query(view=view, dimensions=[{"field": name}]))
            # ...but filters take them.
            condition = {"column": name, "type": "string", "operator": "=", "value": "x"}
            build(2, query(view=view, filters=[condition]))


def test_every_dimension_and_measure_of_every_view_builds() -> None:
    for name, view in VIEWS.items():
        version = 1 if name == "traces" else 2
        dimensions = [
            {"field": d} for d in view.dimensions
            if version == 1 or d not in view.high_cardinality
        ]  # fmt: skip
        metrics = [{"measure": m, "aggregation": "count"} for m in view.measures]
        built = build(version, query(view=name, dimensions=dimensions, metrics=metrics))
        assert re.findall(r"\{(\w+):", built.sql)  # parameters only, no literals from the client


REJECTIONS = [
    ("not json", "not valid JSON"),
    ("[1]", "expected a JSON object"),
    (query(view="sessions"), "unknown view 'sessions'"),
    (query(dimensions=[{"field": "color"}]), "unknown dimension 'color'"),
    (query(dimensions=[{"field": "isRootObservation"}]), None),  # v2 only: fine here
    (query(metrics=[{"measure": "mood", "aggregation": "sum"}]), "unknown measure 'mood'"),
    (query(metrics=[{"measure": "latency", "aggregation": "median"}]), "unknown aggregation"),
    (query(metrics=[]), "at least one measure"),
    (query(timeDimension={"granularity": "fortnight"}), "unknown granularity 'fortnight'"),
    (query(timeDimension={"granularity": "day"}, fromTimestamp=None), "fromTimestamp is required"),
    (query(toTimestamp="yesterday"), "toTimestamp is required"),
    (query(fromTimestamp="2025-02-01T00:00:00Z"), "fromTimestamp must be before toTimestamp"),
    (query(config={"row_limit": 1001}), "config.row_limit must be an integer from 1 to 1000"),
    (query(config={"row_limit": 0}), "config.row_limit"),
    (query(config={"bins": 101}), "config.bins"),
    (query(orderBy=[{"field": "sum_totalCost", "direction": "desc"}]), "orderBy field"),
    (query(orderBy=[{"field": "count_count", "direction": "sideways"}]), "orderBy field"),
    (
        query(filters=[{"column": "color", "type": "string", "operator": "=", "value": "x"}]),
        "unknown column 'color'",
    ),
    (
        query(filters=[{"column": "tags", "type": "string", "operator": "=", "value": "x"}]),
        "'tags' is a array column",
    ),
    (
        query(filters=[{"column": "name", "type": "string", "operator": "~", "value": "x"}]),
        "operator '~'",
    ),
    (query(filters="name=x"), "filters must be an array"),
]


@pytest.mark.parametrize(("raw", "message"), REJECTIONS)
def test_bad_queries_are_400s_naming_the_problem(raw: str, message: str | None) -> None:
    if message is None:
        build(2, raw)
        return
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        build(2, raw)


def test_is_root_observation_is_a_v2_dimension() -> None:
    with pytest.raises(InvalidArgument, match="unknown dimension 'isRootObservation'"):
        build(1, query(dimensions=[{"field": "isRootObservation"}]))


def test_daily_documents_merge_traces_and_usage_per_day_newest_first() -> None:
    traces = [{"day": "2025-01-01", "traces": 2}, {"day": "2025-01-03", "traces": 1}]
    usage: list[dict[str, Any]] = [
        {"day": "2025-01-01", "model": "b", "observations": 1, "traces": 1, "input": 1,
         "output": 2, "total": 3, "cost": 0.5},
        {"day": "2025-01-01", "model": "a", "observations": 2, "traces": 2, "input": 4,
         "output": 5, "total": 9, "cost": 0.25},
        {"day": "2025-01-02", "model": None, "observations": 1, "traces": 1, "input": 0,
         "output": 0, "total": 0, "cost": 0.0},
    ]  # fmt: skip
    days = daily_documents(traces, usage)
    assert [d["date"] for d in days] == ["2025-01-03", "2025-01-02", "2025-01-01"]
    assert days[0] == {"date": "2025-01-03", "countTraces": 1, "countObservations": 0,
                       "totalCost": 0.0, "usage": []}  # fmt: skip
    assert days[2]["countObservations"] == 3 and days[2]["totalCost"] == 0.75
    assert [u["model"] for u in days[2]["usage"]] == ["a", "b"]
    assert days[2]["usage"][0] == {"model": "a", "inputUsage": 4, "outputUsage": 5,
                                   "totalUsage": 9, "countObservations": 2, "countTraces": 2,
                                   "totalCost": 0.25}  # fmt: skip


def test_gaps_are_filled_only_when_every_bucket_fits_in_the_rows_answered() -> None:
    assert "WITH FILL" in build(2, query(timeDimension={"granularity": "day"})).sql
    years = query(
        timeDimension={"granularity": "minute"}, toTimestamp="2026-01-01T00:00:00Z"
    )  # a grid of minutes over a year would be generated before the limit cut it
    assert "WITH FILL" not in build(2, years).sql

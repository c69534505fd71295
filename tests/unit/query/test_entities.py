"""Each entity is described once (services/query/entities.py), and every field map of the query
service reads that description: list filters and ordering, the row mapping, the list documents'
field groups and the metrics views."""

from datetime import UTC, datetime

import pytest

from libs.common.errors import InvalidArgument
from services.gateway.routes import scores as score_routes
from services.gateway.routes import traces as trace_routes
from services.query.analytics import VIEWS, build
from services.query.entities import ENTITIES, OBSERVATION, SCORE, TRACE, Entity
from services.query.filters import (
    OBSERVATION_FILTER_COLUMNS,
    SCORE_FILTER_COLUMNS,
    TRACE_FILTER_COLUMNS,
    TRACE_ORDER,
    order_by,
)
from services.query.rows import from_row, to_row
from services.query.views import (
    TRACE_GROUPS,
    V2_GROUPS,
    V2_TRACE_GROUPS,
    listed_trace_view,
    observation_v2_view,
)

KINDS = {"string", "number", "datetime", "array", "object", "boolean"}
VIEW_ENTITIES = {"traces": TRACE, "observations": OBSERVATION, "scores-numeric": SCORE,
                 "scores-boolean": SCORE, "scores-categorical": SCORE}  # fmt: skip
RELATED = {"trace.": TRACE, "observation.": OBSERVATION}


@pytest.mark.parametrize("entity", ENTITIES.values(), ids=list(ENTITIES))
def test_every_field_is_described_once_with_a_kind_and_a_column_where_sql_reads_it(
    entity: Entity,
) -> None:
    names = [f.name for f in entity.fields]
    assert len(names) == len(set(names))
    for f in entity.fields:
        assert f.kind in KINDS
        if f.filterable or f.sortable or f.metrics or f.stored:
            assert f.column, f.name
        if f.stored or f.sortable:  # plain columns of the entity's own table
            assert f.column.isidentifier(), f.name
        for prefix, related in RELATED.items():
            if f.column.startswith(prefix):  # a column of the related entity's table
                assert f.column.removeprefix(prefix) in {g.column for g in related.fields}


def test_list_filters_are_the_filterable_fields() -> None:
    for columns, entity in [(TRACE_FILTER_COLUMNS, TRACE), (OBSERVATION_FILTER_COLUMNS,
                            OBSERVATION), (SCORE_FILTER_COLUMNS, SCORE)]:  # fmt: skip
        assert columns == {f.name: (f.column, f.kind) for f in entity.fields if f.filterable}


@pytest.mark.parametrize("name", sorted(TRACE_ORDER))
def test_every_sortable_trace_field_orders_by_its_column(name: str) -> None:
    column = next(f.column for f in TRACE.fields if f.name == name and f.sortable)
    assert order_by(f"{name}.desc", TRACE_ORDER, "") == f"{column} DESC, id DESC"


def test_a_field_that_is_not_sortable_is_refused() -> None:
    assert not next(f for f in TRACE.fields if f.name == "tags").sortable
    with pytest.raises(InvalidArgument, match="sortable field"):
        order_by("tags.asc", TRACE_ORDER, "")


@pytest.mark.parametrize("view", list(VIEWS))
def test_metrics_views_hold_their_entitys_fields_and_measures(view: str) -> None:
    entity, described = VIEW_ENTITIES[view], VIEWS[view]
    fields = {f.name: f for f in entity.fields}
    assert described.table == entity.table
    assert described.time_field == entity.time_field
    for name, (column, kind) in described.fields.items():
        assert (fields[name].column, fields[name].kind) == (column, kind)
    assert set(described.dimensions) <= set(described.fields)
    assert set(described.high_cardinality) | set(described.v2_only) <= set(described.dimensions)
    assert described.measures.items() <= entity.measures.items()


def test_a_field_means_the_same_column_in_list_filters_and_metrics() -> None:
    for view, entity in VIEW_ENTITIES.items():
        lists = entity.filter_columns()
        for name, column in VIEWS[view].fields.items():
            assert lists.get(name, column) == column


def test_every_stored_field_round_trips_through_its_column() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    values = {"datetime": "2026-01-01T00:00:01.000Z", "boolean": True, "number": 2.0,
              "array": ["a"]}  # fmt: skip
    for kind, entity in ENTITIES.items():
        state = {f.name: values.get(f.kind, f"v{i}") for i, f in enumerate(entity.fields)
                 if f.stored}  # fmt: skip
        row = to_row(kind, "p", state, now)
        for f in entity.fields:
            if f.stored:
                assert row[f.column] is not None, f.name
        back = from_row(kind, row)
        assert {name: back[name] for name in state} == state


def test_trace_list_groups_leave_placeholders_for_the_fields_not_asked_for() -> None:
    assert {"core", "io", "observations", "scores", "metrics"} == TRACE_GROUPS
    row = {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "input": '"in"', "metadata": {}}
    rollup = {"ids": ["o"], "score_ids": ["s"], "total_cost": 1.5}
    full = listed_trace_view(row, "p", rollup, TRACE_GROUPS)
    core = listed_trace_view(row, "p", rollup, {"core"})
    assert (full["input"], full["observations"], full["totalCost"]) == ("in", ["o"], 1.5)
    for f in TRACE.fields:
        if f.group != "core":
            assert core[f.name] == {"array": [], "number": -1}.get(f.kind), f.name


def test_v2_observation_groups_answer_the_described_fields() -> None:
    row = {"id": "o", "trace_id": "t", "start_time": "2026-01-01T00:00:00Z"}
    trace = {"id": "t", "user_id": "u", "tags": ["a"], "name": "chat"}
    every = observation_v2_view(row, "p", set(V2_GROUPS), set(), trace)
    placeholders = {"modelId", "inputPrice", "outputPrice", "totalPrice"}
    assert set(every) - placeholders == {f.name for f in OBSERVATION.fields if f.group}
    assert (every["userId"], every["tags"], every["traceName"]) == ("u", ["a"], "chat")
    core = observation_v2_view(row, "p", set(), set(), None)
    assert set(core) - placeholders == set(V2_GROUPS["core"])
    assert {"basic", "trace_context"} == V2_TRACE_GROUPS


def test_every_metrics_dimension_groups_and_filters() -> None:
    window = '"fromTimestamp": "2026-01-01T00:00:00Z", "toTimestamp": "2026-01-02T00:00:00Z"'
    for view, described in VIEWS.items():
        version = 1 if view == "traces" else 2
        for name in described.dimensions:
            if name in (described.high_cardinality if version == 2 else described.v2_only):
                continue
            raw = (f'{{"view": "{view}", {window}, "dimensions": [{{"field": "{name}"}}],'
                   f' "metrics": [{{"measure": "count", "aggregation": "count"}}]}}')  # fmt: skip
            assert f"AS `{name}`" in build(version, raw).sql


def test_the_gateways_query_parameter_filters_are_described_filters() -> None:
    """The gateway forwards a route's query-parameter filters by name (it may not import the
    query service); each one is a filterable field the query service compares by value."""
    routes = [
        (trace_routes._TRACE_FILTERS, TRACE),
        (trace_routes._OBSERVATION_FILTERS, OBSERVATION),
        (score_routes._V2_FILTERS, SCORE),
        (score_routes._V3_LIST_FILTERS, SCORE),
        (score_routes._V3_FILTERS, SCORE),
    ]
    for names, entity in routes:
        columns = entity.filter_columns()
        for name in names:
            assert columns[name][1] in ("string", "array"), name

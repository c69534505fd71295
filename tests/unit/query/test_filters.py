"""Public filters become bound SQL conditions; trace attributes filter through the trace."""

import pytest

from libs.common.errors import InvalidArgument
from services.query.filters import OBSERVATION_FILTERS, Where, equality_filters


def test_own_columns_are_compared_directly_with_bound_values() -> None:
    where = Where()
    equality_filters(where, OBSERVATION_FILTERS, {"type": ["SPAN", "GENERATION"]})
    assert where.sql() == "type IN {f0:Array(String)}"
    assert where.params == {"f0": ["SPAN", "GENERATION"]}


def test_a_user_filter_on_observations_selects_the_users_traces() -> None:
    where = Where()
    equality_filters(where, OBSERVATION_FILTERS, {"userId": ["u1"]})
    assert where.sql() == (
        "trace_id IN (SELECT id FROM traces FINAL WHERE project_id = {project_id:String}"
        " AND user_id IN {f0:Array(String)})"
    )
    assert where.params == {"f0": ["u1"]}


def test_unknown_filters_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        equality_filters(Where(), OBSERVATION_FILTERS, {"color": ["red"]})

"""A run's numbers: each item gets its trace's latency, cost and scores; the run gets the item
count, mean latency, total and mean cost and the mean of each numeric (or boolean) score over the
traces that are stored. Items whose trace is not stored yet count as items, not in the means."""

import pytest

from services.evals.results import numbers


def score(name: str, value: float, data_type: str = "NUMERIC") -> dict[str, object]:
    return {"name": name, "value": value, "dataType": data_type}


def test_run_numbers() -> None:
    items = [{"traceId": "t1"}, {"traceId": "t2"}, {"traceId": "t3"}]
    t1_scores = [score("acc", 1), score("ok", 1, "BOOLEAN")]
    t2_scores = [score("acc", 0), score("label", 0, "CATEGORICAL")]
    metrics = {
        "t1": {"latency": 1.0, "totalCost": 0.5, "scores": t1_scores},
        "t2": {"latency": 3.0, "totalCost": 0.25, "scores": t2_scores},
    }
    result = numbers(items, metrics)
    assert result["countRunItems"] == 3
    assert result["avgLatency"] == 2.0
    assert result["totalCost"] == 0.75
    assert result["avgTotalCost"] == 0.375
    assert result["avgScores"] == {"acc": 0.5, "ok": 1.0}
    assert items[0] == {"traceId": "t1", **metrics["t1"]}
    assert items[2] == {"traceId": "t3", "latency": None, "totalCost": None, "scores": []}


def test_a_run_without_stored_traces() -> None:
    result = numbers([{"traceId": "t1"}], {})
    assert result["avgLatency"] is None and result["avgTotalCost"] is None
    assert result["totalCost"] == pytest.approx(0.0)
    assert result["avgScores"] == {}

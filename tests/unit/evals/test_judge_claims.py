"""How many jobs the judge claims: many at once while the query writer keeps up; while it is
behind, rounds of at most EVALS_JUDGE_BUSY_JOBS, one round a second, so that a round's jobs
read their targets, ingest their results and complete as one call each. And the definitions a
round's jobs all ask for are loaded once."""

import asyncio
from typing import Any, cast

import pytest

from services.evals import judge
from services.evals.judge import JudgeWorker, ShortCache


class Writer:
    def __init__(self, busy: bool) -> None:
        self.behind = busy

    def busy(self) -> bool:
        return self.behind


def worker(writer: Writer, *, concurrency: int = 8, busy_jobs: int = 5) -> JudgeWorker:
    unused = cast(Any, None)
    return JudgeWorker(jobs=unused, evaluators=unused, rules=unused, connections=unused,
                       query=unused, ingestion=unused, concurrency=concurrency, max_attempts=3,
                       timeout=10, writer=cast(Any, writer), busy_jobs=busy_jobs)  # fmt: skip


def running(worker: JudgeWorker, count: int) -> None:
    worker._tasks = {cast(Any, object()) for _ in range(count)}


async def test_while_the_writer_keeps_up_jobs_are_claimed_many_at_a_time() -> None:
    judging = worker(Writer(busy=False))  # 8 calls in flight, 32 jobs claimed
    assert judging._claimable() == 32
    running(judging, 30)
    assert judging._claimable() == 0  # two free: wait for a quarter of them
    running(judging, 24)
    assert judging._claimable() == 8


async def test_while_the_writer_is_behind_a_round_at_most_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(judge.time, "monotonic", lambda: clock[0])
    writer = Writer(busy=True)
    judging = worker(writer)
    assert judging._claimable() == 5
    judging._next_round = clock[0] + judge.BUSY_ROUND_SECONDS  # what run() does as it claims
    running(judging, 2)
    assert judging._claimable() == 0
    clock[0] += judge.BUSY_ROUND_SECONDS
    assert judging._claimable() == 3  # the round's room beside the jobs still in flight
    writer.behind = False
    assert judging._claimable() == 30


async def test_a_value_asked_for_by_many_at_once_is_loaded_once() -> None:
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return "evaluator"

    cache = ShortCache(ttl=60)
    values = await asyncio.gather(*(cache.get(("e", "1"), load) for _ in range(50)))
    assert values == ["evaluator"] * 50 and loads == 1


async def test_a_failed_load_is_not_kept() -> None:
    answers: list[Any] = [OSError("PostgreSQL away"), "evaluator"]

    async def load() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    cache = ShortCache(ttl=60)
    with pytest.raises(OSError):
        await cache.get(("e", "1"), load)
    assert await cache.get(("e", "1"), load) == "evaluator"

"""Judge jobs on real PostgreSQL: one job per rule, evaluator and target however many events
match; debounce while pending; concurrent claims never share a job; an expired lease is claimed
again and the stale claim can no longer write its outcome; many jobs complete in one statement;
LLM connection secrets are stored sealed."""

import asyncio
import os

import asyncpg
import orjson

from libs.common.secret_box import SecretBox
from services.evals.connections import ConnectionApi
from services.evals.jobs import JobStore, Match, Outcome


def match(trace: str, delay_ms: int = 0) -> Match:
    return Match("p1", "rule-1", "evaluator-1", trace, "obs-" + trace, delay_ms)


async def test_a_target_has_one_job_and_pending_jobs_are_pushed_back(pool: asyncpg.Pool) -> None:
    store = JobStore(pool)
    await store.enqueue([match("t1", 60_000), match("t1", 60_000)])
    first = await pool.fetchval("SELECT run_after FROM judge_jobs")
    await store.enqueue([match("t1", 120_000)])
    assert await pool.fetchval("SELECT count(*) FROM judge_jobs") == 1
    assert await pool.fetchval("SELECT run_after FROM judge_jobs") > first
    assert await store.claim(10, 30) == []  # not due yet


async def test_claims_are_exclusive_and_a_started_job_is_not_created_again(
    pool: asyncpg.Pool,
) -> None:
    store = JobStore(pool)
    await store.enqueue([match(f"t{n}") for n in range(20)])
    claims = await asyncio.gather(*(store.claim(5, 30) for _ in range(6)))
    claimed = [job.id for jobs in claims for job in jobs]
    assert len(claimed) == len(set(claimed)) == 20
    await store.enqueue([match("t0")])  # a later event of a running job's target
    assert await pool.fetchval("SELECT count(*) FROM judge_jobs WHERE trace_id = 't0'") == 1
    assert await pool.fetchval("SELECT status FROM judge_jobs WHERE trace_id = 't0'") == "running"


async def test_an_expired_lease_is_claimed_again_and_fences_the_old_claim(
    pool: asyncpg.Pool,
) -> None:
    store = JobStore(pool)
    await store.enqueue([match("t1")])
    [stale] = await store.claim(1, 0.01)
    await asyncio.sleep(0.05)
    [taken] = await store.claim(1, 30)
    assert taken.id == stale.id and taken.attempts == stale.attempts + 1
    await store.complete([Outcome(stale, 1, ["stale-score"], "stale-trace")])
    await store.complete([Outcome(taken, 1, ["score"], "trace")])
    row = await pool.fetchrow("SELECT status, score_ids, judge_trace_id FROM judge_jobs")
    assert (row["status"], row["score_ids"], row["judge_trace_id"]) == ("completed", ["score"],
                                                                       "trace")  # fmt: skip
    await store.finish(stale, "error", "too late")
    assert await pool.fetchval("SELECT status FROM judge_jobs") == "completed"


async def test_jobs_complete_together_each_with_its_scores(pool: asyncpg.Pool) -> None:
    store = JobStore(pool)
    await store.enqueue([match(f"t{n}") for n in range(3)])
    jobs = sorted(await store.claim(3, 30), key=lambda job: job.trace_id)
    await store.complete([Outcome(jobs[0], 2, ["a", "b"], "judge-0"),
                          Outcome(jobs[1], 2, [], "judge-1")])  # fmt: skip
    rows = await pool.fetch(
        "SELECT trace_id, status, evaluator_version, score_ids, judge_trace_id FROM judge_jobs"
        " ORDER BY trace_id"
    )
    assert [tuple(r) for r in rows] == [
        ("t0", "completed", 2, ["a", "b"], "judge-0"),
        ("t1", "completed", 2, [], "judge-1"),
        ("t2", "running", None, None, None),
    ]


async def test_a_retry_waits_and_may_give_its_attempt_back(pool: asyncpg.Pool) -> None:
    store = JobStore(pool)
    await store.enqueue([match("t1")])
    [job] = await store.claim(1, 30)
    await store.retry(job, 0, "not readable yet", counts=False)
    [again] = await store.claim(1, 30)
    assert again.attempts == 1
    await store.retry(again, 3600, "429 from the provider")
    assert await store.claim(1, 30) == []
    documents, _ = await store.list_page("p1", 10, "", {"status": "pending"})
    assert orjson.loads(documents[0])["error"] == "429 from the provider"


async def test_connection_secrets_are_sealed_at_rest(pool: asyncpg.Pool) -> None:
    api = ConnectionApi(pool, SecretBox(os.urandom(32)))
    body = {"provider": "openai", "adapter": "openai", "secretKey": "sk-very-secret-1234",
            "extraHeaders": {"X-Org": "org-secret"}, "customModels": ["m"]}  # fmt: skip
    document = orjson.loads(await api.upsert("p1", orjson.dumps(body)))
    assert document["displaySecretKey"] == "...1234" and document["extraHeaderKeys"] == ["X-Org"]
    raw = await pool.fetchrow("SELECT * FROM llm_connections")
    assert b"sk-very-secret" not in raw["secret_key"] and b"org-secret" not in raw["extra_headers"]
    connection = await api.connection("p1", "openai")
    assert connection is not None
    assert connection.endpoint.secret_key == "sk-very-secret-1234"
    assert connection.endpoint.extra_headers == {"X-Org": "org-secret"}
    assert "sk-very" not in repr(connection)
    # Upsert by provider: the same row, a new secret.
    again = orjson.loads(await api.upsert("p1", orjson.dumps({**body, "secretKey": "sk-new-9"})))
    assert again["id"] == document["id"] and again["displaySecretKey"] == "...ew-9"


async def test_a_key_rotation_reseals_every_secret_with_the_new_key(pool: asyncpg.Pool) -> None:
    old, new = os.urandom(32), os.urandom(32)
    body = {"provider": "gw", "adapter": "openai", "secretKey": "sk-rotate-me",
            "extraHeaders": {"X-A": "b"}, "customModels": ["m"]}  # fmt: skip
    await ConnectionApi(pool, SecretBox(old)).upsert("p1", orjson.dumps(body))
    rotating = ConnectionApi(pool, SecretBox(new, previous=old))
    assert await rotating.reseal_all() == 1
    assert await rotating.reseal_all() == 0
    connection = await ConnectionApi(pool, SecretBox(new)).connection("p1", "gw")
    assert connection is not None and connection.endpoint.secret_key == "sk-rotate-me"

"""The judge worker: claims due jobs (services/evals/jobs.py), judges each target's merged state
(read from the query service) with the evaluator's prompt and model, and ingests the score with
source EVAL through the ingestion service, together with the judge call as a trace and generation
of its own (model, usage; the query service prices it), which the score's metadata links.

Cheap per job: targets are read in batches (services/evals/targets.py), results ingested and jobs
completed in batches of concurrent jobs (services/evals/batching.py), jobs claimed many at a time,
and each LLM connection has its own keep-alive HTTP/1.1 pool (services/evals/llm.py).

Bounded: at most EVALS_JUDGE_CONCURRENCY calls in flight per LLM connection. Retries with backoff
on 429, 5xx, timeouts and refused connections, honouring Retry-After, up to
EVALS_JUDGE_MAX_ATTEMPTS; then the job's final error carries the provider's message and the
evaluator is paused (as when the provider refuses the key or the model), so a broken connection
neither retries forever nor fails silently."""

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import aiohttp
import asyncpg
import grpc
import orjson
import structlog

from libs.common.gen.obs.ingestion.v1 import ingestion_pb2
from libs.common.gen.obs.ingestion.v1.ingestion_pb2_grpc import IngestionServiceStub
from libs.common.gen.obs.query.v1.query_pb2_grpc import QueryServiceStub
from libs.common.scope import ProjectScope
from services.evals.batching import Batcher
from services.evals.connections import Connection, ConnectionApi
from services.evals.evaluators import Definition, EvaluatorApi, JudgeVersion
from services.evals.jobs import Job, JobStore, Outcome
from services.evals.judge_fields import VARIABLE, at_path
from services.evals.llm import Completion, LlmError, chat, session
from services.evals.rule_filters import TRACE_LEVEL, matches, observation_row, trace_row
from services.evals.rules import RuleApi
from services.evals.targets import TargetReader
from services.evals.writer_load import WriterLoad

log = structlog.get_logger()
T = TypeVar("T")

# Judge traces carry this environment; the trigger never judges them (no judge of judges).
JUDGE_ENVIRONMENT = "llm-as-a-judge"
# A target not yet readable (the query writer lags the topic) is looked for again this long.
TARGET_WAIT_SECONDS = 120.0
# Evaluators, rule assignments and connections are read again after this many seconds: a burst of
# jobs reads them once, and a change (a pause, a new key) holds within it.
DEFINITIONS_TTL = 2.0
# Jobs claimed per LLM call allowed in flight.
CLAIMS_PER_CALL = 4
# Claims wait until this share of the claimable jobs is free (unless none runs): one statement
# claims many jobs, not one per finished job.
CLAIM_SHARE = 4
# Judged jobs' events go to ingestion together (one IngestBatch per project for up to this many
# jobs), and their completions to PostgreSQL (one statement).
RESULTS_PER_CALL = 100
COMPLETIONS_PER_STATEMENT = 500
LINGER_SECONDS = 0.02
# While the query writer is behind, jobs are claimed at most this often (see _claimable).
BUSY_ROUND_SECONDS = 1.0
_NAMESPACE = uuid.UUID("8f0c6d55-0f51-4f7e-9f0a-3c1b2f2a7e11")
_RPC_TIMEOUT = 10.0


class JobFailed(Exception):
    """A final outcome other than a score: `status` error or skipped, `pause` the evaluator."""

    def __init__(self, message: str, *, status: str = "error", pause: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.pause = pause


class RetryLater(Exception):
    def __init__(self, message: str, delay: float, *, counts: bool = True) -> None:
        super().__init__(message)
        self.delay = delay
        self.counts = counts


@dataclass(frozen=True, slots=True)
class Verdict:
    values: list[tuple[str, float | str]]  # (score id suffix, value)
    reasoning: str


class JudgeWorker:
    def __init__(self, *, jobs: JobStore, evaluators: EvaluatorApi, rules: RuleApi,
                 connections: ConnectionApi, query: QueryServiceStub,
                 ingestion: IngestionServiceStub, concurrency: int, max_attempts: int,
                 timeout: float, writer: WriterLoad, busy_jobs: int) -> None:  # fmt: skip
        self._jobs = jobs
        self._evaluators = evaluators
        self._rules = rules
        self._connections = connections
        self._targets = TargetReader(query)
        self._ingestion = ingestion
        self._results = Batcher(self._send_results, linger=LINGER_SECONDS,
                                size=RESULTS_PER_CALL, slots=asyncio.Semaphore(4))  # fmt: skip
        self._completions = Batcher(self._complete, linger=LINGER_SECONDS,
                                    size=COMPLETIONS_PER_STATEMENT,
                                    slots=asyncio.Semaphore(2))  # fmt: skip
        self._definitions = ShortCache(DEFINITIONS_TTL)
        self._concurrency = concurrency
        # One keep-alive pool per LLM connection, as large as its calls in flight.
        self._clients: dict[str, aiohttp.ClientSession] = {}
        self._max_attempts = max_attempts
        self._timeout = timeout
        # Jobs claimed and not yet finished, over all connections: more than the calls in flight,
        # since a job also waits for its target's lookup and for ingestion.
        self._max_claimed = concurrency * CLAIMS_PER_CALL
        # While the query writer is behind (services/evals/writer_load.py), jobs are claimed in
        # rounds of at most this many, a round at most every BUSY_ROUND_SECONDS.
        self._writer = writer
        self._busy_jobs = min(busy_jobs, self._max_claimed)
        self._next_round = 0.0
        # A job whose worker died is claimed again once this has passed since its claim: a
        # claimed job may wait for the calls of the jobs claimed before it on its connection.
        self._lease = CLAIMS_PER_CALL * timeout + 5
        self._per_connection: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(concurrency)
        )
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """New jobs may be due (the trigger just enqueued some with no delay)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            free = self._claimable()
            if free and self._writer.busy():
                self._next_round = time.monotonic() + BUSY_ROUND_SECONDS
            jobs = await self._claim(free) if free else []
            for job in jobs:
                task = asyncio.create_task(self._run_one(job))
                self._tasks.add(task)
                task.add_done_callback(self._finished)
            if len(jobs) < free or not free:  # nothing more is due, or too little room: wait
                until_round = self._next_round - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), until_round if 0 < until_round < 0.5 else 0.5
                    )
        # Jobs in flight finish within the drain; those that do not are claimed again after
        # their lease, and their scores keep their ids.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for client in self._clients.values():
            await client.close()

    def _claimable(self) -> int:
        """How many jobs to claim now: none until a CLAIM_SHARE-th of the jobs allowed in flight
        is free (unless none runs), so that one statement claims many. While the query writer is
        behind, a round's worth once its time has come: the jobs of a round read their targets,
        ingest their results and complete as one call each, so judging costs the query service
        a few queries a second rather than a few per job."""
        if self._writer.busy():
            free = self._busy_jobs - len(self._tasks)
            return free if free > 0 and time.monotonic() >= self._next_round else 0
        free = self._max_claimed - len(self._tasks)
        return free if free >= max(1, self._max_claimed // CLAIM_SHARE) or not self._tasks else 0

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._claimable():
            self._wake.set()

    async def _claim(self, free: int) -> list[Job]:
        try:
            return await self._jobs.claim(free, self._lease)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.warning("judge_claim_failed", error=str(exc))
            await asyncio.sleep(1)
            return []

    async def _run_one(self, job: Job) -> None:
        try:
            outcome = await self._judge(job)
            await self._completions.submit(None, outcome)
        except RetryLater as exc:
            await self._jobs.retry(job, exc.delay, str(exc), counts=exc.counts)
        except JobFailed as exc:
            await self._jobs.finish(job, exc.status, str(exc))
            if exc.pause:
                await self._evaluators.pause(job.project_id, job.evaluator_id, str(exc))
                log.warning("evaluator_paused", project_id=job.project_id,
                            evaluator_id=job.evaluator_id, error=str(exc))  # fmt: skip
        except Exception:
            log.exception("judge_job_failed", job_id=str(job.id))
            with contextlib.suppress(Exception):
                await self._jobs.retry(job, _backoff(job.attempts), "internal error, retrying")

    async def _judge(self, job: Job) -> Outcome:
        evaluator = await self._definitions.get(
            ("evaluator", job.project_id, job.evaluator_id),
            lambda: self._evaluators.judge_version(job.project_id, job.evaluator_id),
        )
        if evaluator is None:
            raise JobFailed("the evaluator was deleted", status="skipped")
        if not evaluator.active:
            raise RetryLater("the evaluator is paused", 30, counts=False)
        assigned = await self._definitions.get(
            ("assignment", job.project_id, job.rule_id, job.evaluator_id),
            lambda: self._rules.assignment(job.project_id, job.rule_id, job.evaluator_id),
        )
        if assigned is None:
            raise JobFailed("the rule was deleted or no longer assigns the evaluator",
                            status="skipped")  # fmt: skip
        target, filters, assignment = assigned
        with_trace = target == "trace" or any(f["column"] in TRACE_LEVEL for f in filters)
        trace, observation = await self._target(job, with_trace)
        if observation is not None:
            subject, row = observation, observation_row(observation, trace, merged=True)
        else:
            assert trace is not None
            subject, row = trace, trace_row(trace, merged=True)
        if matches(filters, row) is not True:
            raise JobFailed("the target's merged state does not match the rule's filter",
                            status="skipped")  # fmt: skip
        definition = evaluator.definition
        messages = render(definition, assignment.variable_mapping, subject)
        if job.attempts > self._max_attempts:
            raise JobFailed(f"gave up after {self._max_attempts} attempts", pause=True)
        completion = await self._call(job, definition, messages)
        try:
            verdict = parse_verdict(completion.content, definition.output)
        except ValueError as exc:
            raise JobFailed(f"the judge's reply is not a valid verdict: {exc}") from exc
        return await self._ingest(job, evaluator, subject, messages, completion, verdict)

    async def _target(
        self, job: Job, with_trace: bool
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The target's merged state: its trace, its observation (looked for in its trace), or
        both (`with_trace`: the rule filters on trace columns). One lookup where one suffices:
        the query service's lookups are the judge's costliest step after the LLM call."""
        project_id, observation_id = job.project_id, job.observation_id
        try:
            trace, observation = await asyncio.gather(
                self._targets.trace(project_id, job.trace_id)
                if with_trace or not observation_id else _none(),
                self._targets.observation(project_id, job.trace_id, observation_id)
                if observation_id else _none(),
            )  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            raise RetryLater(f"the query service failed: {exc.code().name}", 2) from exc
        missing = (trace is None and (with_trace or not observation_id)) or (
            observation is None and bool(observation_id)
        )
        if missing:
            waited = (datetime.now(UTC) - job.created_at).total_seconds()
            if waited < TARGET_WAIT_SECONDS:
                raise RetryLater("the target is not readable yet", 0.5, counts=False)
            raise JobFailed("the target was not found")
        return trace, observation

    async def _call(
        self, job: Job, definition: Definition, messages: list[dict[str, str]]
    ) -> Completion:
        connection = await self._definitions.get(
            ("connection", job.project_id, definition.provider),
            lambda: self._connections.connection(job.project_id, definition.provider),
        )
        if connection is None:
            raise JobFailed(f"the LLM connection {definition.provider!r} no longer exists",
                            pause=True)  # fmt: skip
        if definition.model not in connection.models:
            raise JobFailed(f"the model {definition.model!r} is no longer offered by the "
                            f"connection {definition.provider!r}", pause=True)  # fmt: skip
        async with self._per_connection[connection.id]:
            try:
                return await chat(self._client(connection), connection.endpoint, definition.model,
                                  messages, output_schema(definition.output),
                                  self._timeout)  # fmt: skip
            except LlmError as exc:
                if exc.retryable and job.attempts < self._max_attempts:
                    delay = (
                        exc.retry_after if exc.retry_after is not None else _backoff(job.attempts)
                    )
                    raise RetryLater(exc.message, min(delay, 600)) from exc
                raise JobFailed(exc.message, pause=True) from exc

    def _client(self, connection: Connection) -> aiohttp.ClientSession:
        client = self._clients.get(connection.id)
        if client is None:
            client = self._clients[connection.id] = session(self._concurrency)
        return client

    async def _ingest(
        self,
        job: Job,
        evaluator: JudgeVersion,
        subject: dict[str, Any],
        messages: list[dict[str, str]],
        completion: Completion,
        verdict: Verdict,
    ) -> Outcome:
        judge_trace_id = job.id.hex
        generation_id = str(uuid.uuid5(_NAMESPACE, f"{job.id}:generation"))
        score_ids = [str(uuid.uuid5(_NAMESPACE, f"{job.id}:score{suffix}"))
                     for suffix, _ in verdict.values]  # fmt: skip
        now = datetime.now(UTC).isoformat()
        links = {
            "jobId": str(job.id),
            "evaluationRuleId": job.rule_id,
            "evaluatorId": job.evaluator_id,
            "evaluatorVersion": evaluator.version,
        }
        usage = {"input": completion.input_tokens, "output": completion.output_tokens,
                 "total": completion.total_tokens}  # fmt: skip
        events: list[dict[str, Any]] = [
            _envelope(job, "trace", "trace-create", now, {
                "id": judge_trace_id, "name": f"Execute evaluator: {evaluator.name}",
                "timestamp": completion.started_at.isoformat(), "environment": JUDGE_ENVIRONMENT,
                "metadata": {**links, "targetTraceId": job.trace_id,
                             "targetObservationId": job.observation_id or None},
            }),
            _envelope(job, "generation", "generation-create", now, {
                "id": generation_id, "traceId": judge_trace_id, "name": evaluator.name,
                "startTime": completion.started_at.isoformat(),
                "endTime": completion.ended_at.isoformat(), "model": completion.model,
                "input": messages, "output": completion.content, "environment": JUDGE_ENVIRONMENT,
                "usageDetails": {k: v for k, v in usage.items() if v is not None},
                "metadata": links,
            }),
        ]  # fmt: skip
        data_type = evaluator.definition.output["dataType"]
        environment = subject.get("environment") or "default"
        for score_id, (_, value) in zip(score_ids, verdict.values, strict=True):
            events.append(_envelope(job, score_id, "score-create", now, {
                "id": score_id, "traceId": job.trace_id,
                "observationId": job.observation_id or None, "name": evaluator.name,
                "value": value, "dataType": data_type, "comment": verdict.reasoning,
                "source": "EVAL", "environment": environment,
                "metadata": {**links, "judgeTraceId": judge_trace_id,
                             "judgeObservationId": generation_id},
            }))  # fmt: skip
        refusal = await self._results.submit(job.project_id, events)
        if refusal is not None:
            raise JobFailed(f"the score was refused by ingestion: {refusal}")
        return Outcome(job, evaluator.version, score_ids, judge_trace_id)

    async def _send_results(
        self, project_id: str, jobs_events: list[list[dict[str, Any]]]
    ) -> list[str | None]:
        """One IngestBatch for the events of many judged jobs: each job's first refusal, or None
        once ingestion accepted all its events. RetryLater when ingestion could not be reached
        (nothing was acknowledged)."""
        body = orjson.dumps({"batch": [event for events in jobs_events for event in events]})
        try:
            reply = await self._ingestion.IngestBatch(
                ingestion_pb2.IngestBatchRequest(body=body),
                metadata=ProjectScope(project_id).metadata(), timeout=_RPC_TIMEOUT,
            )  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            raise RetryLater(f"the ingestion service failed: {exc.code().name}", 2) from exc
        refused = {error.id: error.message or error.error for error in reply.errors}
        return [
            next((refused[e["id"]] for e in events if e["id"] in refused), None)
            for events in jobs_events
        ]

    async def _complete(self, _: None, outcomes: list[Outcome]) -> list[None]:
        await self._jobs.complete(outcomes)
        return [None] * len(outcomes)


class ShortCache:
    """Values by key for `ttl` seconds (what a loader returned, None included)."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[tuple[str, ...], tuple[float, asyncio.Future[Any]]] = {}

    async def get(self, key: tuple[str, ...], load: Callable[[], Awaitable[T]]) -> T:
        """The value of `key`: loaded once for all who ask at the same time (a round of jobs
        asks together), and again once `ttl` has passed or after a failed load."""
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] >= self._ttl:
            if len(self._entries) > 10_000:
                self._entries.clear()
            entry = self._entries[key] = (now, asyncio.ensure_future(load()))
        try:
            return cast(T, await asyncio.shield(entry[1]))
        except Exception:
            if self._entries.get(key) is entry:
                del self._entries[key]
            raise


def render(
    definition: Definition, override: list[dict[str, Any]] | None, subject: dict[str, Any]
) -> list[dict[str, str]]:
    """The prompt with each `{{variable}}` replaced by the mapped value of `subject` (the judged
    observation or trace; strings as they are, other values as JSON). The output definition's
    instructions travel in the JSON schema."""
    mapping = {m["variable"]: m for m in definition.variable_mapping or ()}
    mapping.update({m["variable"]: m for m in override or ()})
    values = {name: _text(_source(subject, m["source"], m.get("jsonPath")))
              for name, m in mapping.items()}  # fmt: skip

    def fill(content: str) -> str:
        return VARIABLE.sub(lambda match: values.get(match.group(1), ""), content)

    return [{"role": m["role"], "content": fill(m["content"])} for m in definition.prompt]


def _source(subject: dict[str, Any], source: str, json_path: str | None) -> Any:
    metadata = subject.get("metadata") if isinstance(subject.get("metadata"), dict) else {}
    experiment = metadata.get("experiment") if isinstance(metadata.get("experiment"), dict) else {}
    value = {
        "input": subject.get("input"),
        "output": subject.get("output"),
        "metadata": metadata,
        "tool_calls": subject.get("toolCalls"),
        "expected_output": experiment.get("item.expected_output"),
        "experiment_item_metadata": experiment.get("item.metadata"),
    }[source]
    return at_path(value, json_path)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def output_schema(output: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of `{score, reasoning}` for an output definition."""
    kind = output["dataType"]
    score: dict[str, Any]
    if kind == "NUMERIC":
        score = {"type": "number"}
    elif kind == "BOOLEAN":
        score = {"type": "boolean"}
    elif output.get("shouldAllowMultipleMatches"):
        score = {"type": "array", "items": {"type": "string", "enum": output["categories"]}}
    else:
        score = {"type": "string", "enum": output["categories"]}
    if output.get("scoreValueInstructions"):
        score["description"] = output["scoreValueInstructions"]
    reasoning: dict[str, Any] = {"type": "string"}
    if output.get("scoreReasoningInstructions"):
        reasoning["description"] = output["scoreReasoningInstructions"]
    return {"type": "object", "properties": {"score": score, "reasoning": reasoning},
            "required": ["score", "reasoning"], "additionalProperties": False}  # fmt: skip


def parse_verdict(content: str, output: dict[str, Any]) -> Verdict:
    """The reply's `{score, reasoning}` checked against the output definition; ValueError says
    what is wrong."""
    try:
        reply = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {content[:200]!r}") from exc
    if not isinstance(reply, dict) or "score" not in reply:
        raise ValueError(f"no score in {content[:200]!r}")
    reasoning = reply.get("reasoning")
    reasoning = reasoning if isinstance(reasoning, str) else ""
    score, kind = reply["score"], output["dataType"]
    if kind == "NUMERIC":
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            raise ValueError(f"score {score!r} is not a number")
        low, high = output.get("minValue"), output.get("maxValue")
        if (low is not None and score < low) or (high is not None and score > high):
            raise ValueError(f"score {score} is outside [{low}, {high}]")
        return Verdict([("", float(score))], reasoning)
    if kind == "BOOLEAN":
        if not isinstance(score, bool):
            raise ValueError(f"score {score!r} is not a boolean")
        return Verdict([("", 1.0 if score else 0.0)], reasoning)
    chosen = score if isinstance(score, list) else [score]
    if not chosen or not all(c in output["categories"] for c in chosen):
        raise ValueError(f"score {score!r} is not among the categories {output['categories']}")
    if len(chosen) > 1 and not output.get("shouldAllowMultipleMatches"):
        raise ValueError("several categories where one was asked")
    if len(chosen) == 1:
        return Verdict([("", chosen[0])], reasoning)
    return Verdict([(f":{c}", c) for c in dict.fromkeys(chosen)], reasoning)


def _envelope(job: Job, part: str, kind: str, now: str, body: dict[str, Any]) -> dict[str, Any]:
    event_id = str(uuid.uuid5(_NAMESPACE, f"{job.id}:{part}:event"))
    return {"id": event_id, "type": kind, "timestamp": now, "body": body}


def _backoff(attempts: int) -> float:
    """1, 2, 4, ... seconds (at most 60), with jitter so retries of a burst spread out."""
    return min(60.0, 2.0 ** max(0, attempts - 1)) * random.uniform(0.8, 1.2)


async def _none() -> None:
    return None

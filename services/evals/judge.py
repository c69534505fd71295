"""The judge worker: claims due jobs (services/evals/jobs.py), judges each target's merged state
(read from the query service) with the evaluator's prompt and model, and ingests the score with
source EVAL through the ingestion service, together with the judge call as a trace and generation
of its own (model, usage; the query service prices it), which the score's metadata links.

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

import asyncpg
import grpc
import httpx
import orjson
import structlog

from libs.common.gen.obs.ingestion.v1 import ingestion_pb2
from libs.common.gen.obs.ingestion.v1.ingestion_pb2_grpc import IngestionServiceStub
from libs.common.gen.obs.query.v1 import query_pb2
from libs.common.gen.obs.query.v1.query_pb2_grpc import QueryServiceStub
from libs.common.scope import ProjectScope
from services.evals.connections import ConnectionApi
from services.evals.evaluators import Definition, EvaluatorApi, JudgeVersion
from services.evals.jobs import Job, JobStore
from services.evals.judge_fields import VARIABLE, at_path
from services.evals.llm import Completion, LlmError, chat
from services.evals.rule_filters import TRACE_LEVEL, matches, observation_row, trace_row
from services.evals.rules import RuleApi

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
                 ingestion: IngestionServiceStub, http: httpx.AsyncClient, concurrency: int,
                 max_attempts: int, timeout: float) -> None:  # fmt: skip
        self._jobs = jobs
        self._evaluators = evaluators
        self._rules = rules
        self._connections = connections
        self._query = query
        self._results = ResultBatcher(ingestion)
        self._definitions = ShortCache(DEFINITIONS_TTL)
        self._http = http
        self._max_attempts = max_attempts
        self._timeout = timeout
        # Jobs claimed and not yet finished, over all connections: more than the calls in flight,
        # since a job also waits for its target's lookup and for ingestion.
        self._max_claimed = concurrency * CLAIMS_PER_CALL
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
            free = self._max_claimed - len(self._tasks)
            jobs = await self._claim(free) if free > 0 else []
            for job in jobs:
                task = asyncio.create_task(self._run_one(job))
                self._tasks.add(task)
                task.add_done_callback(self._finished)
            if len(jobs) < free or free <= 0:  # nothing more is due, or no room: wait
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)
        # Jobs in flight finish within the drain; those that do not are claimed again after
        # their lease, and their scores keep their ids.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
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
            await self._jobs.complete(job, *outcome)
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

    async def _judge(self, job: Job) -> tuple[int, list[str], str]:
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
        scope = ProjectScope(job.project_id)
        with_trace = target == "trace" or any(f["column"] in TRACE_LEVEL for f in filters)
        trace, observation = await self._target(job, scope, with_trace)
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
        return await self._ingest(job, scope, evaluator, subject, messages, completion, verdict)

    async def _target(
        self, job: Job, scope: ProjectScope, with_trace: bool
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The target's merged state: its trace, its observation, or both (`with_trace`: the
        rule filters on trace columns). One lookup where one suffices: the query service's
        lookups are the judge's costliest step after the LLM call."""
        waited = (datetime.now(UTC) - job.created_at).total_seconds()
        metadata, observation_id = scope.metadata(), job.observation_id
        try:
            trace_reply, observation_reply = await asyncio.gather(
                self._query.GetTrace(query_pb2.GetTraceRequest(trace_id=job.trace_id),
                                     metadata=metadata, timeout=_RPC_TIMEOUT)
                if with_trace or not observation_id else _none(),
                self._query.GetObservation(
                    query_pb2.GetObservationRequest(observation_id=observation_id),
                    metadata=metadata, timeout=_RPC_TIMEOUT)
                if observation_id else _none(),
            )  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND and waited < TARGET_WAIT_SECONDS:
                raise RetryLater("the target is not readable yet", 0.5, counts=False) from exc
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise JobFailed("the target was not found") from exc
            raise RetryLater(f"the query service failed: {exc.code().name}", 2) from exc
        trace = None if trace_reply is None else orjson.loads(trace_reply.trace_json)
        observation = (
            None if observation_reply is None
            else orjson.loads(observation_reply.observation_json)
        )  # fmt: skip
        if observation is not None and observation.get("traceId") != job.trace_id:
            raise JobFailed("the observation belongs to another trace")
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
                return await chat(self._http, connection.endpoint, definition.model, messages,
                                  output_schema(definition.output), self._timeout)  # fmt: skip
            except LlmError as exc:
                if exc.retryable and job.attempts < self._max_attempts:
                    delay = (
                        exc.retry_after if exc.retry_after is not None else _backoff(job.attempts)
                    )
                    raise RetryLater(exc.message, min(delay, 600)) from exc
                raise JobFailed(exc.message, pause=True) from exc

    async def _ingest(
        self,
        job: Job,
        scope: ProjectScope,
        evaluator: JudgeVersion,
        subject: dict[str, Any],
        messages: list[dict[str, str]],
        completion: Completion,
        verdict: Verdict,
    ) -> tuple[int, list[str], str]:
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
        refusal = await self._results.send(scope, events)
        if refusal is not None:
            raise JobFailed(f"the score was refused by ingestion: {refusal}")
        return evaluator.version, score_ids, judge_trace_id


# A job's events and the future its result is set on.
_Waiting = tuple[list[dict[str, Any]], "asyncio.Future[str | None]"]


class ShortCache:
    """Values by key for `ttl` seconds (what a loader returned, None included)."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[tuple[str, ...], tuple[float, Any]] = {}

    async def get(self, key: tuple[str, ...], load: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl:
            return cast(T, entry[1])
        value = await load()
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (now, value)
        return value


class ResultBatcher:
    """The events of concurrent jobs (scores, judge traces and generations) go to ingestion
    together: one IngestBatch per project every LINGER seconds instead of one per job, which
    costs ingestion one call and one event-log round for many judged targets."""

    LINGER = 0.02

    def __init__(self, ingestion: IngestionServiceStub) -> None:
        self._ingestion = ingestion
        self._waiting: defaultdict[
            str, list[tuple[list[dict[str, Any]], asyncio.Future[str | None]]]
        ] = defaultdict(list)
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def send(self, scope: ProjectScope, events: list[dict[str, Any]]) -> str | None:
        """None once ingestion accepted every event; its first refusal otherwise. Raises
        RetryLater when ingestion could not be reached (nothing was acknowledged)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str | None] = loop.create_future()
        self._waiting[scope.project_id].append((events, done))
        if self._timer is None:
            self._timer = loop.call_later(self.LINGER, self._flush_all)
        return await done

    def _flush_all(self) -> None:
        self._timer = None
        waiting, self._waiting = self._waiting, defaultdict(list)
        for project_id, items in waiting.items():
            task = asyncio.create_task(self._flush(ProjectScope(project_id), items))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(self, scope: ProjectScope, items: list[_Waiting]) -> None:
        body = orjson.dumps({"batch": [event for events, _ in items for event in events]})
        try:
            reply = await self._ingestion.IngestBatch(
                ingestion_pb2.IngestBatchRequest(body=body), metadata=scope.metadata(),
                timeout=_RPC_TIMEOUT,
            )  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            for _, done in items:
                done.set_exception(
                    RetryLater(f"the ingestion service failed: {exc.code().name}", 2)
                )
            return
        refused = {error.id: error.message or error.error for error in reply.errors}
        for events, done in items:
            refusals = [refused[e["id"]] for e in events if e["id"] in refused]
            done.set_result(refusals[0] if refusals else None)


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

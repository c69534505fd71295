"""The bodies ingestion accepts, one declaration each (msgspec, decoded in C): the batch
envelope, trace, observation (every observation event type, legacy ones too), score and sdk-log
bodies. Each field's rule is written once, here, with the ranges its column holds
(libs.common.limits). Langfuse's semantics: unknown fields are ignored, null is the same as
absent, and a rule that fails names its field. Pure: no I/O."""

import functools
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from libs.common import limits
from libs.common.limits import Id, PromptVersion, Time
from services.ingestion.usage import normalize_usage

Level = Literal["DEBUG", "DEFAULT", "WARNING", "ERROR"]
ScoreType = Literal["NUMERIC", "CATEGORICAL", "BOOLEAN", "TEXT", "CORRECTION"]

_ENVIRONMENT = re.compile(r"[a-z0-9\-_]+")
_LANGFUSE_PREFIX = re.compile(r"^(langfuse[-_]?)+")


class Body(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Bodies are stored as decoded: camelCase keys, absent and null fields left out."""

    def encode(self) -> bytes:
        return msgspec.json.encode(self)


class Envelope(msgspec.Struct, kw_only=True):
    """One item of `{"batch": [...]}`; `metadata` (SDK debug information) is ignored."""

    id: Id
    type: str
    timestamp: Time
    body: dict[str, Any]

    def __post_init__(self) -> None:
        self.timestamp = _in_range(self.timestamp, "timestamp")


class TraceBody(Body, kw_only=True):
    id: Id | None = None  # generated when absent
    timestamp: Time | None = None
    name: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    user_id: str | None = None
    session_id: Id | None = None
    release: str | None = None
    version: str | None = None
    input: Any = None
    output: Any = None
    metadata: Any = None
    tags: list[str] | None = None
    public: bool | None = None
    environment: Any = None

    def __post_init__(self) -> None:
        if self.id is None:
            self.id = str(uuid.uuid4())
        if self.timestamp is not None:
            self.timestamp = _in_range(self.timestamp, "timestamp")
        self.metadata = _metadata(self.metadata)
        _check_depth("input", self.input)
        _check_depth("output", self.output)
        _check_depth("metadata", self.metadata)
        self.environment = normalize_environment(self.environment)


class ObservationBody(Body, kw_only=True):
    """Spans, generations, events and the generation-like types (agent, tool, ...)."""

    id: Id
    trace_id: Id | None = None
    parent_observation_id: Id | None = None
    name: str | None = None
    start_time: Time | None = None
    end_time: Time | None = None
    completion_start_time: Time | None = None
    input: Any = None
    output: Any = None
    metadata: Any = None
    level: Level | None = None
    status_message: str | None = None
    version: str | None = None
    model: str | None = None
    model_parameters: dict[str, Any] | None = None
    prompt_name: str | None = None
    prompt_version: PromptVersion | None = None
    usage: Any = None  # legacy shapes, normalized into usageDetails and costDetails
    usage_details: Any = None
    cost_details: Any = None
    environment: Any = None

    def __post_init__(self) -> None:
        if self.start_time is not None:
            self.start_time = _in_range(self.start_time, "startTime")
        if self.end_time is not None:
            self.end_time = _in_range(self.end_time, "endTime")
        if self.completion_start_time is not None:
            self.completion_start_time = _in_range(
                self.completion_start_time, "completionStartTime"
            )
        if (self.prompt_name is None) != (self.prompt_version is None):
            raise ValueError("promptName and promptVersion go together")
        self.metadata = _metadata(self.metadata)
        _check_depth("input", self.input)
        _check_depth("output", self.output)
        _check_depth("metadata", self.metadata)
        _check_depth("modelParameters", self.model_parameters)
        if (
            self.usage is not None
            or self.usage_details is not None
            or self.cost_details is not None
        ):
            self.usage_details, self.cost_details = normalize_usage(
                self.usage, self.usage_details, self.cost_details
            )
            self.usage = None
        self.environment = normalize_environment(self.environment)


class LegacyObservationBody(ObservationBody, kw_only=True):
    """`observation-create` / `-update` of very old SDKs: the body names its type."""

    type: Literal["GENERATION", "SPAN", "EVENT"]


class ScoreBody(Body, kw_only=True):
    id: str | None = None  # generated when absent or ""
    name: Annotated[str, msgspec.Meta(min_length=1)]
    trace_id: Id | None = None
    observation_id: Id | None = None
    session_id: Id | None = None
    dataset_run_id: Id | None = None
    value: float | str
    data_type: ScoreType | None = None
    comment: str | None = None
    config_id: str | None = None
    queue_id: str | None = None
    source: str | None = None
    metadata: Any = None
    environment: Any = None

    def __post_init__(self) -> None:
        if not self.id:
            self.id = str(uuid.uuid4())
        elif not limits.is_id(self.id):
            raise ValueError("id must have 1-800 characters and no control characters")
        check_score(self)
        self.metadata = _metadata(self.metadata)
        _check_depth("metadata", self.metadata)
        self.environment = normalize_environment(self.environment)


class ScoreItem(ScoreBody, kw_only=True):
    """An object of `POST /api/public/scores`: a score body with its own optional timestamp."""

    timestamp: Time | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.timestamp is not None:
            self.timestamp = _in_range(self.timestamp, "timestamp")


class SdkLogBody(Body, kw_only=True):
    log: Any = None


def check_score(score: ScoreBody) -> None:
    """Langfuse's rules for a score on its own: one subject, a value that suits its data type.
    (Rules against the project's score configs need the evals service: not checked here.)"""
    subjects = [s for s in (score.trace_id, score.session_id, score.dataset_run_id) if s]
    if len(subjects) != 1:
        raise ValueError("a score needs exactly one of traceId, sessionId, datasetRunId")
    if score.observation_id is not None and score.trace_id is None:
        raise ValueError("observationId needs traceId")
    kind, value = score.data_type, score.value
    # A reviewer's score (an annotation queue's) is given against one of the queue's configs.
    if score.source == "ANNOTATION" and score.config_id is None and kind != "CORRECTION":
        raise ValueError("an ANNOTATION score needs a configId")
    if kind is None:
        return
    if kind == "NUMERIC" and isinstance(value, str):
        raise ValueError("a NUMERIC score needs a number")
    if kind == "BOOLEAN" and value not in (0, 1):
        raise ValueError("a BOOLEAN score is 0 or 1")
    if kind in ("CATEGORICAL", "TEXT", "CORRECTION") and not isinstance(value, str):
        raise ValueError(f"a {kind} score needs a string")
    if kind == "TEXT" and not 1 <= len(str(value)) <= 500:
        raise ValueError("a TEXT score has 1-500 characters")


def normalize_environment(value: Any) -> str:
    """Langfuse's rule: lowercase, strip `langfuse` prefixes, 40 chars, else silently default."""
    if not isinstance(value, str) or not value:
        return "default"
    return _normalized_environment(value)


@functools.lru_cache(maxsize=1024)
def _normalized_environment(value: str) -> str:
    """A project sends the same few environments again and again: each is worked out once."""
    lowered = _LANGFUSE_PREFIX.sub("", value.lower())[:40]
    return lowered if _ENVIRONMENT.fullmatch(lowered) else "default"


def _in_range(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is not UTC:  # "Z" decodes as UTC already
        moment = moment.astimezone(UTC)
    if not limits.EARLIEST <= moment <= limits.LATEST:
        raise ValueError(f"{field} must be {limits.TIME_RANGE}")
    return moment


def _metadata(value: Any) -> Any:
    """Langfuse stores a non-object metadata value as `{"metadata": value}`."""
    return value if value is None or isinstance(value, dict) else {"metadata": value}


def _check_depth(field: str, value: Any) -> None:
    if (type(value) is dict or type(value) is list) and not limits.within_depth(value):
        raise ValueError(f"{field} is nested deeper than {limits.MAX_DEPTH} levels")

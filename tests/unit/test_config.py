from dataclasses import dataclass

import pytest

from libs.common.config import ConfigError, env, load


@dataclass(frozen=True, slots=True)
class Sample:
    database_url: str
    port: int = 50051
    ratio: float = 0.5
    verbose: bool = False
    hosts: tuple[str, ...] = ()
    bootstrap: str = env("KAFKA_BOOTSTRAP_SERVERS", "")
    optional: int | None = None


def test_reads_prefixed_names_and_casts_types() -> None:
    cfg = load(
        Sample,
        "SVC_",
        {
            "SVC_DATABASE_URL": "postgresql://x",
            "SVC_PORT": "7",
            "SVC_RATIO": "0.25",
            "SVC_VERBOSE": "true",
            "SVC_HOSTS": "a, b,,c",
            "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "SVC_OPTIONAL": "",
        },
    )
    assert cfg == Sample("postgresql://x", 7, 0.25, True, ("a", "b", "c"), "k:9092", None)


def test_defaults_apply_when_variables_are_absent() -> None:
    cfg = load(Sample, "SVC_", {"SVC_DATABASE_URL": "d"})
    assert cfg.port == 50051 and cfg.bootstrap == "" and cfg.verbose is False


def test_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        load(Sample, "SVC_", {"SVC_PORT": "seven", "SVC_VERBOSE": "maybe"})
    message = str(raised.value)
    assert "SVC_DATABASE_URL is required" in message
    assert "SVC_PORT" in message and "SVC_VERBOSE" in message

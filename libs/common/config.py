"""Typed configuration from environment variables.

Each service declares a frozen dataclass; `load` fills it from the environment. A field is read from
`<PREFIX><FIELD_NAME>` upper-cased, or from the exact name given with `env("NAME")` (shared
infrastructure variables such as KAFKA_BOOTSTRAP_SERVERS have no service prefix). Every missing
required variable is reported at once, so a misconfigured deployment fails with one clear message.
"""

import dataclasses
import os
import types
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(Exception):
    """Raised when variables are missing or cannot be parsed; lists every problem found."""


def env(name: str, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field read from the exact variable `name` instead of the prefixed field name."""
    return dataclasses.field(default=default, metadata={"env": name})


# Shorter secrets are refused at start: the token is all that stands between a pod of the
# cluster and every project's data.
MIN_INTERNAL_TOKEN_LENGTH = 16


# Not slotted, so a service config can combine it with the other settings.
@dataclasses.dataclass(frozen=True, kw_only=True)
class InternalAuthSettings:
    """The secret every service presents to, and requires from, its gRPC peers (libs/common/rpc.py).
    One value shared by all services of a deployment."""

    internal_auth_token: str = env("INTERNAL_AUTH_TOKEN")

    def __post_init__(self) -> None:
        if len(self.internal_auth_token) < MIN_INTERNAL_TOKEN_LENGTH:
            raise ConfigError(
                f"invalid configuration: INTERNAL_AUTH_TOKEN must be at least "
                f"{MIN_INTERNAL_TOKEN_LENGTH} characters"
            )


# Not slotted, so a service config can combine it with KafkaClientSettings.
@dataclasses.dataclass(frozen=True, kw_only=True)
class GrpcServiceSettings(InternalAuthSettings):
    """What every gRPC backend's config has, read with that service's prefix (the internal token
    without one)."""

    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50051
    metrics_port: int = 0
    # Grace for in-flight calls after SIGTERM; health turns NOT_SERVING first.
    drain_seconds: float = 10.0


def load(cls: type[T], prefix: str, environ: Mapping[str, str] | None = None) -> T:
    source = os.environ if environ is None else environ
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = field.metadata.get("env") or f"{prefix}{field.name}".upper()
        has_default = (
            field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
        )
        if name not in source:
            if not has_default:
                problems.append(f"{name} is required")
            continue
        try:
            values[field.name] = _cast(hints[field.name], source[name])
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return cls(**values)


def _cast(kind: Any, raw: str) -> Any:
    if get_origin(kind) in (Union, types.UnionType):
        inner = [arg for arg in get_args(kind) if arg is not type(None)]
        return None if raw == "" else _cast(inner[0], raw)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"expected a boolean, got {raw!r}")
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if get_origin(kind) is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw

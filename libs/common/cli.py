"""The one entry point shape of every service: `python -m services.<name> {run,migrate}`."""

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from libs.common import config, logging

C = TypeVar("C")

Command = Callable[[C], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = config.env("LOG_LEVEL", "INFO")
    format: str = config.env("LOG_FORMAT", "json")


def main(service: str, load_config: Callable[[], C], run: Command[C], migrate: Command[C]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    parser.add_argument("command", choices=["run", "migrate"])
    args = parser.parse_args()
    try:
        log_settings = config.load(LogSettings, "")
        cfg = load_config()
    except config.ConfigError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        sys.exit(2)
    logging.configure(service, log_settings.level, json=log_settings.format == "json")
    command = run if args.command == "run" else migrate
    asyncio.run(command(cfg))

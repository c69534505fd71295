"""The one entry point shape of every service: `python -m services.<name> {run,migrate}`, and
`dlq list|replay` for the services that consume topics (libs/common/dlq.py), `retention run` for
the one that announces retention cutoffs (libs/common/retention.py), `export run [--project P]`
for the one that runs blob-storage exports (services/query/blob_export.py)."""

import argparse
import asyncio
import gc
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from libs.common import config, dlq, logging
from libs.common.kafka import KafkaClientSettings, Topic

C = TypeVar("C")

Command = Callable[[C], Coroutine[Any, Any, None]]
# CPython collects its youngest generation every 700 net allocations by default; a service
# making tens of thousands of short-lived objects per batch, beside a large long-lived heap (the
# query writer's recent states), spent ~30 % of its Python CPU in the collector (query writer:
# ~320 -> ~230 µs of Python CPU per observation at SDK-like load). Cycles are still collected.
_GC_THRESHOLDS = (50_000, 20, 20)
# Given the project (None: all), returns the exit status.
ExportCommand = Callable[[C, str | None], Coroutine[Any, Any, int]]


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = config.env("LOG_LEVEL", "INFO")
    format: str = config.env("LOG_FORMAT", "json")


def main(
    service: str,
    load_config: Callable[[], C],
    run: Command[C],
    migrate: Command[C],
    consumes: Sequence[Topic] = (),
    retention: Command[C] | None = None,
    export: ExportCommand[C] | None = None,
) -> None:
    """`consumes`: the topics this service consumes, whose DLQs `dlq` lists and replays;
    `retention`: what `retention run` does (a retention pass now); `export`: what `export run`
    does (the blob-storage exports now)."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="serve")
    commands.add_parser("migrate", help="prepare the stores this service owns")
    if retention is not None:
        passes = commands.add_parser("retention", help="start a retention pass now")
        passes.add_argument("action", choices=["run"])
    if export is not None:
        exports = commands.add_parser("export", help="run blob-storage exports now")
        exports.add_argument("action", choices=["run"])
        exports.add_argument("--project", help="only this project's (default: every enabled one)")
    if consumes:
        dead = commands.add_parser("dlq", help="list or replay this service's dead letters")
        dead.add_argument("action", choices=["list", "replay"])
        dead.add_argument(
            "--topic",
            choices=[topic.value for topic in consumes],
            default=consumes[0].value if len(consumes) == 1 else None,
            help="the consumed topic whose DLQ to replay (needed when there are several)",
        )
        chosen = dead.add_mutually_exclusive_group()
        chosen.add_argument(
            "--offset", type=int, action="append", default=[], help="DLQ offset (repeatable)"
        )
        chosen.add_argument("--all", action="store_true", help="replay every dead letter")
    args = parser.parse_args()
    if args.command == "dlq":
        if args.action == "replay" and not (args.topic and (args.offset or args.all)):
            parser.error("dlq replay needs --offset N (repeatable) or --all, and --topic T")
        topics = [Topic(args.topic)] if args.action == "replay" else list(consumes)
        sys.exit(asyncio.run(_dlq(service, topics, args.action, args.offset)))
    try:
        log_settings = config.load(LogSettings, "")
        cfg = load_config()
    except config.ConfigError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        sys.exit(2)
    logging.configure(service, log_settings.level, json=log_settings.format == "json")
    if args.command == "export" and export is not None:
        sys.exit(asyncio.run(export(cfg, args.project)))
    command = {"run": run, "migrate": migrate, "retention": retention}[args.command]
    assert command is not None
    if args.command == "run":
        gc.freeze()  # what the imports made lives as long as the process: never scan it again
        gc.set_threshold(*_GC_THRESHOLDS)
    asyncio.run(command(cfg))


async def _dlq(service: str, topics: list[Topic], action: str, offsets: list[int]) -> int:
    """Needs only the Kafka variables. Prints one line per dead letter of this service listed or
    replayed: DLQ offset, original topic/partition@offset, when, consumer group, key, error."""
    try:
        cluster = config.load(KafkaClientSettings, "").kafka
    except config.ConfigError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        return 2
    for topic in topics:
        # Other services may consume the same topic: only the dead letters of this one's groups.
        letters = [
            letter
            for letter in await dlq.read_dead_letters(cluster, topic)
            if letter.group.startswith(cluster.group(f"{service}."))
        ]
        if action == "replay":
            if offsets:
                letters = [letter for letter in letters if letter.offset in offsets]
                if missing := set(offsets) - {letter.offset for letter in letters}:
                    print(f"{service}: no dead letter at offset {sorted(missing)}", file=sys.stderr)
                    return 1
            await dlq.replay(cluster, topic, letters)
        for letter in letters:
            print(("replayed\t" if action == "replay" else "") + letter.line())
    return 0

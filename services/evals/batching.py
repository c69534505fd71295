"""Batcher: what concurrent judge jobs each ask of a peer (their target's lookup, their results'
ingestion, their completion in PostgreSQL) sent together, one call for many jobs: a job's cost in
round trips, statements and peer CPU is then a fraction of a call's."""

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class Batcher(Generic[K, I, R]):
    """Items submitted under the same key go out in one `send(key, items)`, which returns one
    result per item: `linger` seconds after the first item waits, or at once when `size` wait.
    At most as many sends as `slots` allows run at once (a bounded load on the peer; batchers
    calling the same peer may share their slots); a send slower than
    `slow` seconds keeps its slot as long again, so a struggling peer gets fewer calls. Each
    submitter gets its item's result, or the exception of its send."""

    def __init__(
        self,
        send: Callable[[K, list[I]], Awaitable[list[R]]],
        *,
        linger: float,
        size: int,
        slots: asyncio.Semaphore,
        slow: float = float("inf"),
    ) -> None:
        self._send = send
        self._linger = linger
        self._size = size
        self._slow = slow
        self._slots = slots
        self._waiting: defaultdict[K, list[tuple[I, asyncio.Future[R]]]] = defaultdict(list)
        self._timer: asyncio.TimerHandle | None = None
        self._sends: set[asyncio.Task[None]] = set()

    async def submit(self, key: K, item: I) -> R:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        waiting = self._waiting[key]
        waiting.append((item, done))
        if len(waiting) >= self._size:
            self._start(key, self._waiting.pop(key))
        elif self._timer is None:
            self._timer = loop.call_later(self._linger, self._flush)
        return await done

    def _flush(self) -> None:
        self._timer = None
        waiting, self._waiting = self._waiting, defaultdict(list)
        for key, items in waiting.items():
            self._start(key, items)

    def _start(self, key: K, items: list[tuple[I, "asyncio.Future[R]"]]) -> None:
        task = asyncio.create_task(self._run(key, items))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _run(self, key: K, items: list[tuple[I, "asyncio.Future[R]"]]) -> None:
        async with self._slots:
            started = time.monotonic()
            try:
                results = await self._send(key, [item for item, _ in items])
            except Exception as exc:
                for _, done in items:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for (_, done), result in zip(items, results, strict=True):
                    if not done.done():
                        done.set_result(result)
            took = time.monotonic() - started
            if took > self._slow:
                await asyncio.sleep(took)

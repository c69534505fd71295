"""The judge's Batcher: concurrent submissions under one key go out as one send, each submitter
gets its own item's result (or the send's exception), a full batch leaves at once, and no more
sends run at once than the slots allow."""

import asyncio

import pytest

from services.evals.batching import Batcher


class Peer:
    """A send that records its batches; `gate` holds every send until set."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.running = 0
        self.most_running = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, key: str, items: list[int]) -> list[int]:
        self.batches.append((key, items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await self.gate.wait()
        self.running -= 1
        if -1 in items:
            raise ValueError("the peer refused the batch")
        return [item * 10 for item in items]


def batcher(peer: Peer, *, size: int = 100, slots: int = 2) -> Batcher[str, int, int]:
    return Batcher(peer.send, linger=0.01, size=size, slots=asyncio.Semaphore(slots))


async def test_concurrent_items_of_a_key_go_out_together_each_with_its_result() -> None:
    peer = Peer()
    batches = batcher(peer)
    results = await asyncio.gather(
        batches.submit("p1", 1), batches.submit("p1", 2), batches.submit("p2", 3)
    )
    assert results == [10, 20, 30]
    assert sorted(peer.batches) == [("p1", [1, 2]), ("p2", [3])]


async def test_a_full_batch_leaves_without_waiting_for_the_others() -> None:
    peer = Peer()
    batches = batcher(peer, size=2)
    assert await asyncio.gather(*(batches.submit("p", n) for n in range(5))) == [
        0, 10, 20, 30, 40,
    ]  # fmt: skip
    assert [items for _, items in peer.batches] == [[0, 1], [2, 3], [4]]


async def test_a_failed_send_fails_each_of_its_submitters_and_no_other() -> None:
    peer = Peer()
    batches = batcher(peer)
    refused = asyncio.gather(batches.submit("p1", 1), batches.submit("p1", -1))
    accepted = batches.submit("p2", 2)
    with pytest.raises(ValueError, match="refused"):
        await refused
    assert await accepted == 20


async def test_no_more_sends_run_at_once_than_the_slots_allow() -> None:
    peer = Peer()
    peer.gate.clear()
    batches = batcher(peer, size=1, slots=2)
    waiting = [asyncio.create_task(batches.submit("p", n)) for n in range(6)]
    while len(peer.batches) < 2:
        await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)
    assert peer.running == 2 and len(peer.batches) == 2
    peer.gate.set()
    assert await asyncio.gather(*waiting) == [0, 10, 20, 30, 40, 50]
    assert peer.most_running == 2

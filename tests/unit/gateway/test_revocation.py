"""Cached key resolutions and revocation: a success is trusted only under the revocation
generation it was resolved under, so a revocation on any replica (a new generation in Redis) is
seen by every replica's next request; without a readable generation nothing cached is trusted."""

import asyncio
import base64

import pytest

from services.gateway.auth import Authenticator, CoalescedRead
from services.gateway.errors import ApiError
from services.gateway.keys import hash_secret
from services.gateway.store import ApiKey, KeyScope
from tests.support.fakes import InMemoryProjectStore

SALT = "unit-salt"
HEADER = "Basic " + base64.b64encode(b"pk-1:sk-1").decode()


class Generations:
    """A GenerationCache's revocation side as Redis would answer it (None: Redis away)."""

    def __init__(self) -> None:
        self.token: str | None = "g1"

    async def generation(self, scope: str) -> str | None:
        return self.token

    async def invalidate(self, scope: str, attempts: int = 3) -> None:
        self.token = f"{self.token}+"


def authenticator(generations: Generations) -> tuple[Authenticator, InMemoryProjectStore]:
    store = InMemoryProjectStore()
    store.keys_by_hash[hash_secret("sk-1", SALT)] = ApiKey("pk-1", KeyScope.PROJECT, "o1", "p1")
    auth = Authenticator(store, SALT, cache_seconds=30, revocations=generations)  # type: ignore[arg-type]
    return auth, store


async def test_a_success_is_reused_while_the_generation_stands() -> None:
    auth, store = authenticator(Generations())
    for _ in range(3):
        await auth.authenticate(HEADER)
    assert store.lookups == 1


async def test_a_revocation_elsewhere_makes_every_cached_success_resolve_again() -> None:
    generations = Generations()
    auth, store = authenticator(generations)
    await auth.authenticate(HEADER)
    generations.token = "g2"  # another replica revoked a key
    store.keys_by_hash.clear()
    with pytest.raises(ApiError) as refused:
        await auth.authenticate(HEADER)
    assert refused.value.status == 401


async def test_revoking_here_renews_the_generation_and_drops_local_successes() -> None:
    generations = Generations()
    auth, store = authenticator(generations)
    await auth.authenticate(HEADER)
    await auth.revoked()
    assert generations.token == "g1+" and len(auth.successes) == 0
    await auth.authenticate(HEADER)
    assert store.lookups == 2


async def test_without_redis_every_request_resolves_in_the_database() -> None:
    generations = Generations()
    generations.token = None
    auth, store = authenticator(generations)
    for _ in range(3):
        await auth.authenticate(HEADER)
    assert store.lookups == 3


async def test_concurrent_callers_share_a_read_and_later_callers_get_a_later_one() -> None:
    sent: list[int] = []
    release = asyncio.Event()

    async def read() -> int:
        sent.append(len(sent) + 1)
        number = len(sent)
        await release.wait()
        return number

    reads = CoalescedRead(read)
    first = [asyncio.create_task(reads.read()) for _ in range(5)]
    await asyncio.sleep(0)  # the five asked; their one read is sent now
    while not sent:
        await asyncio.sleep(0)
    later = asyncio.create_task(reads.read())  # asked after that read was sent
    release.set()
    assert await asyncio.gather(*first) == [1] * 5
    assert await later == 2 and sent == [1, 2]


async def test_a_failed_shared_read_fails_every_caller_that_shared_it() -> None:
    async def read() -> int:
        raise ConnectionError("redis away")

    reads = CoalescedRead(read)
    results = await asyncio.gather(reads.read(), reads.read(), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)

"""The trigger skips messages by their Kafka key before decompressing them: ingestion keys a
message by its project (a message holds many traces); messages of earlier releases, keyed
`project:trace`, are still read."""

from services.evals.rules import ActiveRule
from services.evals.trigger import RuleCache


class Rules:
    async def active_rules(self) -> list[ActiveRule]:
        return [ActiveRule("proj", "r1", "trace", [], 1.0, 0, ("e1",))]


async def test_only_the_messages_of_projects_with_rules_are_read() -> None:
    cache = RuleCache(Rules())  # type: ignore[arg-type]
    await cache.reload()
    assert cache.may_match(b"proj") and cache.may_match(b"proj:trace-1")
    assert cache.may_match(None)  # unkeyed: read to be safe
    assert not cache.may_match(b"other") and not cache.may_match(b"pro")
    assert not cache.may_match(b"proj2") and not cache.may_match(b"proj2:trace-1")

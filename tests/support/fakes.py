"""In-memory stand-ins for unit tests of pure logic (integration tests use the real stores)."""

from services.gateway.store import ApiKey, Project


class InMemoryProjectStore:
    def __init__(self) -> None:
        self.keys_by_hash: dict[str, ApiKey] = {}
        self.projects: dict[str, Project] = {}
        self.lookups = 0
        self.healthy = True

    async def ping(self) -> None:
        if not self.healthy:
            raise ConnectionError("database down")

    async def key_by_secret_hash(self, secret_hash: str) -> ApiKey | None:
        self.lookups += 1
        return self.keys_by_hash.get(secret_hash)

    async def key_by_public_key(self, public_key: str) -> ApiKey | None:
        self.lookups += 1
        return next((k for k in self.keys_by_hash.values() if k.public_key == public_key), None)

    async def project(self, project_id: str) -> Project | None:
        return self.projects.get(project_id)

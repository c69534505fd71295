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


class RecordingPromptsStub:
    """Stands in for the prompts gRPC stub in gateway unit tests: records requests, returns one
    fixed prompt."""

    def __init__(self) -> None:
        from libs.common.gen.obs.prompts.v1 import prompts_pb2

        self.pb = prompts_pb2
        self.requests: list[object] = []
        self.prompt = prompts_pb2.Prompt(
            id="id-1",
            name="folder/my prompt",
            version=2,
            type=prompts_pb2.PROMPT_TYPE_CHAT,
            config_json=b'{"model":"m"}',
            labels=["production", "latest"],
        )
        self.prompt.messages.add(role="system", content="Hi {{name}}")
        self.prompt.messages.add(type="placeholder", name="history")
        self.prompt.created_at.FromSeconds(0)
        self.prompt.updated_at.FromSeconds(0)

    async def GetPrompt(self, request: object, **kwargs: object) -> object:  # noqa: N802
        self.requests.append(request)
        return self.pb.GetPromptResponse(prompt=self.prompt)

    async def CreatePrompt(self, request: object, **kwargs: object) -> object:  # noqa: N802
        self.requests.append(request)
        return self.pb.CreatePromptResponse(prompt=self.prompt)

    async def UpdatePromptLabels(self, request: object, **kwargs: object) -> object:  # noqa: N802
        self.requests.append(request)
        return self.pb.UpdatePromptLabelsResponse(prompt=self.prompt)

    async def DeletePrompt(self, request: object, **kwargs: object) -> object:  # noqa: N802
        self.requests.append(request)
        return self.pb.DeletePromptResponse()


class NoCache:
    """A GenerationCache whose Redis is away: every read goes to the source."""

    async def generation(self, scope: str) -> str | None:
        return None

    async def invalidate(self, scope: str, attempts: int = 3) -> None:
        return None

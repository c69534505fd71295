"""What route handlers may use, held on `app.state.gateway` by the composition root."""

from dataclasses import dataclass, field

from libs.common.gencache import GenerationCache
from services.gateway.auth import Authenticator
from services.gateway.clients import Backends
from services.gateway.project_deletions import DeletionAnnouncer
from services.gateway.ratelimit import RateLimiter
from services.gateway.store import ProjectStore


@dataclass
class GatewayState:
    store: ProjectStore
    authenticator: Authenticator
    backends: Backends
    backend_timeout: float
    version: str
    # Prompt responses by project; see routes/prompts.py for how it stays fresh.
    prompt_cache: GenerationCache
    rate_limiter: RateLimiter
    # Publishes project deletions (the management API); None where no broker is wired (unit tests).
    deletions: DeletionAnnouncer | None = field(default=None)
    # Set on SIGTERM: /ready then fails so traffic drains away before the server stops.
    draining: bool = field(default=False)

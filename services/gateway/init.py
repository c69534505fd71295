"""Headless initialization: the organization, project and key pair named by Langfuse's
LANGFUSE_INIT_* variables, created or updated at every start (safe to repeat)."""

import structlog

from services.gateway.config import InitSettings
from services.gateway.keys import display_secret, hash_secret
from services.gateway.store import KeyScope, ProjectStore

log = structlog.get_logger()


async def apply_init(store: ProjectStore, init: InitSettings, salt: str) -> None:
    if not init.org_id:
        return
    await store.upsert_organization(init.org_id, init.org_name or init.org_id)
    if not init.project_id:
        return
    await store.upsert_project(init.project_id, init.org_id, init.project_name or init.project_id)
    if init.public_key and init.secret_key:
        await store.put_key(
            public_key=init.public_key,
            secret_hash=hash_secret(init.secret_key, salt),
            display_secret_key=display_secret(init.secret_key),
            scope=KeyScope.PROJECT,
            org_id=init.org_id,
            project_id=init.project_id,
            note="headless init",
        )
    log.info("headless_init_applied", org_id=init.org_id, project_id=init.project_id)

"""The admin script as the e2e tests call it: projects and keys made in the stack's organization."""

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from tests.e2e.conftest import Stack
from tests.support.devenv import ROOT


def admin(stack: Stack, *args: str) -> dict[str, Any]:
    """`python -m services.gateway.admin ARGS` against the stack's databases; its JSON answer."""
    result = subprocess.run(
        [sys.executable, "-m", "services.gateway.admin", *args],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def new_project(stack: Stack, prefix: str = "other") -> tuple[str, str]:
    """A second project in the stack's organization (id `PREFIX-xxxxxx`); its key pair."""
    return create_project(stack, f"{prefix}-{uuid.uuid4().hex[:6]}")


def create_project(stack: Stack, project_id: str) -> tuple[str, str]:
    """The project PROJECT_ID in the stack's organization; its key pair."""
    admin(stack, "create-project", "--org-id", "e2e-org", "--project-id", project_id, "--name", "B")
    keys = admin(stack, "create-key", "--org-id", "e2e-org", "--project-id", project_id)
    return keys["publicKey"], keys["secretKey"]

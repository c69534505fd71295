"""The JS SDK scripts under tests/e2e/js, run with node against the stack's gateway."""

import json
import os
import subprocess
from typing import Any

from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.devenv import ROOT

NODE_MODULES = ROOT / "scripts" / "node" / "node_modules"
JS_CLIENT = NODE_MODULES / "@langfuse" / "client" / "dist" / "index.mjs"


def run_node_script(stack: Stack, script: str, **env: str) -> dict[str, Any]:
    """Run tests/e2e/js/SCRIPT with the stack's keys and URL and the extra ENV; the JSON object
    it prints last. Scripts import either the node_modules folder or the client module, so both
    are given."""
    result = subprocess.run(
        ["node", str(ROOT / "tests" / "e2e" / "js" / script)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={
            **os.environ,
            "LANGFUSE_NODE_MODULES": NODE_MODULES.as_uri(),
            "LANGFUSE_CLIENT_MODULE": JS_CLIENT.as_uri(),
            "LANGFUSE_PUBLIC_KEY": PUBLIC_KEY,
            "LANGFUSE_SECRET_KEY": SECRET_KEY,
            "LANGFUSE_BASE_URL": stack.gateway_url,
            **env,
        },
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

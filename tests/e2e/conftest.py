"""The whole stack for end-to-end tests: the five services started as real processes on free
ports, with their own databases, chDB directory and bucket, on the engines of scripts/engines.sh."""

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from langfuse._client.resource_manager import LangfuseResourceManager

from tests.support.devenv import ROOT, dev_env

SERVICES = ("ingestion", "query", "prompts", "evals", "gateway")
PUBLIC_KEY = "pk-lf-e2e-public"
SECRET_KEY = "sk-lf-e2e-secret"
PROJECT_ID = "e2e-project"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Stack:
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_HTTP_PORT']}"

    def start(self, service: str, **overrides: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{service}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", f"services.{service}", "run"],
                cwd=ROOT,
                env={**os.environ, **self.env, **overrides},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def migrate(self, service: str) -> None:
        subprocess.run(
            [sys.executable, "-m", f"services.{service}", "migrate"],
            cwd=ROOT,
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
        )


def stack_env(tmp: Path) -> dict[str, str]:
    env = dev_env()
    run_id = uuid.uuid4().hex[:8]
    pg = f"postgresql://obs:obs@127.0.0.1:{env['POSTGRES_PORT']}"
    ports = {name: free_port() for name in SERVICES}
    env.update(
        {
            "LOG_LEVEL": "WARNING",
            # Topics and groups of its own, so a running dev stack never takes this stack's events.
            "KAFKA_NAMESPACE": f"e2e{run_id}.",
            # A secret of its own, so no other stack's services are accepted; dev.env puts
            # every listener on loopback.
            "INTERNAL_AUTH_TOKEN": secrets.token_urlsafe(24),
            # LLM connection secrets: a key of its own (the judge tests grep the logs for them).
            "EVALS_ENCRYPTION_KEY": secrets.token_hex(32),
            # Blob-storage exports: credentials sealed with a key of its own; rows count as
            # written one second after the writer stamped them (not five minutes).
            "QUERY_ENCRYPTION_KEY": secrets.token_hex(32),
            "QUERY_EXPORT_LAG_SECONDS": "1",
            # Judge jobs: a lost lease (kill -9) and a dead endpoint settle in seconds.
            "EVALS_JUDGE_TIMEOUT_SECONDS": "5",
            "EVALS_JUDGE_MAX_ATTEMPTS": "3",
            "GATEWAY_HTTP_PORT": str(ports["gateway"]),
            "GATEWAY_DRAIN_SECONDS": "1",
            "GATEWAY_DATABASE_URL": f"{pg}/e2e_{run_id}_gateway",
            "QUERY_DATABASE_URL": f"{pg}/e2e_{run_id}_query",
            "PROMPTS_DATABASE_URL": f"{pg}/e2e_{run_id}_prompts",
            "EVALS_DATABASE_URL": f"{pg}/e2e_{run_id}_evals",
            "INGESTION_DATABASE_URL": f"{pg}/e2e_{run_id}_ingestion",
            "QUERY_CLICKHOUSE_URL": f"chdb://{tmp / 'chdb'}",
            "INGESTION_S3_BUCKET": f"e2e-{run_id}",
            "LANGFUSE_INIT_ORG_ID": "e2e-org",
            "LANGFUSE_INIT_ORG_NAME": "E2E Org",
            "LANGFUSE_INIT_PROJECT_ID": PROJECT_ID,
            "LANGFUSE_INIT_PROJECT_NAME": "E2E Project",
            "LANGFUSE_INIT_PROJECT_PUBLIC_KEY": PUBLIC_KEY,
            "LANGFUSE_INIT_PROJECT_SECRET_KEY": SECRET_KEY,
        }
    )
    for name in ("ingestion", "query", "prompts", "evals"):
        env[f"{name.upper()}_GRPC_PORT"] = str(ports[name])
        env[f"{name.upper()}_ADDR"] = f"127.0.0.1:{ports[name]}"
    for name in SERVICES:
        env[f"{name.upper()}_METRICS_PORT"] = "0"
    return env


async def wait_healthy(stack: Stack, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    probe = [sys.executable, "-m", "scripts.health"]
    while True:
        result = subprocess.run(
            probe, cwd=ROOT, env={**os.environ, **stack.env}, capture_output=True, text=True
        )
        if result.returncode == 0:
            return
        for name, process in stack.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {(stack.logs / f'{name}.log').read_text()}")
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"stack not healthy: {result.stdout}")
        await asyncio.sleep(0.2)


@pytest.fixture(autouse=True)
def one_sdk_client_per_test() -> Iterator[None]:
    """Each test starts with no Python SDK client: with clients of two projects alive in one
    process, the SDK's @observe and get_client() skip tracing (to avoid cross-project leaks)."""
    yield
    clients = list(LangfuseResourceManager._instances.values())
    LangfuseResourceManager.reset()  # flushes and stops each client's threads
    for client in clients:  # reset leaves their HTTP connections open
        client.httpx_client.close()


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
async def stack(stack_dir: Path) -> AsyncIterator[Stack]:
    async with running_stack(stack_env(stack_dir), stack_dir) as stack:
        yield stack


@contextlib.asynccontextmanager
async def running_stack(env: dict[str, str], directory: Path) -> AsyncIterator[Stack]:
    stack = Stack(env, directory)
    for service in SERVICES:
        stack.migrate(service)
    for service in SERVICES:
        stack.processes[service] = stack.start(service)
    try:
        await wait_healthy(stack)
        yield stack
    finally:
        for process in stack.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in stack.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        await drop_databases(stack.env)


async def drop_databases(env: dict[str, str]) -> None:
    server, _, _ = env["GATEWAY_DATABASE_URL"].rpartition("/")
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        for service in ("GATEWAY", "QUERY", "PROMPTS", "EVALS", "INGESTION"):
            name = env[f"{service}_DATABASE_URL"].rpartition("/")[2]
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()

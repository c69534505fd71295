"""The official Python SDKs, unmodified, authenticate against the gateway."""

import subprocess

import pytest
from langfuse import Langfuse

from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.devenv import ROOT

SDK3_PYTHON = ROOT / ".dev" / "venvs" / "langfuse3" / "bin" / "python"

SDK3_AUTH_CHECK = """
import sys
from langfuse import Langfuse
client = Langfuse(public_key=sys.argv[1], secret_key=sys.argv[2], host=sys.argv[3])
try:
    print(client.auth_check())
except Exception as exc:
    print(type(exc).__name__, getattr(exc, "status_code", ""))
"""


def sdk5(stack: Stack, public_key: str, secret_key: str) -> Langfuse:
    # SDK 5 keeps one client per public key in the process, so each case uses its own key.
    return Langfuse(
        public_key=public_key, secret_key=secret_key, host=stack.gateway_url, tracing_enabled=False
    )


def test_sdk5_auth_check_passes_with_the_init_keys(stack: Stack) -> None:
    assert sdk5(stack, PUBLIC_KEY, SECRET_KEY).auth_check() is True


def test_sdk5_auth_check_fails_with_a_wrong_secret(stack: Stack) -> None:
    with pytest.raises(Exception) as raised:
        sdk5(stack, "pk-lf-wrong-secret-case", "sk-lf-wrong").auth_check()
    assert getattr(raised.value, "status_code", None) == 401


def run_sdk3(stack: Stack, secret_key: str) -> str:
    result = subprocess.run(
        [str(SDK3_PYTHON), "-c", SDK3_AUTH_CHECK, PUBLIC_KEY, secret_key, stack.gateway_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def test_sdk3_reports_its_version() -> None:
    result = subprocess.run(
        [str(SDK3_PYTHON), "-c", "import importlib.metadata as m; print(m.version('langfuse'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("3.")


def test_sdk3_auth_check_passes_with_the_init_keys(stack: Stack) -> None:
    assert run_sdk3(stack, SECRET_KEY) == "True"


def test_sdk3_auth_check_fails_with_a_wrong_secret(stack: Stack) -> None:
    assert run_sdk3(stack, "sk-lf-wrong") == "UnauthorizedError 401"

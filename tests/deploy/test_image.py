"""deploy/Dockerfile cannot be built here (no Docker), so this checks what the image runs: the
command exists for every service, from the packages the Dockerfile copies."""

import json
import re
import subprocess
import sys

import pytest

from tests.deploy.conftest import ROOT, SERVICES

DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()


def test_the_default_command_runs_the_service_named_by_SERVICE() -> None:
    (cmd,) = re.findall(r"^CMD (.+)$", DOCKERFILE, flags=re.MULTILINE)
    assert json.loads(cmd) == ["sh", "-c", "exec python -m services.$SERVICE run"]
    assert re.search(r"^USER 10001:10001$", DOCKERFILE, flags=re.MULTILINE)


def test_the_image_holds_what_the_command_imports() -> None:
    # `python -m services.<name>` from /app finds services/ and the libs/ they import.
    assert "COPY libs/ /app/libs/\n" in DOCKERFILE
    assert "COPY services/ /app/services/\n" in DOCKERFILE
    assert "COPY --from=build /app /app\n" in DOCKERFILE
    assert "\nWORKDIR /app\n" in DOCKERFILE
    # ...and nothing else of the repository.
    imported = set()
    for path in (ROOT / "services").rglob("*.py"):
        imported |= set(re.findall(r"^(?:from|import) (\w+)", path.read_text(), re.MULTILINE))
    assert not imported & {"tests", "scripts", "deploy"}


@pytest.mark.parametrize("service", SERVICES)
def test_python_m_services_name_is_a_command(service: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"services.{service}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # The chart runs `run` and `migrate`; consumers add `dlq` (dead letters).
    usage = re.search(rf"usage: python -m services\.{service} \[-h\] {{([a-z,]+)}}", result.stdout)
    assert usage is not None, result.stdout
    assert {"run", "migrate"} <= set(usage.group(1).split(","))

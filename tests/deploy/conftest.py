"""The chart tests' fixtures: the pinned helm, built on first use, and rendered manifests.

helm is built by scripts/deploy/helm.sh (go install, cached in .dev/bin). A failed build fails the
tests that need it: they never skip.
"""

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "obs"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
SERVICES = ("gateway", "ingestion", "query", "prompts", "evals")
# Chart.yaml's kubeVersion floor. A go-installed helm lacks the release build's default cluster
# version (it assumes 1.20), so every command names one.
KUBE_VERSION = "1.29.0"
RELEASE = "obs"


@pytest.fixture(scope="session")
def helm() -> Path:
    result = subprocess.run(
        [ROOT / "scripts" / "deploy" / "helm.sh"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"could not build helm (scripts/deploy/helm.sh):\n{result.stderr}")
    return Path(result.stdout.strip())


def run_helm(helm: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *args, "--kube-version", KUBE_VERSION],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def template(helm: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_helm(helm, "template", RELEASE, CHART, "--namespace", "obs", *args)


def render(helm: Path, *args: str | Path) -> list[dict]:
    """Every manifest `helm template` renders (hooks included), parsed."""
    result = template(helm, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def default_manifests(helm: Path) -> list[dict]:
    return render(helm)


@pytest.fixture(scope="session")
def production_manifests(helm: Path) -> list[dict]:
    return render(helm, "-f", PRODUCTION_VALUES)


def by_kind(manifests: list[dict], kind: str) -> dict[str, dict]:
    """Objects of one kind, by name."""
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def container(deployment_or_job: dict) -> dict:
    (only,) = deployment_or_job["spec"]["template"]["spec"]["containers"]
    return only


def env_of(deployment_or_job: dict) -> dict[str, dict]:
    """The container's env entries by name (each a {value} or {valueFrom} dict)."""
    return {e["name"]: e for e in container(deployment_or_job)["env"]}

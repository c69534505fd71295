"""helm lint, and every rendered manifest against the Kubernetes API schemas, offline.

The schemas ship inside the kubernetes-validate package (one directory per Kubernetes release), so
nothing is downloaded at test time. Strict mode rejects unknown fields, which catches misspelled or
misplaced keys that the API server would silently drop.
"""

from pathlib import Path

import kubernetes_validate
import pytest

from tests.deploy.conftest import CHART, KUBE_VERSION, PRODUCTION_VALUES, run_helm

# The first build of helm (go install) can take minutes; it happens in the first test's setup.
pytestmark = pytest.mark.timeout(1200)

# The oldest Kubernetes the chart supports and the newest the package knows.
KUBE_VERSIONS = (KUBE_VERSION, kubernetes_validate.latest_version())
# Custom resources have no schema in the package; their shape is asserted in test_rendered.py.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}


@pytest.mark.parametrize("values", [(), ("-f", PRODUCTION_VALUES)], ids=["default", "production"])
def test_helm_lint_strict(helm: Path, values: tuple) -> None:
    result = run_helm(helm, "lint", "--strict", CHART, *values)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", ["default", "production"])
def test_manifests_match_kubernetes_schemas(
    request: pytest.FixtureRequest, values: str, kube_version: str
) -> None:
    manifests = request.getfixturevalue(f"{values}_manifests")
    problems = []
    for manifest in manifests:
        if (manifest["apiVersion"], manifest["kind"]) in CUSTOM_KINDS:
            continue
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            problems.append(f"{name}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{name}: {exc.message}")
    assert not problems, "\n".join(problems)
    assert len(manifests) >= 25

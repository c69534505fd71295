"""The chart on a real Kubernetes control plane: what a user's `helm install` meets.

scripts/k8s/cluster.sh runs kube-apiserver, etcd, kube-controller-manager and kube-scheduler
(v1.37.2, built from source once per machine) with a kwok fake node standing in for the kubelet:
pods are scheduled, go Running and Ready, and Job and test pods succeed, but no container runs.
So this proves everything up to the container runtime: the API server's validation and admission
(Pod Security "restricted"), hook order, `--wait`, upgrade's three-way merge, `helm test`,
rollback, uninstall, and the chart's own install-time checks of the values.

The install is the chart README's: its section 3 Secrets (dummy values) and section 4
`helm install` settings are read from deploy/helm/obs/README.md, so the documented path is the
tested one. The steps run in file order, each a fixture that the next builds on.
"""

import json
import re
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import CHART, PRODUCTION_VALUES, ROOT, SERVICES, env_of

# The first build of the control plane, once per machine, is in the first test's setup: about
# 15 CPU-minutes, so 10-15 minutes on two quiet cores and far longer on busy ones.
pytestmark = pytest.mark.timeout(3000)

# KEDA's CRDs come from its Go module (config/crd/bases); no KEDA operator runs.
KEDA_MODULE = "github.com/kedacore/keda/v2@v2.21.0"
RELEASE = "obs"
NAMESPACE = "obs"
# Pod Security "restricted": pods breaking it are refused, and helm prints the warning.
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}
README = (CHART / "README.md").read_text()
# A real change: an image tag, a replica bound, one service fewer.
UPGRADE = [
    "--set", "image.tag=0.1.1",
    "--set", "services.query.autoscaling.maxReplicas=4",
    "--set", "services.evals.enabled=false",
]  # fmt: skip


def readme_commands(text: str) -> list[list[str]]:
    """Every shell command of the README's code blocks, continuation lines joined, as words."""
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip()]


def readme_secrets() -> dict[str, list[str]]:
    """Section 3: the Secrets a user creates before installing, each with its keys."""
    secrets = {}
    for words in readme_commands(README):
        if words[:1] == ["kubectl"] and "secret" in words and "generic" in words:
            name = words[words.index("generic") + 1]
            literals = [w.removeprefix("--from-literal=") for w in words if w.startswith("--from")]
            secrets[name] = [literal.split("=", 1)[0] for literal in literals]
    return secrets


def readme_install_settings() -> list[str]:
    """Section 4: the --set arguments of the README's `helm install`."""
    (install,) = [w for w in readme_commands(README) if w[:3] == ["helm", "install", RELEASE]]
    return [arg for i, arg in enumerate(install) if i > 0 and install[i - 1] == "--set"]


INSTALL = [arg for setting in readme_install_settings() for arg in ("--set", setting)]


@dataclass(frozen=True)
class Cluster:
    """A running control plane, and the helm and kubectl that talk to it."""

    workdir: Path
    kubectl_bin: Path
    helm_bin: Path

    def run(self, *args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(a) for a in args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.workdir), "KUBECONFIG": self.kubeconfig},
        )

    @property
    def kubeconfig(self) -> str:
        return str(self.workdir / "kubeconfig")

    def kubectl(self, *args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess:
        return self.run(self.kubectl_bin, *args, stdin=stdin)

    def helm(self, *args: str | Path) -> subprocess.CompletedProcess:
        return self.run(self.helm_bin, *args)

    def get(self, *args: str) -> dict:
        """`kubectl get ... -o json`, parsed; fails the test on an error."""
        result = self.kubectl("get", *args, "-o", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def server_version(self) -> str:
        result = self.kubectl("version", "-o", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["serverVersion"]["gitVersion"]

    def items(self, kinds: str, namespace: str = NAMESPACE) -> list[dict]:
        return self.get(kinds, "-n", namespace)["items"]

    def names(self, kind: str, namespace: str = NAMESPACE) -> set[str]:
        return {item["metadata"]["name"] for item in self.items(kind, namespace)}

    def audit(self) -> list[dict]:
        """Creates and deletes the API server carried out, in order (scripts/k8s/cluster.sh);
        not the dry runs, nor the refused."""
        lines = (self.workdir / "audit.log").read_text().splitlines()
        events = [json.loads(line) for line in lines]
        return [
            e
            for e in events
            if e["responseStatus"]["code"] < 300 and "dryRun=" not in e["requestURI"]
        ]


def eventually(check: Callable[[], object], what: str, timeout: float = 120) -> None:
    """Controllers act asynchronously: retry the check until it passes or `timeout` elapses."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}") from None
            time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    build = subprocess.run(
        [ROOT / "scripts" / "k8s" / "build.sh"],
        capture_output=True,
        text=True,
        timeout=2700,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"could not build the control plane (scripts/k8s/build.sh):\n{build.stderr}")
    workdir = tmp_path_factory.mktemp("k8s")
    log = (workdir / "cluster.log").open("w")
    process = subprocess.Popen(
        [ROOT / "scripts" / "k8s" / "cluster.sh", workdir],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            pytest.fail(
                f"the control plane did not start:\n{(workdir / 'cluster.log').read_text()}"
            )
        yield Cluster(workdir, Path(build.stdout.strip()) / "kubectl", helm)
    finally:
        process.terminate()
        process.wait(timeout=120)
        assert process.stdout is not None
        process.stdout.close()
        log.close()


def create_namespace(cluster: Cluster, name: str, secrets: dict[str, list[str]]) -> None:
    """A `restricted` namespace holding the Secrets the values name ({name: keys}), as a user
    prepares it."""
    metadata = {"name": name, "labels": RESTRICTED}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": name},
            "stringData": {key: f"{secret}-{key}-0123456789abcdef" for key in keys},
        }
        for secret, keys in secrets.items()
    ]
    created = cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([namespace, *objects]))
    assert created.returncode == 0, created.stderr


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    create_namespace(cluster, NAMESPACE, readme_secrets())
    return NAMESPACE


def helm_step(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return cluster.helm(*args, "--namespace", NAMESPACE, "--wait", "--timeout", "3m")


@pytest.fixture(scope="module")
def installed(cluster: Cluster, namespace: str) -> subprocess.CompletedProcess:
    return helm_step(cluster, "install", RELEASE, CHART, *INSTALL)


@pytest.fixture(scope="module")
def upgraded(
    cluster: Cluster, installed: subprocess.CompletedProcess
) -> subprocess.CompletedProcess:
    # A change made outside helm, which the three-way merge of `helm upgrade` must keep.
    cluster.kubectl("annotate", "-n", NAMESPACE, "deployment/obs-gateway", "example.com/owner=ops")
    return helm_step(cluster, "upgrade", RELEASE, CHART, "--reuse-values", *UPGRADE)


@pytest.fixture(scope="module")
def tested(cluster: Cluster, upgraded: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    return cluster.helm("test", RELEASE, "--namespace", NAMESPACE, "--timeout", "2m")


@pytest.fixture(scope="module")
def rolled_back(
    cluster: Cluster, tested: subprocess.CompletedProcess
) -> subprocess.CompletedProcess:
    return helm_step(cluster, "rollback", RELEASE, "1")


@pytest.fixture(scope="module")
def uninstalled(
    cluster: Cluster, rolled_back: subprocess.CompletedProcess
) -> subprocess.CompletedProcess:
    return helm_step(cluster, "uninstall", RELEASE)


def deployments(cluster: Cluster) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in cluster.items("deployments")}


def available(deployment: dict) -> bool:
    conditions = deployment["status"].get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def images(cluster: Cluster) -> set[str]:
    return {
        container["image"]
        for deployment in deployments(cluster).values()
        for container in deployment["spec"]["template"]["spec"]["containers"]
    }


def test_the_api_server_accepts_every_rendered_object(cluster: Cluster, namespace: str) -> None:
    version = cluster.server_version()
    assert version == "v1.37.2"
    # helm's own --dry-run=server validates nothing on the server; kubectl's does, strictly.
    rendered = cluster.helm(
        "template", RELEASE, CHART, "--namespace", namespace, "--kube-version", version, *INSTALL
    )
    assert rendered.returncode == 0, rendered.stderr

    applied = cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-",
        stdin=rendered.stdout,
    )  # fmt: skip

    assert applied.returncode == 0, applied.stderr
    assert "Warning" not in applied.stderr, applied.stderr
    # One "... created (server dry run)" line per rendered object.
    objects = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert len(applied.stdout.splitlines()) == len(objects)


def test_install_runs_the_migrations_first_then_every_service_becomes_available(
    cluster: Cluster, installed: subprocess.CompletedProcess
) -> None:
    assert installed.returncode == 0, installed.stderr
    # No Pod Security warning: every pod template meets "restricted".
    assert "PodSecurity" not in installed.stderr, installed.stderr

    assert set(deployments(cluster)) == {f"obs-{name}" for name in SERVICES}
    assert all(available(d) for d in deployments(cluster).values())
    audit = [e for e in cluster.audit() if e["objectRef"].get("namespace") == NAMESPACE]
    first_deployment = next(
        i for i, e in enumerate(audit) if e["objectRef"]["resource"] == "deployments"
    )
    before = [
        (e["verb"], e["objectRef"]["name"])
        for e in audit[:first_deployment]
        if e["objectRef"]["resource"] == "jobs"
    ]
    # Helm deletes a hook Job once it succeeded (hook-succeeded): each migration was created and
    # had finished before the first Deployment was created.
    for name in SERVICES:
        assert ("create", f"obs-{name}-migrate") in before
        assert ("delete", f"obs-{name}-migrate") in before


def test_install_creates_every_object_as_rendered(
    cluster: Cluster, installed: subprocess.CompletedProcess
) -> None:
    manifest = cluster.helm("get", "manifest", RELEASE, "--namespace", NAMESPACE)
    rendered = [doc for doc in yaml.safe_load_all(manifest.stdout) if doc]
    expected = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered}

    kinds = "deployments,services,horizontalpodautoscalers,poddisruptionbudgets,networkpolicies"
    live = {(i["kind"], i["metadata"]["name"]) for i in cluster.items(f"{kinds},ingresses")}

    assert live == expected
    assert Counter(kind for kind, _ in expected) == {
        "Deployment": 5,
        "Service": 5,
        "HorizontalPodAutoscaler": 5,
        "PodDisruptionBudget": 5,
        "NetworkPolicy": 6,
        "Ingress": 1,
    }
    # The chart renders no ServiceAccount: pods run as the namespace's default, without a token,
    # unless services.<name>.serviceAccountName names one (checked at install, see below).
    assert {p["spec"]["serviceAccountName"] for p in cluster.items("pods")} == {"default"}


def test_each_service_routes_to_its_ready_pods(
    cluster: Cluster, installed: subprocess.CompletedProcess
) -> None:
    def every_service_has_ready_endpoints() -> None:
        for name in SERVICES:
            selector = f"kubernetes.io/service-name=obs-{name}"
            slices = cluster.get("endpointslices", "-n", NAMESPACE, "-l", selector)["items"]
            ready = [
                e for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready")
            ]
            assert ready, name

    eventually(every_service_has_ready_endpoints, "every Service has ready endpoints")


def test_upgrade_applies_a_new_tag_bound_and_service_set_as_a_three_way_merge(
    cluster: Cluster, upgraded: subprocess.CompletedProcess
) -> None:
    assert upgraded.returncode == 0, upgraded.stderr

    assert images(cluster) == {"registry.example.com/obs/obs:0.1.1"}
    assert cluster.get("hpa/obs-query", "-n", NAMESPACE)["spec"]["maxReplicas"] == 4
    assert set(deployments(cluster)) == {f"obs-{name}" for name in SERVICES if name != "evals"}
    for kind in ("service", "hpa", "pdb", "networkpolicy"):
        assert "obs-evals" not in cluster.names(kind), kind
    # The change made by hand survives: helm patched the live object instead of replacing it.
    gateway = cluster.get("deployment/obs-gateway", "-n", NAMESPACE)
    assert gateway["metadata"]["annotations"]["example.com/owner"] == "ops"
    # The migrations ran again (pre-upgrade), for the four services left.
    creates = [
        e["objectRef"]["name"]
        for e in cluster.audit()
        if e["verb"] == "create" and e["objectRef"]["resource"] == "jobs"
    ]
    assert creates.count("obs-gateway-migrate") == 2
    assert creates.count("obs-evals-migrate") == 1


def test_helm_test_checks_the_gateway_health(
    cluster: Cluster, tested: subprocess.CompletedProcess
) -> None:
    assert tested.returncode == 0, tested.stderr
    assert "TEST SUITE:     obs-gateway-test-health" in tested.stdout
    assert "Phase:          Succeeded" in tested.stdout

    # hook-succeeded: a passing test pod is deleted, a failing one kept for its logs.
    def test_pod_deleted() -> None:
        assert "obs-gateway-test-health" not in cluster.names("pods")

    eventually(test_pod_deleted, "the passing test pod is deleted")


def test_rollback_restores_the_first_revision(
    cluster: Cluster, rolled_back: subprocess.CompletedProcess
) -> None:
    assert rolled_back.returncode == 0, rolled_back.stderr

    assert images(cluster) == {"registry.example.com/obs/obs:0.1.0"}
    assert set(deployments(cluster)) == {f"obs-{name}" for name in SERVICES}
    assert all(available(d) for d in deployments(cluster).values())
    assert cluster.get("hpa/obs-query", "-n", NAMESPACE)["spec"]["maxReplicas"] == 10
    history = json.loads(
        cluster.helm("history", RELEASE, "--namespace", NAMESPACE, "-o", "json").stdout
    )
    assert [(h["revision"], h["status"]) for h in history] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "deployed"),
    ]


def test_uninstall_leaves_only_what_the_user_created(
    cluster: Cluster, uninstalled: subprocess.CompletedProcess
) -> None:
    assert uninstalled.returncode == 0, uninstalled.stderr
    listable = cluster.kubectl("api-resources", "--namespaced", "--verbs=list", "-o", "name")
    # Events record what happened; they are no release object.
    kinds = [k for k in listable.stdout.split() if k not in ("events", "events.events.k8s.io")]
    # The namespace's own: its default ServiceAccount and the cluster's CA bundle.
    kept = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
    kept |= {("Secret", name) for name in readme_secrets()}

    def nothing_of_the_release_is_left() -> None:
        left = {(i["kind"], i["metadata"]["name"]) for i in cluster.items(",".join(kinds))}
        assert left <= kept, sorted(left - kept)

    # Pods and ReplicaSets go after their Deployments, by garbage collection.
    eventually(nothing_of_the_release_is_left, "the release's objects are gone")
    assert cluster.helm("list", "--all", "--namespace", NAMESPACE, "-q").stdout == ""


def test_a_generated_internal_token_is_kept_across_upgrades(cluster: Cluster) -> None:
    secrets = readme_secrets()
    del secrets["obs-internal-auth"]
    create_namespace(cluster, "obs-token", secrets)
    generate = [*INSTALL, "--set", "internalAuth.existingSecret="]

    def token() -> str:
        return cluster.get("secret/obs-internal-auth", "-n", "obs-token")["data"]["token"]

    installed = cluster.helm("install", RELEASE, CHART, "-n", "obs-token", *generate)
    assert installed.returncode == 0, installed.stderr
    first = token()
    upgraded = cluster.helm("upgrade", RELEASE, CHART, "-n", "obs-token", *generate)
    assert upgraded.returncode == 0, upgraded.stderr

    assert token() == first
    # A hook, not a release object: it outlives `helm uninstall` (README, section 3).
    assert cluster.helm("uninstall", RELEASE, "-n", "obs-token").returncode == 0
    assert token() == first


# Mistakes a user makes in values, each refused by `helm install` itself, with the value named.
MISTAKES = {
    "negative replica count": (
        ["--set", "services.query.replicas=-1"],
        "at '/services/query/replicas': minimum: got -1, want 0",
    ),
    "a store Secret that does not exist": (
        ["--set", "services.prompts.secretEnv.PROMPTS_REDIS_URL.existingSecret=obs-redis-prompts"],
        'services.prompts.secretEnv.PROMPTS_REDIS_URL: no Secret "obs-redis-prompts" in namespace',
    ),
    "a key the Secret does not hold": (
        ["--set", "services.gateway.secretEnv.GATEWAY_DATABASE_URL.key=url"],
        'services.gateway.secretEnv.GATEWAY_DATABASE_URL: Secret "obs-postgres" has no key "url"',
    ),
    "an internal token Secret that does not exist": (
        ["--set", "internalAuth.existingSecret=obs-internal-token"],
        'internalAuth.existingSecret: no Secret "obs-internal-token" in namespace',
    ),
    "KEDA enabled without its CRDs": (
        ["--set", "services.query.autoscaling.keda.enabled=true"],
        "services.query.autoscaling.keda.enabled: the cluster serves no keda.sh/v1alpha1 "
        "ScaledObject",
    ),
    "a ServiceAccount that does not exist": (
        ["--set", "services.ingestion.serviceAccountName=obs-ingestion-s3"],
        'services.ingestion.serviceAccountName: no ServiceAccount "obs-ingestion-s3" in namespace',
    ),
}


@pytest.fixture(scope="module")
def mistakes_namespace(cluster: Cluster) -> str:
    create_namespace(cluster, "obs-mistakes", readme_secrets())
    return "obs-mistakes"


@pytest.mark.parametrize("mistake", MISTAKES, ids=list(MISTAKES))
def test_a_mistake_in_the_values_fails_the_install_naming_the_value(
    cluster: Cluster, mistakes_namespace: str, mistake: str
) -> None:
    settings, message = MISTAKES[mistake]

    result = cluster.helm(
        "install", RELEASE, CHART, "--namespace", mistakes_namespace, "--wait", "--timeout", "1m",
        *INSTALL, *settings,
    )  # fmt: skip

    assert result.returncode != 0
    assert message in result.stderr
    # Refused before anything was created: no release, no hook Job, no Deployment.
    assert cluster.helm("list", "--all", "--namespace", mistakes_namespace, "-q").stdout == ""
    assert cluster.items("jobs,deployments", mistakes_namespace) == []


@pytest.fixture
def keda_crd(cluster: Cluster) -> Iterator[None]:
    """KEDA's ScaledObject CRD, for one test: the others see a cluster without KEDA."""
    download = subprocess.run(
        ["go", "mod", "download", "-json", KEDA_MODULE],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert download.returncode == 0, download.stderr
    crd = Path(json.loads(download.stdout)["Dir"]) / "config/crd/bases/keda.sh_scaledobjects.yaml"
    # Server-side: the CRD is too large for client-side apply's last-applied annotation.
    applied = cluster.kubectl("apply", "--server-side", "-f", crd)
    assert applied.returncode == 0, applied.stderr
    established = cluster.kubectl(
        "wait", "--for=condition=Established", "crd/scaledobjects.keda.sh", "--timeout=60s"
    )
    assert established.returncode == 0, established.stderr
    yield
    cluster.kubectl("delete", "-f", crd)


def test_production_values_install_with_keda_scaling_the_consumers(
    cluster: Cluster, keda_crd: None, production_manifests: list[dict]
) -> None:
    namespace = "obs-production"
    workloads = [m for m in production_manifests if m["kind"] in ("Deployment", "Job")]
    secrets: dict[str, list[str]] = {}
    for workload in workloads:
        for entry in env_of(workload).values():
            if "valueFrom" in entry:
                ref = entry["valueFrom"]["secretKeyRef"]
                secrets.setdefault(ref["name"], []).append(ref["key"])
    create_namespace(cluster, namespace, secrets)
    accounts = {w["spec"]["template"]["spec"].get("serviceAccountName") for w in workloads}
    for account in accounts - {None}:
        created = cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
        assert created.returncode == 0, created.stderr

    installed = cluster.helm(
        "install", RELEASE, CHART, "-n", namespace, "-f", PRODUCTION_VALUES, "--wait",
        "--timeout", "3m",
    )  # fmt: skip

    assert installed.returncode == 0, installed.stderr
    assert "PodSecurity" not in installed.stderr, installed.stderr
    # KEDA's schema accepted the ScaledObjects; they replace the consumers' HPAs.
    assert cluster.names("scaledobjects.keda.sh", namespace) == {"obs-query", "obs-evals"}
    hpas = cluster.names("hpa", namespace)
    assert hpas == {"obs-gateway", "obs-ingestion", "obs-prompts"}
    # Ingestion's pods run as the ServiceAccount that carries its S3 role.
    ingestion = cluster.get("pods", "-n", namespace, "-l", "app.kubernetes.io/component=ingestion")
    assert {p["spec"]["serviceAccountName"] for p in ingestion["items"]} == {"obs-ingestion-s3"}
    uninstalled = cluster.helm("uninstall", RELEASE, "-n", namespace, "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr

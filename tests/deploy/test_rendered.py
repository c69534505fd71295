"""The structure of what the chart renders: one template, five services, wired to each other and to
their Secrets, hardened, draining gracefully, migrated by hooks, scaled within Kafka's limits."""

import base64
from pathlib import Path

import pytest
import yaml

from libs.common import config
from services.evals.config import EvalsConfig
from services.gateway.config import GatewayConfig, InitSettings
from services.ingestion.config import IngestionConfig
from services.prompts.config import PromptsConfig
from services.query.config import QueryConfig
from tests.deploy.conftest import (
    CHART,
    SERVICES,
    by_kind,
    container,
    env_of,
    render,
    template,
)

pytestmark = pytest.mark.timeout(1200)

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
BACKEND_PORTS = {"ingestion": 50051, "query": 50052, "prompts": 50053, "evals": 50054}
CONFIGS = {
    "gateway": (GatewayConfig, "GATEWAY_"),
    "ingestion": (IngestionConfig, "INGESTION_"),
    "query": (QueryConfig, "QUERY_"),
    "prompts": (PromptsConfig, "PROMPTS_"),
    "evals": (EvalsConfig, "EVALS_"),
}
NAMES = [f"obs-{name}" for name in SERVICES]


def test_one_template_renders_every_workload(helm: Path) -> None:
    templates = sorted(p.name for p in (CHART / "templates").iterdir())
    assert templates == [
        "NOTES.txt",
        "_helpers.tpl",
        "_service.tpl",
        "ingress.yaml",
        "internal-auth-secret.yaml",
        "migrations-job.yaml",
        "networkpolicy.yaml",
        "services.yaml",
        "tests",
    ]
    out = template(helm, "--show-only", "templates/services.yaml").stdout
    kinds = [doc["kind"] for doc in yaml.safe_load_all(out) if doc]
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert kinds.count(kind) == 5, kind


@pytest.mark.parametrize("values", ["default", "production"])
def test_five_services_each_with_deployment_service_pdb_and_migration(
    request: pytest.FixtureRequest, values: str
) -> None:
    manifests = request.getfixturevalue(f"{values}_manifests")
    assert sorted(by_kind(manifests, "Deployment")) == sorted(NAMES)
    assert sorted(by_kind(manifests, "Service")) == sorted(NAMES)
    assert sorted(by_kind(manifests, "PodDisruptionBudget")) == sorted(NAMES)
    assert sorted(by_kind(manifests, "Job")) == sorted(f"{n}-migrate" for n in NAMES)
    # Credentials come from Secrets that exist before the install (see test_hook_jobs); the
    # one exception is the internal token, generated unless production names its Secret.
    secrets = {"default": ["obs-internal-auth"], "production": []}[values]
    assert sorted(by_kind(manifests, "Secret")) == secrets
    assert by_kind(manifests, "ConfigMap") == {}


def test_default_autoscaling_is_cpu_hpa_capped_for_kafka_consumers(
    default_manifests: list[dict],
) -> None:
    hpas = by_kind(default_manifests, "HorizontalPodAutoscaler")
    assert sorted(hpas) == sorted(NAMES)
    partitions = VALUES["kafka"]["topics"]["ingestionEvents"]["partitions"]
    default_max = VALUES["defaults"]["autoscaling"]["maxReplicas"]
    assert partitions < default_max, "the defaults should show the cap at work"
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"
        consumer = name in ("obs-query", "obs-evals")
        assert hpa["spec"]["maxReplicas"] == (partitions if consumer else default_max)
    # With an HPA, the Deployment leaves the replica count to it.
    for deployment in by_kind(default_manifests, "Deployment").values():
        assert "replicas" not in deployment["spec"]


def test_keda_replaces_the_hpa_of_consumers_in_production(
    production_manifests: list[dict],
) -> None:
    hpas = by_kind(production_manifests, "HorizontalPodAutoscaler")
    scaled = by_kind(production_manifests, "ScaledObject")
    assert sorted(hpas) == ["obs-gateway", "obs-ingestion", "obs-prompts"]
    assert sorted(scaled) == ["obs-evals", "obs-query"]
    groups = {"obs-query": "query.clickhouse-writer", "obs-evals": "evals.judge"}
    for name, obj in scaled.items():
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        assert obj["spec"]["scaleTargetRef"] == {"name": name}
        kafka, cpu = obj["spec"]["triggers"]
        assert kafka["type"] == "kafka"
        assert kafka["metadata"]["consumerGroup"] == groups[name]
        assert kafka["metadata"]["topic"] == "ingestion.events.v1"
        assert kafka["metadata"]["bootstrapServers"] == "obs-kafka-bootstrap.data.svc:9092"
        assert cpu == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}
    # query asks for 48 but ingestion.events.v1 has 24 partitions; evals asks for 20.
    assert scaled["obs-query"]["spec"]["maxReplicaCount"] == 24
    assert scaled["obs-evals"]["spec"]["maxReplicaCount"] == 20
    assert hpas["obs-gateway"]["spec"]["maxReplicas"] == 40


@pytest.mark.parametrize("values", ["default", "production"])
def test_commands_ports_and_probes(request: pytest.FixtureRequest, values: str) -> None:
    manifests = request.getfixturevalue(f"{values}_manifests")
    deployments = by_kind(manifests, "Deployment")
    services = by_kind(manifests, "Service")
    for name in SERVICES:
        c = container(deployments[f"obs-{name}"])
        assert c["command"] == ["python", "-m", f"services.{name}", "run"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        (service_port,) = services[f"obs-{name}"]["spec"]["ports"]
        if name == "gateway":
            assert ports == {"http": 3000, "metrics": 9100}
            assert service_port["targetPort"] == "http"
            assert c["livenessProbe"]["httpGet"] == {"path": "/api/public/health", "port": "http"}
            assert c["startupProbe"]["httpGet"] == {"path": "/api/public/health", "port": "http"}
            assert c["readinessProbe"]["httpGet"] == {"path": "/api/public/ready", "port": "http"}
        else:
            port = BACKEND_PORTS[name]
            assert ports == {"grpc": port, "metrics": 9100}
            assert service_port == {
                "name": "grpc",
                "port": port,
                "targetPort": "grpc",
                "appProtocol": "grpc",
            }
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert c[probe]["grpc"] == {"port": port}, probe
        # Liveness outlasts the drain, during which a backend reports NOT_SERVING.
        liveness = c["livenessProbe"]
        drain = float(env_of(deployments[f"obs-{name}"])[f"{name.upper()}_DRAIN_SECONDS"]["value"])
        assert liveness["periodSeconds"] * liveness["failureThreshold"] > drain


@pytest.mark.parametrize("values", ["default", "production"])
def test_graceful_termination_covers_the_drain(request: pytest.FixtureRequest, values: str) -> None:
    deployments = by_kind(request.getfixturevalue(f"{values}_manifests"), "Deployment")
    # (drain, shutdown) the services are configured with: uvicorn's 30 s graceful shutdown follows
    # the gateway's drain; a backend's drain includes its gRPC server's stop.
    expected = {"gateway": (5, 30), **{name: (10, 0) for name in BACKEND_PORTS}}
    for name, (drain, shutdown) in expected.items():
        deployment = deployments[f"obs-{name}"]
        c = container(deployment)
        assert env_of(deployment)[f"{name.upper()}_DRAIN_SECONDS"]["value"] == str(drain)
        assert c["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace == 5 + drain + shutdown + 5


@pytest.mark.parametrize("values", ["default", "production"])
def test_pods_are_hardened(request: pytest.FixtureRequest, values: str) -> None:
    manifests = request.getfixturevalue(f"{values}_manifests")
    workloads = [*by_kind(manifests, "Deployment").values(), *by_kind(manifests, "Job").values()]
    assert len(workloads) == 10
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        c = container(workload)
        security = c["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert set(c["resources"]) == {"requests", "limits"}
        assert {"cpu", "memory"} <= set(c["resources"]["requests"])
        assert "memory" in c["resources"]["limits"]
        # The only writable path on a read-only root filesystem.
        assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        (volume,) = pod["volumes"]
        assert volume["name"] == "tmp" and "emptyDir" in volume


def test_gateway_reaches_each_backend_through_its_service(default_manifests: list[dict]) -> None:
    services = by_kind(default_manifests, "Service")
    env = env_of(by_kind(default_manifests, "Deployment")["obs-gateway"])
    for name, port in BACKEND_PORTS.items():
        address = env[f"{name.upper()}_ADDR"]["value"]
        assert address == f"obs-{name}:{port}"
        assert services[f"obs-{name}"]["spec"]["ports"][0]["port"] == port


def secret_refs(workload: dict) -> dict[str, tuple[str, str]]:
    refs = {}
    for name, entry in env_of(workload).items():
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            refs[name] = (ref["name"], ref["key"])
    return refs


def test_secrets_are_wired_from_existing_secrets(default_manifests: list[dict]) -> None:
    deployments = by_kind(default_manifests, "Deployment")
    init_keys = [
        "LANGFUSE_INIT_ORG_ID",
        "LANGFUSE_INIT_ORG_NAME",
        "LANGFUSE_INIT_PROJECT_ID",
        "LANGFUSE_INIT_PROJECT_NAME",
        "LANGFUSE_INIT_PROJECT_PUBLIC_KEY",
        "LANGFUSE_INIT_PROJECT_SECRET_KEY",
    ]
    internal = {"INTERNAL_AUTH_TOKEN": ("obs-internal-auth", "token")}
    assert secret_refs(deployments["obs-gateway"]) == {
        **internal,
        "GATEWAY_DATABASE_URL": ("obs-postgres", "gateway-url"),
        "GATEWAY_API_KEY_SALT": ("obs-gateway", "api-key-salt"),
        "GATEWAY_REDIS_URL": ("obs-redis", "gateway-url"),
        **{key: ("obs-init", key) for key in init_keys},
    }
    assert secret_refs(deployments["obs-ingestion"]) == {
        **internal,
        "S3_ACCESS_KEY": ("obs-s3", "access-key"),
        "S3_SECRET_KEY": ("obs-s3", "secret-key"),
        "INGESTION_REDIS_URL": ("obs-redis", "evals-url"),
        "INGESTION_DATABASE_URL": ("obs-postgres", "ingestion-url"),
    }
    assert secret_refs(deployments["obs-query"]) == {
        **internal,
        "QUERY_DATABASE_URL": ("obs-postgres", "query-url"),
        "QUERY_CLICKHOUSE_URL": ("obs-clickhouse", "url"),
        "QUERY_ENCRYPTION_KEY": ("obs-query", "encryption-key"),
    }
    assert secret_refs(deployments["obs-prompts"]) == {
        **internal,
        "PROMPTS_DATABASE_URL": ("obs-postgres", "prompts-url"),
        "PROMPTS_REDIS_URL": ("obs-redis", "prompts-url"),
    }
    assert secret_refs(deployments["obs-evals"]) == {
        **internal,
        "EVALS_DATABASE_URL": ("obs-postgres", "evals-url"),
        "EVALS_REDIS_URL": ("obs-redis", "evals-url"),
        "EVALS_ENCRYPTION_KEY": ("obs-evals", "encryption-key"),
    }
    # Every headless-init variable the gateway reads is wired.
    assert {f.metadata["env"] for f in InitSettings.__dataclass_fields__.values()} == set(init_keys)


def test_production_overrides_secret_names_and_drops_static_s3_keys(
    production_manifests: list[dict],
) -> None:
    deployments = by_kind(production_manifests, "Deployment")
    assert secret_refs(deployments["obs-ingestion"]) == {
        "INTERNAL_AUTH_TOKEN": ("obs-internal-auth", "token"),
        "INGESTION_REDIS_URL": ("obs-redis", "evals-url"),
        "INGESTION_DATABASE_URL": ("obs-pg-ingestion", "uri"),
    }
    assert deployments["obs-ingestion"]["spec"]["template"]["spec"]["serviceAccountName"] == (
        "obs-ingestion-s3"
    )
    assert secret_refs(deployments["obs-query"])["QUERY_DATABASE_URL"] == ("obs-pg-query", "uri")


def _stub_secret(key: str) -> str:
    # The encryption key is checked for its format (32 bytes) when the config loads.
    return "00" * 32 if key.endswith("_ENCRYPTION_KEY") else f"<secret {key} of at least 16 chars>"


@pytest.mark.parametrize("values", ["default", "production"])
@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_every_service_gets_a_complete_configuration(
    request: pytest.FixtureRequest, values: str, kind: str
) -> None:
    """The services' own config loaders accept the rendered environment (Secrets stubbed), so no
    required variable is missing from a Deployment or from its migration Job."""
    manifests = by_kind(request.getfixturevalue(f"{values}_manifests"), kind)
    for name, (cls, prefix) in CONFIGS.items():
        workload = manifests[f"obs-{name}" if kind == "Deployment" else f"obs-{name}-migrate"]
        environ = {
            key: entry.get("value", _stub_secret(key)) for key, entry in env_of(workload).items()
        }
        loaded = config.load(cls, prefix, environ)
        if name != "gateway":
            assert loaded.grpc_port == BACKEND_PORTS[name]
            assert loaded.drain_seconds == 10


def test_hook_jobs_migrate_before_install_and_upgrade(default_manifests: list[dict]) -> None:
    jobs = by_kind(default_manifests, "Job")
    deployments = by_kind(default_manifests, "Deployment")
    for name in SERVICES:
        job = jobs[f"obs-{name}-migrate"]
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        c = container(job)
        assert c["command"] == ["python", "-m", f"services.{name}", "migrate"]
        assert c["image"] == container(deployments[f"obs-{name}"])["image"] == "obs:0.1.0"
        # Hooks run before the release's objects exist: no envFrom of a release ConfigMap, and
        # the same Secrets as the service, which the release never creates.
        assert "envFrom" not in c
        assert secret_refs(job) == secret_refs(deployments[f"obs-{name}"])


def test_helm_test_asks_the_gateway_for_its_health_from_a_hardened_pod(
    default_manifests: list[dict],
) -> None:
    (pod,) = by_kind(default_manifests, "Pod").values()
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    (health,) = pod["spec"]["containers"]
    assert health["image"] == "obs:0.1.0"
    assert "http://obs-gateway:3000/api/public/health" in health["command"][-1]
    assert health["securityContext"]["readOnlyRootFilesystem"] is True
    # A pod of the release, which the NetworkPolicies admit to the gateway however it is set.
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "obs"


def test_the_internal_token_is_generated_once_before_the_migrations(
    default_manifests: list[dict],
) -> None:
    secret = by_kind(default_manifests, "Secret")["obs-internal-auth"]
    annotations = secret["metadata"]["annotations"]
    # A hook, so that the migration Jobs (hooks of weight 0) can read it; kept across upgrades by
    # `lookup` (a cluster is needed to show that, so it is not tested here).
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) < 0
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) == 48 and token.isalnum()


METRICS_FROM_MONITORING = {
    "ports": [{"port": 9100}],
    "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
}
METRICS_FROM_ANY_POD = {"ports": [{"port": 9100}], "from": [{"namespaceSelector": {}}]}


@pytest.mark.parametrize(
    ("values", "metrics_rule"),
    [("default", METRICS_FROM_ANY_POD), ("production", METRICS_FROM_MONITORING)],
)
def test_network_policies_admit_only_the_gateway_from_outside(
    request: pytest.FixtureRequest, values: str, metrics_rule: dict
) -> None:
    policies = by_kind(request.getfixturevalue(f"{values}_manifests"), "NetworkPolicy")
    assert sorted(policies) == sorted(["obs-default-deny", *NAMES])
    release = {"app.kubernetes.io/name": "obs", "app.kubernetes.io/instance": "obs"}
    assert policies["obs-default-deny"]["spec"] == {
        "podSelector": {"matchLabels": release},
        "policyTypes": ["Ingress"],
    }
    assert policies["obs-gateway"]["spec"]["ingress"] == [{"ports": [{"port": 3000}]}, metrics_rule]
    # Backends: only this release's pods (the services call each other), never from outside.
    for name, port in BACKEND_PORTS.items():
        assert policies[f"obs-{name}"]["spec"]["ingress"] == [
            {"ports": [{"port": port}], "from": [{"podSelector": {"matchLabels": release}}]},
            metrics_rule,
        ]


def test_network_policies_can_be_turned_off(helm: Path) -> None:
    manifests = render(helm, "--set", "networkPolicy.enabled=false")
    assert by_kind(manifests, "NetworkPolicy") == {}


def test_an_existing_secret_replaces_the_generated_token(helm: Path) -> None:
    manifests = render(
        helm,
        "--set",
        "internalAuth.existingSecret=mine",
        "--set",
        "internalAuth.key=internal-token",
    )
    assert by_kind(manifests, "Secret") == {}
    for workload in [
        *by_kind(manifests, "Deployment").values(),
        *by_kind(manifests, "Job").values(),
    ]:
        assert secret_refs(workload)["INTERNAL_AUTH_TOKEN"] == ("mine", "internal-token")


def test_ingress_routes_to_the_gateway(production_manifests: list[dict]) -> None:
    (ingress,) = by_kind(production_manifests, "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert rule["host"] == "obs.acme.example"
    assert path["backend"]["service"] == {"name": "obs-gateway", "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"hosts": ["obs.acme.example"], "secretName": "obs-tls"}]


def test_a_service_override_of_false_beats_a_default_of_true(helm: Path) -> None:
    manifests = render(
        helm,
        "--set",
        "services.gateway.autoscaling.enabled=false",
        "--set",
        "services.gateway.replicas=3",
        "--set",
        "services.evals.enabled=false",
        "--set",
        "services.query.migrations.enabled=false",
    )
    assert "obs-gateway" not in by_kind(manifests, "HorizontalPodAutoscaler")
    assert by_kind(manifests, "Deployment")["obs-gateway"]["spec"]["replicas"] == 3
    assert "obs-evals" not in by_kind(manifests, "Deployment")
    assert sorted(by_kind(manifests, "Job")) == [
        "obs-gateway-migrate",
        "obs-ingestion-migrate",
        "obs-prompts-migrate",
    ]

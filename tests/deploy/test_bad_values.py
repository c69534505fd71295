"""Values that would deploy something broken fail at lint/template time, saying what is wrong."""

from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import CHART, run_helm, template

pytestmark = pytest.mark.timeout(1200)

# Rejected by values.schema.json: helm lint, template, install and upgrade all refuse them.
SCHEMA_ERRORS = {
    "negative replicas": (
        {"services": {"query": {"replicas": -1}}},
        "at '/services/query/replicas': minimum: got -1, want 0",
    ),
    "empty secret name": (
        {"services": {"gateway": {"secretEnv": {"GATEWAY_DATABASE_URL": {"existingSecret": ""}}}}},
        "at '/services/gateway/secretEnv/GATEWAY_DATABASE_URL/existingSecret': minLength",
    ),
    "secret reference without a name": (
        {"services": {"evals": {"secretEnv": {"EVALS_DATABASE_URL": {"existingSecret": None}}}}},
        "at '/services/evals/secretEnv/EVALS_DATABASE_URL': missing property 'existingSecret'",
    ),
    "internal token without a key": (
        {"internalAuth": {"existingSecret": "obs-internal-auth", "key": ""}},
        "at '/internalAuth/key': minLength",
    ),
    "no kafka brokers": (
        {"kafka": {"bootstrapServers": ""}},
        "at '/kafka/bootstrapServers': minLength",
    ),
    "misspelt setting": (
        {"defaults": {"replica": 3}},
        "at '/defaults': additional properties 'replica' not allowed",
    ),
    "unknown service": (
        {"services": {"querry": {"port": 50052}}},
        "querry",
    ),
}

# Rejected by the templates (`fail`): template, install and upgrade refuse them. helm lint only
# logs a template's `fail` at INFO level, so it cannot be the check for these.
TEMPLATE_ERRORS = {
    "KEDA on a service that consumes nothing": (
        {"services": {"gateway": {"autoscaling": {"keda": {"enabled": True}}}}},
        "services.gateway.autoscaling.keda scales on consumer lag: "
        "it needs services.gateway.consumer",
    ),
    "more minimum replicas than partitions": (
        {
            "kafka": {
                "topics": {"ingestionEvents": {"name": "ingestion.events.v1", "partitions": 1}}
            }
        },
        "services.evals.autoscaling.minReplicas (2) exceeds its maxReplicas (1, capped at the "
        "partitions of its topic)",
    ),
}


def write_values(tmp_path: Path, values: dict) -> Path:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    return values_file


@pytest.mark.parametrize("case", SCHEMA_ERRORS, ids=list(SCHEMA_ERRORS))
def test_values_against_the_schema(helm: Path, tmp_path: Path, case: str) -> None:
    values, message = SCHEMA_ERRORS[case]
    values_file = write_values(tmp_path, values)

    rendered = template(helm, "-f", values_file)
    linted = run_helm(helm, "lint", CHART, "-f", values_file)

    assert rendered.returncode != 0
    assert message in rendered.stderr
    assert linted.returncode != 0
    assert message in linted.stdout + linted.stderr


@pytest.mark.parametrize("case", TEMPLATE_ERRORS, ids=list(TEMPLATE_ERRORS))
def test_values_the_templates_refuse(helm: Path, tmp_path: Path, case: str) -> None:
    values, message = TEMPLATE_ERRORS[case]

    rendered = template(helm, "-f", write_values(tmp_path, values))

    assert rendered.returncode != 0
    assert message in rendered.stderr

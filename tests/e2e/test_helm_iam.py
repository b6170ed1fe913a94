"""Imports through the Helm chart with IAM enforced from the Terraform policies.

The chart is installed as a platform team would, except that IRSA is replaced by access keys the
stack's IAM gate knows: each stands for the worker or the operator role with exactly the policy
rendered from terraform/. The workers get theirs from a Secret, as secretKeyRefs in the chart's
`worker.env`, so the Jobs name the Secret and never hold the key. With the policy as written the
import Succeeds; with one action taken out it Fails, and its condition names the action.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from devstack import images
from tests.conftest import unique_name
from tests.e2e.test_helm_chart import CHART, RESTRICTED, helm, kubectl, run, stack_operator_paused  # noqa: F401
from tests.iam import ROWS, Installation, installed, without
from tests.support import consume_all

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SECRET = "csvkafka-aws"
KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def put_secret(namespace: str, credentials: dict[str, str]) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": namespace},
              "stringData": {k: credentials[k] for k in KEYS}}
    kubectl("apply", "-f", "-", stdin=json.dumps(secret))


def aws_env(installation: Installation) -> list[dict[str, Any]]:
    """The endpoint and region as values; the keys as references to the Secret in the pod's namespace."""
    return [{"name": "AWS_ENDPOINT_URL", "value": installation.gate},
            {"name": "AWS_REGION", "value": "us-east-1"}, {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"},
            *({"name": k, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": k}}} for k in KEYS)]


@pytest.fixture
def installation(stack_env: dict[str, str], s3: Any, s3_bucket: str, dynamodb: Any) -> Iterator[Installation]:
    yield from installed(stack_env, s3, s3_bucket, dynamodb)


@pytest.fixture
def release(helm: str, installation: Installation,  # noqa: F811
            stack_operator_paused: None) -> Iterator[dict[str, str]]:  # noqa: F811
    release_ns, imports_ns = unique_name("helm-iam"), unique_name("imports-iam")
    for name in (release_ns, imports_ns):
        kubectl("create", "namespace", name)
        kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in RESTRICTED.items()))
    put_secret(release_ns, installation.credentials("operator"))
    put_secret(imports_ns, installation.credentials("worker"))
    repository, tag = images.CSVKAFKA.rsplit(":", 1)
    values = {"image": {"repository": repository, "tag": tag}, "watchNamespaces": [imports_ns],
              "operator": {"logFormat": "plain", "statusIntervalSeconds": 2, "env": aws_env(installation)},
              "worker": {"env": aws_env(installation)}}
    run(helm, "install", "csvkafka", str(CHART), "--namespace", release_ns, "--values", "-",
        "--wait", "--timeout", "3m", stdin=yaml.safe_dump(values))
    yield {"release": release_ns, "imports": imports_ns}
    run(helm, "uninstall", "csvkafka", "--namespace", release_ns, "--wait", check=False)
    kubectl("delete", "namespace", release_ns, imports_ns, "--wait=false")


def start_import(name: str, namespace: str, installation: Installation, topic: str, bootstrap: str) -> None:
    manifest = {"apiVersion": "csvkafka.io/v1alpha1", "kind": "CsvKafkaImport",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"source": {"uri": installation.source},
                         "sink": {"bootstrapServers": bootstrap, "topic": topic},
                         "checkpoint": {"table": installation.table}}}
    kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def status_of(name: str, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl("get", "csvimport", name, "-n", namespace, "-o", "json").stdout)
    return dict(found.get("status", {}))


def test_imports_through_the_chart_with_the_terraform_policies(
        release: dict[str, str], installation: Installation, kafka_topic: str, bootstrap_servers: str) -> None:
    namespace = release["imports"]
    start_import("with-its-role", namespace, installation, kafka_topic, bootstrap_servers)
    kubectl("wait", "--for=condition=Succeeded", "csvimport/with-its-role", "-n", namespace, "--timeout=300s")
    status = status_of("with-its-role", namespace)
    assert status["recordsSent"] == ROWS  # read by the operator, with its role, through the gate
    assert len(consume_all(bootstrap_servers, kafka_topic)) == ROWS
    job = kubectl("get", "job", status["jobName"], "-n", namespace, "-o", "json").stdout
    secret = json.loads(kubectl("get", "secret", SECRET, "-n", namespace, "-o", "json").stdout)["data"]
    assert '"secretKeyRef"' in job and not any(base64.b64decode(v).decode() in job for v in secret.values())

    # The same chart, the worker's role without the lease's UpdateItem.
    put_secret(namespace, installation.credentials(
        "worker", without(installation.documents["worker"], "dynamodb:UpdateItem")))
    start_import("without-update-item", namespace, installation, kafka_topic, bootstrap_servers)
    kubectl("wait", "--for=condition=Failed", "csvimport/without-update-item", "-n", namespace, "--timeout=300s")
    (failed,) = [c for c in status_of("without-update-item", namespace)["conditions"] if c["type"] == "Failed"]
    assert failed["reason"] == "CheckpointAccessDenied"
    assert "dynamodb:UpdateItem" in failed["message"] and "\n" not in failed["message"]

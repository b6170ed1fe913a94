"""The Helm chart on the local control plane: lint, server-side dry runs of several value sets, then a
real `helm install`, an import run to Succeeded by the operator the chart installed, and `helm test`.

The namespaces enforce the restricted Pod Security profile; the operator runs in a pod of the image
built from the Dockerfile on the stack's kubelets and acts with exactly the rights the chart's RBAC
grants. There is no IRSA here, so the operator and workers get the stack's AWS endpoint and test
credentials through the chart's env values, as they would get anything else in a cluster.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import images
from devstack import operator as stack_operator
from devstack.layout import Layout
from tests.conftest import unique_name
from tests.support import consume_all

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CHART = REPO / "helm" / "csvkafka"
KUBE_VERSION = "1.34.0"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}
IRSA = "eks.amazonaws.com/role-arn"


def stand_in_crd(kind: str) -> dict[str, Any]:
    """prometheus-operator is not part of the stack: a schemaless stand-in of one of its CRDs lets the
    API server accept that kind and so validate everything else the chart renders with it."""
    singular = kind.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{singular}s.monitoring.coreos.com"},
        "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                 "names": {"kind": kind, "plural": f"{singular}s", "singular": singular, "listKind": f"{kind}List"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
    }


def run(*argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if check:
        assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    return done


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("kubectl", *args, stdin=stdin, check=check)


@pytest.fixture(scope="module")
def helm(stack_env: dict[str, str]) -> str:
    """The stack's helm, built from the Go module proxy on first use (a no-op afterwards)."""
    subprocess.run([str(REPO / "dev" / "build" / "helm.sh")], check=True)
    return str(Path(stack_env["CSVKAFKA_CACHE"]) / "bin" / "helm")


@pytest.fixture(scope="module")
def restricted_namespaces(stack_env: dict[str, str]) -> Iterator[list[str]]:
    """Three fresh namespaces enforcing the restricted profile: the release's and two for imports."""
    names = [unique_name("helm"), unique_name("imports-a"), unique_name("imports-b")]
    for name in names:
        kubectl("create", "namespace", name)
        kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in RESTRICTED.items()))
    yield names
    kubectl("delete", "namespace", *names, "--wait=false")


def render(helm: str, namespace: str, values: dict[str, Any], *extra: str) -> str:
    return run(helm, "template", "csvkafka", str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION,
               "--values", "-", *extra, stdin=yaml.safe_dump(values)).stdout


def test_lint_is_clean(helm: str) -> None:
    lint = run(helm, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in lint.stdout
    assert "[WARNING]" not in lint.stdout and "[ERROR]" not in lint.stdout


def test_chart_crd_is_the_repository_crd() -> None:
    # Helm packages no symlinks, so the chart holds a copy; this keeps it identical.
    for crd in (REPO / "crds").glob("*.yaml"):
        assert (CHART / "crds" / crd.name).read_bytes() == crd.read_bytes(), f"copy crds/{crd.name} into the chart"
    assert {p.name for p in (CHART / "crds").iterdir()} == {p.name for p in (REPO / "crds").glob("*.yaml")}


def test_templated_crd_is_the_repository_crd(helm: str) -> None:
    rendered = yaml.safe_load(render(helm, "default", {"crds": {"templated": True}}, "--skip-crds",
                                     "--show-only", "templates/crd.yaml"))
    source = yaml.safe_load((REPO / "crds" / "csvkafka.io_csvkafkaimports.yaml").read_text())
    assert rendered["spec"] == source["spec"]
    assert rendered["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-10"


VALUE_SETS = ("release-namespace", "watch-all", "listed-namespaces-irsa", "monitoring-templated-crd", "worker-env")
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


def value_sets(namespaces: list[str]) -> dict[str, dict[str, Any]]:
    release, team_a, team_b = namespaces
    return {
        "release-namespace": {},
        "watch-all": {"watchAllNamespaces": True},
        "listed-namespaces-irsa": {
            "watchNamespaces": [team_a, team_b],
            "operator": {"serviceAccount": {"annotations": {IRSA: "arn:aws:iam::123456789012:role/csvkafka-operator"}}},
            "worker": {"serviceAccount": {"annotations": {IRSA: "arn:aws:iam::123456789012:role/csvkafka-worker"}}},
        },
        "monitoring-templated-crd": {
            "crds": {"templated": True},
            "watchAllNamespaces": True,
            "networkPolicy": {"metricsFrom": [PROMETHEUS]},
            "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
                        "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"},
                                           "alertLabels": {"team": "data"}},
                        "grafanaDashboard": {"enabled": True, "namespace": team_b,
                                             "annotations": {"grafana_folder": "csvkafka"}}},
            "worker": {"serviceAccount": {"namespaces": [release, team_a]}},
        },
        "worker-env": {
            "watchNamespaces": [team_b],
            "operator": {"env": [{"name": "AWS_REGION", "value": "eu-west-1"}], "verbose": True},
            "worker": {"env": {"AWS_REGION": "eu-west-1", "CSVKAFKA_EXAMPLE": "x"}, "metricsPort": 0,
                       "image": {"repository": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/csvkafka"}},
        },
    }


@pytest.fixture(scope="module")
def prometheus_operator_crds(stack_env: dict[str, str]) -> Iterator[None]:
    created = []
    for crd in (stand_in_crd("ServiceMonitor"), stand_in_crd("PrometheusRule")):
        name = f"crd/{crd['metadata']['name']}"
        if kubectl("get", name, check=False).returncode != 0:
            kubectl("create", "-f", "-", stdin=json.dumps(crd))
            kubectl("wait", "--for=condition=Established", name)
            created.append(name)
    yield
    if created:
        kubectl("delete", *created)


@pytest.mark.parametrize("case", VALUE_SETS)
def test_rendered_chart_passes_server_dry_run(helm: str, restricted_namespaces: list[str],
                                              prometheus_operator_crds: None, case: str) -> None:
    values = value_sets(restricted_namespaces)[case]
    templated = values.get("crds", {}).get("templated", False)
    # Without the test hooks: admission looks the test Pod's ServiceAccount up, and a dry-run one is
    # not there. test_helm_test_passes runs that Pod for real, in a namespace that enforces restricted.
    manifests = render(helm, restricted_namespaces[0], values, "--skip-tests", *(["--skip-crds"] if templated else []))
    # Forced: a dry run validates, and the stack's own `kubectl apply` of a changed CRD owns its fields.
    applied = kubectl("apply", "--dry-run=server", "--server-side", "--force-conflicts", "--field-manager=helm-e2e",
                      "-f", "-", stdin=manifests)
    # The namespaces warn on (and enforce) the restricted profile: even the Deployment's template passes.
    assert "PodSecurity" not in applied.stderr, applied.stderr
    kinds = {line.split()[0].split("/")[0] for line in applied.stdout.splitlines()}
    assert {"deployment.apps", "serviceaccount", "networkpolicy.networking.k8s.io"} <= kinds
    cluster_roles = sum(line.startswith("clusterrole.") for line in applied.stdout.splitlines())
    if values.get("watchAllNamespaces"):
        assert "role.rbac.authorization.k8s.io" not in kinds and cluster_roles == 2
    else:
        assert "role.rbac.authorization.k8s.io" in kinds and cluster_roles == 1  # discovery only
    if values.get("metrics", {}).get("prometheusRule", {}).get("enabled"):
        assert {"prometheusrule.monitoring.coreos.com", "servicemonitor.monitoring.coreos.com", "configmap"} <= kinds


@pytest.fixture(scope="module")
def stack_operator_paused(stack_env: dict[str, str]) -> Iterator[None]:
    """The stack's own operator watches every namespace: it would run this test's imports too."""
    layout = Layout.from_env()
    was_running = stack_operator.service(layout).stop()
    yield
    if was_running:
        stack_operator.up(layout)


@pytest.fixture(scope="module")
def release(helm: str, stack_env: dict[str, str], restricted_namespaces: list[str],
            stack_operator_paused: None) -> Iterator[dict[str, Any]]:
    # The chart runs `csvkafka operator`: the console command must be the one with that subcommand.
    if run("csvkafka", "operator", "--help", check=False).returncode != 0:
        pytest.skip("`csvkafka operator` does not exist: point pyproject.toml's csvkafka script at "
                    "csvkafka_operator.cli:main and reinstall")
    release_ns, imports_ns, _ = restricted_namespaces
    # Only on the local stack: no IRSA gives the pods credentials.
    aws = {key: stack_env[key] for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_REGION", "AWS_DEFAULT_REGION")}
    repository, tag = images.CSVKAFKA.rsplit(":", 1)
    values = {
        "image": {"repository": repository, "tag": tag},
        "watchNamespaces": [imports_ns],
        "operator": {"logFormat": "plain", "statusIntervalSeconds": 2,
                     "env": [{"name": k, "value": v} for k, v in aws.items()]},
        "worker": {"env": aws},
    }
    install = run(helm, "install", "csvkafka", str(CHART), "--namespace", release_ns, "--values", "-",
                  "--wait", "--timeout", "3m", stdin=yaml.safe_dump(values))
    yield {"namespace": release_ns, "imports": imports_ns, "values": values, "notes": install.stdout}
    run(helm, "uninstall", "csvkafka", "--namespace", release_ns, "--wait", check=False)


def test_import_succeeds_through_the_installed_chart(release: dict[str, Any], s3: Any, s3_bucket: str,
                                                     kafka_topic: str, checkpoint_table: str,
                                                     bootstrap_servers: str) -> None:
    rows = 2_000
    body = b"id,name\n" + b"".join(b"%d,name-%d\n" % (i, i) for i in range(1, rows + 1))
    s3.put_object(Bucket=s3_bucket, Key="helm.csv", Body=body)
    namespace = release["imports"]
    manifest = {"apiVersion": "csvkafka.io/v1alpha1", "kind": "CsvKafkaImport",
                "metadata": {"name": "through-helm", "namespace": namespace},
                "spec": {"source": {"uri": f"s3://{s3_bucket}/helm.csv"},
                         "sink": {"bootstrapServers": bootstrap_servers, "topic": kafka_topic},
                         "checkpoint": {"table": checkpoint_table}}}
    kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    try:
        kubectl("wait", "--for=condition=Succeeded", "csvimport/through-helm", "-n", namespace, "--timeout=240s")
        status = json.loads(kubectl("get", "csvimport", "through-helm", "-n", namespace, "-o", "json").stdout)["status"]
        assert status["phase"] == "Succeeded" and status["recordsSent"] == rows
        assert len(consume_all(bootstrap_servers, kafka_topic)) == rows
        # The run used what the chart configured: its worker ServiceAccount, in a restricted namespace.
        job = json.loads(kubectl("get", "job", status["jobName"], "-n", namespace, "-o", "json").stdout)
        assert job["spec"]["template"]["spec"]["serviceAccountName"] == "csvkafka-worker"
    finally:
        kubectl("delete", "csvimport", "through-helm", "-n", namespace, "--timeout=60s", check=False)


def test_helm_test_passes(helm: str, release: dict[str, Any]) -> None:
    tested = run(helm, "test", "csvkafka", "--namespace", release["namespace"], "--timeout", "3m", check=False)
    output = kubectl("logs", "csvkafka-test", "-n", release["namespace"], check=False).stdout
    assert tested.returncode == 0, tested.stdout + tested.stderr + output
    assert "CRD served: csvimports.csvkafka.io/v1alpha1" in output
    assert "/healthz answered 200" in output


def test_the_operator_pod_runs_non_root_on_a_read_only_root(release: dict[str, Any]) -> None:
    namespace = release["namespace"]
    pod = kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=operator",
                  "-o", "jsonpath={.items[0].metadata.name}").stdout
    python = ("exec", "-n", namespace, pod, "--", "python3", "-c")
    assert kubectl(*python, "import os; print(os.getuid(), os.getgid())").stdout.split() == ["65532", "65532"]
    for place in ("/opt/csvkafka/bin/x", "/etc/x", "/x"):
        refused = kubectl(*python, f"open({place!r}, 'w')", check=False)
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr, (place, refused.stderr)
    # /tmp is the pod's emptyDir: HOME and temporary files go there.
    assert kubectl(*python, "import tempfile; print(tempfile.mkstemp()[1])").stdout.startswith("/tmp/")
    # kubectl logs reaches the kubelet: the operator's log lines are there.
    assert "Activity 'login_via_client' succeeded." in kubectl("logs", "-n", namespace, pod).stdout


def test_operator_runs_with_the_charts_rights_only(release: dict[str, Any]) -> None:
    account = f"system:serviceaccount:{release['namespace']}:csvkafka-operator"
    imports = release["imports"]
    expected = {
        ("get", "secrets", imports, ""): True, ("list", "secrets", imports, ""): False,
        ("get", "secrets", "default", ""): False,
        ("create", "jobs", imports, ""): True, ("create", "jobs", "default", ""): False,
        ("patch", "csvimports.csvkafka.io", imports, "status"): True,
        ("update", "csvimports.csvkafka.io", imports, ""): False,
        ("list", "namespaces", "", ""): True, ("get", "namespaces", "", ""): False,
    }
    actual = {}
    for verb, resource, ns, subresource in expected:
        scope = ["-n", ns] if ns else []
        extra = [f"--subresource={subresource}"] if subresource else []
        answer = kubectl("auth", "can-i", verb, resource, *scope, *extra, "--as", account, check=False)
        actual[(verb, resource, ns, subresource)] = answer.stdout.strip() == "yes"
    assert actual == expected

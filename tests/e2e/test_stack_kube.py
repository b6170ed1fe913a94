"""The stack's Kubernetes is a real control plane: admission, RBAC, EKS-like nodes."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.conftest import STACK

pytestmark = pytest.mark.e2e



def kubectl(*args: str, kubeconfig: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = [f"--kubeconfig={kubeconfig}"] if kubeconfig else []
    return subprocess.run(["kubectl", *extra, *args], capture_output=True, text=True, check=False)


def test_kubectl_lists_the_three_eks_nodes_with_their_labels(stack_env: dict[str, str]) -> None:
    out = kubectl("get", "nodes", "--show-labels", "--no-headers")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    labels = {row[0]: dict(kv.split("=", 1) for kv in row[-1].split(",")) for row in rows}
    assert {row[1] for row in rows} == {"Ready"}
    compute = [n for n, lab in labels.items() if lab.get("eks.amazonaws.com/compute-type") == "fargate"]
    capacity = sorted(lab.get("eks.amazonaws.com/capacityType", "") for lab in labels.values())
    assert len(compute) == 1
    assert capacity == ["", "ON_DEMAND", "SPOT"]


def test_fargate_node_carries_the_fargate_taint(kube_client: Any) -> None:
    nodes = client.CoreV1Api(kube_client).list_node(label_selector="eks.amazonaws.com/compute-type=fargate")
    taints = [(t.key, t.value, t.effect) for t in nodes.items[0].spec.taints]
    assert taints == [("eks.amazonaws.com/compute-type", "fargate", "NoSchedule")]


def can_i(verb: str, resource: str, namespace: str, kubeconfig: str) -> str:
    return kubectl("auth", "can-i", verb, resource, "-n", namespace, kubeconfig=kubeconfig).stdout.strip()


def privileged_pod() -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="too-privileged"),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="main", image="busybox", command=["true"],
            security_context=client.V1SecurityContext(privileged=True),
        )]),
    )


def test_restricted_namespace_refuses_a_pod_that_violates_the_profile(kube_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube_client)
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, privileged_pod())
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest": privileged (container "main" must not set' in message


def test_serviceaccount_kubeconfig_has_exactly_the_granted_rights(kube_client: Any, namespace: str) -> None:
    core, rbac = client.CoreV1Api(kube_client), client.RbacAuthorizationV1Api(kube_client)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="app")))
    kubeconfig = subprocess.run([str(STACK), "kubeconfig-for", namespace, "app"],
                                capture_output=True, text=True, check=True).stdout.strip()

    assert can_i("list", "configmaps", namespace, kubeconfig) == "no"
    denied = kubectl("get", "configmaps", "-n", namespace, kubeconfig=kubeconfig)
    assert denied.returncode != 0
    assert f'"system:serviceaccount:{namespace}:app" cannot list resource "configmaps"' in denied.stderr

    rbac.create_namespaced_role(namespace, client.V1Role(
        metadata=client.V1ObjectMeta(name="read-configmaps"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
    ))
    rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="read-configmaps"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="read-configmaps"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="app", namespace=namespace)],
    ))
    assert can_i("list", "configmaps", namespace, kubeconfig) == "yes"
    assert can_i("list", "secrets", namespace, kubeconfig) == "no"

"""Least privilege by default: the chart's RBAC and NetworkPolicies as `helm template` renders them.

The operator watches its release namespace unless told otherwise, the cluster-wide mode is an explicit
opt-in, and nobody reaches the workers' metrics port unless networkPolicy.metricsFrom names them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart import RELEASE_NAMESPACE, of_kind, one, render, render_error

SECRETS_GET = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}


def operator_env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    container = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def worker_policy(manifests: list[dict[str, Any]], namespace: str = RELEASE_NAMESPACE) -> dict[str, Any]:
    [policy] = [p for p in of_kind(manifests, "NetworkPolicy")
                if p["metadata"]["name"].endswith("-worker") and p["metadata"]["namespace"] == namespace]
    return policy


def test_by_default_the_operator_may_act_in_its_release_namespace_only() -> None:
    manifests = render({})
    [role] = of_kind(manifests, "Role")
    assert role["metadata"]["namespace"] == RELEASE_NAMESPACE and SECRETS_GET in role["rules"]
    [binding] = of_kind(manifests, "RoleBinding")
    assert binding["metadata"]["namespace"] == RELEASE_NAMESPACE
    # The one ClusterRole is kopf's discovery: it reads CRDs and namespace names, nothing in them.
    [discovery] = of_kind(manifests, "ClusterRole")
    assert {(tuple(r["resources"]), tuple(r["verbs"])) for r in discovery["rules"]} == {
        (("customresourcedefinitions",), ("list", "watch")), (("namespaces",), ("list", "watch"))}
    assert operator_env(manifests)["CSVKAFKA_NAMESPACES"] == RELEASE_NAMESPACE
    assert [sa["metadata"]["namespace"] for sa in of_kind(manifests, "ServiceAccount")] == [RELEASE_NAMESPACE] * 2


def test_listed_namespaces_get_a_role_each_and_the_release_namespace_none() -> None:
    manifests = render({"watchNamespaces": ["team-a", "team-b"]})
    assert sorted(r["metadata"]["namespace"] for r in of_kind(manifests, "Role")) == ["team-a", "team-b"]
    assert operator_env(manifests)["CSVKAFKA_NAMESPACES"] == "team-a,team-b"
    assert len(of_kind(manifests, "ClusterRole")) == 1


def test_watching_every_namespace_is_an_explicit_cluster_wide_grant() -> None:
    manifests = render({"watchAllNamespaces": True, "worker": {"serviceAccount": {"namespaces": ["team-a"]}}})
    assert of_kind(manifests, "Role") == []
    cluster_rules = [rule for role in of_kind(manifests, "ClusterRole") for rule in role["rules"]]
    assert SECRETS_GET in cluster_rules
    assert any("jobs" in r["resources"] and "create" in r["verbs"] for r in cluster_rules)
    # kopf watches the whole cluster, so it needs no namespace list.
    assert not any("namespaces" in r["resources"] for r in cluster_rules)
    assert "CSVKAFKA_NAMESPACES" not in operator_env(manifests)
    assert {sa["metadata"]["namespace"] for sa in of_kind(manifests, "ServiceAccount")} == {RELEASE_NAMESPACE, "team-a"}


def test_both_watch_modes_at_once_are_refused_in_one_line() -> None:
    error = render_error({"watchAllNamespaces": True, "watchNamespaces": ["team-a"]})
    assert "watchAllNamespaces: true watches every namespace: leave watchNamespaces empty" in error


def test_the_workers_metrics_port_admits_nobody_by_default() -> None:
    policy = worker_policy(render({}))
    assert policy["spec"]["policyTypes"] == ["Ingress"] and policy["spec"]["ingress"] == []


PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


def test_the_workers_metrics_port_admits_only_metrics_from() -> None:
    manifests = render({"watchNamespaces": ["team-a", "team-b"], "networkPolicy": {"metricsFrom": [PROMETHEUS]}})
    for namespace in ("team-a", "team-b"):
        assert worker_policy(manifests, namespace)["spec"]["ingress"] == [
            {"from": [PROMETHEUS], "ports": [{"port": 9102, "protocol": "TCP"}]}]


def test_no_metrics_port_admits_nobody_even_with_metrics_from() -> None:
    policy = worker_policy(render({"worker": {"metricsPort": 0}, "networkPolicy": {"metricsFrom": [PROMETHEUS]}}))
    assert policy["spec"]["ingress"] == []


@pytest.mark.parametrize("peer", [{}, {"podSelector": {"matchLabels": {"a": "b"}}, "namespace": "monitoring"}])
def test_metrics_from_takes_network_policy_peers_only(peer: dict[str, Any]) -> None:
    assert "metricsFrom" in render_error({"networkPolicy": {"metricsFrom": [peer]}})


def test_a_service_monitor_behind_a_closed_policy_is_refused_with_the_fix() -> None:
    error = render_error({"metrics": {"serviceMonitor": {"enabled": True}}})
    assert "set networkPolicy.metricsFrom to your Prometheus pods' namespaceSelector/podSelector" in error
    # Without NetworkPolicies there is nothing to open.
    render({"metrics": {"serviceMonitor": {"enabled": True}}, "networkPolicy": {"enabled": False}})


def test_the_service_monitor_keeps_the_workers_job_label_and_adds_the_import() -> None:
    manifests = render({"metrics": {"serviceMonitor": {"enabled": True}},
                        "networkPolicy": {"metricsFrom": [PROMETHEUS]}})
    spec = one(manifests, "ServiceMonitor")["spec"]
    assert spec["podTargetLabels"] == ["csvkafka.io/import"]
    assert spec["endpoints"][0]["honorLabels"] is True

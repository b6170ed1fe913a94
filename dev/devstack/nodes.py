"""The agent's three EKS-like nodes: their manifests, their registration and their heartbeat.

With the node-lifecycle controller off nothing would ever mark a silent node NotReady, but the
heartbeat (Lease + Ready condition) is kept anyway so the nodes look exactly like kubelet's to
anything that reads them (kubectl, the scheduler's node-lease aware plugins, tests).
"""

from __future__ import annotations

import logging
import platform
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("node-agent")

KUBELET_VERSION = "v1.34.4"
HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 40
CAPACITY = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
# Every "node" is this machine: a pod's hostIP must reach the host, so it is the loopback address.
HOST_IP = "127.0.0.1"
STRATEGIC = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    zone: str
    labels: dict[str, str]
    taints: list[dict[str, str]] = field(default_factory=list)


NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        name="fargate-ip-10-0-1-10.ec2.internal",
        zone="us-east-1a",
        labels={"eks.amazonaws.com/compute-type": "fargate"},
        taints=[{"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"}],
    ),
    NodeSpec(
        name="ip-10-0-2-20.ec2.internal",
        zone="us-east-1b",
        labels={
            "eks.amazonaws.com/capacityType": "SPOT",
            "eks.amazonaws.com/nodegroup": "spot",
            "node.kubernetes.io/instance-type": "m5.2xlarge",
        },
    ),
    NodeSpec(
        name="ip-10-0-3-30.ec2.internal",
        zone="us-east-1c",
        labels={
            "eks.amazonaws.com/capacityType": "ON_DEMAND",
            "eks.amazonaws.com/nodegroup": "on-demand",
            "node.kubernetes.io/instance-type": "m5.2xlarge",
        },
    ),
)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_labels(spec: NodeSpec) -> dict[str, str]:
    return {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": spec.name,
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": spec.zone,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        **spec.labels,
    }


def node_conditions(now: str, since: str) -> list[dict[str, str]]:
    healthy = [
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    conditions = [
        {"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": now,
         "lastTransitionTime": since}
        for t, r, m in healthy
    ]
    conditions.append({
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "node agent is posting ready status", "lastHeartbeatTime": now,
        "lastTransitionTime": since,
    })
    return conditions


def node_status(spec: NodeSpec, now: str, since: str) -> dict[str, Any]:
    return {
        "capacity": dict(CAPACITY),
        "allocatable": dict(CAPACITY),
        "conditions": node_conditions(now, since),
        "addresses": [
            {"type": "InternalIP", "address": HOST_IP},
            {"type": "Hostname", "address": spec.name},
            {"type": "InternalDNS", "address": spec.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": platform.release(), "osImage": "csvkafka node agent",
            "containerRuntimeVersion": "process://local", "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
        },
    }


def node_manifest(spec: NodeSpec, now: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": node_labels(spec)},
        "spec": {"taints": list(spec.taints)},
        "status": node_status(spec, now, now),
    }


def lease_manifest(spec: NodeSpec, node_uid: str, renew: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": spec.name, "namespace": "kube-node-lease"}
    if node_uid:
        # As kubelet does: the Lease goes away with its Node.
        metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": spec.name, "uid": node_uid}]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {"holderIdentity": spec.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renew},
    }


def _micro_now() -> datetime:
    return datetime.now(UTC)


class NodeKeeper:
    """Registers the nodes (create, or bring an existing one back to spec) and keeps them Ready."""

    def __init__(self, api_client: client.ApiClient, specs: Sequence[NodeSpec] = NODES) -> None:
        self.core = client.CoreV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.specs = list(specs)
        self._uids: dict[str, str] = {}
        self._ready_since: dict[str, str] = {}

    @property
    def names(self) -> set[str]:
        return {s.name for s in self.specs}

    def register(self) -> None:
        for spec in self.specs:
            now = now_rfc3339()
            manifest = node_manifest(spec, now)
            try:
                node = self.core.create_node(client.V1Node.model_validate(manifest))
                log.info("node %s registered", spec.name)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                # A restarted agent: labels and taints are brought back to spec (merge keeps labels
                # someone else added); the status is rewritten by the first heartbeat below.
                node = self.core.patch_node(
                    spec.name,
                    {"metadata": {"labels": manifest["metadata"]["labels"]},
                     "spec": {"taints": manifest["spec"]["taints"], "unschedulable": False}},
                    _content_type="application/merge-patch+json",
                )
                log.info("node %s already registered; updated", spec.name)
            self._uids[spec.name] = str(node.metadata.uid if node.metadata else "")
            self._ready_since.setdefault(spec.name, now)
        self.heartbeat()

    def heartbeat(self) -> None:
        for spec in self.specs:
            now = now_rfc3339()
            status = node_status(spec, now, self._ready_since.get(spec.name, now))
            try:
                self.core.patch_node_status(spec.name, {"status": status}, _content_type=STRATEGIC)
                self._renew_lease(spec)
            except ApiException as exc:
                log.warning("heartbeat of node %s failed: %s %s", spec.name, exc.status, exc.reason)
            except Exception as exc:
                # Above all the heartbeat must outlive an apiserver restart.
                log.warning("heartbeat of node %s failed: %s", spec.name, exc)

    def _renew_lease(self, spec: NodeSpec) -> None:
        renew = _micro_now()
        try:
            self.coordination.patch_namespaced_lease(
                spec.name, "kube-node-lease",
                {"spec": {"holderIdentity": spec.name, "leaseDurationSeconds": LEASE_SECONDS,
                          "renewTime": renew.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}},
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            manifest = lease_manifest(spec, self._uids.get(spec.name, ""),
                                      renew.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            self.coordination.create_namespaced_lease(
                "kube-node-lease", client.V1Lease.model_validate(manifest)
            )

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            self.heartbeat()

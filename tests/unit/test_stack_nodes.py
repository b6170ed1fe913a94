"""The stack's nodes and network as data: addresses, ports and the configs each node is started with."""

from __future__ import annotations

import ipaddress
import itertools
import json
import tomllib
from pathlib import Path

import pytest

from devstack.layout import Layout, Network, Ports
from devstack.nodes import NODES, Node, nodes, render_cni_config, render_containerd_config, render_kubelet_config


def layout(offset: int) -> Layout:
    return Layout(cache=Path("/cache"), ports=Ports().shifted(offset), network=Network(index=offset // 100))


@pytest.mark.parametrize("offset", [0, 200])
def test_each_node_hands_out_its_own_addresses_inside_the_bridge_subnet(offset: int) -> None:
    net = layout(offset).network
    subnet = ipaddress.IPv4Network(net.subnet)
    assert ipaddress.IPv4Address(net.gateway) in subnet
    ranges = [tuple(ipaddress.IPv4Address(a) for a in net.pod_range(n)) for n in range(len(NODES))]
    for start, end in ranges:
        assert start in subnet and end in subnet and start < end
        assert not start <= ipaddress.IPv4Address(net.gateway) <= end
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end < start
    # The ClusterIP the stack routes to the API server is outside the pods' subnet.
    assert ipaddress.IPv4Address(net.kubernetes_service_ip) in ipaddress.IPv4Network(net.service_cidr)
    assert not ipaddress.IPv4Network(net.service_cidr).overlaps(subnet)


def test_two_stacks_on_one_machine_share_nothing() -> None:
    first, second = nodes(layout(0)), nodes(layout(200))
    a, b = first[0].layout.network, second[0].layout.network
    assert a.bridge != b.bridge and len(b.bridge) <= 15  # a Linux interface name
    assert not ipaddress.IPv4Network(a.subnet).overlaps(ipaddress.IPv4Network(b.subnet))
    assert not ipaddress.IPv4Network(a.service_cidr).overlaps(ipaddress.IPv4Network(b.service_cidr))
    places = [(n.socket, n.cgroup_root, n.kubelet_port, n.kubelet_port + 1) for n in first + second]
    for column in zip(*places, strict=True):
        assert len(set(column)) == len(column)
    # Nor do the kubelets' ports collide with the stack's other services.
    kubelet_ports = {n.kubelet_port + d for n in first for d in (0, 1)}
    other_ports = set(Ports().__dict__.values()) - {Ports().kubelet}
    assert not kubelet_ports & other_ports


def test_the_kubelet_config_carries_the_nodes_taints_and_keeps_to_its_own_places() -> None:
    for node in nodes(layout(0)):
        config = json.loads(render_kubelet_config(node, (Path("/pki/s.crt"), Path("/pki/s.key")), Path("/pki/ca.crt")))
        assert config["registerWithTaints"] == node.spec.taints
        assert config["cgroupRoot"] == node.cgroup_root and config["cgroupDriver"] == "cgroupfs"
        assert config["containerRuntimeEndpoint"] == f"unix://{node.socket}"
        assert config["address"] == node.layout.network.gateway and config["port"] == node.kubelet_port
        assert config["readOnlyPort"] == 0 and config["authentication"]["anonymous"]["enabled"] is False
        assert config["authorization"]["mode"] == "Webhook"
    fargate = next(n for n in nodes(layout(0)) if n.spec.short == "fargate")
    assert fargate.spec.taints == [{"key": "eks.amazonaws.com/compute-type", "value": "fargate",
                                    "effect": "NoSchedule"}]


def test_containerd_and_cni_configs_point_at_the_node_s_own_socket_dirs_and_range() -> None:
    node: Node = nodes(layout(0))[1]
    containerd = tomllib.loads(render_containerd_config(node))
    assert containerd["grpc"]["address"] == str(node.socket)
    cri = containerd["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"]["conf_dir"] == str(node.dir / "cni")
    [bridge] = json.loads(render_cni_config(node))["plugins"]
    assert bridge["bridge"] == node.layout.network.bridge and bridge["ipMasq"] is False
    [[pod_range]] = bridge["ipam"]["ranges"]
    assert (pod_range["rangeStart"], pod_range["rangeEnd"]) == node.layout.network.pod_range(node.number)
    assert bridge["ipam"]["dataDir"].startswith(str(node.dir))

"""The three-broker cluster and its fault proxies as data: what each broker listens on and advertises,
and that no port of it meets another port of the stack, or of a second stack on the machine."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from devstack import kafka_ha, toxiproxy
from devstack.layout import LOOPBACK, Layout, Network, Ports
from devstack.nodes import NODES as KUBE_NODES


def layout(offset: int) -> Layout:
    return Layout(cache=Path("/cache"), ports=Ports().shifted(offset), network=Network(index=offset // 100))


def test_each_broker_advertises_its_proxy_and_replicates_directly() -> None:
    stack = layout(0)
    proxies = {p.name: p for p in kafka_ha.proxies(stack)}
    for broker in kafka_ha.brokers(stack):
        props = broker.render_properties()
        listeners = dict(item.split("://") for item in props["listeners"].split(","))
        advertised = dict(item.split("://") for item in props["advertised.listeners"].split(","))
        # Clients get the proxy's address; the proxy forwards to the broker's own client listener.
        assert advertised["CLIENT"] == broker.advertised == proxies[broker.name].listen
        assert proxies[broker.name].upstream == listeners["CLIENT"]
        assert advertised["CLIENT"].startswith(stack.host) and listeners["CLIENT"].startswith(LOOPBACK)
        # Replication and the controllers never pass through a proxy.
        assert props["inter.broker.listener.name"] == "INTERNAL"
        assert advertised["INTERNAL"] == listeners["INTERNAL"]
        assert listeners["CONTROLLER"] in props["controller.quorum.voters"]
        assert props["node.id"] == str(broker.node)


def test_the_cluster_is_replicated_like_msk() -> None:
    props = kafka_ha.brokers(layout(0))[0].render_properties()
    assert props["controller.quorum.voters"].count("@") == 3
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    data_dirs = {b.render_properties()["log.dirs"] for b in kafka_ha.brokers(layout(0))}
    assert len(data_dirs) == 3


def stack_ports(stack: Layout) -> list[int]:
    """Every port a stack listens on, whatever the address."""
    p = stack.ports
    singles = [port for name, port in p.__dict__.items()
               if name not in ("kubelet", "kafka_ha", "kafka_ha_client", "kafka_ha_internal", "kafka_ha_controller")]
    kubelets = [p.kubelet + 10 * n + d for n in range(len(KUBE_NODES)) for d in (0, 1)]
    brokers = [base + n for base in (p.kafka_ha, p.kafka_ha_client, p.kafka_ha_internal, p.kafka_ha_controller)
               for n in range(len(kafka_ha.NODES))]
    return singles + kubelets + brokers


@pytest.mark.parametrize("offsets", list(itertools.combinations(range(0, 800, 100), 2)))
def test_no_two_stacks_on_one_machine_share_a_port(offsets: tuple[int, int]) -> None:
    first, second = (stack_ports(layout(o)) for o in offsets)
    assert len(set(first)) == len(first)
    assert not set(first) & set(second)


def test_the_aws_proxies_forward_to_moto() -> None:
    stack = layout(0)
    s3, dynamodb = toxiproxy.aws_proxies(stack)
    assert s3.upstream == dynamodb.upstream == f"{stack.host}:{stack.ports.aws}"
    assert toxiproxy.s3_endpoint(stack) == f"http://{s3.listen}"
    assert toxiproxy.dynamodb_endpoint(stack) == f"http://{dynamodb.listen}"

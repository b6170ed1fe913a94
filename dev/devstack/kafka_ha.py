"""A three-broker KRaft cluster like an MSK cluster, for the fault tests, from the same Maven jars.

Each broker is also a controller (three voters: the quorum survives one loss). Topics get three
replicas and `min.insync.replicas=2` by default, as do the group and transaction logs, so acks=all
and transactions keep working with one broker down. Clients reach broker n only through Toxiproxy:
each broker advertises its proxy's address (`kafka_ha` + n - 1 on the bridge's gateway), so a test
can slow, cut or black-hole the traffic of one broker or all; replication and the controllers talk
directly on loopback, as brokers in one VPC do while a client's network fails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from devstack import kafka
from devstack.faults import Proxy
from devstack.layout import LOOPBACK, Layout
from devstack.processes import Managed, StackError, wait_until

CLUSTER_ID = "Y3N2a2Fma2EtaGEtY2x1cw"
NODES = (1, 2, 3)
HEAP = "448m"
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class Broker:
    layout: Layout
    node: int

    @property
    def name(self) -> str:
        return f"kafka-ha-{self.node}"

    @property
    def advertised(self) -> str:
        """Where clients reach this broker: its Toxiproxy listener."""
        return f"{self.layout.host}:{self.layout.ports.kafka_ha + self.node - 1}"

    @property
    def client_listener(self) -> str:
        """The broker's own client listener, which only its proxy connects to."""
        return f"{LOOPBACK}:{self.layout.ports.kafka_ha_client + self.node - 1}"

    @property
    def service(self) -> Managed:
        return Managed(self.name, self.layout.run, self.layout.logs)

    @property
    def proxy(self) -> Proxy:
        return Proxy(self.name, listen=self.advertised, upstream=self.client_listener)

    def render_properties(self) -> dict[str, str]:
        p = self.layout.ports
        voters = ",".join(f"{n}@{LOOPBACK}:{p.kafka_ha_controller + n - 1}" for n in NODES)
        internal = f"{LOOPBACK}:{p.kafka_ha_internal + self.node - 1}"
        controller = f"{LOOPBACK}:{p.kafka_ha_controller + self.node - 1}"
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node),
            "controller.quorum.voters": voters,
            "listeners": f"CLIENT://{self.client_listener},INTERNAL://{internal},CONTROLLER://{controller}",
            "advertised.listeners": f"CLIENT://{self.advertised},INTERNAL://{internal}",
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            **kafka.storage_settings(self.layout.kafka_ha_dir / self.name / "data", replicas=3, min_insync=2),
        }

    def start(self) -> None:
        """Starts the broker if it is not running; does not wait for it (the cluster waits for all)."""
        if self.service.running():
            return
        directory = self.layout.kafka_ha_dir / self.name
        props = kafka.write_config(directory, self.render_properties())
        kafka.format_storage(self.layout, props, directory / "data", CLUSTER_ID)
        self.service.start(kafka.java_command(self.layout, directory, "kafka.Kafka", str(props), heap=HEAP),
                           env=dict(os.environ))


def brokers(layout: Layout) -> list[Broker]:
    return [Broker(layout, node) for node in NODES]


def bootstrap(layout: Layout) -> str:
    return ",".join(b.advertised for b in brokers(layout))


def services(layout: Layout) -> list[Managed]:
    return [b.service for b in brokers(layout)]


def proxies(layout: Layout) -> list[Proxy]:
    return [b.proxy for b in brokers(layout)]


def up(layout: Layout, timeout: float = START_TIMEOUT) -> None:
    """Starts whichever brokers are not running and waits until all three answer through their proxies.
    Toxiproxy must run first (what the brokers advertise is its listeners)."""
    missing = [b for b in brokers(layout) if not b.service.running()]
    if not missing:
        return
    kafka.fetch_jars()
    for b in missing:
        b.start()
    address = bootstrap(layout)

    def ready() -> bool:
        # A proxy accepts connections whether or not its broker listens: ask the brokers first.
        return all(kafka.listening(b.client_listener) for b in brokers(layout)) and \
            kafka.brokers_answer(address, len(NODES))

    for b in missing:
        try:
            wait_until(b.service, ready, timeout=timeout, what=f"three brokers in the metadata read through {address}")
        except StackError as error:
            raise StackError(f"the three-broker Kafka cluster did not start: {error}") from error

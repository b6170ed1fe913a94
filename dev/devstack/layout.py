"""Where the stack keeps its builds, its state and its ports: one place, read by every service."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What only the host talks to (etcd, the controllers, Kafka's controller listener) stays on loopback.
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    kafka: int = 9092
    kafka_controller: int = 9093
    kafka_sasl_ssl: int = 9094
    aws: int = 4566
    aws_gate: int = 4567  # the IAM gate in front of moto (devstack.iamgate)
    etcd: int = 2379
    etcd_peer: int = 2380
    apiserver: int = 6443
    controller_manager: int = 10257
    scheduler: int = 10259
    kubelet: int = 10250  # the first node's; each next node +10 (kubelet port, then its healthz)
    # The three-broker cluster: broker n (1-3) uses each base + n - 1. Clients reach it only through
    # Toxiproxy (`kafka_ha`, what the brokers advertise); `kafka_ha_client` is where those proxies
    # forward to, the inter-broker and controller listeners stay direct.
    kafka_ha: int = 9010
    kafka_ha_client: int = 9020
    kafka_ha_internal: int = 9030
    kafka_ha_controller: int = 9040
    toxiproxy: int = 8474  # its HTTP API
    s3_proxy: int = 4510  # Toxiproxy in front of moto, one proxy per service
    dynamodb_proxy: int = 4520

    def shifted(self, offset: int) -> Ports:
        """A second stack on one machine (CSVKAFKA_PORT_OFFSET) moves every port by the same amount."""
        return Ports(**{name: port + offset for name, port in self.__dict__.items()})


@dataclass(frozen=True)
class Network:
    """The stack's own bridge. Pods live on it, and every service they call listens on its gateway
    address, which the host's processes reach as well: nothing leaves the machine, and no pod needs
    hostNetwork (which the restricted Pod Security profile forbids). One per stack on a machine."""

    index: int

    @property
    def bridge(self) -> str:
        return f"csvkafka{self.index}"

    @property
    def gateway(self) -> str:
        return f"10.{88 + self.index}.0.1"

    @property
    def prefix(self) -> int:
        return 16

    @property
    def subnet(self) -> str:
        return f"10.{88 + self.index}.0.0/{self.prefix}"

    def pod_range(self, node: int) -> tuple[str, str]:
        """Node `node`'s pod addresses: its own /24 of the bridge's subnet."""
        return f"10.{88 + self.index}.{node + 1}.2", f"10.{88 + self.index}.{node + 1}.254"

    @property
    def service_cidr(self) -> str:
        return f"10.{96 + self.index}.0.0/24"

    @property
    def kubernetes_service_ip(self) -> str:
        """The `kubernetes` Service's ClusterIP, which the stack routes to the API server."""
        return f"10.{96 + self.index}.0.1"


@dataclass(frozen=True)
class Layout:
    cache: Path
    ports: Ports
    network: Network

    @classmethod
    def from_env(cls) -> Layout:
        cache = Path(os.environ.get("CSVKAFKA_CACHE", Path.home() / ".cache" / "csvkafka"))
        offset = int(os.environ.get("CSVKAFKA_PORT_OFFSET", "0"))
        return cls(cache=cache, ports=Ports().shifted(offset), network=Network(index=offset // 100 % 8))

    @property
    def api_server(self) -> str:
        return f"https://{self.host}:{self.ports.apiserver}"

    @property
    def host(self) -> str:
        """Where every service listens: the bridge's gateway, reachable from the host and from pods."""
        return self.network.gateway

    @property
    def bin(self) -> Path:
        return self.cache / "bin"

    @property
    def state(self) -> Path:
        """Data of running services (CSVKAFKA_STATE); wiped by nothing but `dev/stack down --purge`."""
        return Path(os.environ.get("CSVKAFKA_STATE", self.cache / "state"))

    @property
    def run(self) -> Path:
        """Pid files of the processes `up` started."""
        return self.state / "run"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def venv_bin(self) -> Path:
        return REPO / ".venv" / "bin"

    @property
    def kafka_dir(self) -> Path:
        return self.state / "kafka"

    @property
    def kafka_ha_dir(self) -> Path:
        return self.state / "kafka-ha"

    @property
    def toxiproxy_dir(self) -> Path:
        return self.state / "toxiproxy"

    @property
    def kube_dir(self) -> Path:
        return self.state / "kube"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kube_dir / "admin.kubeconfig"

    @property
    def kafka_ca_pem(self) -> Path:
        return self.kafka_dir / "tls" / "ca.pem"

    def tool_path(self) -> list[Path]:
        """Directories `env` puts first on PATH: the stack's own binaries, then the project's venv."""
        return [self.bin, self.venv_bin]

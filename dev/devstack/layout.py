"""Where the stack keeps its builds, its state and its ports: one place, read by every service."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    kafka: int = 9092
    kafka_controller: int = 9093
    kafka_sasl_ssl: int = 9094
    aws: int = 4566
    etcd: int = 2379
    etcd_peer: int = 2380
    apiserver: int = 6443
    controller_manager: int = 10257
    scheduler: int = 10259

    def shifted(self, offset: int) -> Ports:
        """A second stack on one machine (CSVKAFKA_PORT_OFFSET) moves every port by the same amount."""
        return Ports(**{name: port + offset for name, port in self.__dict__.items()})


@dataclass(frozen=True)
class Layout:
    cache: Path
    ports: Ports

    @classmethod
    def from_env(cls) -> Layout:
        cache = Path(os.environ.get("CSVKAFKA_CACHE", Path.home() / ".cache" / "csvkafka"))
        return cls(cache=cache, ports=Ports().shifted(int(os.environ.get("CSVKAFKA_PORT_OFFSET", "0"))))

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

"""Apache Kafka in KRaft mode, one node, run from its Maven jars.

Listeners: PLAINTEXT for most tests, SASL_SSL with SCRAM-SHA-512 (users created when the storage is
formatted, a CA generated at first start) for the security tests. Replication-factor-1 settings so
that transactions work on a single broker.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from devstack import certs
from devstack.layout import LOOPBACK, REPO, Layout
from devstack.processes import Managed, run_build, run_checked, wait_until

CLUSTER_ID = "Y3N2a2Fma2EtZGV2LXN0YQ"
KEYSTORE_PASSWORD = "csvkafka-dev-keystore"


@dataclass(frozen=True)
class ScramUser:
    name: str
    password: str


SCRAM_USERS = (ScramUser("csvkafka", "csvkafka-secret"), ScramUser("reader", "reader-secret"))


def render_properties(layout: Layout, keystore: Path) -> dict[str, str]:
    p = layout.ports
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOOPBACK}:{p.kafka_controller}",
        "listeners": f"PLAINTEXT://{layout.host}:{p.kafka},CONTROLLER://{LOOPBACK}:{p.kafka_controller},"
        f"SASL_SSL://{layout.host}:{p.kafka_sasl_ssl}",
        "advertised.listeners": f"PLAINTEXT://{layout.host}:{p.kafka},SASL_SSL://{layout.host}:{p.kafka_sasl_ssl}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(keystore),
        "ssl.keystore.password": KEYSTORE_PASSWORD,
        "ssl.key.password": KEYSTORE_PASSWORD,
        **storage_settings(layout.kafka_dir / "data", replicas=1, min_insync=1),
    }


def storage_settings(data: Path, *, replicas: int, min_insync: int) -> dict[str, str]:
    """What every broker of the stack shares: topics made by tests only, and how many copies of
    each partition (the internal topics of groups and transactions too) must exist and acknowledge."""
    return {
        "log.dirs": str(data),
        "num.partitions": "1",
        # Tests create their topics; a typo must not silently create one.
        "auto.create.topics.enable": "false",
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min_insync),
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_insync),
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": str(min_insync),
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": "1048588",
        "log.segment.bytes": str(256 * 1024 * 1024),
    }


LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


def service(layout: Layout) -> Managed:
    return Managed("kafka", layout.run, layout.logs)


def tls_dir(layout: Layout) -> Path:
    return layout.kafka_dir / "tls"


def java_command(layout: Layout, config_dir: Path, main_class: str, *args: str, heap: str = "256m") -> list[str]:
    return [
        "java", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={config_dir / 'log4j2.properties'}",
        "-cp", str(layout.cache / "kafka" / "libs" / "*"), main_class, *args,
    ]


def write_config(config_dir: Path, settings: dict[str, str]) -> Path:
    """The broker's server.properties and log4j2.properties in `config_dir`; returns the first."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "log4j2.properties").write_text(LOG4J2)
    props = config_dir / "server.properties"
    props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return props


def format_storage(layout: Layout, props: Path, data: Path, cluster_id: str, *extra: str) -> None:
    """Formats a broker's log dir once (KRaft needs it before the first start); later starts keep it."""
    if not (data / "meta.properties").exists():
        run_checked(java_command(layout, props.parent, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                                 "-c", str(props), *extra),
                    what=f"formatting the Kafka storage {data}")


def up(layout: Layout) -> None:
    svc = service(layout)
    if svc.running():
        return
    fetch_jars()
    tls = tls_dir(layout)
    ca_crt, _ = certs.ensure_ca(tls, "csvkafka-dev-kafka-ca")
    crt, key = certs.ensure_cert(
        tls, "broker", subject="/CN=localhost", server_names=[f"IP:{layout.host}", "IP:127.0.0.1", "DNS:localhost"]
    )
    keystore = certs.ensure_pkcs12(crt, key, ca_crt, tls / "broker.p12", KEYSTORE_PASSWORD)
    pem = layout.kafka_ca_pem
    if not pem.exists():
        pem.write_bytes(ca_crt.read_bytes())

    props = write_config(layout.kafka_dir, render_properties(layout, keystore))
    scram = [arg for u in SCRAM_USERS
             for arg in ("--add-scram", f"SCRAM-SHA-512=[name={u.name},password={u.password}]")]
    format_storage(layout, props, layout.kafka_dir / "data", CLUSTER_ID, *scram)
    svc.start(java_command(layout, layout.kafka_dir, "kafka.Kafka", str(props), heap="1g"), env=dict(os.environ))
    bootstrap = f"{layout.host}:{layout.ports.kafka}"
    wait_until(svc, lambda: brokers_answer(bootstrap, 1), timeout=120, what="metadata on the PLAINTEXT listener")


def fetch_jars() -> None:
    run_build(REPO / "dev" / "build" / "kafka.sh", what="fetching the Kafka jars")


def listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def brokers_answer(bootstrap: str, brokers: int) -> bool:
    """True once the metadata read through `bootstrap` lists at least `brokers` brokers."""
    if not listening(bootstrap.split(",", maxsplit=1)[0]):
        return False
    from confluent_kafka.admin import AdminClient

    # Quiet: refused connections are expected while a broker starts.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        return len(admin.list_topics(timeout=2).brokers) >= brokers
    except Exception:
        return False

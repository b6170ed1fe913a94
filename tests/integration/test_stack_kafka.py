"""The stack's Kafka is a real broker: transactions, read_committed, SCRAM over TLS; and its three-broker
cluster is replicated like MSK's, with every client connection through the fault proxy."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from devstack.faults import Toxiproxy
from tests.support import consume_all

pytestmark = pytest.mark.integration


def values(bootstrap: str, topic: str, *, isolation: str, **extra: str) -> list[bytes]:
    return [record.value for record in consume_all(bootstrap, topic, isolation=isolation, **extra)]


def test_transactions_are_atomic_for_read_committed(bootstrap_servers: str, kafka_topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "transactional.id": uuid.uuid4().hex})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(5):
        producer.produce(kafka_topic, f"committed-{i}".encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(kafka_topic, b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)

    committed = values(bootstrap_servers, kafka_topic, isolation="read_committed")
    uncommitted = values(bootstrap_servers, kafka_topic, isolation="read_uncommitted")

    assert committed == [f"committed-{i}".encode() for i in range(5)]
    assert b"aborted" in uncommitted


def sasl_config(stack_env: dict[str, str], password: str) -> dict[str, str]:
    return {
        "bootstrap.servers": stack_env["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"],
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": stack_env["KAFKA_SCRAM_USERNAME"],
        "sasl.password": password,
        "ssl.ca.location": stack_env["KAFKA_CA_PEM"],
    }


def test_scram_over_tls_with_the_right_password(stack_env: dict[str, str], kafka_topic: str) -> None:
    config = sasl_config(stack_env, stack_env["KAFKA_SCRAM_PASSWORD"])
    producer = Producer(config)
    producer.produce(kafka_topic, b"over-tls")
    assert producer.flush(30) == 0
    received = values(config["bootstrap.servers"], kafka_topic, isolation="read_committed",
                         **{k: v for k, v in config.items() if k != "bootstrap.servers"})
    assert received == [b"over-tls"]


def first_client_error(config: dict[str, str], timeout: float = 20.0) -> KafkaError:
    """Connects with `config` and returns the first error librdkafka reports (through error_cb)."""
    errors: list[KafkaError] = []
    admin = AdminClient({**config, "error_cb": errors.append})
    deadline = time.monotonic() + timeout
    while not errors and time.monotonic() < deadline:
        admin.poll(0.5)
    assert errors, "the client reported no error"
    return errors[0]


def test_scram_with_a_wrong_password_fails_with_an_authentication_error(stack_env: dict[str, str]) -> None:
    error = first_client_error(sasl_config(stack_env, "wrong-password"))
    assert error.code() == KafkaError._AUTHENTICATION
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in error.str()


def test_tls_rejects_a_broker_certificate_from_an_untrusted_ca(stack_env: dict[str, str]) -> None:
    config = sasl_config(stack_env, stack_env["KAFKA_SCRAM_PASSWORD"])
    config["ssl.ca.location"] = "/etc/ssl/certs/ca-certificates.crt"
    error = first_client_error(config)
    # librdkafka reports the failed handshake as _SSL or, depending on timing, as _TRANSPORT.
    assert error.code() in (KafkaError._SSL, KafkaError._TRANSPORT)
    assert "certificate verify failed" in error.str()


def test_the_three_broker_cluster_advertises_its_fault_proxies(ha_bootstrap: str, toxiproxy: Toxiproxy) -> None:
    brokers = AdminClient({"bootstrap.servers": ha_bootstrap}).list_topics(timeout=10).brokers
    advertised = {node: f"{b.host}:{b.port}" for node, b in brokers.items()}
    proxies = toxiproxy.proxies()
    assert advertised == {node: proxies[f"kafka-ha-{node}"].listen for node in (1, 2, 3)}
    assert sorted(advertised.values()) == sorted(ha_bootstrap.split(","))


def topic_configs(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(30)
    return {name: entry.value for name, entry in entries.items()}


def test_topics_of_the_three_broker_cluster_have_three_replicas_two_in_sync(ha_bootstrap: str, ha_topic: str
                                                                              ) -> None:
    admin = AdminClient({"bootstrap.servers": ha_bootstrap})
    partition = admin.list_topics(ha_topic, timeout=10).topics[ha_topic].partitions[0]
    assert sorted(partition.replicas) == [1, 2, 3]
    assert topic_configs(admin, ha_topic)["min.insync.replicas"] == "2"


def test_transactions_and_group_offsets_of_the_three_broker_cluster_are_replicated(ha_bootstrap: str,
                                                                                   ha_topic: str) -> None:
    producer = Producer({"bootstrap.servers": ha_bootstrap, "transactional.id": uuid.uuid4().hex})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(ha_topic, b"replicated")
    producer.commit_transaction(30)
    assert values(ha_bootstrap, ha_topic, isolation="read_committed") == [b"replicated"]

    admin = AdminClient({"bootstrap.servers": ha_bootstrap})
    for internal in ("__transaction_state", "__consumer_offsets"):
        assert replica_counts(admin, internal) == {3}, internal
        assert topic_configs(admin, internal)["min.insync.replicas"] == "2", internal


def replica_counts(admin: AdminClient, topic: str, timeout: float = 30) -> set[int]:
    """How many replicas the topic's partitions have, once the metadata lists every one of them
    (a topic the consumer made a moment ago may still be incomplete)."""
    deadline = time.monotonic() + timeout
    while True:
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
        counts = {len(p.replicas) for p in partitions}
        if counts == {3} or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)

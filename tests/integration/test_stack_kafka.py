"""The stack's Kafka is a real broker: transactions, read_committed, SCRAM over TLS."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

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

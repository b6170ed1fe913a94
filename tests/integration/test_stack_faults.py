"""The stack's fault proxy (Toxiproxy) really injects each fault the chaos tests rely on: latency,
cut connections, connections closed after N bytes (each new one again), an unreachable service for N
seconds, a black hole; and one reset removes them all. Traffic goes through the S3 and DynamoDB proxies
in front of moto, and through a broker's proxy of the three-broker cluster."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from devstack.faults import MiB, Toxiproxy

pytestmark = pytest.mark.integration

# One attempt and short timeouts: each fault must show in the first call, not be retried away.
NO_RETRIES = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=2)


@pytest.fixture
def s3_proxied(stack_env: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=stack_env["CSVKAFKA_S3_PROXY_URL"], config=NO_RETRIES)


@pytest.fixture
def dynamodb_proxied(stack_env: dict[str, str]) -> Any:
    return boto3.client("dynamodb", endpoint_url=stack_env["CSVKAFKA_DYNAMODB_PROXY_URL"], config=NO_RETRIES)


def timed(call: Any) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_latency_delays_each_response(toxiproxy: Toxiproxy, s3_proxied: Any, s3_bucket: str) -> None:
    def head() -> None:
        s3_proxied.head_bucket(Bucket=s3_bucket)

    assert timed(head) < 1.0
    toxiproxy.latency("s3", 1000)
    assert timed(head) >= 1.0
    toxiproxy.reset()
    assert timed(head) < 1.0


def test_reset_peer_cuts_every_connection(toxiproxy: Toxiproxy, dynamodb_proxied: Any) -> None:
    toxiproxy.reset_peer("dynamodb")
    for _ in range(2):
        with pytest.raises(BotoCoreError, match=r"Connection was closed|reset by peer"):
            dynamodb_proxied.list_tables()
    toxiproxy.reset()
    assert "TableNames" in dynamodb_proxied.list_tables()


def read_until_cut(body: Any) -> tuple[int, BaseException | None]:
    """Bytes read from a streaming body before it broke off (and why), or all of it (and None)."""
    received = 0
    try:
        while piece := body.read(64 * 1024):
            received += len(piece)
    except (BotoCoreError, OSError) as error:
        return received, error
    return received, None


def test_limit_data_closes_each_new_connection_after_the_same_bytes(toxiproxy: Toxiproxy, s3: Any,
                                                                    s3_proxied: Any, s3_bucket: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="big", Body=b"x" * (3 * MiB))
    toxiproxy.limit_data("s3", MiB)
    for _ in range(3):  # every GET gets a fresh connection (the previous one was closed): cut each time
        received, error = read_until_cut(s3_proxied.get_object(Bucket=s3_bucket, Key="big")["Body"])
        assert error is not None
        assert 0 < received < MiB
    toxiproxy.reset()
    assert read_until_cut(s3_proxied.get_object(Bucket=s3_bucket, Key="big")["Body"]) == (3 * MiB, None)


def reachable(client: Any) -> bool:
    try:
        client.list_tables()
    except BotoCoreError:
        return False
    return True


def test_disable_for_makes_a_service_unreachable_for_n_seconds(toxiproxy: Toxiproxy,
                                                               dynamodb_proxied: Any) -> None:
    outage = threading.Thread(target=toxiproxy.disable_for, args=(["dynamodb"], 3.0))
    outage.start()
    try:
        deadline = time.monotonic() + 5
        while reachable(dynamodb_proxied):
            assert time.monotonic() < deadline, "the proxy was never disabled"
        down_since = time.monotonic()
        with pytest.raises(BotoCoreError, match="Could not connect"):
            dynamodb_proxied.list_tables()
        while not reachable(dynamodb_proxied):
            assert time.monotonic() < down_since + 10, "the proxy was never enabled again"
            time.sleep(0.1)
        assert 2.0 < time.monotonic() - down_since < 6.0
    finally:
        outage.join(10)
    assert toxiproxy.proxies()["dynamodb"].enabled


def test_black_hole_accepts_connections_and_never_answers(toxiproxy: Toxiproxy, dynamodb_proxied: Any) -> None:
    toxiproxy.black_hole("dynamodb")
    with pytest.raises(BotoCoreError, match="Read timeout"):
        dynamodb_proxied.list_tables()
    toxiproxy.reset()
    assert reachable(dynamodb_proxied)


def test_reset_enables_every_proxy_and_removes_every_toxic(toxiproxy: Toxiproxy) -> None:
    toxiproxy.latency("kafka-ha-1", 100)
    toxiproxy.limit_data("s3", MiB)
    toxiproxy.bandwidth("s3", 512, stream="upstream")
    toxiproxy.set_enabled("kafka-ha-2", False)
    assert {t.type for t in toxiproxy.toxics("s3")} == {"limit_data", "bandwidth"}
    assert not toxiproxy.proxies()["kafka-ha-2"].enabled
    toxiproxy.reset()
    proxies = toxiproxy.proxies()
    assert all(p.enabled for p in proxies.values())
    assert all(toxiproxy.toxics(name) == [] for name in proxies)


@pytest.fixture
def leader_proxy(ha_bootstrap: str, ha_topic: str) -> str:
    """The proxy of the broker that leads the topic's partition."""
    metadata = AdminClient({"bootstrap.servers": ha_bootstrap}).list_topics(ha_topic, timeout=10)
    return f"kafka-ha-{metadata.topics[ha_topic].partitions[0].leader}"


def produce_one(bootstrap: str, topic: str, timeout_ms: int) -> KafkaError | None:
    """Produces one record with acks=all; the delivery error, or None once it is acknowledged."""
    outcome: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": timeout_ms,
                         "log_level": 0})
    producer.produce(topic, b"through-the-proxy", on_delivery=lambda error, _msg: outcome.append(error))
    producer.flush(timeout_ms / 1000 + 5)
    if not outcome:
        raise KafkaException("no delivery report")
    return outcome[0]


def test_a_brokers_client_traffic_goes_through_its_proxy(toxiproxy: Toxiproxy, ha_bootstrap: str, ha_topic: str,
                                                         leader_proxy: str) -> None:
    toxiproxy.latency(leader_proxy, 700)
    started = time.monotonic()
    assert produce_one(ha_bootstrap, ha_topic, 10_000) is None
    assert time.monotonic() - started >= 0.7
    toxiproxy.reset()
    with toxiproxy.disabled(leader_proxy):
        error = produce_one(ha_bootstrap, ha_topic, 3_000)
        assert error is not None and error.code() == KafkaError._MSG_TIMED_OUT
    assert produce_one(ha_bootstrap, ha_topic, 10_000) is None

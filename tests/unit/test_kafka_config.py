"""librdkafka settings for each authentication mode; the MSK IAM token is really signed (offline)."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from csvkafka_worker.kafka_config import producer_config, security, transactional_id
from csvkafka_worker.spec import AuthMechanism, AuthSpec, SinkSpec


def test_plaintext_by_default_and_tls_with_a_ca() -> None:
    assert security(AuthSpec()) == {"security.protocol": "PLAINTEXT"}
    assert security(AuthSpec(tls=True, ca_file="/ca.pem")) == {"security.protocol": "SSL",
                                                               "ssl.ca.location": "/ca.pem"}


def test_scram_over_tls() -> None:
    config = security(AuthSpec(mechanism=AuthMechanism.SCRAM_SHA_512, tls=True, username="u", password="p"))
    assert config == {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "u",
                      "sasl.password": "p"}


def test_msk_iam_signs_a_token_for_kafka_cluster_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    # Signing is local (SigV4 over a presigned URL): static test credentials stand in for IRSA's.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    config = security(AuthSpec(mechanism=AuthMechanism.MSK_IAM, region="eu-west-1"))
    assert (config["security.protocol"], config["sasl.mechanisms"]) == ("SASL_SSL", "OAUTHBEARER")
    token, expires_at = config["oauth_cb"]("")
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert url.startswith("https://kafka.eu-west-1.amazonaws.com/")
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert expires_at > 0


def test_user_properties_override_the_throughput_defaults() -> None:
    sink = SinkSpec(bootstrap_servers="b:9092", topic="t", producer={"linger.ms": "5", "acks": "all"})
    config = producer_config(sink, "client", transactional_id("bucket/key->t#0/2"), 120)
    assert config["linger.ms"] == "5" and config["enable.idempotence"] is True
    assert config["transactional.id"] == "csvkafka-bucket_key-_t_0_2"
    assert config["transaction.timeout.ms"] >= config["message.timeout.ms"]


@pytest.mark.parametrize(("budget", "message_ms", "transaction_ms"), [(120, 120_000, 120_000), (5, 5_000, 60_000),
                                                                      (900, 900_000, 900_000),
                                                                      (3600, 900_000, 900_000)])
def test_a_rows_delivery_timeout_is_the_kafka_retry_budget(budget: float, message_ms: int,
                                                           transaction_ms: int) -> None:
    # A transaction spans a checkpoint interval, so it never times out sooner than a minute, nor later than
    # the brokers allow.
    config = producer_config(SinkSpec(bootstrap_servers="b:9092", topic="t"), "c", "csvkafka-j", budget)
    assert (config["message.timeout.ms"], config["transaction.timeout.ms"]) == (message_ms, transaction_ms)
    at_least_once = producer_config(SinkSpec(bootstrap_servers="b", topic="t"), "c", None, 3600)
    assert "transaction.timeout.ms" not in at_least_once and at_least_once["message.timeout.ms"] == 3_600_000

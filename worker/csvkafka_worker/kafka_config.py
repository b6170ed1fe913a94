"""librdkafka configuration for the sink: throughput defaults, authentication, user overrides.

Pure apart from the MSK IAM token callback, which signs with the pod's AWS credentials (IRSA).
"""

from __future__ import annotations

import re
from typing import Any

from csvkafka_worker.spec import AuthMechanism, AuthSpec, SinkSpec

# Tuned for bulk loading: large, lz4-compressed batches, a bounded in-memory queue (the worker's
# memory budget), idempotence so that retries never duplicate or reorder. How long a row may wait
# for its acknowledgement (message.timeout.ms) is the Kafka retry budget.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 100,
    "batch.num.messages": 100_000,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 16_384,
    "socket.keepalive.enable": True,
}
# The shortest transaction timeout: a transaction lasts a checkpoint interval, whatever the budget;
# and the longest the brokers accept by default (transaction.max.timeout.ms, on MSK too).
MIN_TRANSACTION_MS = 60_000
MAX_TRANSACTION_MS = 900_000


def security(auth: AuthSpec) -> dict[str, Any]:
    """The connection and authentication part of the config, shared by producer, consumer and admin."""
    config: dict[str, Any] = {}
    sasl = auth.mechanism is not AuthMechanism.NONE
    tls = auth.tls or auth.mechanism is AuthMechanism.MSK_IAM
    config["security.protocol"] = {(False, False): "PLAINTEXT", (False, True): "SSL",
                                   (True, False): "SASL_PLAINTEXT", (True, True): "SASL_SSL"}[(sasl, tls)]
    if tls and auth.ca_file:
        config["ssl.ca.location"] = auth.ca_file
    if auth.mechanism in (AuthMechanism.SCRAM_SHA_256, AuthMechanism.SCRAM_SHA_512):
        config["sasl.mechanisms"] = auth.mechanism.value.upper()
        config["sasl.username"] = auth.username
        config["sasl.password"] = auth.password
    elif auth.mechanism is AuthMechanism.MSK_IAM:
        config["sasl.mechanisms"] = "OAUTHBEARER"
        config["oauth_cb"] = msk_iam_token_callback(auth.region)
    return config


def msk_iam_token_callback(region: str | None) -> Any:
    def token(_config: str) -> tuple[str, float]:
        import boto3
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        token_region = region or boto3.session.Session().region_name
        if not token_region:
            raise ValueError("msk-iam needs the cluster's region: set sink.auth.region or AWS_REGION")
        value, expiry_ms = MSKAuthTokenProvider.generate_auth_token(token_region)
        return value, expiry_ms / 1000

    return token


def client_base(sink: SinkSpec, client_id: str) -> dict[str, Any]:
    return {"bootstrap.servers": sink.bootstrap_servers, "client.id": client_id, **security(sink.auth)}


def producer_config(sink: SinkSpec, client_id: str, transactional_id: str | None, budget_seconds: float
                    ) -> dict[str, Any]:
    """The producer's settings; sink.producer overrides them (those that weaken delivery are refused
    by the spec, producer_guard.py)."""
    timeout_ms = int(budget_seconds * 1000)
    if transactional_id is not None:
        # librdkafka wants a row's timeout within its transaction's.
        timeout_ms = min(timeout_ms, MAX_TRANSACTION_MS)
    config = {**client_base(sink, client_id), **PRODUCER_DEFAULTS, "message.timeout.ms": timeout_ms}
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = max(timeout_ms, MIN_TRANSACTION_MS)
    config.update(sink.producer)
    return config


def transactional_id(job_id: str) -> str:
    """One transactional id per shard's job id: a restarted worker fences its predecessor."""
    return "csvkafka-" + re.sub(r"[^A-Za-z0-9._-]", "_", job_id)

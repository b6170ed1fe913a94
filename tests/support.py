"""Helpers for tests that run the worker and read what it wrote to Kafka."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

WORKER = [sys.executable, "-m", "csvkafka_worker", "run"]


@dataclass(frozen=True)
class Record:
    value: bytes
    key: bytes | None
    headers: dict[str, bytes]

    @property
    def row(self) -> int:
        return int(self.headers["csvkafka.row"])

    def json(self) -> Any:
        return orjson.loads(self.value)


def consume_all(bootstrap: str, topic: str, *, isolation: str = "read_committed", idle_polls: int = 4,
                **extra: str) -> list[Record]:
    """Every record of `topic`, read from the beginning until the topic stays quiet.

    Its partitions are assigned, not subscribed to: no group to join, so a read does not wait out the
    brokers' initial rebalance delay (3 s on MSK) or a group coordinator moving after a broker restart.
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest",
        "isolation.level": isolation, "enable.auto.commit": False, **extra,
    })
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    assert partitions, f"topic {topic} has no partitions (does it exist?)"
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[Record] = []
    idle = 0
    try:
        while idle < idle_polls:
            msg = consumer.poll(1.0)
            if msg is None:
                idle += 1
                continue
            assert msg.error() is None, msg.error()
            idle = 0
            raw_headers: list[tuple[str, bytes | None]] = list(msg.headers() or [])
            headers = {k: v for k, v in raw_headers if v is not None}
            records.append(Record(msg.value() or b"", msg.key(), headers))
    finally:
        consumer.close()
    return records


@contextlib.contextmanager
def new_topics(bootstrap: str, count: int) -> Iterator[list[str]]:
    """`count` topics of one partition, with the cluster's replication defaults; deleted at the end."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [f"topic-{uuid.uuid4().hex[:10]}" for _ in range(count)]
    for future in admin.create_topics([NewTopic(name, num_partitions=1) for name in names]).values():
        future.result(30)
    try:
        yield names
    finally:
        for future in admin.delete_topics(names).values():
            future.result(30)


def worker_args(*, source: str, bootstrap: str, topic: str, table: str, job_id: str, extra: list[str] | None = None
                ) -> list[str]:
    return [*WORKER, "--source", source, "--bootstrap-servers", bootstrap, "--topic", topic,
            "--checkpoint-table", table, "--job-id", job_id, "--progress", "log", *(extra or [])]


def run_worker(args: list[str], timeout: float = 180, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def last_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("csvkafka: error: ")]
    assert lines, f"no error line in:\n{stderr}"
    return lines[-1].removeprefix("csvkafka: error: ")


def events(stderr: str, name: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            event = orjson.loads(line)
            if event.get("event") == name:
                out.append(event)
    return out


def evict_pod(core_api: Any, namespace: str, name: str) -> None:
    """Evicts a pod through the Eviction API, as a Spot interruption handler (or a drain) does: the API
    server checks PodDisruptionBudgets, adds the DisruptionTarget condition and deletes the pod with its
    grace period, and its kubelet stops the container with SIGTERM."""
    from kubernetes import client

    body = client.V1Eviction(api_version="policy/v1", kind="Eviction",
                             metadata=client.V1ObjectMeta(name=name, namespace=namespace))
    # The server answers with a Status, not an Eviction: skip the client's model conversion.
    core_api.create_namespaced_pod_eviction(name, namespace, body, _preload_content=False)

"""The Kafka side: checking the topics, producing a block of rows, transactions, dead letters.

`produce()` is the only per-row Python call on the hot path; acknowledgements are counted per block
(see watermark.py). In exactly-once mode every block goes into the open transaction, and the
shard's position is written to the positions topic inside that same transaction, so records and
position are committed, or lost, together.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from csvkafka_worker.errors import BadInput, Infrastructure
from csvkafka_worker.kafka_config import client_base, producer_config
from csvkafka_worker.spec import SinkSpec
from csvkafka_worker.watermark import PendingBlock, Position

AUTH_ERRORS = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
               KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
               KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
Headers = list[tuple[str, str | bytes | None]]
# Per-record overhead of the v2 record format, as librdkafka counts it against message.max.bytes.
RECORD_OVERHEAD = 64


def probe(sink: SinkSpec, topics: Sequence[str], client_id: str, timeout: float = 20.0) -> None:
    """Fails fast, with the fix in the message, when the brokers or a topic are not usable."""
    errors: list[KafkaError] = []
    admin = AdminClient({**client_base(sink, client_id), "error_cb": errors.append})  # type: ignore[dict-item]
    where = f"Kafka at {sink.bootstrap_servers}"
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as error:
        admin.poll(0)
        for seen in errors:
            if seen.code() in AUTH_ERRORS or seen.code() == KafkaError._SSL:
                raise BadInput(f"{where} refused the connection: {seen.str()}; check sink.auth "
                               "(mechanism, credentials, TLS CA)", reason="KafkaAuthFailed") from error
        raise Infrastructure(f"{where} is unreachable ({error.args[0].str()}); check sink.bootstrapServers, "
                             "network/security groups and TLS settings", reason="KafkaUnreachable") from error
    for topic in topics:
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise BadInput(f"topic {topic!r} does not exist on {where}; create it (kafka-topics.sh --create "
                           f"--topic {topic}) or fix the topic name", reason="TopicNotFound")


class KafkaSink:
    def __init__(self, sink: SinkSpec, client_id: str, transactional_id: str | None) -> None:
        self.spec = sink
        self.transactional = transactional_id is not None
        config = producer_config(sink, client_id, transactional_id)
        self.max_message_bytes = int(config.get("message.max.bytes", 1_000_000))
        self._errors: list[KafkaError] = []
        config["error_cb"] = self._errors.append
        try:
            self.producer = Producer(config)
        except KafkaException as error:
            raise BadInput(f"the Kafka producer configuration is invalid: {error.args[0].str()}; fix sink.producer "
                           "(--producer-property)", reason="InvalidConfiguration") from error
        self._in_transaction = False
        if self.transactional:
            try:
                self.producer.init_transactions(60)
            except KafkaException as error:
                raise Infrastructure(f"initialising transactions on {sink.bootstrap_servers} failed: "
                                     f"{error.args[0].str()}", reason="KafkaUnreachable") from error

    def fatal_error(self) -> str | None:
        for error in self._errors:
            if error.fatal():
                return str(error.str())
        return None

    def begin(self) -> None:
        if self.transactional and not self._in_transaction:
            self.producer.begin_transaction()
            self._in_transaction = True

    def produce_rows(self, block: PendingBlock, values: Sequence[bytes], keys: Sequence[bytes | None] | None,
                     headers: Sequence[Headers] | None) -> None:
        """Enqueues a block's rows; each delivery report acks `block`."""
        produce, poll, topic = self.producer.produce, self.producer.poll, self.spec.topic

        # PendingBlock.ack inlined: this runs once per row, and an extra call per row shows in profiles.
        def ack(error: KafkaError | None, _message: Any) -> None:
            block.outstanding -= 1
            if error is not None:
                block.failures.append(str(error.str()))

        n, i = len(values), 0
        while i < n:
            try:
                if keys is None and headers is None:
                    for i in range(i, n):  # noqa: B020  (resumes at the row that hit a full queue)
                        produce(topic, values[i], on_delivery=ack)
                else:
                    for i in range(i, n):  # noqa: B020
                        produce(topic, values[i], keys[i] if keys else None, on_delivery=ack,
                                headers=headers[i] if headers else None)
                i = n
            except BufferError:
                # The local queue is full: serve delivery reports until there is room again.
                poll(0.05)

    def produce_dead_letter(self, block: PendingBlock, topic: str, record: bytes, headers: Headers) -> None:
        def ack(error: KafkaError | None, _message: Any) -> None:
            block.ack(None if error is None else f"dead-letter topic {topic}: {error.str()}")

        room = self.max_message_bytes - RECORD_OVERHEAD - sum(len(k) + len(v or b"") for k, v in headers) - 1024
        if len(record) > room:
            headers = [*headers, ("csvkafka.truncated-from", str(len(record)).encode())]
            record = record[:room]
        while True:
            try:
                self.producer.produce(topic, record, on_delivery=ack, headers=headers)
                return
            except BufferError:
                self.producer.poll(0.05)

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self, timeout: float) -> bool:
        """Waits for every delivery report; False if some are still missing at the deadline."""
        deadline = time.monotonic() + timeout
        while len(self.producer) > 0 and time.monotonic() < deadline:
            self.producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        return len(self.producer) == 0

    def commit(self, positions_topic: str, job_id: str, position: Position, counts: dict[str, Any],
               timeout: float = 60) -> None:
        """Writes the position into the open transaction and commits both (exactly-once mode)."""
        value = orjson.dumps({"row": position.row, "offset": position.offset, **counts})
        self.producer.produce(positions_topic, value, job_id.encode())
        try:
            self.producer.commit_transaction(timeout)
        except KafkaException as error:
            kafka_error = error.args[0]
            if kafka_error.code() == KafkaError._FENCED or "fenced" in kafka_error.str().lower():
                raise Infrastructure(f"another worker took over job {job_id} (this producer was fenced); "
                                     "this worker stops, the other one continues", reason="Fenced") from error
            raise Infrastructure(f"committing the transaction failed: {kafka_error.str()}",
                                 reason="KafkaUnreachable") from error
        self._in_transaction = False

    def abort(self) -> None:
        if self.transactional and self._in_transaction:
            # If the abort fails, the transaction times out on the broker all the same.
            with contextlib.suppress(KafkaException):
                self.producer.abort_transaction(30)
            self._in_transaction = False

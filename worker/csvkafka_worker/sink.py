"""The Kafka side: checking the topics, the producer, transactions, sending blocks through an engine.

One producer per worker, created by confluent-kafka with the engine's settings; the engine sends the
rows (native: a block at a time, outside Python). In exactly-once mode every block goes into the
open transaction, and the shard's position is written to the positions topic inside that same
transaction, so records and position are committed, or lost, together.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException, Producer

from csvkafka_worker.encode import RecordBlock
from csvkafka_worker.engine import Encodes, Engine, InFlight, SendPlan
from csvkafka_worker.errors import BadInput, Infrastructure, Reason
from csvkafka_worker.kafka_config import producer_config
from csvkafka_worker.positions import Mark, PositionRecord, PositionWriter
from csvkafka_worker.spec import SinkSpec

AUTH_ERRORS = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
               KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
               KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
# How long one call into the engine may wait for room in librdkafka's queue before Python serves
# delivery reports: the queue counts delivered messages until their reports are served (in C: the
# native rows' reports need no Python), so waiting longer only idles.
QUEUE_WAIT = 0.002
# How long the brokers may take to answer at start: one that never answered is more likely a wrong
# address than an outage, and the Job retries all the same.
START_SECONDS = 20.0


class KafkaSink:
    """Every wait is bounded by the Kafka retry budget (`budget`, seconds): a row's delivery timeout
    (message.timeout.ms) is the budget, so a flush ends by then, and so do transaction calls."""

    def __init__(self, sink: SinkSpec, client_id: str, transactional_id: str | None, engine: Engine, *,
                 budget: float, on_throttle: Callable[[], None]) -> None:
        self.spec = sink
        self.transactional = transactional_id is not None
        self.budget = budget
        config = producer_config(sink, client_id, transactional_id, budget)
        self.max_message_bytes = int(config.get("message.max.bytes", 1_000_000))
        self._errors: list[KafkaError] = []
        config["error_cb"] = self._errors.append
        config["throttle_cb"] = lambda _event: on_throttle()
        settings, bind = engine.producer_settings()
        config.update(settings)
        try:
            self.producer = Producer(config)
        except KafkaException as error:
            raise BadInput(f"the Kafka producer configuration is invalid: {error.args[0].str()}; fix sink.producer "
                           "(--producer-property)", reason=Reason.INVALID_CONFIGURATION) from error
        self.sender = bind(self.producer)
        self._in_transaction = False

    def check(self, topics: Sequence[str]) -> None:
        """Fails fast, with the fix in the message, when the brokers or a topic are not usable; then
        makes the producer ready for transactions (exactly-once mode)."""
        where = f"Kafka at {self.spec.bootstrap_servers}"
        try:
            metadata = self.producer.list_topics(timeout=min(self.budget, START_SECONDS))
        except KafkaException as error:
            self.producer.poll(0)
            for seen in self._errors:
                if seen.code() in AUTH_ERRORS or seen.code() == KafkaError._SSL:
                    raise BadInput(f"{where} refused the connection: {seen.str()}; check sink.auth "
                                   "(mechanism, credentials, TLS CA)", reason=Reason.KAFKA_AUTH_FAILED) from error
            raise Infrastructure(f"{where} is unreachable ({error.args[0].str()}); check sink.bootstrapServers, "
                                 "network/security groups and TLS settings",
                                 reason=Reason.KAFKA_UNREACHABLE) from error
        for topic in topics:
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                raise BadInput(f"topic {topic!r} does not exist on {where}; create it (kafka-topics.sh --create "
                               f"--topic {topic}) or fix the topic name", reason=Reason.TOPIC_NOT_FOUND)
        if self.transactional:
            try:
                self.producer.init_transactions(self.budget)
            except KafkaException as error:
                raise Infrastructure(f"initialising transactions on {self.spec.bootstrap_servers} failed: "
                                     f"{error.args[0].str()}", reason=Reason.KAFKA_UNREACHABLE) from error

    def fatal_error(self) -> str | None:
        for error in self._errors:
            if error.fatal():
                return str(error.str())
        return None

    def begin(self) -> None:
        if self.transactional and not self._in_transaction:
            self.producer.begin_transaction()
            self._in_transaction = True

    def send(self, encoded: Encodes, block: RecordBlock, plan: SendPlan) -> InFlight:
        """Produces a block's rows (and dead letters); returns their acknowledgements."""
        flight = self.sender.send(encoded, block, plan)
        while not flight.produce(QUEUE_WAIT):
            # The local queue stayed full: serve delivery reports (waiting a little for the next ones),
            # and stop on a fatal error.
            self.producer.poll(0.005)
            fatal = self.fatal_error()
            if fatal is not None:
                raise Infrastructure(f"the Kafka producer failed: {fatal}", reason=Reason.KAFKA_UNREACHABLE)
        return flight

    def poll(self) -> None:
        self.producer.poll(0)

    def queued(self) -> int:
        return len(self.producer)

    def flush(self, timeout: float | None = None) -> bool:
        """Waits for every delivery report; False if some are still missing at the deadline (by default
        the budget and a little: every row is acknowledged or has failed by then)."""
        deadline = time.monotonic() + (self.budget + 10 if timeout is None else timeout)
        while len(self.producer) > 0 and time.monotonic() < deadline:
            self.producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        return len(self.producer) == 0

    def commit(self, writer: PositionWriter, record: PositionRecord) -> Mark:
        """Writes the position into the open transaction and commits both (exactly-once mode); the mark
        of the committed position, to checkpoint."""
        writer.produce(self.producer, record)
        self._commit(f"job {writer.key.decode()}")
        return writer.committed(self.producer.poll)

    def _commit(self, what: str) -> None:
        try:
            self.producer.commit_transaction(self.budget)
        except KafkaException as error:
            kafka_error = error.args[0]
            if kafka_error.code() == KafkaError._FENCED or "fenced" in kafka_error.str().lower():
                raise Infrastructure(f"another worker took over {what} (this producer was fenced); "
                                     "this worker stops, the other one continues", reason=Reason.FENCED) from error
            raise Infrastructure(f"committing the transaction failed: {kafka_error.str()}",
                                 reason=Reason.KAFKA_UNREACHABLE) from error
        self._in_transaction = False

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """One record beside the rows (a receipt): in exactly-once mode, into the open transaction."""
        self.producer.produce(topic, value, key)

    def deliver(self, topic: str, key: bytes, value: bytes) -> None:
        """One record on its own, acknowledged (in exactly-once mode, committed) before this returns."""
        if self.transactional:
            self.begin()
            self.produce(topic, key, value)
            self._commit(f"a record to {topic}")
            return
        self.produce(topic, key, value)
        if not self.flush():
            raise Infrastructure(f"Kafka did not acknowledge a record to {topic} within {self.budget + 10:.0f}s",
                                 reason=Reason.KAFKA_UNREACHABLE)

    def abort(self) -> None:
        if self.transactional and self._in_transaction:
            # If the abort fails, the transaction times out on the broker all the same.
            with contextlib.suppress(KafkaException):
                self.producer.abort_transaction(min(30.0, self.budget))
            self._in_transaction = False

    def close(self) -> None:
        """Drops what was not delivered and destroys the producer now, so that librdkafka's last words
        come before the worker's own last line."""
        with contextlib.suppress(KafkaException, RuntimeError):
            self.producer.purge()
            self.producer.flush(5)
        del self.sender
        del self.producer

"""The hot path's two engines: the native core, and the Python path that is its reference.

Both split blocks into records, encode them and produce them; both give byte-identical records.
`choose` picks the native core where it can run (the extension is built, confluent-kafka's
librdkafka supports plugins, the encoding is UTF-8) and says why not otherwise; `--engine` forces
one. The native core produces through the very producer confluent-kafka created (see
worker/native/src/flight.rs), so configuration, authentication, transactions and the positions
record stay with confluent-kafka, and a transaction's commit or abort covers the native rows.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, Producer

from csvkafka_worker import records
from csvkafka_worker.encode import BadKind, BadRecord, Encoded, RecordBlock, RowEncoder
from csvkafka_worker.errors import ConfigError
from csvkafka_worker.options import EngineChoice
from csvkafka_worker.watermark import Acks, RowAcks

Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True)
class SendPlan:
    """What to send of an encoded block, and how."""

    topic: str
    source: bytes  # the csvkafka.source header
    row_headers: bool  # rows carry csvkafka.source and csvkafka.row (and csvkafka.shard)
    shard: bytes | None
    first_row: int  # the row number of the block's first row
    stop: int  # rows of records before this index are sent
    dead_letters: tuple[tuple[int, str], ...]  # (record index, reason)
    dead_letter_topic: str | None
    max_message: int  # the producer's message.max.bytes


class Encodes(Protocol):
    """A block's values and keys, kept by its engine, and its bad records."""

    @property
    def bad(self) -> list[BadRecord]: ...
    @property
    def sendable(self) -> int: ...
    def sendable_before(self, stop: int) -> int: ...


class InFlight(Acks, Protocol):
    def produce(self, max_wait: float) -> bool:
        """Produces what is left; False if the producer's queue stayed full for `max_wait` seconds."""
        ...


class Sender(Protocol):
    def send(self, encoded: Any, block: RecordBlock, plan: SendPlan) -> InFlight: ...


class Scanner(Protocol):
    @property
    def offset(self) -> int: ...
    def feed(self, chunk: bytes) -> RecordBlock | None: ...
    def finish(self) -> RecordBlock | None: ...


class Encoder(Protocol):
    def encode(self, block: RecordBlock) -> Encodes: ...


class Engine(Protocol):
    name: str

    def scanner(self, start: int, max_record: int, state: records.State = records.State.START_RECORD) -> Scanner: ...

    def transfer(self, data: bytes, length: int) -> str:
        """The csv machine's transfer over data[:length] (records.transfer), as 9 digits."""
        ...

    def encoder(self, header: tuple[str, ...], *, json: bool, key_column: str | None, max_value: int) -> Encoder: ...

    def producer_settings(self) -> tuple[dict[str, Any], Callable[[Producer], Sender]]:
        """Settings the producer needs for this engine, and how to get its sender once created."""
        ...


# -- Python -----------------------------------------------------------------------------------------


class PythonEngine:
    name = "python"

    def __init__(self, dialect: records.Dialect, encoding: str) -> None:
        self.dialect = dialect
        self.encoding = encoding

    def scanner(self, start: int, max_record: int, state: records.State = records.State.START_RECORD) -> Scanner:
        return records.Scanner(self.dialect, start=start, max_record=max_record, state=state, encoding=self.encoding)

    def transfer(self, data: bytes, length: int) -> str:
        return "".join(str(int(state)) for state in records.transfer(self.dialect, data, length))

    def encoder(self, header: tuple[str, ...], *, json: bool, key_column: str | None, max_value: int) -> Encoder:
        return RowEncoder(header, self.dialect, self.encoding, json=json, key_column=key_column, max_value=max_value)

    def producer_settings(self) -> tuple[dict[str, Any], Callable[[Producer], Sender]]:
        return {}, PythonSender


class PythonSender:
    """One produce() per row, each acknowledged by a delivery report served by poll()."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer

    def send(self, encoded: Encoded, block: RecordBlock, plan: SendPlan) -> InFlight:
        flight = PythonFlight(self.producer)
        rows = [j for j, i in enumerate(encoded.indices) if i < plan.stop]
        headers: list[Headers | None] = [None] * len(rows)
        source = ("csvkafka.source", plan.source)
        if plan.row_headers:
            shard = [("csvkafka.shard", plan.shard)] if plan.shard is not None else []
            headers = [[source, ("csvkafka.row", b"%d" % (plan.first_row + block.ordinal(encoded.indices[j]) - 1)),
                        *shard] for j in rows]
        keys = encoded.keys
        flight.messages = [(plan.topic, encoded.values[j], keys[j] if keys is not None else None, h)
                           for j, h in zip(rows, headers, strict=True)]
        for index, reason in plan.dead_letters:
            assert plan.dead_letter_topic is not None
            flight.messages.append((plan.dead_letter_topic, *_dead_letter(block, index, reason, source, plan)))
        flight.acks.outstanding = len(flight.messages)
        return flight


def _dead_letter(block: RecordBlock, index: int, reason: str, source: tuple[str, bytes], plan: SendPlan
                 ) -> tuple[bytes, None, Headers]:
    """A bad record as a dead letter: its bytes (cut to fit a message), where it came from, why."""
    record = block.record(index)
    headers: Headers = [source, ("csvkafka.row", b"%d" % (plan.first_row + block.ordinal(index) - 1)),
                        ("csvkafka.offset", b"%d" % (block.start + block.record_start(index))),
                        ("csvkafka.reason", reason.encode())]
    room = max(1, plan.max_message - records_overhead(headers))
    if len(record) > room:
        headers.append(("csvkafka.truncated-from", b"%d" % len(record)))
        record = record[:room]
    return record, None, headers


# Per-record overhead of the v2 record format, as librdkafka counts it against message.max.bytes.
RECORD_OVERHEAD = 64


def records_overhead(headers: Headers) -> int:
    """What a message's headers and record overhead take of message.max.bytes, with 1 KiB to spare."""
    return RECORD_OVERHEAD + sum(len(k) + len(v or b"") for k, v in headers) + 1024


class PythonFlight:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.acks = RowAcks()
        self.messages: list[tuple[str, bytes, bytes | None, Headers | None]] = []
        self._next = 0

    @property
    def outstanding(self) -> int:
        return self.acks.outstanding

    def failures(self) -> list[str]:
        return self.acks.errors

    def produce(self, max_wait: float) -> bool:
        acks = self.acks

        # RowAcks.ack inlined: this runs once per row, and an extra call per row shows in profiles.
        def ack(error: KafkaError | None, _message: Any) -> None:
            acks.outstanding -= 1
            if error is not None:
                acks.errors.append(str(error.str()))

        produce, messages = self.producer.produce, self.messages
        full_since: float | None = None
        while self._next < len(messages):
            try:
                for i in range(self._next, len(messages)):
                    topic, value, key, headers = messages[i]
                    produce(topic, value, key, on_delivery=ack, headers=headers)
                    self._next = i + 1
            except BufferError:
                # The local queue is full: serve delivery reports until there is room again.
                full_since = full_since or time.monotonic()
                if time.monotonic() - full_since > max_wait:
                    return False
                self.producer.poll(0.05)
        self.messages = []
        return True


# -- native -----------------------------------------------------------------------------------------


class NativeEngine:
    name = "native"

    def __init__(self, dialect: records.Dialect, native: Any, encoding: str = "utf-8") -> None:
        self.dialect = dialect
        self.native = native
        self.encoding = codecs.lookup(encoding).name
        native.keep_freed_buffers()
        self._dialect = {"delimiter": dialect.delimiter, "quote": dialect.quote, "escape": dialect.escape,
                         "doublequote": dialect.doublequote}

    def scanner(self, start: int, max_record: int, state: records.State = records.State.START_RECORD) -> Scanner:
        return NativeScanner(self.native.Scanner(start=start, max_record=max_record, state=int(state),
                                                 **self._dialect), self.native.RecordTooLarge, max_record)

    def transfer(self, data: bytes, length: int) -> str:
        return str(self.native.transfer(data, length, **self._dialect))

    def encoder(self, header: tuple[str, ...], *, json: bool, key_column: str | None, max_value: int) -> Encoder:
        key_index = header.index(key_column) if key_column is not None else None
        return NativeEncoder(self.native.Encoder(encoding=self.encoding, names=list(header), json=json,
                                                 key_index=key_index, max_value=max_value, **self._dialect))

    def producer_settings(self) -> tuple[dict[str, Any], Callable[[Producer], Sender]]:
        token = self.native.new_token()
        settings = {
            # librdkafka loads the native core as a plugin of this producer (it is loaded already:
            # the same copy), which then counts acknowledgements per block in librdkafka's threads.
            "plugin.library.paths": self.native.__file__,
            self.native.TOKEN_PROPERTY: str(token),
        }
        return settings, lambda producer: NativeSender(self.native.attach(token), producer)


class NativeScanner:
    def __init__(self, scanner: Any, too_large: type[Exception], max_record: int) -> None:
        self._scanner = scanner
        self._too_large = too_large
        self._max_record = max_record

    @property
    def offset(self) -> int:
        return int(self._scanner.offset)

    def feed(self, chunk: bytes) -> RecordBlock | None:
        try:
            block: RecordBlock | None = self._scanner.feed(chunk)
        except self._too_large as error:
            raise records.RecordTooLarge(error.args[0], self._max_record, error.args[1]) from None
        return block

    def finish(self) -> RecordBlock | None:
        try:
            block: RecordBlock | None = self._scanner.finish()
        except self._too_large as error:
            raise records.RecordTooLarge(error.args[0], self._max_record, error.args[1]) from None
        return block


class NativeEncoded:
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.bad = [BadRecord(index, BadKind(kind), a, b) for index, kind, a, b in raw.bad]
        self.sendable: int = raw.sendable

    def sendable_before(self, stop: int) -> int:
        return int(self.raw.sendable_before(stop))


class NativeEncoder:
    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder

    def encode(self, block: RecordBlock) -> Encodes:
        return NativeEncoded(self._encoder.encode(block))


class NativeSender:
    def __init__(self, link: Any, producer: Producer) -> None:
        self.link = link
        self.producer = producer  # kept alive as long as rows may be sent through its handle

    def send(self, encoded: NativeEncoded, block: RecordBlock, plan: SendPlan) -> InFlight:
        return NativeFlight(self.link.send(
            encoded.raw, stop=plan.stop, topic=plan.topic, source=plan.source, row_headers=plan.row_headers,
            shard=plan.shard, first_row=plan.first_row, dead_letters=list(plan.dead_letters),
            dead_letter_topic=plan.dead_letter_topic, max_message=plan.max_message))


class NativeFlight:
    def __init__(self, flight: Any) -> None:
        self._flight = flight

    @property
    def outstanding(self) -> int:
        return int(self._flight.outstanding)

    def failures(self) -> list[str]:
        failed: int = self._flight.failed
        if not failed:
            return []
        reasons = [str(KafkaError(code).str()) for code in self._flight.errors]
        return reasons + ([f"and {failed - len(reasons)} more"] if failed > len(reasons) else [])

    def produce(self, max_wait: float) -> bool:
        return bool(self._flight.produce(max_wait))


def first_boundary(engine: Engine, chunks: Iterator[bytes], state: records.State, remaining: int,
                   max_record: int) -> int:
    """Bytes of `chunks` up to the first record boundary, the machine being in `state` at their start;
    `remaining` (all of them) when the data ends first."""
    scanner = engine.scanner(0, max_record, state)
    for chunk in chunks:
        block = scanner.feed(chunk)
        if block is not None:
            return block.record_end(0)
    last = scanner.finish()
    return last.record_end(0) if last is not None else remaining


# -- the choice -------------------------------------------------------------------------------------


# The encodings the native core reads (codecs.lookup(...).name); the others run on the Python path.
NATIVE_ENCODINGS = ("utf-8", "utf-8-sig", "ascii", "iso8859-1", "cp1252")


def native_unavailable(encoding: str) -> tuple[Any, str | None]:
    """The native module, or why it cannot run here."""
    if codecs.lookup(encoding).name not in NATIVE_ENCODINGS:
        return None, f"the native core reads UTF-8, ASCII, Latin-1 and cp1252, and this object is {encoding}"
    try:
        import confluent_kafka  # noqa: F401  (librdkafka must be loaded before the core binds to it)

        from csvkafka_worker import _native  # type: ignore[attr-defined]
    except ImportError as error:
        return None, f"the native core is not built ({error}); reinstall csvkafka with a Rust toolchain (cargo)"
    why: str | None = _native.check()
    return (_native, None) if why is None else (None, why)


def choose(choice: EngineChoice, dialect: records.Dialect, encoding: str) -> tuple[Engine, str]:
    """The engine to run, and why (said once in the log)."""
    if choice is EngineChoice.PYTHON:
        return PythonEngine(dialect, encoding), "--engine python"
    native, why_not = native_unavailable(encoding)
    if native is not None:
        return NativeEngine(dialect, native, encoding), "the native core"
    if choice is EngineChoice.NATIVE:
        raise ConfigError(f"--engine native cannot run here: {why_not}; use --engine auto or python")
    return PythonEngine(dialect, encoding), f"{why_not}: the Python path runs instead"

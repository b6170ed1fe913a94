"""The native engine: the worker's per-row work in the native core (worker/native), through the
producer confluent-kafka created (see docs/architecture.md, "The native core and the one Kafka
client")."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Producer

from csvkafka_worker import records
from csvkafka_worker.encode import BadKind, BadRecord, RecordBlock
from csvkafka_worker.engine import Encoder, Encodes, InFlight, Scanner, Sender, SendPlan
from csvkafka_worker.watermark import Counts

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


def native_dialect(native: Any, dialect: records.Dialect) -> Any:
    """The native core's copy of a dialect."""
    return native.Dialect(delimiter=dialect.delimiter, quote=dialect.quote, escape=dialect.escape,
                          doublequote=dialect.doublequote)


class NativeEngine:
    name = "native"

    def __init__(self, dialect: records.Dialect, native: Any, encoding: str = "utf-8") -> None:
        self.dialect = dialect
        self.native = native
        self.encoding = codecs.lookup(encoding).name
        native.keep_freed_buffers()
        self._dialect = native_dialect(native, dialect)

    def scanner(self, start: int, max_record: int, state: records.State = records.State.START_RECORD) -> Scanner:
        return NativeScanner(self.native.Scanner(self._dialect, start=start, max_record=max_record, state=int(state)),
                             self.native.RecordTooLarge, max_record)

    def transfer(self, data: bytes, length: int) -> str:
        return str(self.native.transfer(data, length, self._dialect))

    def encoder(self, header: tuple[str, ...], *, json: bool, key_column: str | None, max_value: int) -> Encoder:
        key_index = header.index(key_column) if key_column is not None else None
        return NativeEncoder(self.native.Encoder(self._dialect, encoding=self.encoding, names=list(header), json=json,
                                                 key_index=key_index, max_value=max_value))

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

    def receipt(self) -> Counts:
        return Counts(checksum=int(self._flight.checksum),
                      offsets={partition: (first, last) for partition, first, last in self._flight.offsets})

    def produce(self, max_wait: float) -> bool:
        return bool(self._flight.produce(max_wait))

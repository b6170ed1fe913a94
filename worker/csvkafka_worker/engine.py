"""What an engine of the hot path is, and which one runs.

Two engines split blocks into records, encode them and produce them, and give byte-identical
records: the native core (native_engine.py) and the Python path that is its reference
(python_engine.py). `choose` picks the native core where it can run (the extension is built,
confluent-kafka's librdkafka supports plugins, the encoding is one it reads) and says why not
otherwise; `--engine` forces one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Producer

from csvkafka_worker import records
from csvkafka_worker.encode import BadRecord, RecordBlock
from csvkafka_worker.errors import ConfigError
from csvkafka_worker.options import EngineChoice
from csvkafka_worker.watermark import Acks

Headers = list[tuple[str, str | bytes | None]]
# Per-record overhead of the v2 record format, as librdkafka counts it against message.max.bytes.
RECORD_OVERHEAD = 64


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


# -- the choice ---------------------------------------------------------------------------------


def choose(choice: EngineChoice, dialect: records.Dialect, encoding: str) -> tuple[Engine, str]:
    """The engine to run, and why (said once in the log)."""
    from csvkafka_worker.native_engine import NativeEngine, native_unavailable
    from csvkafka_worker.python_engine import PythonEngine

    if choice is EngineChoice.PYTHON:
        return PythonEngine(dialect, encoding), "--engine python"
    native, why_not = native_unavailable(encoding)
    if native is not None:
        return NativeEngine(dialect, native, encoding), "the native core"
    if choice is EngineChoice.NATIVE:
        raise ConfigError(f"--engine native cannot run here: {why_not}; use --engine auto or python")
    return PythonEngine(dialect, encoding), f"{why_not}: the Python path runs instead"

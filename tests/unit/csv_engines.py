"""Both engines' scanners and encoders behind one small interface, and an independent reference of
the csv module's state machine, for the unit tests of splitting, encoding and shard planning.

`reference_states` transcribes `parse_process_char` of CPython 3.11's Modules/_csv.c (states only)
with the line structure `io.StringIO(text, newline="")` gives it; it shares no code with records.py
or the native core, so the tests can hold both against it.
"""

from __future__ import annotations

import csv
import importlib
import io
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import confluent_kafka  # noqa: F401  (librdkafka is loaded before the native core binds to it)
import pytest
from hypothesis import strategies as st

from csvkafka_worker.encode import BadRecord, RecordBlock
from csvkafka_worker.engine import Engine
from csvkafka_worker.native_engine import NativeEngine, native_dialect
from csvkafka_worker.python_engine import PythonEngine
from csvkafka_worker.records import Dialect, State

csv.field_size_limit(2**31 - 1)

try:
    NATIVE: Any = importlib.import_module("csvkafka_worker._native")
except ImportError as error:  # not built: the native half of each test is skipped, saying why
    NATIVE = None
    NATIVE_MISSING = f"the native core is not built: {error}"
else:
    NATIVE_MISSING = ""

ENGINES = ("python", "native")


def engine_param(name: str) -> Any:
    """A pytest parameter for one engine; the native one is skipped when the core is not built."""
    marks = [pytest.mark.skipif(NATIVE is None, reason=NATIVE_MISSING)] if name == "native" else []
    return pytest.param(name, marks=marks, id=name)


ENGINE_PARAMS = [engine_param(name) for name in ENGINES]


RFC4180 = Dialect()


def make_engine(name: str, dialect: Dialect = RFC4180, encoding: str = "utf-8") -> Engine:
    if name == "python":
        return PythonEngine(dialect, encoding)
    if NATIVE is None:
        pytest.skip(NATIVE_MISSING)
    return NativeEngine(dialect, NATIVE, encoding)


def native_dialect_of(dialect: Dialect) -> Any:
    """The dialect as the native API takes it."""
    return native_dialect(NATIVE, dialect)


def chunks(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """`data` cut at these offsets (ascending); the pieces may be empty."""
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def scan(engine: Engine, data: bytes, cuts: Sequence[int] = (), *, start: int = 0, max_record: int = 1 << 20,
         state: State = State.START_RECORD) -> list[RecordBlock]:
    """Every block the engine's scanner returns for `data` fed in pieces, then finished."""
    scanner = engine.scanner(start, max_record, state)
    blocks = [block for piece in chunks(data, cuts) if (block := scanner.feed(piece)) is not None]
    last = scanner.finish()
    return blocks if last is None else [*blocks, last]


@dataclass(frozen=True)
class Rec:
    """One record, in stream offsets."""

    start: int
    content_end: int
    end: int
    ordinal: int


def records_of(blocks: Sequence[RecordBlock]) -> list[Rec]:
    return [Rec(b.start + b.record_start(i), b.start + b.content_end(i), b.start + b.record_end(i), b.ordinal(i))
            for b in blocks for i in range(b.count)]


def block_shapes(blocks: Sequence[RecordBlock]) -> list[tuple[int, int, int, int, bool, bytes]]:
    return [(b.start, b.size, b.count, b.rows, b.unterminated, b.data) for b in blocks]


@dataclass(frozen=True)
class Output:
    """An encoded block as plain data: the same for both engines when they agree."""

    indices: list[int]
    values: list[bytes]
    keys: list[bytes] | None
    bad: list[BadRecord]
    sendable: int
    sendable_before: list[int]  # sendable_before(i) for i in 0..count


def encode(engine: Engine, block: RecordBlock, header: tuple[str, ...], *, json: bool, key_column: str | None,
           max_value: int) -> Output:
    encoded: Any = engine.encoder(header, json=json, key_column=key_column, max_value=max_value).encode(block)
    before = [encoded.sendable_before(i) for i in range(block.count + 1)]
    if engine.name == "native":
        raw = encoded.raw
        indices, values, keys = list(raw.indices()), list(raw.values()), raw.keys()
    else:
        indices, values, keys = list(encoded.indices), list(encoded.values), encoded.keys
    if keys is not None:
        keys = list(keys)
    if not indices and keys == []:
        keys = None  # the native core has no keys to give without a row (the Python encoder gives [])
    return Output(indices, values, keys, list(encoded.bad), encoded.sendable, before)


def csv_rows(text: str, dialect: Dialect) -> list[list[str]]:
    """What the csv module reads (the reference)."""
    return list(csv.reader(io.StringIO(text, newline=""), **dialect.reader_kwargs()))


def decode(data: bytes) -> str:
    """UTF-8, undecodable bytes kept as lone surrogates (which the csv module reads as data)."""
    return data.decode("utf-8", "surrogateescape")


def parse_alone(record: bytes, dialect: Dialect) -> list[str]:
    """One record's bytes read on their own by the csv module: its row ([] for a blank record)."""
    rows = csv_rows(decode(record), dialect)
    assert len(rows) <= 1, f"{record!r} holds {len(rows)} rows"
    return rows[0] if rows else []


# -- the reference state machine (Modules/_csv.c, 3.11) ---------------------------------------------

EOL = -1
S = State


def reference_step(d: Dialect, s: State, c: int) -> State:
    """parse_process_char's state change for character `c` (EOL: the end of a line)."""
    newline = c in (0x0A, 0x0D)
    if s is S.START_RECORD:
        if c == EOL:
            return S.START_RECORD
        if newline:
            return S.EAT_CRNL
        s = S.START_FIELD  # and on, as START_FIELD
    if s is S.START_FIELD:
        if newline or c == EOL:
            return S.START_RECORD if c == EOL else S.EAT_CRNL
        if c == d.quote:
            return S.IN_QUOTED_FIELD
        if c == d.escape:
            return S.ESCAPED_CHAR
        return S.START_FIELD if c == d.delimiter else S.IN_FIELD
    if s is S.ESCAPED_CHAR:
        return S.AFTER_ESCAPED_CRNL if newline else S.IN_FIELD
    if s is S.AFTER_ESCAPED_CRNL and c == EOL:
        return s
    if s in (S.AFTER_ESCAPED_CRNL, S.IN_FIELD):
        if newline or c == EOL:
            return S.START_RECORD if c == EOL else S.EAT_CRNL
        if c == d.escape:
            return S.ESCAPED_CHAR
        return S.START_FIELD if c == d.delimiter else s
    if s is S.IN_QUOTED_FIELD:
        if c == EOL:
            return s
        if c == d.escape:
            return S.ESCAPE_IN_QUOTED_FIELD
        if c == d.quote:
            return S.QUOTE_IN_QUOTED_FIELD if d.doublequote else S.IN_FIELD
        return s
    if s is S.ESCAPE_IN_QUOTED_FIELD:
        return S.IN_QUOTED_FIELD
    if s is S.QUOTE_IN_QUOTED_FIELD:
        if c == d.quote:
            return S.IN_QUOTED_FIELD
        if c == d.delimiter:
            return S.START_FIELD
        if newline or c == EOL:
            return S.START_RECORD if c == EOL else S.EAT_CRNL
        return S.IN_FIELD  # strict=False
    assert s is S.EAT_CRNL
    if c == EOL:
        return S.START_RECORD
    assert newline, "StringIO(newline='') lines end at every line break"
    return s


def reference_states(d: Dialect, data: bytes, start: State = State.START_RECORD) -> list[State]:
    """states[p]: the state after data[:p], the end of a line seen after each line break that ends a
    line (a `\\r` followed by `\\n` does not: its line ends after the `\\n`)."""
    states = [start]
    s = start
    for i, c in enumerate(data):
        s = reference_step(d, s, c)
        if c == 0x0A or (c == 0x0D and data[i + 1:i + 2] != b"\n"):
            s = reference_step(d, s, EOL)
        states.append(s)
    return states


def reference_record_ends(d: Dialect, data: bytes) -> list[int]:
    """Where the csv module's records end: where a line's end leaves it in START_RECORD, and at the end
    of the input."""
    states = reference_states(d, data)
    ends = [p for p in range(1, len(data) + 1) if states[p] is S.START_RECORD]
    if data and (not ends or ends[-1] != len(data)):
        ends.append(len(data))
    return ends


def reference_unterminated(d: Dialect, data: bytes) -> bool:
    """Whether the input ends inside a quoted field (the last line's end included)."""
    s = reference_states(d, data)[-1]
    if data and data[-1] not in b"\r\n":
        s = reference_step(d, s, EOL)
    return s in (S.IN_QUOTED_FIELD, S.ESCAPE_IN_QUOTED_FIELD)


def utf8_error(record: bytes) -> int | None:
    """Where a record stops being valid UTF-8, if it does."""
    try:
        record.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return None


def iter_pieces(data: bytes, size: int) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at:at + size]


# -- generated input ----------------------------------------------------------------------------------

DIALECTS = st.builds(Dialect, delimiter=st.sampled_from(b",;\t|"), quote=st.sampled_from(b"\"'"),
                     escape=st.sampled_from([None, ord("\\")]), doublequote=st.booleans())
OTHERS = [" ", "a", "b", "x", "é", "€", "😀", "\r", "\n", "\r\n", ",", ";", "\t", "|", '"', "'", "\\"]
BAD_UTF8 = [b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80"]


def specials(d: Dialect) -> list[str]:
    return [chr(d.delimiter), chr(d.quote), "\r", "\n", "\r\n"] + ([chr(d.escape)] if d.escape is not None else [])


@st.composite
def csv_bytes(draw: st.DrawFn, d: Dialect, max_pieces: int = 40, bad_bytes: bool = False,
              long_runs: bool = False) -> bytes:
    """CSV-ish bytes; `long_runs`: with runs of ordinary bytes long enough for the native core's SIMD
    searches (16 to 80 bytes)."""
    pieces = [st.sampled_from(specials(d)), st.sampled_from(OTHERS), st.text(alphabet="abé€ ", min_size=1, max_size=12)]
    if long_runs:
        pieces.append(st.integers(16, 80).map(lambda k: "x" * k))
    piece = st.one_of(*pieces)
    text = "".join(draw(st.lists(piece, max_size=max_pieces)))
    if draw(st.integers(0, 5)) == 0:
        text = "\ufeff" + text
    data = text.encode()
    if bad_bytes and draw(st.booleans()):
        for bad in draw(st.lists(st.sampled_from(BAD_UTF8), min_size=1, max_size=2)):
            at = draw(st.integers(0, len(data)))
            data = data[:at] + bad + data[at:]
    return data


@st.composite
def cut_points(draw: st.DrawFn, data: bytes) -> list[int]:
    n = len(data)
    mode = draw(st.sampled_from(["whole", "bytes", "size", "random", "after-cr"]))
    if mode == "bytes":
        return list(range(1, n))
    if mode == "size":
        size = draw(st.integers(1, 9))
        return list(range(size, n, size))
    if mode == "after-cr":  # between every \r and what follows it (its \n, if any)
        return [i + 1 for i, c in enumerate(data) if c == 0x0D]
    if mode == "random":  # repeated cuts feed empty chunks
        return sorted(draw(st.lists(st.integers(0, n), max_size=12)))
    return []

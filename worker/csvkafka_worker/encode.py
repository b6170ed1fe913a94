"""Records → Kafka values and keys, a block at a time: the Python reference of the native encoder.

`json`: one object per data row, keys = header names in column order, values = the fields exactly
as the csv module reads them. `line`: the record's bytes. The key is the key column's field, in the
file's encoding. A record that cannot be encoded (undecodable bytes, wrong field count, larger than
a Kafka message, a quote left open at the end of the object) is returned as a `BadRecord`, never
dropped. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import bisect
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

import orjson

from csvkafka_worker.records import Dialect


class HeaderError(ValueError):
    """The header (or the configured column names) cannot be used; the message says how to fix it."""


class RecordBlock(Protocol):
    """A record-aligned block with its records' offsets (records.Block, or the native core's)."""

    @property
    def data(self) -> bytes: ...
    @property
    def start(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def unterminated(self) -> bool: ...
    def record(self, i: int) -> bytes: ...
    def record_start(self, i: int) -> int: ...
    def record_end(self, i: int) -> int: ...
    def content_end(self, i: int) -> int: ...
    def ordinal(self, i: int) -> int: ...


class BadKind(IntEnum):
    """Why a record cannot be sent; the numbers are the native core's."""

    ENCODING = 1  # a: the byte of the record where decoding fails
    FIELDS = 2  # a: fields found, b: fields in the header
    UNTERMINATED = 3  # the object ends inside this record's quoted field
    OVERSIZED = 4  # a: bytes of the encoded value


@dataclass(frozen=True)
class BadRecord:
    index: int  # the record's position in its block
    kind: BadKind
    a: int = 0
    b: int = 0


def describe(bad: BadRecord, record: bytes, encoding: str, max_message_bytes: int) -> str:
    """The bad record's reason, in words (logs and the dead-letter topic's csvkafka.reason header)."""
    if bad.kind is BadKind.ENCODING:
        return f"bytes not valid {encoding} at column byte {bad.a}: {record[bad.a:bad.a + 8]!r}"
    if bad.kind is BadKind.FIELDS:
        return f"{bad.a} fields where the header has {bad.b}"
    if bad.kind is BadKind.UNTERMINATED:
        return "quoted field not closed at the end of the object"
    return (f"encoded row of {bad.a} bytes is larger than a Kafka message may be "
            f"(message.max.bytes={max_message_bytes})")


@dataclass
class Encoded:
    """The block's sendable rows in order (record index, value, key) and its bad records."""

    indices: list[int] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    keys: list[bytes] | None = None
    bad: list[BadRecord] = field(default_factory=list)

    @property
    def sendable(self) -> int:
        return len(self.indices)

    def sendable_before(self, stop: int) -> int:
        """Sendable rows of records before `stop`."""
        return bisect.bisect_left(self.indices, stop)


def parse_fields(record: bytes, dialect: Dialect, encoding: str) -> list[str]:
    """Fields of one record (a header, a single row); raises UnicodeDecodeError on bad bytes."""
    text = record.decode(encoding)
    rows = list(csv.reader(io.StringIO(text, newline=""), **dialect.reader_kwargs()))  # type: ignore[arg-type]
    return rows[0] if rows else []


def validate_header(names: Sequence[str], key_column: str | None) -> tuple[str, ...]:
    header = tuple(names)
    if not header or header == ("",):
        raise HeaderError("the header row is empty; set --columns (or spec.source.csv.columns) to name them")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise HeaderError(f"column name {name!r} appears twice in the header; set --columns to unique names")
        seen.add(name)
    if key_column is not None and key_column not in seen:
        raise HeaderError(f"key column {key_column!r} is not in the header {list(header)}; fix --key-column")
    return header


class RowEncoder:
    def __init__(self, header: tuple[str, ...], dialect: Dialect, encoding: str, *, json: bool,
                 key_column: str | None, max_value: int) -> None:
        self.header = header
        self.dialect = dialect
        self.encoding = encoding
        self.json = json
        self.key_index = header.index(key_column) if key_column is not None else None
        self.max_value = max_value
        self._parse = json or self.key_index is not None

    def encode(self, block: RecordBlock) -> Encoded:
        """Encodes the block's rows; blank records are not rows, and are neither sent nor bad."""
        count = block.count - (1 if block.unterminated else 0)
        rows = [i for i in range(count) if block.content_end(i) > block.record_start(i)]
        data = block.data
        end = block.record_start(count) if block.unterminated else len(data)
        out = self._encode(block, data[:end] if end < len(data) else data, rows)
        if block.unterminated and block.content_end(count) > block.record_start(count):
            out.bad.append(BadRecord(count, BadKind.UNTERMINATED))
        if out.values and max(map(len, out.values)) > self.max_value:
            self._drop_oversized(out)
        out.bad.sort(key=lambda b: b.index)
        return out

    def _encode(self, block: RecordBlock, data: bytes, rows: list[int]) -> Encoded:
        parsed: list[list[str]] | None = getattr(block, "parsed", None)
        if parsed is not None:
            # The Python scanner read these rows with the csv module already, and they decoded cleanly.
            if not self._parse:
                return Encoded(indices=rows, values=[block.record(i) for i in rows])
            return self._build(block, rows, [parsed[i] for i in rows])
        try:
            text = data.decode(self.encoding)
        except UnicodeDecodeError:
            return self._encode_one_by_one(block, data, rows)
        if not self._parse:
            return Encoded(indices=rows, values=[block.record(i) for i in rows])
        fields = [row for row in csv.reader(io.StringIO(text, newline=""), **self.dialect.reader_kwargs()) if row]  # type: ignore[arg-type]
        if len(fields) != len(rows):
            raise AssertionError(f"the csv module read {len(fields)} rows where the splitter found {len(rows)}")
        return self._build(block, rows, fields)

    def _encode_one_by_one(self, block: RecordBlock, data: bytes, rows: list[int]) -> Encoded:
        good: list[int] = []
        fields: list[list[str]] = []
        bad: list[BadRecord] = []
        for i in rows:
            record = block.record(i)
            try:
                record.decode(self.encoding)
            except UnicodeDecodeError as undecodable:
                bad.append(BadRecord(i, BadKind.ENCODING, undecodable.start))
                continue
            good.append(i)
            if self._parse:
                with_terminator = data[block.record_start(i):block.record_end(i)]
                fields.append(parse_fields(with_terminator, self.dialect, self.encoding))
        out = self._build(block, good, fields) if self._parse else Encoded(
            indices=good, values=[block.record(i) for i in good])
        out.bad += bad
        return out

    def _build(self, block: RecordBlock, rows: list[int], fields: list[list[str]]) -> Encoded:
        width = len(self.header)
        out = Encoded()
        keep = [j for j, row in enumerate(fields) if len(row) == width]
        if len(keep) < len(fields):
            out.bad = [BadRecord(rows[j], BadKind.FIELDS, len(row), width)
                       for j, row in enumerate(fields) if len(row) != width]
            rows = [rows[j] for j in keep]
            fields = [fields[j] for j in keep]
        out.indices = rows
        if self.json:
            dumps, join, empty, header = orjson.dumps, b"".join, b"", self.header
            # orjson hands back each value in a buffer of at least 4 KiB; joining copies it to its own
            # size, which keeps a block's values at their real size instead of ~4 KiB a row.
            out.values = [join((dumps(dict(zip(header, row, strict=True))), empty)) for row in fields]
        else:
            out.values = [block.record(i) for i in rows]
        if self.key_index is not None:
            k, encoding = self.key_index, self.encoding
            out.keys = [row[k].encode(encoding) for row in fields]
        return out

    def _drop_oversized(self, out: Encoded) -> None:
        keep = [j for j, value in enumerate(out.values) if len(value) <= self.max_value]
        out.bad += [BadRecord(out.indices[j], BadKind.OVERSIZED, len(value))
                    for j, value in enumerate(out.values) if len(value) > self.max_value]
        out.indices = [out.indices[j] for j in keep]
        out.values = [out.values[j] for j in keep]
        if out.keys is not None:
            out.keys = [out.keys[j] for j in keep]


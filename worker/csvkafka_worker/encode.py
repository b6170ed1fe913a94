"""Records → Kafka values and keys, a block at a time. Pure: bytes in, bytes out.

`json`: one object per data row, keys = header names in column order, values = the fields exactly
as in the file. `line`: the record's original bytes. A record that cannot be encoded (wrong column
count, undecodable bytes) is returned as a `BadRecord` with its reason, never dropped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from csvkafka_worker.spec import CsvDialect, ValueFormat


class HeaderError(ValueError):
    """The header (or the configured column names) cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class BadRecord:
    index: int  # position of the record within the block's records
    reason: str


@dataclass
class Encoded:
    """The block's sendable rows in order: record index, value, key (None without a key column)."""

    indices: list[int] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    keys: list[bytes | None] | None = None
    bad: list[BadRecord] = field(default_factory=list)


def _reader_kwargs(dialect: CsvDialect) -> dict[str, object]:
    return {"delimiter": dialect.delimiter, "quotechar": dialect.quote, "escapechar": dialect.escape,
            "doublequote": dialect.escape is None, "strict": False}


def parse_fields(record: bytes, dialect: CsvDialect) -> list[str]:
    """Fields of one record (header lines, single rows); raises UnicodeDecodeError on bad bytes."""
    text = record.decode(dialect.encoding)
    rows = list(csv.reader(io.StringIO(text, newline=""), **_reader_kwargs(dialect)))  # type: ignore[arg-type]
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
    def __init__(self, header: tuple[str, ...], dialect: CsvDialect, value_format: ValueFormat,
                 key_column: str | None) -> None:
        self.header = header
        self.dialect = dialect
        self.value_format = value_format
        self.key_index = header.index(key_column) if key_column is not None else None
        self._parse = value_format is ValueFormat.JSON or self.key_index is not None
        self._reader_kwargs = _reader_kwargs(dialect)

    def encode(self, records: list[bytes]) -> Encoded:
        """Encodes the non-blank records of a block; blank records are skipped, not counted."""
        encoding = self.dialect.encoding
        try:
            text = b"\n".join(records).decode(encoding)
        except UnicodeDecodeError:
            return self._encode_one_by_one(records)
        if not self._parse:
            indices = [i for i, r in enumerate(records) if r]
            return Encoded(indices=indices, values=[records[i] for i in indices] if len(indices) < len(records)
                           else list(records))
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), **self._reader_kwargs) if row]  # type: ignore[arg-type]
        indices = [i for i, r in enumerate(records) if r]
        if len(rows) != len(indices):
            # The csv module split records differently from the quote-parity splitter (a stray quote
            # inside an unquoted field): parse record by record so each row keeps its own bytes.
            return self._encode_one_by_one(records)
        return self._build(records, indices, rows)

    def _encode_one_by_one(self, records: list[bytes]) -> Encoded:
        indices: list[int] = []
        rows: list[list[str]] = []
        bad: list[BadRecord] = []
        for i, record in enumerate(records):
            if not record:
                continue
            try:
                fields = parse_fields(record, self.dialect)
            except UnicodeDecodeError as undecodable:
                bad.append(BadRecord(i, f"bytes not valid {self.dialect.encoding} at column byte "
                                        f"{undecodable.start}: {record[undecodable.start:undecodable.start + 8]!r}"))
                continue
            indices.append(i)
            rows.append(fields)
        encoded = self._build(records, indices, rows) if self._parse else Encoded(
            indices=indices, values=[records[i] for i in indices])
        encoded.bad = sorted([*bad, *encoded.bad], key=lambda b: b.index)
        return encoded

    def _build(self, records: list[bytes], indices: list[int], rows: list[list[str]]) -> Encoded:
        width = len(self.header)
        header = self.header
        out = Encoded()
        keep = [j for j, row in enumerate(rows) if len(row) == width]
        if len(keep) < len(rows):
            out.bad = [BadRecord(indices[j], f"{len(row)} fields where the header has {width}")
                       for j, row in enumerate(rows) if len(row) != width]
            indices = [indices[j] for j in keep]
            rows = [rows[j] for j in keep]
        out.indices = indices
        if self.value_format is ValueFormat.JSON:
            dumps, join, empty = orjson.dumps, b"".join, b""
            # orjson hands back each value in a buffer of at least 4 KiB; joining copies it to its own
            # size, which keeps a block's values at their real size instead of ~4 KiB a row.
            out.values = [join((dumps(dict(zip(header, row, strict=True))), empty)) for row in rows]
        else:
            out.values = [records[i] for i in indices]
        if self.key_index is not None:
            k = self.key_index
            encoding = self.dialect.encoding
            out.keys = [row[k].encode(encoding) for row in rows]
        return out

"""Splitting a CSV byte stream into records: RFC 4180, quote-aware, on bytes.

The stream is cut into record-aligned blocks: a block always starts at a record boundary, so the
parity of quote characters counted from its start tells whether a newline ends a record (even) or
sits inside a quoted field (odd). A doubled quote ("") counts twice and keeps the parity, which is
exactly RFC 4180's escape. All scanning is done by `bytes.count`/`rfind`/`split` in C; Python
touches each record only where quotes make it necessary.

A dialect with an escape character (\\" inside quotes) breaks the parity rule; it takes the exact,
slower scanner `_escape_aware_cut`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

LF = 0x0A
CR = 0x0D


class RecordTooLarge(ValueError):
    """No record boundary within the size limit: an unterminated quote, or a giant row."""

    def __init__(self, offset: int, limit: int) -> None:
        super().__init__(
            f"no end of record within {limit} bytes from byte offset {offset}: an unterminated quote or a "
            "row larger than any Kafka record; check the quoting near that offset"
        )
        self.offset = offset


@dataclass(frozen=True)
class Block:
    """Record-aligned bytes of the stream, starting at stream offset `start`."""

    data: bytes
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class BlockSplitter:
    """Turns arbitrary chunks into record-aligned blocks. Pure: bytes in, blocks out."""

    def __init__(self, *, start: int, quote: bytes = b'"', escape: bytes | None = None,
                 max_record_bytes: int = 64 * 1024 * 1024) -> None:
        self._pending = b""
        self._offset = start
        self._quote = quote
        self._escape = escape
        self._max_record = max_record_bytes

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet returned in a block."""
        return self._offset

    def feed(self, chunk: bytes) -> Block | None:
        """Adds a chunk; returns the longest record-aligned block now complete, if any."""
        buffer = self._pending + chunk if self._pending else chunk
        cut = self._last_boundary(buffer)
        if cut < 0:
            if len(buffer) > self._max_record:
                raise RecordTooLarge(self._offset, self._max_record)
            self._pending = buffer
            return None
        block = Block(buffer[: cut + 1], self._offset)
        self._pending = buffer[cut + 1:]
        self._offset = block.end
        return block

    def finish(self) -> Block | None:
        """The bytes after the last newline: a final record without a line break, if any."""
        if not self._pending:
            return None
        block = Block(self._pending, self._offset)
        self._offset = block.end
        self._pending = b""
        return block

    def _last_boundary(self, buffer: bytes) -> int:
        if self._escape is not None:
            return _escape_aware_cut(buffer, self._quote, self._escape)
        quote = self._quote
        if buffer.find(quote) < 0:
            return buffer.rfind(b"\n")
        pos = buffer.rfind(b"\n")
        while pos >= 0 and buffer.count(quote, 0, pos) & 1:
            pos = buffer.rfind(b"\n", 0, pos)
        return pos


def _escape_aware_cut(buffer: bytes, quote: bytes, escape: bytes) -> int:
    specials = re.compile(b"[" + re.escape(quote + escape) + b"\n]")
    in_quotes = False
    skip_until = -1
    last = -1
    for match in specials.finditer(buffer):
        at = match.start()
        if at < skip_until:
            continue
        char = match.group()
        if char == escape and in_quotes:
            skip_until = at + 2
        elif char == quote:
            in_quotes = not in_quotes
        elif char == b"\n" and not in_quotes:
            last = at
    return last


def split_records(data: bytes, quote: bytes = b'"', escape: bytes | None = None) -> list[bytes]:
    """The records of a record-aligned block, without line terminators (LF or CRLF).

    Blank lines come back as empty records so that callers can map records back to offsets;
    a block that does not end with a newline yields its last record too.
    """
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if data.find(quote) >= 0:
        lines = _join_quoted_newlines(lines, quote, escape)
    if data.find(b"\r") >= 0:
        return [line[:-1] if line[-1:] == b"\r" else line for line in lines]
    return lines


def _join_quoted_newlines(lines: list[bytes], quote: bytes, escape: bytes | None) -> list[bytes]:
    if escape is None:
        return _join_odd_lines(lines, quote)
    records: list[bytes] = []
    open_parts: list[bytes] = []
    for line in lines:
        open_parts.append(line)
        joined = b"\n".join(open_parts) if len(open_parts) > 1 else line
        if _balanced(joined, quote, escape):
            records.append(joined)
            open_parts = []
    if open_parts:
        records.append(b"\n".join(open_parts))
    return records


def _join_odd_lines(lines: list[bytes], quote: bytes) -> list[bytes]:
    """Joins each line with an odd number of quotes, through the next such line, into one record.

    Between two odd lines every line is even, so the joined record is even: balanced. Finding the odd
    lines is done in C (map, compress); Python only touches the lines that get joined.
    """
    odd_lines = itertools.compress(range(len(lines)), map((1).__and__, map(bytes.count, lines,
                                                                             itertools.repeat(quote))))
    first = next(odd_lines, None)
    if first is None:
        return lines
    records: list[bytes] = []
    done = 0
    while first is not None:
        closing = next(odd_lines, None)
        stop = len(lines) if closing is None else closing + 1
        records.extend(lines[done:first])
        records.append(b"\n".join(lines[first:stop]))
        done = stop
        first = next(odd_lines, None)
    records.extend(lines[done:])
    return records


def _balanced(record: bytes, quote: bytes, escape: bytes | None) -> bool:
    if escape is None:
        return not record.count(quote) & 1
    return _escape_aware_cut(record + b"\n", quote, escape) == len(record)


def record_ends(data: bytes, records: list[bytes]) -> list[int]:
    """Offsets within `data` just past each record's terminator (the slow path: errors, seeks)."""
    ends: list[int] = []
    at = 0
    for record in records:
        at += len(record)
        if data[at:at + 2] == b"\r\n":
            at += 2
        elif data[at:at + 1] == b"\n":
            at += 1
        ends.append(at)
    return ends


def is_unterminated(record: bytes, quote: bytes = b'"', escape: bytes | None = None) -> bool:
    """True for a final record that ends inside a quoted field."""
    return not _balanced(record, quote, escape)

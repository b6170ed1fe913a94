"""Splitting a CSV byte stream into records: the csv module's own state machine, on bytes.

This is the Python reference of the native core's splitter (worker/native/src/csv.rs); both follow
the reader of CPython's `Modules/_csv.c` with the line structure `io.StringIO(text, newline="")`
gives it, so they agree with `csv.reader` on every input:

- a quote opens a quoted field only at a field's start (after a delimiter or at a record's start);
  anywhere else it is data (`5" screen`);
- lines end after `\\n`, after `\\r\\n` and after a `\\r` not followed by `\\n`; after each line the
  machine sees an end-of-line event, and a record is complete when that leaves it in START_RECORD;
- an escape character makes the next byte data; a doubled quote inside quotes is one quote.

On bytes this equals the csv module on text for every encoding in which the delimiter, quote,
escape, CR and LF are single ASCII bytes that never occur inside another character (UTF-8,
Latin-1, ...), which the import spec requires. Every byte is looked at once, so splitting is
linear in the input: the bytes between two bytes that can change the state are skipped with one
regular-expression search (in C).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

from csvkafka_worker.spec import CsvDialect

LF = 0x0A
CR = 0x0D
# Fields are bounded by the record size limit, not by the csv module's default of 128 KiB.
csv.field_size_limit(2**31 - 1)


class State(IntEnum):
    """The reader's states, named (and numbered) as in _csv.c and the native core."""

    START_RECORD = 0
    START_FIELD = 1
    ESCAPED_CHAR = 2
    IN_FIELD = 3
    IN_QUOTED_FIELD = 4
    ESCAPE_IN_QUOTED_FIELD = 5
    QUOTE_IN_QUOTED_FIELD = 6
    EAT_CRNL = 7
    AFTER_ESCAPED_CRNL = 8


UNQUOTED = (State.START_RECORD, State.START_FIELD, State.IN_FIELD, State.AFTER_ESCAPED_CRNL)


class Dialect(NamedTuple):
    """The bytes that structure a CSV stream (the csv module's delimiter, quotechar, escapechar,
    doublequote; quoting is QUOTE_MINIMAL, skipinitialspace off, strict off)."""

    delimiter: int = ord(",")
    quote: int = ord('"')
    escape: int | None = None
    doublequote: bool = True

    @classmethod
    def of(cls, csv: CsvDialect) -> Dialect:
        return cls(ord(csv.delimiter), ord(csv.quote), None if csv.escape is None else ord(csv.escape),
                   csv.doubled_quotes)

    def reader_kwargs(self) -> dict[str, object]:
        """The same dialect for `csv.reader`."""
        return {"delimiter": chr(self.delimiter), "quotechar": chr(self.quote),
                "escapechar": None if self.escape is None else chr(self.escape),
                "doublequote": self.doublequote, "strict": False}


class RecordTooLarge(ValueError):
    """No record boundary within the size limit: an unterminated quote, or a giant row."""

    def __init__(self, offset: int, limit: int, rows_before: int) -> None:
        super().__init__(f"no end of record within {limit} bytes from byte offset {offset}")
        self.offset = offset
        self.limit = limit
        self.rows_before = rows_before  # rows the scanner completed before this record


class Machine:
    """One reader: its state, and the transitions of _csv.c's parse_process_char (on bytes)."""

    def __init__(self, dialect: Dialect, state: State = State.START_RECORD) -> None:
        self.d = dialect
        self.state = state
        specials = [dialect.quote, CR, LF] + ([dialect.escape] if dialect.escape is not None else [])
        # Bytes after which the state may differ: in a quoted field, and in an unquoted one.
        self._quoted = re.compile(b"[" + re.escape(bytes(specials[:1] + specials[3:])) + b"]")
        self._unquoted = re.compile(b"[" + re.escape(bytes(specials)) + b"]")

    def byte(self, c: int) -> None:
        """One byte of a line (its terminator included)."""
        d, s = self.d, self.state
        newline = c in (LF, CR)
        if s in (State.START_RECORD, State.START_FIELD):
            if newline:
                self.state = State.EAT_CRNL
            elif c == d.quote:
                self.state = State.IN_QUOTED_FIELD
            elif c == d.escape:
                self.state = State.ESCAPED_CHAR
            elif c == d.delimiter:
                self.state = State.START_FIELD
            else:
                self.state = State.IN_FIELD
        elif s is State.ESCAPED_CHAR:
            self.state = State.AFTER_ESCAPED_CRNL if newline else State.IN_FIELD
        elif s in (State.IN_FIELD, State.AFTER_ESCAPED_CRNL):
            # After an escaped line break the reader stays in AFTER_ESCAPED_CRNL (so that the end of
            # that line does not end the record) until a delimiter, an escape or a line break.
            if newline:
                self.state = State.EAT_CRNL
            elif c == d.escape:
                self.state = State.ESCAPED_CHAR
            elif c == d.delimiter:
                self.state = State.START_FIELD
        elif s is State.IN_QUOTED_FIELD:
            if c == d.escape:
                self.state = State.ESCAPE_IN_QUOTED_FIELD
            elif c == d.quote:
                self.state = State.QUOTE_IN_QUOTED_FIELD if d.doublequote else State.IN_FIELD
        elif s is State.ESCAPE_IN_QUOTED_FIELD:
            self.state = State.IN_QUOTED_FIELD
        elif s is State.QUOTE_IN_QUOTED_FIELD:
            if c == d.quote:
                self.state = State.IN_QUOTED_FIELD
            elif c == d.delimiter:
                self.state = State.START_FIELD
            elif newline:
                self.state = State.EAT_CRNL
            else:
                self.state = State.IN_FIELD  # strict=False: data, and the field goes on unquoted

    def eol(self) -> None:
        """The end of a line."""
        s = self.state
        if s in (State.START_FIELD, State.IN_FIELD, State.QUOTE_IN_QUOTED_FIELD, State.EAT_CRNL):
            self.state = State.START_RECORD
        elif s is State.ESCAPED_CHAR:
            self.state = State.IN_FIELD
        elif s is State.ESCAPE_IN_QUOTED_FIELD:
            self.state = State.IN_QUOTED_FIELD

    def step(self, data: bytes | bytearray, i: int) -> tuple[int, int]:
        """Feeds `data[i]` (with the `\\n` of a `\\r\\n`, and the end of its line after a line
        break); returns the index after what it consumed, and where the content of a record ending
        there ends (the line terminator's start, unless it began with an escaped `\\r`: data). A `\\r`
        ending `data` ends its line."""
        c = data[i]
        content_end = i + 1 if self.state is State.ESCAPED_CHAR else i
        self.byte(c)
        i += 1
        if c == CR:
            if i < len(data) and data[i] == LF:
                self.byte(LF)
                i += 1
            self.eol()
        elif c == LF:
            self.eol()
        return i, content_end

    def next_boundary(self, data: bytes | bytearray, at: int, eof: bool) -> tuple[int, int, int]:
        """Runs the machine from `data[at]` until a record completes or the data runs out.

        Returns (content_end, end, at): where the record's last line terminator starts and where the
        next record starts, or (-1, -1, at) when more data is needed, `at` being the first byte not
        consumed (a `\\r` at the very end waits to see whether a `\\n` follows, unless `eof`).
        """
        d, n = self.d, len(data)
        i = at
        while i < n:
            s = self.state
            if s is State.IN_QUOTED_FIELD:
                # Quoted: line breaks are data, and the end of a line does nothing.
                found = self._quoted.search(data, i)
                if found is None:
                    return -1, -1, n
                i = found.start()
            elif s in UNQUOTED:
                # Ordinary bytes and delimiters: the state after them follows from the last one.
                found = self._unquoted.search(data, i)
                stop = n if found is None else found.start()
                if stop > i:
                    self.state = _after_unquoted_run(s, data, i, stop, d.delimiter)
                i = stop
                if i == n:
                    break
            if data[i] == CR and i + 1 == n and not eof:
                break  # is it \r\n? the next chunk tells
            i, content_end = self.step(data, i)
            if self.state is State.START_RECORD:
                return content_end, i, i
        return -1, -1, i

    def end_of_input(self, line_pending: bool) -> bool:
        """At the end of the input: ends the last line if it has no terminator. Returns whether the
        record is complete; if not, the csv module (strict=False) still reads it as a row."""
        if line_pending:
            self.eol()
        return self.state is State.START_RECORD

    @property
    def in_quotes(self) -> bool:
        return self.state in (State.IN_QUOTED_FIELD, State.ESCAPE_IN_QUOTED_FIELD)


class _Lines:
    """The lines handed to csv.reader, telling whether it asked for one more than there are (it
    does only when the record it reads is not complete)."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = iter(lines)
        self.exhausted = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines, None)
        if line is None:
            self.exhausted = True
            raise StopIteration
        return line


def _last_line_end(view: bytes | bytearray, start: int, stop: int, eof: bool) -> int:
    """One past the last line break in view[start:stop] (start if none); at the end of the data the
    rest is the last line, but a \r there waits to see whether a \n follows, unless `eof`."""
    if eof and stop == len(view):
        return stop
    end = max(view.rfind(b"\n", start, stop), view.rfind(b"\r", start, stop)) + 1
    if end and view[end - 1] == CR:
        if end < len(view) and view[end] == LF:
            end += 1
        elif end == len(view):
            end = max(view.rfind(b"\n", start, end - 1), view.rfind(b"\r", start, end - 1)) + 1
    return max(end, start)


def _after_unquoted_run(before: State, data: bytes | bytearray, start: int, stop: int, delimiter: int) -> State:
    """The state after `data[start:stop]` (ordinary bytes and delimiters, nothing else) read in an
    unquoted state `before`."""
    if data[stop - 1] == delimiter:
        return State.START_FIELD
    if before is State.AFTER_ESCAPED_CRNL and data.find(delimiter, start, stop) < 0:
        return before
    return State.IN_FIELD


@dataclass
class Block:
    """Record-aligned bytes of the stream, starting at stream offset `start`, with every record's
    offsets: record i is `data[record_start(i):content_end(i)]`, then its line terminator up to
    `record_end(i)`, where record i + 1 starts."""

    data: bytes
    start: int
    ends: list[int] = field(default_factory=list)
    content_ends: list[int] = field(default_factory=list)
    blanks: list[int] = field(default_factory=list)  # indices of blank records (no content: not rows)
    # The last record ends inside a quoted field (only at the end of the input).
    unterminated: bool = False
    # The fields of each record as the csv module read them while splitting, when every record's
    # bytes decoded cleanly ([] for a blank record); None otherwise.
    parsed: list[list[str]] | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def count(self) -> int:
        return len(self.ends)

    @property
    def rows(self) -> int:
        return len(self.ends) - len(self.blanks)

    def record_start(self, i: int) -> int:
        return self.ends[i - 1] if i else 0

    def record_end(self, i: int) -> int:
        return self.ends[i]

    def content_end(self, i: int) -> int:
        return self.content_ends[i]

    def record(self, i: int) -> bytes:
        return self.data[self.record_start(i):self.content_ends[i]]

    def ordinal(self, i: int) -> int:
        """1-based position of record `i` among the block's rows."""
        if not self.blanks:
            return i + 1
        return i + 1 - sum(1 for b in self.blanks if b <= i)


class Scanner:
    """Turns arbitrary chunks into record-aligned blocks. Pure: bytes in, blocks out."""

    def __init__(self, dialect: Dialect, *, start: int, max_record: int = 64 * 1024 * 1024,
                 state: State = State.START_RECORD, encoding: str = "utf-8") -> None:
        # `state` other than START_RECORD: the stream starts inside a record (shard boundary search).
        self._machine = Machine(dialect, state)
        self._reader_kwargs = dialect.reader_kwargs()
        self._encoding = encoding
        self._parsed: list[list[str]] | None = []
        self._buf = bytearray()  # appended to in place: a long record costs linear time
        self._base = start  # stream offset of _buf[0]
        self._at = 0  # next byte of _buf to scan
        self._record_start = 0
        self._ends: list[int] = []
        self._content_ends: list[int] = []
        self._blanks: list[int] = []
        self._rows = 0  # rows completed since the start, for errors
        self._max_record = max_record
        # A record too large, found after complete records that were returned first.
        self._too_large: RecordTooLarge | None = None

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet returned in a block."""
        return self._base

    def feed(self, chunk: bytes) -> Block | None:
        """Adds a chunk; returns the complete records so far as a block, if there are any."""
        self._raise_too_large()
        self._buf += chunk
        self._scan(eof=False)
        return self._cut(unterminated=False)

    def finish(self) -> Block | None:
        """The end of the input: the rest is the last record, whether or not it has a terminator."""
        self._raise_too_large()
        self._scan(eof=True)
        n = len(self._buf)
        unterminated = False
        if self._record_start < n:
            pending = self._buf[n - 1] not in (LF, CR)
            if not self._machine.end_of_input(pending):
                unterminated = self._machine.in_quotes
            self._push(n, n)
            self._parsed = None
        return self._cut(unterminated)

    def _scan(self, eof: bool) -> None:
        while True:
            # Never read further than the size limit past the start of a record (one byte more: a
            # \r there needs to see what follows it).
            limit = min(len(self._buf), self._record_start + self._max_record + 2)
            view = self._buf if limit == len(self._buf) else self._buf[:limit]
            at_eof = eof and limit == len(self._buf)
            if self._machine.state is State.START_RECORD and self._whole_lines(view, at_eof):
                continue
            start = self._record_start
            content_end, end, self._at = self._machine.next_boundary(view, self._at, at_eof)
            if end >= 0 and self._parsed is not None:
                self._parsed.append(self._parse_one(bytes(view[start:end])))
            if end < 0:
                too_long = limit < len(self._buf) or (eof and len(self._buf) - self._record_start > self._max_record)
                if too_long:
                    error = RecordTooLarge(self._base + self._record_start, self._max_record, self._rows)
                    if not self._ends:
                        raise error
                    # The complete records before it go out first; the error comes with the next call.
                    self._too_large = error
                return
            self._push(content_end, end)

    def _whole_lines(self, view: bytearray, eof: bool) -> bool:
        """Splits the whole lines from START_RECORD on with the csv module itself (in C), keeping the
        rows it reads for the encoder; a record still open at the last line is left to the machine.
        True if records were found."""
        at = self._at
        end = _last_line_end(view, at, len(view), eof)
        if end <= at:
            return False
        region = bytes(view[at:end])
        lines = region.splitlines(keepends=True)
        try:
            text, clean = region.decode(self._encoding), True
        except UnicodeDecodeError:
            text, clean = region.decode(self._encoding, "surrogateescape"), False
        ends = list(itertools.accumulate(map(len, lines), initial=at))[1:]
        feeder = _Lines(io.StringIO(text, newline="").readlines())
        reader = csv.reader(feeder, **self._reader_kwargs)  # type: ignore[arg-type]
        found = 0
        for row in reader:
            if feeder.exhausted:
                break  # the record goes on past these lines: the machine takes it from its start
            line = reader.line_num - 1
            self._push(self._content_end(view, lines[line], ends[line]), ends[line])
            if self._parsed is not None:
                self._parsed.append(row)
            found += 1
        if not found:
            return False
        if not clean:
            self._parsed = None
        self._at = self._record_start
        return True

    def _parse_one(self, record: bytes) -> list[str]:
        """The fields of a record the machine found (a record that spanned two chunks, mostly)."""
        try:
            text = record.decode(self._encoding)
        except UnicodeDecodeError:
            self._parsed = None
            return []
        rows = list(csv.reader(io.StringIO(text, newline=""), **self._reader_kwargs))  # type: ignore[arg-type]
        return rows[0] if rows else []

    def _content_end(self, view: bytearray, line: bytes, end: int) -> int:
        """Where a record ending with `line` at `end` has its content end: before its line break,
        unless that starts with an escaped \r (data), which only the machine can tell."""
        if line[-2:] == b"\r\n":
            if self._machine.d.escape is not None and line[-3:-2] == bytes([self._machine.d.escape]):
                machine = Machine(self._machine.d)
                content_end, record_end, _ = machine.next_boundary(view, self._record_start, True)
                if record_end == end:
                    return content_end
            return end - 2
        return end - 1 if line[-1:] in (b"\n", b"\r") else end

    def _raise_too_large(self) -> None:
        if self._too_large is not None:
            error, self._too_large = self._too_large, None
            raise error

    def _push(self, content_end: int, end: int) -> None:
        if content_end == self._record_start:
            self._blanks.append(len(self._ends))
        else:
            self._rows += 1
        self._ends.append(end)
        self._content_ends.append(content_end)
        self._record_start = end

    def _cut(self, unterminated: bool) -> Block | None:
        if not self._ends:
            return None
        size = self._record_start
        block = Block(bytes(self._buf[:size]), self._base, self._ends, self._content_ends, self._blanks, unterminated,
                      self._parsed)
        del self._buf[:size]
        self._base += size
        self._at -= size
        self._record_start = 0
        self._ends, self._content_ends, self._blanks, self._parsed = [], [], [], []
        return block


def transfer(dialect: Dialect, data: bytes, length: int) -> tuple[State, ...]:
    """The state after `data[:length]` for each of the 9 start states, having seen `data[length]`
    (if there) only to tell whether a `\\r` at `length - 1` ends a line."""
    out: list[State] = []
    view = data[:length + 1]
    for start in State:
        machine = Machine(dialect, start)
        i = 0
        while i < length:
            s = machine.state
            if s is State.IN_QUOTED_FIELD or s in UNQUOTED:
                found = (machine._quoted if s is State.IN_QUOTED_FIELD else machine._unquoted).search(view, i, length)
                stop = length if found is None else found.start()
                if stop > i and s is not State.IN_QUOTED_FIELD:
                    machine.state = _after_unquoted_run(s, view, i, stop, dialect.delimiter)
                i = stop
                if i == length:
                    break
            if view[i] == CR and i + 1 < len(view) and view[i + 1] == LF and i + 1 == length:
                # The \n of this \r\n lies beyond the range: the line ends after it, in the next range.
                machine.byte(CR)
                i += 1
                continue
            i, _ = machine.step(view, i)
        out.append(machine.state)
    return tuple(out)

"""The start of a CSV stream: byte-order mark, lines to skip, header. Pure: a byte prefix in.

Its result says where the data rows begin, so that a fresh start, a resume at a byte offset and
every shard agree on the header without each re-reading more than the first records.
"""

from __future__ import annotations

import codecs
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from csvkafka_worker.encode import HeaderError, parse_fields, validate_header
from csvkafka_worker.errors import BadInput, Reason
from csvkafka_worker.records import Dialect, RecordTooLarge, Scanner
from csvkafka_worker.spec import CsvDialect


@dataclass(frozen=True)
class Preamble:
    header: tuple[str, ...]
    data_start: int  # stream offset of the first byte after the header (and skipped lines)


def read_preamble(prefix: bytes, dialect: CsvDialect, key_column: str | None, at_eof: bool) -> Preamble | None:
    """The header and where data begins, or None when `prefix` is too short to tell yet."""
    start = len(codecs.BOM_UTF8) if prefix.startswith(codecs.BOM_UTF8) and _is_utf8(dialect.encoding) else 0
    needed = dialect.skip_rows + (1 if dialect.header else 0)
    machine = Dialect.of(dialect)
    scanner = Scanner(machine, start=start, max_record=dialect.max_record_bytes)
    records: list[bytes] = []
    ends: list[int] = []
    try:
        blocks = [scanner.feed(prefix[start:]), scanner.finish() if at_eof else None]
    except RecordTooLarge as error:
        raise BadInput(f"the header does not end within {error.limit} bytes; check its quoting, or "
                       "source.csv.maxRecordBytes", reason=Reason.BAD_INPUT) from error
    for block in blocks:
        if block is None:
            continue
        for i in range(block.count):
            if len(records) == needed:
                break
            if dialect.header and len(records) >= dialect.skip_rows and block.content_end(i) == block.record_start(i):
                continue  # blank lines before the header
            records.append(block.data[block.record_start(i):block.record_end(i)])
            ends.append(block.start + block.record_end(i))
    if len(records) < needed:
        if at_eof:
            raise BadInput(f"the object ends before its header (skipRows={dialect.skip_rows}); check "
                           "source.csv.header and skipRows", reason=Reason.BAD_INPUT)
        return None
    data_start = ends[needed - 1] if needed else start
    if dialect.expected_header is not None and not dialect.header:
        raise BadInput("source.csv.expectedHeader checks the object's header row, and source.csv.header is false; "
                       "set header: true (with columns, to rename them) or remove expectedHeader",
                       reason=Reason.INVALID_CONFIGURATION)
    # The object's own header row: the names, unless columns replace them; checked against expectedHeader.
    found = _parse_header(records[-1], machine, dialect.encoding) if dialect.header and (
        dialect.columns is None or dialect.expected_header is not None) else None
    if dialect.expected_header is not None and found is not None:
        difference = header_difference(tuple(found), dialect.expected_header)
        if difference is not None:
            raise BadInput(difference, reason=Reason.BAD_INPUT)
    if dialect.columns:
        names: tuple[str, ...] | list[str] = dialect.columns
    elif found is not None:
        names = found
    else:
        raise BadInput("without a header row, source.csv.columns must name the columns",
                       reason=Reason.INVALID_CONFIGURATION)
    try:
        return Preamble(validate_header(names, key_column), data_start)
    except HeaderError as error:
        raise BadInput(str(error), reason=Reason.INVALID_CONFIGURATION) from error


def _parse_header(record: bytes, machine: Dialect, encoding: str) -> list[str]:
    try:
        return parse_fields(record, machine, encoding)
    except UnicodeDecodeError as error:
        raise BadInput(f"the header is not valid {encoding} ({error}); set source.csv.encoding",
                       reason=Reason.BAD_INPUT) from error


def header_difference(found: tuple[str, ...], expected: tuple[str, ...]) -> str | None:
    """None when the header is the expected one; else one line: the names missing, the names not
    expected, or the first place where the order differs, and the fix."""
    if found == expected:
        return None
    missing = list((Counter(expected) - Counter(found)).elements())
    extra = list((Counter(found) - Counter(expected)).elements())
    parts = []
    if missing:
        parts.append(f"missing {_names(missing)}")
    if extra:
        parts.append(f"not expected {_names(extra)}")
    if not missing and not extra:
        at = next(i for i, (a, b) in enumerate(zip(found, expected, strict=True)) if a != b)
        parts.append(f"the order differs: column {at + 1} is {found[at]!r}, expected {expected[at]!r}")
    return (f"the header does not match source.csv.expectedHeader: {'; '.join(parts)} (header: {_names(found)}); "
            "correct the object, or set expectedHeader to the header it should have")


def _names(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}, … {len(names) - limit} more]" if len(names) > limit else f"[{shown}]"


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")

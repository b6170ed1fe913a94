"""The start of a CSV stream: byte-order mark, lines to skip, header. Pure: a byte prefix in.

Its result says where the data rows begin, so that a fresh start, a resume at a byte offset and
every shard agree on the header without each re-reading more than the first records.
"""

from __future__ import annotations

import codecs
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
    if dialect.columns:
        names: tuple[str, ...] | list[str] = dialect.columns
    elif dialect.header:
        try:
            names = parse_fields(records[-1], machine, dialect.encoding)
        except UnicodeDecodeError as error:
            raise BadInput(f"the header is not valid {dialect.encoding} ({error}); set source.csv.encoding",
                           reason=Reason.BAD_INPUT) from error
    else:
        raise BadInput("without a header row, source.csv.columns must name the columns",
                       reason=Reason.INVALID_CONFIGURATION)
    try:
        return Preamble(validate_header(names, key_column), data_start)
    except HeaderError as error:
        raise BadInput(str(error), reason=Reason.INVALID_CONFIGURATION) from error


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")

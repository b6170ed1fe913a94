"""The start of a CSV stream: byte-order mark, lines to skip, header. Pure: a byte prefix in.

Its result says where the data rows begin, so that a fresh start, a resume at a byte offset and
every shard agree on the header without each re-reading more than the first records.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from csvkafka_worker.encode import HeaderError, parse_fields, validate_header
from csvkafka_worker.errors import BadInput
from csvkafka_worker.records import BlockSplitter, record_ends, split_records
from csvkafka_worker.spec import CsvDialect


@dataclass(frozen=True)
class Preamble:
    header: tuple[str, ...]
    data_start: int  # stream offset of the first byte after the header (and skipped lines)


def read_preamble(prefix: bytes, dialect: CsvDialect, key_column: str | None, at_eof: bool) -> Preamble | None:
    """The header and where data begins, or None when `prefix` is too short to tell yet."""
    start = len(codecs.BOM_UTF8) if prefix.startswith(codecs.BOM_UTF8) and _is_utf8(dialect.encoding) else 0
    needed = dialect.skip_rows + (1 if dialect.header else 0)
    quote = dialect.quote.encode()
    escape = dialect.escape.encode() if dialect.escape else None
    splitter = BlockSplitter(start=start, quote=quote, escape=escape, max_record_bytes=max(len(prefix), 1) * 2)
    block = splitter.feed(prefix[start:])
    records: list[bytes] = []
    offsets: list[int] = []
    for piece in (block, splitter.finish() if at_eof else None):
        if piece is None:
            continue
        piece_records = split_records(piece.data, quote, escape)
        for record, end in zip(piece_records, record_ends(piece.data, piece_records), strict=True):
            if dialect.header and len(records) >= dialect.skip_rows and not record:
                continue  # blank lines before the header
            records.append(record)
            offsets.append(piece.start + end)
            if len(records) == needed:
                break
        if len(records) == needed:
            break
    if len(records) < needed:
        if at_eof:
            raise BadInput(f"the object ends before its header (skipRows={dialect.skip_rows}); check "
                           "source.csv.header and skipRows", reason="BadInput")
        return None
    data_start = offsets[needed - 1] if needed else start
    if dialect.columns:
        names: tuple[str, ...] | list[str] = dialect.columns
    elif dialect.header:
        try:
            names = parse_fields(records[-1], dialect)
        except UnicodeDecodeError as error:
            raise BadInput(f"the header is not valid {dialect.encoding} ({error}); set source.csv.encoding",
                           reason="BadInput") from error
    else:
        raise BadInput("without a header row, source.csv.columns must name the columns", reason="InvalidConfiguration")
    try:
        return Preamble(validate_header(names, key_column), data_start)
    except HeaderError as error:
        raise BadInput(str(error), reason="InvalidConfiguration") from error


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")

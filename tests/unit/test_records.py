"""Record splitting on bytes: the records and their boundaries are what Python's csv module reads."""

from __future__ import annotations

import csv
import io
import itertools
import random

import pytest

from csvkafka_worker.records import (
    BlockSplitter,
    RecordTooLarge,
    is_unterminated,
    record_ends,
    split_records,
)

TRICKY = (
    b'id,name,note\r\n'
    b'1,"Smith, John","said ""hi"""\r\n'
    b'2,plain,"two\nlines"\n'
    b'\n'
    b'3,,""\r\n'
    b'4,"\xc3\xa9t\xc3\xa9 \xe2\x82\xac","a\r\nb\r\nc"\n'
    b'5,last,no newline'
)


def python_csv_rows(data: bytes) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(data.decode(), newline="")) if row]


def split_all(data: bytes, chunk_sizes: list[int]) -> list[bytes]:
    splitter = BlockSplitter(start=0)
    records: list[bytes] = []
    at = 0
    for size in chunk_sizes:
        block = splitter.feed(data[at:at + size])
        at += size
        if block is not None:
            records += split_records(block.data)
    block = splitter.feed(data[at:])
    if block is not None:
        records += split_records(block.data)
    last = splitter.finish()
    if last is not None:
        records += split_records(last.data)
    return records


def parse_each(records: list[bytes]) -> list[list[str]]:
    return [next(csv.reader(io.StringIO(r.decode(), newline=""))) for r in records if r]


@pytest.mark.parametrize("seed", range(30))
def test_any_chunking_gives_the_records_python_csv_reads(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.randint(1, 9) for _ in range(40)]
    records = split_all(TRICKY, sizes)
    assert parse_each(records) == python_csv_rows(TRICKY)


def test_blocks_end_on_record_boundaries_and_are_contiguous() -> None:
    splitter = BlockSplitter(start=100)
    blocks = [b for b in (splitter.feed(TRICKY[i:i + 7]) for i in range(0, len(TRICKY), 7)) if b]
    assert blocks[0].start == 100
    for before, after in itertools.pairwise(blocks):
        assert before.end == after.start
        assert before.data.endswith(b"\n")
        assert before.data.count(b'"') % 2 == 0


def test_a_newline_inside_quotes_never_ends_a_block() -> None:
    splitter = BlockSplitter(start=0)
    assert splitter.feed(b'1,"open\n') is None
    block = splitter.feed(b'still open",x\n2,y\n')
    assert block is not None
    assert split_records(block.data) == [b'1,"open\nstill open",x', b"2,y"]


def test_crlf_is_removed_but_kept_inside_quoted_fields() -> None:
    assert split_records(b'a,"x\r\ny"\r\nb,c\r\n') == [b'a,"x\r\ny"', b"b,c"]


def test_blank_lines_are_empty_records_so_offsets_stay_exact() -> None:
    data = b"a\r\n\nb\n\r\nc\n"
    records = split_records(data)
    assert records == [b"a", b"", b"b", b"", b"c"]
    assert record_ends(data, records) == [3, 4, 6, 8, 10]


def test_escape_character_dialect() -> None:
    data = b'1,"say \\"hi\\"\nthere",x\n2,y\n'
    splitter = BlockSplitter(start=0, escape=b"\\")
    block = splitter.feed(data)
    assert block is not None and block.end == len(data)
    assert split_records(block.data, escape=b"\\") == [b'1,"say \\"hi\\"\nthere",x', b"2,y"]


def test_unterminated_quote_at_end_is_detected() -> None:
    assert is_unterminated(b'5,"never closed')
    assert not is_unterminated(b'5,"closed"')


def test_an_unterminated_quote_mid_stream_is_refused_at_the_size_limit() -> None:
    splitter = BlockSplitter(start=0, max_record_bytes=64)
    assert splitter.feed(b'1,"oops\n') is None
    with pytest.raises(RecordTooLarge, match="no end of record within 64 bytes from byte offset 0"):
        splitter.feed(b"x,y\n" * 20)

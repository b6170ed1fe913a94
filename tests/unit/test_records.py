"""Record splitting on bytes, on both engines: the records and their boundaries are what Python's csv
module reads, whatever the chunking."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from csvkafka_worker import records
from csvkafka_worker.encode import RecordBlock
from csvkafka_worker.records import Dialect, RecordTooLarge, State
from csvkafka_worker.spec import CsvDialect
from tests.unit.csv_engines import (
    ENGINE_PARAMS,
    NATIVE,
    NATIVE_MISSING,
    csv_rows,
    make_engine,
    native_dialect_of,
    parse_alone,
    records_of,
    scan,
)

TRICKY = (
    b'id,name,note\r\n'
    b'1,"Smith, John","said ""hi"""\r\n'
    b'2,plain,"two\nlines"\n'
    b'\n'
    b'3,,""\r\n'
    b'4,"\xc3\xa9t\xc3\xa9 \xe2\x82\xac","a\r\nb\r\nc"\n'
    b'5,5" screen,\'single\'\r'
    b'6,last,no newline'
)


def contents(blocks: Sequence[RecordBlock]) -> list[bytes]:
    return [b.record(i) for b in blocks for i in range(b.count)]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@pytest.mark.parametrize("seed", range(30))
def test_any_chunking_gives_the_records_python_csv_reads(name: str, seed: int) -> None:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(TRICKY) + 1), 25))
    blocks = scan(make_engine(name), TRICKY, cuts)
    assert [parse_alone(r, Dialect()) for r in contents(blocks)] == csv_rows(TRICKY.decode(), Dialect())
    assert [r.end for r in records_of(blocks)] == [14, 45, 65, 66, 73, 97, 118, 135]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_blocks_end_on_record_boundaries_and_are_contiguous(name: str) -> None:
    scanner = make_engine(name).scanner(100, 1 << 20)
    blocks = [b for b in (scanner.feed(TRICKY[i:i + 7]) for i in range(0, len(TRICKY), 7)) if b is not None]
    last = scanner.finish()
    assert last is not None and last.data == b"6,last,no newline" and last.count == 1
    blocks.append(last)
    assert blocks[0].start == 100
    for before, after in itertools.pairwise(blocks):
        assert before.start + before.size == after.start
        assert before.data.endswith((b"\n", b"\r"))
        assert before.record_end(before.count - 1) == before.size
    assert b"".join(b.data for b in blocks) == TRICKY
    assert scanner.offset == 100 + len(TRICKY)


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_a_newline_inside_quotes_never_ends_a_block(name: str) -> None:
    scanner = make_engine(name).scanner(0, 1 << 20)
    assert scanner.feed(b'1,"open\n') is None
    assert scanner.offset == 0
    block = scanner.feed(b'still open",x\n2,y\n')
    assert block is not None
    assert contents([block]) == [b'1,"open\nstill open",x', b"2,y"]
    assert scanner.offset == 26


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_crlf_is_the_terminator_but_kept_inside_quoted_fields(name: str) -> None:
    data = b'a,"x\r\ny"\r\nb,c\r\n'
    [block] = scan(make_engine(name), data)
    assert contents([block]) == [b'a,"x\r\ny"', b"b,c"]
    assert [(block.content_end(i), block.record_end(i)) for i in range(2)] == [(8, 10), (13, 15)]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_a_cr_at_the_end_of_a_chunk_waits_for_the_next(name: str) -> None:
    scanner = make_engine(name).scanner(0, 1 << 20)
    assert scanner.feed(b"a\r") is None  # \r\n or \r? the next byte tells
    block = scanner.feed(b"\nb\r")
    assert block is not None and [(block.content_end(0), block.record_end(0))] == [(1, 3)]
    last = scanner.finish()  # at the end, a lone \r ends its line
    assert last is not None and (last.start, last.record(0), last.content_end(0), last.record_end(0)) == (3, b"b", 1, 2)


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_blank_lines_are_empty_records_so_offsets_stay_exact(name: str) -> None:
    data = b"a\r\n\nb\n\r\nc\n"
    [block] = scan(make_engine(name), data)
    assert contents([block]) == [b"a", b"", b"b", b"", b"c"]
    assert [block.record_end(i) for i in range(block.count)] == [3, 4, 6, 8, 10]
    assert (block.count, block.rows) == (5, 3)
    assert [block.ordinal(i) for i in (0, 2, 4)] == [1, 2, 3]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_escape_character_dialect(name: str) -> None:
    d = Dialect.of(CsvDialect(escape="\\"))
    data = b'1,"say \\"hi\\"\nthere",x\n2,y\\\nz\n3,\\,\n'
    scanner = make_engine(name, d).scanner(0, 1 << 20)
    block = scanner.feed(data)
    assert block is not None and block.size == len(data)
    assert contents([block]) == [b'1,"say \\"hi\\"\nthere",x', b"2,y\\\nz", b"3,\\,"]
    assert [parse_alone(r, d) for r in contents([block])] == [["1", 'say "hi"\nthere', "x"], ["2", "y\nz"],
                                                            ["3", ","]]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_a_quote_opens_a_field_only_at_its_start(name: str) -> None:
    data = b'1,5" screen,x\n2,"a",b"c\n'
    [block] = scan(make_engine(name), data)
    assert contents([block]) == [b'1,5" screen,x', b'2,"a",b"c']


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_unterminated_quote_at_end_is_detected(name: str) -> None:
    first, last = scan(make_engine(name), b'4,x\n5,"never closed\n')
    assert not first.unterminated and contents([first]) == [b"4,x"]
    assert last.unterminated and (last.start, last.count, last.rows) == (4, 1, 1)
    assert last.record(0) == b'5,"never closed\n'  # no terminator: the whole rest is the record
    [closed] = scan(make_engine(name), b'5,"closed"')
    assert not closed.unterminated
    [escaped] = scan(make_engine(name, Dialect(escape=ord("\\"))), b'5,"closed\\"')
    assert escaped.unterminated


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_an_unterminated_quote_mid_stream_is_refused_at_the_size_limit(name: str) -> None:
    scanner = make_engine(name).scanner(1000, 64)
    assert scanner.feed(b'1,"oops\n') is None
    with pytest.raises(RecordTooLarge, match="no end of record within 64 bytes from byte offset 1000") as raised:
        scanner.feed(b"x,y\n" * 20)
    assert (raised.value.offset, raised.value.limit, raised.value.rows_before) == (1000, 64, 0)


@pytest.mark.skipif(NATIVE is None, reason=NATIVE_MISSING)
def test_the_native_scanner_raises_its_own_error_with_offset_and_rows_before() -> None:
    scanner = NATIVE.Scanner(native_dialect_of(Dialect()), start=10, max_record=8)
    assert scanner.feed(b"a\n\n") is not None
    with pytest.raises(NATIVE.RecordTooLarge) as raised:
        scanner.feed(b'"' + b"x" * 20)
    assert raised.value.args == (13, 1)
    assert issubclass(NATIVE.RecordTooLarge, ValueError)


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_a_scanner_can_start_inside_a_record(name: str) -> None:
    # A shard's first bytes may be inside a quoted field: its state says so.
    scanner = make_engine(name).scanner(50, 1 << 20, State.IN_QUOTED_FIELD)
    block = scanner.feed(b'x\n",y\nz\n')
    assert block is not None and block.start == 50
    assert [block.record_end(i) for i in range(block.count)] == [6, 8]


def test_dialect_of_the_spec_and_for_the_csv_module() -> None:
    assert Dialect.of(CsvDialect()) == Dialect(ord(","), ord('"'), None, True)
    # With an escape character, quotes are not doubled unless asked.
    escaped = Dialect.of(CsvDialect(delimiter="|", quote="'", escape="\\"))
    assert escaped == Dialect(ord("|"), ord("'"), ord("\\"), False)
    assert Dialect.of(CsvDialect(escape="\\", doublequote=True)).doublequote
    assert Dialect(ord(";"), ord("'"), ord("\\"), False).reader_kwargs() == {
        "delimiter": ";", "quotechar": "'", "escapechar": "\\", "doublequote": False, "strict": False}
    assert Dialect().reader_kwargs()["escapechar"] is None


def test_the_transfer_of_a_range_maps_every_state() -> None:
    d = Dialect()
    assert records.transfer(d, b"", 0) == tuple(State)
    after_quote = records.transfer(d, b'"', 1)
    assert after_quote[State.START_RECORD] is State.IN_QUOTED_FIELD
    assert after_quote[State.IN_QUOTED_FIELD] is State.QUOTE_IN_QUOTED_FIELD
    assert after_quote[State.IN_FIELD] is State.IN_FIELD  # a quote inside a field is data
    # A \r whose \n lies past the range has not ended its line; without the \n it has.
    assert records.transfer(d, b"a\r\n", 2)[State.START_RECORD] is State.EAT_CRNL
    assert records.transfer(d, b"a\rb", 2)[State.START_RECORD] is State.START_RECORD
    assert records.transfer(d, b"a\r", 2)[State.START_RECORD] is State.START_RECORD
    assert records.transfer(d, b"\n", 1)[State.IN_QUOTED_FIELD] is State.IN_QUOTED_FIELD


def test_machine_in_quotes() -> None:
    machine = records.Machine(Dialect(escape=ord("\\")))
    assert not machine.in_quotes
    machine.byte(ord('"'))
    assert machine.in_quotes
    machine.byte(ord("\\"))
    assert machine.state is State.ESCAPE_IN_QUOTED_FIELD and machine.in_quotes

"""Differential tests on generated CSV: both engines against the csv module, against the reference state
machine of _csv.c (csv_engines.reference_states) and against each other.

Inputs are drawn from an alphabet rich in the dialect's specials (delimiter, quote, escape, CR, LF,
CRLF), other dialects' specials (data here), spaces, letters, multibyte UTF-8 and sometimes a BOM or
invalid UTF-8; they are fed to the scanners cut anywhere (1-byte chunks, between a CR and its LF,
empty chunks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from csvkafka_worker import records, shards
from csvkafka_worker.encode import BadKind, BadRecord
from csvkafka_worker.engine import first_boundary
from csvkafka_worker.records import Dialect, State
from tests.unit.csv_engines import (
    DIALECTS,
    ENGINE_PARAMS,
    NATIVE,
    NATIVE_MISSING,
    OTHERS,
    block_shapes,
    chunks,
    csv_bytes,
    csv_rows,
    cut_points,
    decode,
    encode,
    iter_pieces,
    make_engine,
    native_dialect_of,
    parse_alone,
    records_of,
    reference_record_ends,
    reference_states,
    reference_unterminated,
    scan,
    utf8_error,
)

SETTINGS = settings(max_examples=120, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
needs_native = pytest.mark.skipif(NATIVE is None, reason=NATIVE_MISSING)


@st.composite
def cases(draw: st.DrawFn, bad_bytes: bool = False) -> tuple[Dialect, bytes, list[int]]:
    d = draw(DIALECTS)
    data = draw(csv_bytes(d, bad_bytes=bad_bytes, long_runs=True))
    return d, data, draw(cut_points(data))


def escaped_cr_before_lf(d: Dialect, data: bytes, content_end: int, end: int) -> bool:
    """The record's CRLF terminator begins with an escaped \\r (data, not terminator: see
    test_an_escaped_cr_before_the_line_feed_is_content)."""
    return data[content_end:end] == b"\r\n" and reference_states(d, data)[content_end] is State.ESCAPED_CHAR


# -- splitting ---------------------------------------------------------------------------------------


ESC = Dialect(escape=ord("\\"))
# Ends of input that generated data rarely reaches: an escape last, inside quotes or not, a \r last.
EDGES = [(ESC, b'"a\\', []), (ESC, b"a\\", []), (ESC, b"a\\\n", []), (ESC, b"a\\\r\nb\n", [3]), (ESC, b"\\", []),
         (Dialect(), b"a\r", [2]), (Dialect(), b'"a\r\n', [2, 3]), (Dialect(), b'"', []),
         (Dialect(doublequote=False), b'"a""b"\n', []), (ESC, b'"a\\\n', [])]


def with_edges(test: Any) -> Any:
    for edge in EDGES:
        test = example(case=edge)(test)
    return test


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@SETTINGS
@with_edges
@given(case=cases(bad_bytes=True))
def test_records_tile_the_input_and_are_the_rows_the_csv_module_reads(name: str,
                                                                      case: tuple[Dialect, bytes, list[int]]) -> None:
    d, data, cuts = case
    blocks = scan(make_engine(name, d), data, cuts)
    recs = records_of(blocks)
    n = len(data)
    # Blocks and records tile the input: contiguous, from 0 to its end.
    assert [b.start for b in blocks] == [sum(b.size for b in blocks[:k]) for k in range(len(blocks))]
    assert sum(b.size for b in blocks) == n
    assert b"".join(b.data for b in blocks) == data
    assert [r.start for r in recs] == [0, *(r.end for r in recs)][:len(recs)]
    assert [r.end for r in recs] == reference_record_ends(d, data)
    for k, r in enumerate(recs):
        terminator = data[r.content_end:r.end]
        assert terminator in (b"\n", b"\r", b"\r\n") or (terminator == b"" and k == len(recs) - 1), r
    # Each record read alone is the csv module's row for the whole input (blank records: its [] rows).
    rows = csv_rows(decode(data), d)
    assert [parse_alone(data[r.start:r.end], d) for r in recs] == rows
    assert [parse_alone(data[r.start:r.content_end], d) for r in recs
            if not escaped_cr_before_lf(d, data, r.content_end, r.end)] == [
        row for row, r in zip(rows, recs, strict=True) if not escaped_cr_before_lf(d, data, r.content_end, r.end)]
    for b in blocks:
        contents = [b.record(i) for i in range(b.count)]
        assert contents == [b.data[b.record_start(i):b.content_end(i)] for i in range(b.count)]
        rows_at = [i for i in range(b.count) if contents[i]]
        assert b.rows == len(rows_at)
        assert [b.ordinal(i) for i in rows_at] == list(range(1, b.rows + 1))
    # Only the end of the input can leave a quote open.
    assert [b.unterminated for b in blocks[:-1]] == [False] * (len(blocks) - 1)
    assert (blocks[-1].unterminated if blocks else False) == reference_unterminated(d, data)


@needs_native
@SETTINGS
@with_edges
@given(case=cases(bad_bytes=True))
def test_both_engines_cut_the_same_blocks_and_records(case: tuple[Dialect, bytes, list[int]]) -> None:
    d, data, cuts = case
    python, native = scan(make_engine("python", d), data, cuts), scan(make_engine("native", d), data, cuts)
    assert block_shapes(native) == block_shapes(python)
    assert records_of(native) == records_of(python)
    for p, q in zip(python, native, strict=True):
        assert [q.record(i) for i in range(q.count)] == [p.record(i) for i in range(p.count)]


# -- encoding ----------------------------------------------------------------------------------------

HEADER_NAMES = st.lists(st.text(alphabet='ab"\\\n\té€\x01 ', max_size=4), min_size=1, max_size=4, unique=True)


@needs_native
@SETTINGS
@given(case=cases(bad_bytes=True), names=HEADER_NAMES, json=st.booleans(), key=st.sampled_from([None, 0, -1]),
       max_value=st.sampled_from([4, 16, 1 << 20]))
def test_both_engines_encode_the_same_values_keys_and_bad_records(
        case: tuple[Dialect, bytes, list[int]], names: list[str], json: bool, key: int | None, max_value: int) -> None:
    d, data, cuts = case
    header = tuple(names)
    assume(header != ("",))
    key_column = None if key is None else header[key]
    blocks = {name: scan(make_engine(name, d), data, cuts) for name in ("python", "native")}
    outputs = {name: [encode(make_engine(name, d), b, header, json=json, key_column=key_column, max_value=max_value)
                      for b in blocks[name]] for name in ("python", "native")}
    assert outputs["native"] == outputs["python"]
    for block, out in zip(blocks["python"], outputs["python"], strict=True):
        bad = {b.index: b for b in out.bad}
        for i in range(block.count):
            unterminated = block.unterminated and i == block.count - 1
            error = utf8_error(block.record(i))
            if block.record(i) and not unterminated and error is not None:
                # Undecodable bytes: a bad record that says at which byte of the record.
                assert bad[i] == BadRecord(i, BadKind.ENCODING, error)
        for b in out.bad:
            if b.kind is BadKind.OVERSIZED:
                assert b.a > max_value
            if b.kind is BadKind.ENCODING:
                assert utf8_error(block.record(b.index)) == b.a
        assert all(len(v) <= max_value for v in out.values)
        assert sorted(set(out.indices) | set(bad)) == [i for i in range(block.count) if block.record(i)]
        assert not set(out.indices) & set(bad)


@needs_native
@SETTINGS
@given(d=DIALECTS, data=st.binary(max_size=120), encoding=st.sampled_from(["ascii", "latin-1", "cp1252"]),
       json=st.booleans(), keyed=st.booleans())
def test_single_byte_encodings_encode_the_same_on_both_engines(d: Dialect, data: bytes, encoding: str, json: bool,
                                                               keyed: bool) -> None:
    """Any bytes at all: the native core transcodes json values to UTF-8 as Python's codecs do, keeps
    keys and line values in the file's encoding, and finds the same undecodable bytes."""
    header = ("k", "v", "w")
    outputs = {name: [encode(make_engine(name, d, encoding), b, header, json=json,
                             key_column="k" if keyed else None, max_value=1 << 20)
                      for b in scan(make_engine(name, d, encoding), data)] for name in ("python", "native")}
    assert outputs["native"] == outputs["python"]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@SETTINGS
@given(case=cases(), json=st.booleans(), keyed=st.booleans(), width_delta=st.sampled_from([0, 0, 0, 1, -1]))
def test_json_values_are_orjson_of_the_csv_rows_and_line_values_the_record_bytes(
        name: str, case: tuple[Dialect, bytes, list[int]], json: bool, keyed: bool, width_delta: int) -> None:
    d, data, cuts = case
    rows = csv_rows(data.decode(), d)
    width = max(1, next((len(row) for row in rows if row), 1) + width_delta)
    header = tuple(f"c{i}" for i in range(width))
    key_column = header[-1] if keyed else None
    engine = make_engine(name, d)
    blocks = scan(engine, data, cuts)
    outs = [encode(engine, b, header, json=json, key_column=key_column, max_value=1 << 20) for b in blocks]
    row_of = iter(rows)
    for block, out in zip(blocks, outs, strict=True):
        values, keys, bad = [], [], []
        for i in range(block.count):
            row = next(row_of)
            if not row:
                continue
            if block.unterminated and i == block.count - 1:
                bad.append(BadRecord(i, BadKind.UNTERMINATED))
            elif (json or keyed) and len(row) != width:
                bad.append(BadRecord(i, BadKind.FIELDS, len(row), width))
            else:
                values.append(orjson.dumps(dict(zip(header, row, strict=True))) if json else block.record(i))
                keys.append(row[-1].encode())
        assert out.values == values
        assert out.bad == bad
        assert out.keys == (keys if keyed and keys else None)
        assert out.sendable == len(values) == len(out.indices)
        assert out.sendable_before == [sum(1 for j in out.indices if j < stop) for stop in range(block.count + 1)]
        if not json:
            assert out.values == [data[block.start + block.record_start(i):block.start + block.content_end(i)]
                                  for i in out.indices]
    assert next(row_of, None) is None


@st.composite
def open_quote_at_the_end(draw: st.DrawFn) -> tuple[Dialect, bytes, int]:
    """Complete records, then a record whose quoted field is never closed."""
    d = draw(DIALECTS)
    head = draw(csv_bytes(d, max_pieces=20))
    lead = draw(st.sampled_from(["", "a" + chr(d.delimiter), chr(d.delimiter)]))
    tail_alphabet = [p for p in [*OTHERS, chr(d.delimiter)] if p not in (chr(d.quote), "\\")]
    tail = "".join(draw(st.lists(st.sampled_from(tail_alphabet), max_size=15)))
    start = len(head) + 1
    data = head + b"\n" + (lead + chr(d.quote) + tail).encode()
    return d, data, start


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@SETTINGS
@given(case=open_quote_at_the_end(), json=st.booleans(), size=st.integers(1, 9))
def test_a_quote_open_at_the_end_is_an_unterminated_bad_record(name: str, case: tuple[Dialect, bytes, int],
                                                               json: bool, size: int) -> None:
    d, data, start = case
    assume(reference_states(d, data)[start] is State.START_RECORD)
    engine = make_engine(name, d)
    blocks = scan(engine, data, list(range(size, len(data), size)))
    last = blocks[-1]
    assert last.unterminated
    assert last.start + last.record_start(last.count - 1) == start
    assert last.start + last.record_end(last.count - 1) == len(data)
    out = encode(engine, last, ("a", "b"), json=json, key_column=None, max_value=1 << 20)
    assert out.bad[-1] == BadRecord(last.count - 1, BadKind.UNTERMINATED)
    assert last.count - 1 not in out.indices


# -- transfers and shard boundaries -----------------------------------------------------------------


def transfers(name: str, d: Dialect) -> Callable[[bytes, int], str]:
    return make_engine(name, d).transfer


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@SETTINGS
@given(d=DIALECTS, data=st.data())
def test_transfers_compose_and_give_the_state_of_a_streaming_reader(name: str, d: Dialect, data: st.DataObject
                                                                    ) -> None:
    body = data.draw(csv_bytes(d, max_pieces=25, bad_bytes=True))
    n = len(body)
    transfer = transfers(name, d)
    states = reference_states(d, body)
    whole = transfer(body, n)
    assert len(whole) == 9 and set(whole) <= set("012345678")
    for p in range(n + 1):
        first = transfer(body, p)
        # From the start of the data: the reader's state after data[:p] (a \r at p - 1 followed by \n
        # has not ended its line yet: the line ends after the \n, in the next range).
        assert State(int(first[State.START_RECORD])) is states[p], p
        assert shards.compose(first, transfer(body[p:], n - p)) == whole, p
        assert shards.state_after([first, transfer(body[p:], n - p)]) is State(int(whole[0]))
    # From the true state at any start q: the true state at p.
    q = data.draw(st.integers(0, n))
    p = data.draw(st.integers(q, n))
    assert State(int(transfer(body[q:], p - q)[states[q]])) is states[p]


@needs_native
@SETTINGS
@given(d=DIALECTS, data=st.data())
def test_both_engines_compute_the_same_transfers(d: Dialect, data: st.DataObject) -> None:
    body = data.draw(csv_bytes(d, max_pieces=25, bad_bytes=True))
    python, native = transfers("python", d), transfers("native", d)
    assert [native(body, p) for p in range(len(body) + 1)] == [python(body, p) for p in range(len(body) + 1)]
    # Direct calls: the function records.transfer and the native module's.
    assert NATIVE.transfer(body, len(body), native_dialect_of(d)) == "".join(
        str(int(s)) for s in records.transfer(d, body, len(body)))
    # From every state, not only the reachable ones.
    for start in State:
        assert State(int(native(body, len(body))[start])) is records.transfer(d, body, len(body))[start]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@SETTINGS
@given(d=DIALECTS, data=st.data())
def test_the_first_boundary_from_a_position_is_the_next_record_end(name: str, d: Dialect, data: st.DataObject
                                                                   ) -> None:
    body = data.draw(csv_bytes(d, max_pieces=25, bad_bytes=True))
    size = data.draw(st.integers(1, 6))
    n = len(body)
    engine = make_engine(name, d)
    ends = reference_record_ends(d, body)
    assert ends == [r.end for r in records_of(scan(engine, body))]
    for p in range(n):
        state = State(int(engine.transfer(body, p)[State.START_RECORD]))
        if state is State.START_RECORD:
            # A record ends right there (ShardPlanner._boundary_from takes p itself).
            assert p == 0 or p in ends
            continue
        assert p not in ends
        found = first_boundary(engine, iter_pieces(body[p:], size), state, n - p, 1 << 20)
        assert p + found == min(e for e in ends if e > p), (p, state)


# -- the examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@pytest.mark.parametrize("size", [1, 2, 5, 1000])
def test_quotes_inside_unquoted_fields_are_data(name: str, size: int) -> None:
    data = b'1,5" screen,x\n2,3" thing,y\n3,c,z\n'
    engine = make_engine(name)
    blocks = scan(engine, data, list(range(size, len(data), size)))
    assert [r.end for r in records_of(blocks)] == [14, 27, 33]
    assert sum(b.rows for b in blocks) == 3
    values = [v for b in blocks for v in encode(engine, b, ("id", "size", "note"), json=True, key_column=None,
                                                 max_value=1 << 20).values]
    assert [orjson.loads(v) for v in values] == [
        {"id": "1", "size": '5" screen', "note": "x"}, {"id": "2", "size": '3" thing', "note": "y"},
        {"id": "3", "size": "c", "note": "z"}]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_a_quote_inside_a_header_like_first_line_is_data(name: str) -> None:
    data = b'id,na"me,note\n1,"a\nb",c\n2,x,y\n'
    engine = make_engine(name)
    blocks = scan(engine, data, [3])
    assert [b.record(i) for b in blocks for i in range(b.count)] == [b'id,na"me,note', b'1,"a\nb",c', b"2,x,y"]
    assert [parse_alone(b.record(i), Dialect()) for b in blocks for i in range(b.count)] == csv_rows(
        data.decode(), Dialect())


# -- the size limit ----------------------------------------------------------------------------------


@st.composite
def long_record_cases(draw: st.DrawFn) -> tuple[Dialect, bytes, int, int, int, int]:
    """Short records (each within the limit), then one longer than the limit, then more short ones.
    Returns the dialect, the data, the limit, the chunk size, where the long record starts and the rows
    before it."""
    d = draw(DIALECTS)
    max_record = draw(st.integers(4, 40))
    delimiter = chr(d.delimiter)
    short = st.text(alphabet=f"ab{delimiter}é", max_size=max_record // 2).map(lambda s: s + "\n")
    before = draw(st.lists(short, max_size=6))
    head = "".join(before).encode()
    filler = st.text(alphabet=f"ab{delimiter}é\n\r", min_size=max_record + 3, max_size=max_record + 40)
    if draw(st.booleans()):
        long = chr(d.quote) + draw(filler)  # a quote left open: the rest of the input is one record
    else:
        long = "x" * draw(st.integers(max_record + 2, max_record + 30)) + "\n" + "".join(draw(st.lists(short)))
    data = head + long.encode()
    size = draw(st.integers(1, max_record + 5))
    return d, data, max_record, size, len(head), sum(1 for line in before if line != "\n")


def feed_until_too_large(scanner: Any, data: bytes, size: int, error: type[Exception]
                         ) -> tuple[Exception, int, list[int]]:
    """Feeds `data` in pieces, then finishes; returns the error, the bytes fed before the call that
    raised it, and the ends of the records returned before."""
    fed, ends = 0, []
    try:
        for piece in iter_pieces(data, size):
            block = scanner.feed(piece)
            ends += [] if block is None else [block.start + block.record_end(i) for i in range(block.count)]
            fed += len(piece)
        scanner.finish()
    except error as raised:
        return raised, fed, ends
    raise AssertionError("no RecordTooLarge")


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@SETTINGS
@given(case=long_record_cases())
def test_a_record_over_the_limit_is_refused_where_it_starts_without_reading_much_past_it(
        name: str, case: tuple[Dialect, bytes, int, int, int, int]) -> None:
    d, data, max_record, size, offset, rows_before = case
    if name == "python":
        error, fed, ends = feed_until_too_large(records.Scanner(d, start=0, max_record=max_record), data, size,
                                                records.RecordTooLarge)
        assert isinstance(error, records.RecordTooLarge)
        assert (error.offset, error.rows_before, error.limit) == (offset, rows_before, max_record)
    else:
        scanner = NATIVE.Scanner(native_dialect_of(d), start=0, max_record=max_record)
        error, fed, ends = feed_until_too_large(scanner, data, size, NATIVE.RecordTooLarge)
        assert error.args == (offset, rows_before)
    # Linear: the scanner never holds more than the limit (and a chunk) past the record's start.
    assert fed <= offset + max_record + 2 + size
    # What it returned before are complete records before the long one.
    assert ends == reference_record_ends(d, data)[:len(ends)]
    assert all(end <= offset for end in ends)


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@SETTINGS
@given(d=DIALECTS, data=st.data())
def test_records_within_the_limit_are_never_refused(name: str, d: Dialect, data: st.DataObject) -> None:
    body = data.draw(csv_bytes(d))
    cuts = data.draw(cut_points(body))
    ends = reference_record_ends(d, body)
    longest = max((b - a for a, b in zip([0, *ends], ends, strict=False)), default=0)
    engine = make_engine(name, d)
    assert records_of(scan(engine, body, cuts, max_record=max(longest, 1))) == records_of(scan(engine, body, cuts))


# -- disagreements found once, now fixed -------------------------------------------------------------


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_an_escaped_cr_before_the_line_feed_is_content(name: str) -> None:
    d = Dialect(escape=ord("\\"))
    data = b"a\\\r\nb\n"
    assert csv_rows(data.decode(), d) == [["a\r"], ["b"]]
    blocks = scan(make_engine(name, d), data)
    assert blocks[0].record(0) == b"a\\\r"  # today b"a\\", which the csv module reads as ["a\n"]
    assert parse_alone(blocks[0].record(0), d) == ["a\r"]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_the_complete_records_before_a_record_over_the_limit_come_out_first(name: str) -> None:
    engine = make_engine(name)
    scanner = engine.scanner(0, 8, State.START_RECORD)
    block = scanner.feed(b'1,a\n2,b\n3,"never closed')
    assert block is not None and [block.record(i) for i in range(block.count)] == [b"1,a", b"2,b"]
    with pytest.raises(records.RecordTooLarge) as raised:
        scanner.feed(b"more")
    assert (raised.value.offset, raised.value.rows_before) == (8, 2)


def test_chunks_helper_keeps_every_byte() -> None:
    assert chunks(b"abcdef", [0, 2, 2, 5]) == [b"", b"ab", b"", b"cde", b"f"]

"""Encoding records into Kafka values, on both engines: exact strings, header order, bad rows kept with
what is wrong."""

from __future__ import annotations

import orjson
import pytest

from csvkafka_worker.encode import (
    BadKind,
    BadRecord,
    Encoded,
    HeaderError,
    RowEncoder,
    describe,
    parse_fields,
    validate_header,
)
from csvkafka_worker.errors import BadInput
from csvkafka_worker.preamble import read_preamble
from csvkafka_worker.records import Dialect, Scanner
from csvkafka_worker.spec import CsvDialect
from tests.unit.csv_engines import ENGINE_PARAMS, RFC4180, Output, encode, make_engine, scan

HEADER = ("id", "name", "note")


def encode_all(name: str, data: bytes, *, json: bool = True, key: str | None = None, max_value: int = 1 << 20,
               header: tuple[str, ...] = HEADER, dialect: Dialect = RFC4180) -> Output:
    """`data` as one block (fed whole, then finished)."""
    engine = make_engine(name, dialect)
    scanner = engine.scanner(0, 1 << 20)
    block = scanner.feed(data)
    assert block is not None and block.size == len(data) and scanner.finish() is None
    return encode(engine, block, header, json=json, key_column=key, max_value=max_value)


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_json_values_keep_column_order_and_exact_strings(name: str) -> None:
    out = encode_all(name, b'1," padded ",\n2,"a ""q""","x\ny"\r\n3,\\,"\xe2\x82\xac\t\x01"\n')
    assert [list(orjson.loads(v).items()) for v in out.values] == [
        [("id", "1"), ("name", " padded "), ("note", "")],
        [("id", "2"), ("name", 'a "q"'), ("note", "x\ny")],
        [("id", "3"), ("name", "\\"), ("note", "€\t\x01")],
    ]
    # Byte for byte what orjson makes of the row.
    assert out.values[2] == orjson.dumps({"id": "3", "name": "\\", "note": "€\t\x01"})
    assert out.indices == [0, 1, 2] and out.bad == [] and out.keys is None


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_header_names_are_json_escaped(name: str) -> None:
    header = ('i"d', "na\\me", "n\u00f6te\n")
    out = encode_all(name, b"1,2,3\n", header=header)
    assert out.values == [orjson.dumps(dict(zip(header, ["1", "2", "3"], strict=True)))]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_line_values_are_the_original_bytes_and_keys_come_from_the_column(name: str) -> None:
    out = encode_all(name, b'1,"Smith, J",x\n\n2,\xc3\xa9,y\r\n', json=False, key="name")
    assert out.values == [b'1,"Smith, J",x', b"2,\xc3\xa9,y"]
    assert out.keys == [b"Smith, J", "é".encode()]
    assert out.indices == [0, 2]  # record 1 is a blank line: not a row, not bad
    assert out.bad == []


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_line_values_without_a_key_are_not_parsed(name: str) -> None:
    # Without a key column, a line is sent as it is, whatever its field count.
    out = encode_all(name, b"1,a\n2,b,c,d\n", json=False)
    assert out.values == [b"1,a", b"2,b,c,d"] and out.bad == [] and out.keys is None


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_wrong_column_count_is_a_bad_record_with_the_counts(name: str) -> None:
    out = encode_all(name, b"1,a,b\n2,only-two\n3,c,d\n4,a,b,c\n")
    assert out.indices == [0, 2]
    assert out.bad == [BadRecord(1, BadKind.FIELDS, 2, 3), BadRecord(3, BadKind.FIELDS, 4, 3)]
    assert describe(out.bad[0], b"2,only-two", "utf-8", 1000) == "2 fields where the header has 3"
    # Also in line format when a key is needed.
    keyed = encode_all(name, b"1,a,b\n2,only-two\n", json=False, key="note")
    assert keyed.bad == [BadRecord(1, BadKind.FIELDS, 2, 3)] and keyed.keys == [b"b"]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_undecodable_bytes_are_a_bad_record_and_the_others_still_go(name: str) -> None:
    out = encode_all(name, b"1,a,b\n2,\xff\xfe,c\n3,c,d\n")
    assert out.indices == [0, 2]
    assert out.bad == [BadRecord(1, BadKind.ENCODING, 2)]
    reason = describe(out.bad[0], b"2,\xff\xfe,c", "utf-8", 1000)
    assert reason == "bytes not valid utf-8 at column byte 2: b'\\xff\\xfe,c'"


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_a_value_larger_than_a_message_is_a_bad_record(name: str) -> None:
    out = encode_all(name, b"1,a,b\n2,aaaaaaaaaaaaaaaaaaaa,c\n3,c,d\n", max_value=40)
    big = len(orjson.dumps({"id": "2", "name": "a" * 20, "note": "c"}))
    assert out.indices == [0, 2] and out.bad == [BadRecord(1, BadKind.OVERSIZED, big)]
    assert describe(out.bad[0], b"", "utf-8", 1000) == (
        f"encoded row of {big} bytes is larger than a Kafka message may be (message.max.bytes=1000)")
    line = encode_all(name, b"1,a,b\n2,aaaaaaaaaaaaaaaaaaaa,c\n", json=False, key="id", max_value=10)
    assert line.bad == [BadRecord(1, BadKind.OVERSIZED, 24)] and line.keys == [b"1"]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_a_quote_left_open_at_the_end_is_a_bad_record(name: str) -> None:
    engine = make_engine(name)
    blocks = scan(engine, b'1,a,b\n2,"never,closed\n3,x,y\n')
    assert [b.unterminated for b in blocks] == [False, True]
    out = encode(engine, blocks[1], HEADER, json=True, key_column=None, max_value=1 << 20)
    assert out.indices == [] and out.bad == [BadRecord(0, BadKind.UNTERMINATED)]
    assert describe(out.bad[0], b"", "utf-8", 1000) == "quoted field not closed at the end of the object"


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_sendable_rows_before_a_record(name: str) -> None:
    out = encode_all(name, b"1,a,b\n\n2,x\n3,c,d\n")
    assert out.indices == [0, 3]
    assert out.sendable == 2
    assert out.sendable_before == [0, 1, 1, 1, 2]


def test_encoded_sendable_before() -> None:
    encoded = Encoded(indices=[1, 4, 5], values=[b"a", b"b", b"c"])
    assert encoded.sendable == 3
    assert [encoded.sendable_before(i) for i in range(7)] == [0, 0, 1, 1, 1, 2, 3]


def test_latin1_encoding() -> None:
    scanner = Scanner(Dialect(), start=0)
    block = scanner.feed(b"1,caf\xe9,x\n")
    assert block is not None
    out = RowEncoder(HEADER, Dialect(), "latin-1", json=True, key_column="name", max_value=1000).encode(block)
    assert orjson.loads(out.values[0])["name"] == "café"
    assert out.keys == ["café".encode("latin-1")]


def test_an_encoder_in_an_escape_dialect() -> None:
    d = Dialect(delimiter=ord(";"), quote=ord("'"), escape=ord("\\"), doublequote=False)
    out = encode_all("python", b"1;'it\\'s';a\\;b\n", dialect=d)
    assert orjson.loads(out.values[0]) == {"id": "1", "name": "it's", "note": "a;b"}


def test_parse_fields_of_one_record() -> None:
    assert parse_fields(b'a,"b,c",d\r\n', Dialect(), "utf-8") == ["a", "b,c", "d"]
    assert parse_fields(b"", Dialect(), "utf-8") == []
    with pytest.raises(UnicodeDecodeError):
        parse_fields(b"\xff", Dialect(), "utf-8")


@pytest.mark.parametrize(("names", "message"), [
    (["a", "a"], "appears twice"),
    ([""], "header row is empty"),
    ([], "header row is empty"),
])
def test_unusable_headers_are_refused_with_the_fix(names: list[str], message: str) -> None:
    with pytest.raises(HeaderError, match=message):
        validate_header(names, None)


def test_a_header_with_the_key_column_is_kept_in_order() -> None:
    assert validate_header(["b", "a", ""], "a") == ("b", "a", "")


def test_missing_key_column_names_the_header() -> None:
    with pytest.raises(HeaderError, match="key column 'nope' is not in the header"):
        validate_header(["a", "b"], "nope")


def test_preamble_skips_bom_lines_and_blank_lines_and_finds_the_data_start() -> None:
    data = b"\xef\xbb\xbfexported 2026-01-01\n\nid,name\r\n1,a\n"
    found = read_preamble(data, CsvDialect(skip_rows=1), None, at_eof=False)
    assert found is not None
    assert found.header == ("id", "name")
    assert data[found.data_start:] == b"1,a\n"


def test_preamble_waits_for_more_bytes_and_explicit_columns_replace_the_header() -> None:
    assert read_preamble(b'id,"na', CsvDialect(), None, at_eof=False) is None
    found = read_preamble(b"x,y\n1,2\n", CsvDialect(columns=("a", "b")), None, at_eof=False)
    assert found is not None and found.header == ("a", "b") and found.data_start == 4


def test_a_quote_inside_a_header_name_is_data() -> None:
    found = read_preamble(b'id,na"me,note\n1,2,3\n', CsvDialect(), "na\"me", at_eof=False)
    assert found is not None and found.header == ("id", 'na"me', "note") and found.data_start == 14


def test_a_header_in_an_escape_dialect() -> None:
    found = read_preamble(b"\xef\xbb\xbfa\\,b|'c|d'\n1|2\n", CsvDialect(delimiter="|", quote="'", escape="\\"), None,
                          at_eof=False)
    assert found is not None and found.header == ("a,b", "c|d") and found.data_start == 14


def test_no_header_starts_data_at_zero() -> None:
    found = read_preamble(b"1,2\n", CsvDialect(header=False, columns=("a", "b")), None, at_eof=False)
    assert found is not None and found.data_start == 0


def test_empty_object_has_no_header() -> None:
    with pytest.raises(BadInput, match="ends before its header"):
        read_preamble(b"", CsvDialect(), None, at_eof=True)


def test_a_header_that_never_ends_is_refused() -> None:
    with pytest.raises(BadInput, match="the header does not end within 1024 bytes"):
        read_preamble(b'"' + b"x" * 2000, CsvDialect(max_record_bytes=1024), None, at_eof=False)

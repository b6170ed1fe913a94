"""Encoding records into Kafka values: exact strings, header order, bad rows kept with a reason."""

from __future__ import annotations

import orjson
import pytest

from csvkafka_worker.encode import HeaderError, RowEncoder, validate_header
from csvkafka_worker.errors import BadInput
from csvkafka_worker.preamble import read_preamble
from csvkafka_worker.spec import CsvDialect, ValueFormat

HEADER = ("id", "name", "note")


def encoder(fmt: ValueFormat = ValueFormat.JSON, key: str | None = None, **dialect: object) -> RowEncoder:
    return RowEncoder(HEADER, CsvDialect(**dialect), fmt, key)


def test_json_values_keep_column_order_and_exact_strings() -> None:
    out = encoder().encode([b'1," padded ",', b'2,"a ""q""","x\ny"'])
    assert [list(orjson.loads(v).items()) for v in out.values] == [
        [("id", "1"), ("name", " padded "), ("note", "")],
        [("id", "2"), ("name", 'a "q"'), ("note", "x\ny")],
    ]
    assert out.indices == [0, 1] and out.bad == []


def test_line_values_are_the_original_bytes_and_keys_come_from_the_column() -> None:
    out = encoder(ValueFormat.LINE, key="name").encode([b'1,"Smith, J",x', b"", b"2,\xc3\xa9,y"])
    assert out.values == [b'1,"Smith, J",x', b"2,\xc3\xa9,y"]
    assert out.keys == [b"Smith, J", "é".encode()]
    assert out.indices == [0, 2]


def test_wrong_column_count_is_a_bad_record_with_the_counts() -> None:
    out = encoder().encode([b"1,a,b", b"2,only-two", b"3,c,d"])
    assert out.indices == [0, 2]
    assert [(b.index, b.reason) for b in out.bad] == [(1, "2 fields where the header has 3")]


def test_undecodable_bytes_are_a_bad_record_and_the_others_still_go() -> None:
    out = encoder().encode([b"1,a,b", b"2,\xff\xfe,c", b"3,c,d"])
    assert out.indices == [0, 2]
    assert out.bad[0].index == 1 and "not valid utf-8" in out.bad[0].reason


def test_latin1_encoding() -> None:
    out = encoder(encoding="latin-1").encode([b"1,caf\xe9,x"])
    assert orjson.loads(out.values[0])["name"] == "café"


@pytest.mark.parametrize(("names", "message"), [
    (["a", "a"], "appears twice"),
    ([""], "header row is empty"),
])
def test_unusable_headers_are_refused_with_the_fix(names: list[str], message: str) -> None:
    with pytest.raises(HeaderError, match=message):
        validate_header(names, None)


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


def test_no_header_starts_data_at_zero() -> None:
    found = read_preamble(b"1,2\n", CsvDialect(header=False, columns=("a", "b")), None, at_eof=False)
    assert found is not None and found.data_start == 0


def test_empty_object_has_no_header() -> None:
    with pytest.raises(BadInput, match="ends before its header"):
        read_preamble(b"", CsvDialect(), None, at_eof=True)

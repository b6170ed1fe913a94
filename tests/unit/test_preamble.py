"""The start of each object: skipped lines, the header row or the spec's names, and expectedHeader."""

from __future__ import annotations

import csv
import io
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csvkafka_worker.errors import BadInput, Reason
from csvkafka_worker.preamble import header_difference, read_preamble
from csvkafka_worker.spec import CsvDialect

names_strategy = st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00\ufeff"), min_size=1),
                          min_size=1, max_size=8, unique=True)
junk_strategy = st.lists(st.text(st.characters(codec="utf-8", exclude_characters='\x00\r\n"\ufeff'), min_size=1),
                         max_size=3)


def written(rows: list[list[str]], terminator: str) -> bytes:
    """Rows as Python's csv module writes them (the reference). It quotes a lone carriage return only
    when the line terminator has one, so fields with one are all quoted."""
    out = io.StringIO(newline="")
    quoting = csv.QUOTE_ALL if any("\r" in field for row in rows for field in row) else csv.QUOTE_MINIMAL
    csv.writer(out, lineterminator=terminator, quoting=quoting).writerows(rows)
    return out.getvalue().encode()


@given(names=names_strategy, junk=junk_strategy, terminator=st.sampled_from(["\n", "\r\n"]),
       body=st.lists(st.lists(st.text(max_size=5), min_size=1, max_size=3), max_size=3))
def test_the_header_is_what_the_csv_module_wrote_and_data_starts_after_it(
        names: list[str], junk: list[str], terminator: str, body: list[list[str]]) -> None:
    preamble = "".join(line + terminator for line in junk).encode() + written([names], terminator)
    data = preamble + written(body, terminator)
    dialect = CsvDialect(skip_rows=len(junk))
    found = read_preamble(data, dialect, None, at_eof=True)
    assert found is not None
    assert found.header == tuple(names)
    assert found.data_start == len(preamble)
    # Any shorter prefix gives no answer yet or the same one: a resume and every shard agree.
    for cut in range(len(data)):
        early = read_preamble(data[:cut], dialect, None, at_eof=False)
        assert early is None or early == found, cut


SKIPPED = b"exported by db1\ncolumns follow\n"


@pytest.mark.parametrize(("dialect", "data", "header"), [
    (CsvDialect(), b"id,name\n", ("id", "name")),  # the header row names the columns
    (CsvDialect(header=False, columns=("k", "v")), b"", ("k", "v")),  # no header row
    (CsvDialect(header=True, columns=("k", "v")), b"id,name\n", ("k", "v")),  # the spec's names replace the row's
    (CsvDialect(skip_rows=2), SKIPPED + b"id,name\n", ("id", "name")),  # lines before the header
    (CsvDialect(header=False, columns=("k", "v"), skip_rows=2), SKIPPED, ("k", "v")),
    (CsvDialect(header=True, columns=("k", "v"), skip_rows=2, expected_header=("id", "name")),
     SKIPPED + b"id,name\n", ("k", "v")),
])
def test_each_header_mode(dialect: CsvDialect, data: bytes, header: tuple[str, ...]) -> None:
    found = read_preamble(data + b"1,a\n2,b\n", dialect, None, at_eof=True)
    assert found is not None
    assert (found.header, found.data_start) == (header, len(data))


def test_a_header_equal_to_the_expected_one_passes() -> None:
    found = read_preamble(b"id,name,note\n1,a,b\n", CsvDialect(expected_header=("id", "name", "note")), None,
                          at_eof=False)
    assert found is not None and found.header == ("id", "name", "note")


@pytest.mark.parametrize(("data", "message"), [
    (b"id,name\n1,a\n", "missing ['note'] (header: ['id', 'name'])"),
    (b"id,name,note,extra\n1,a,b,c\n", "not expected ['extra'] (header: ['id', 'name', 'note', 'extra'])"),
    (b"id,nom,note\n1,a,b\n", "missing ['name']; not expected ['nom']"),
    (b"id,note,name\n1,a,b\n", "the order differs: column 2 is 'note', expected 'name'"),
    (b"id,name,name\n1,a,b\n", "missing ['note']; not expected ['name']"),
])
def test_a_header_other_than_the_expected_one_fails_with_the_difference(data: bytes, message: str) -> None:
    with pytest.raises(BadInput) as failed:
        read_preamble(data, CsvDialect(expected_header=("id", "name", "note")), None, at_eof=False)
    assert failed.value.reason is Reason.BAD_INPUT
    assert str(failed.value).startswith("the header does not match source.csv.expectedHeader: ")
    assert message in str(failed.value)
    assert str(failed.value).endswith("correct the object, or set expectedHeader to the header it should have")


def test_expected_header_checks_the_row_that_columns_rename() -> None:
    dialect = CsvDialect(columns=("a", "b"), expected_header=("id", "name"))
    with pytest.raises(BadInput, match=r"missing \['name'\]"):
        read_preamble(b"id,nom\n1,2\n", dialect, None, at_eof=False)


def test_expected_header_without_a_header_row_is_a_configuration_error() -> None:
    with pytest.raises(BadInput, match="set header: true") as failed:
        read_preamble(b"1,2\n", CsvDialect(header=False, columns=("a", "b"), expected_header=("a", "b")), None,
                      at_eof=False)
    assert failed.value.reason is Reason.INVALID_CONFIGURATION


@given(names_strategy, st.randoms(use_true_random=False))
def test_the_difference_is_none_exactly_when_the_headers_are_equal(names: list[str], rand: random.Random) -> None:
    shuffled = list(names)
    rand.shuffle(shuffled)
    assert (header_difference(tuple(shuffled), tuple(names)) is None) == (shuffled == names)
    if shuffled != names:
        assert "the order differs" in (header_difference(tuple(shuffled), tuple(names)) or "")


def test_a_long_header_is_shortened_in_the_message() -> None:
    expected = tuple(f"c{i}" for i in range(40))
    message = header_difference(expected[:-1], expected) or ""
    assert "missing ['c39']" in message and "… 27 more]" in message and len(message) < 400

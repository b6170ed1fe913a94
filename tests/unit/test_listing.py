"""Source patterns and globs: what a multi-object source names, checked against wcmatch's globs."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from wcmatch import glob as wcglob

from csvkafka_worker.errors import BadInput
from csvkafka_worker.listing import Kind, SourcePattern, compile_glob, key_admitted, literal_prefix, parse_source

REFERENCE_FLAGS = wcglob.GLOBSTAR | wcglob.DOTGLOB


@pytest.mark.parametrize(("uri", "pattern"), [
    ("s3://bucket/data/file.csv", SourcePattern("bucket", Kind.OBJECT, "data/file.csv")),
    ("s3://bucket/data/", SourcePattern("bucket", Kind.PREFIX, "data/")),
    ("s3://bucket/data/*.csv", SourcePattern("bucket", Kind.GLOB, "data/*.csv")),
    ("s3://bucket/data/**/x.csv", SourcePattern("bucket", Kind.GLOB, "data/**/x.csv")),
    ("s3://bucket/day?.csv", SourcePattern("bucket", Kind.GLOB, "day?.csv")),
    ("s3://bucket/day[12].csv", SourcePattern("bucket", Kind.GLOB, "day[12].csv")),
    ("s3://bucket/a\\*b", SourcePattern("bucket", Kind.GLOB, "a\\*b")),
])
def test_parse_source(uri: str, pattern: SourcePattern) -> None:
    assert parse_source(uri) == pattern
    assert pattern.uri == uri


def test_a_source_that_is_not_an_s3_uri_is_refused() -> None:
    with pytest.raises(BadInput, match=r"'https://x/y' is not of the form s3://bucket/key"):
        parse_source("https://x/y")


@pytest.mark.parametrize(("pattern", "key", "matches"), [
    ("a/*.csv", "a/x.csv", True),
    ("a/*.csv", "a/b/x.csv", False),
    ("a/?", "a/b", True),
    ("a/?", "a//", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "ab", False),
    ("**/b", "b", True),
    ("**/b", "x/y/b", True),
    ("a/**", "a/x/y", True),
    ("a/**", "a", False),
    # Not a whole segment: still crosses "/".
    ("logs/**.csv", "logs/2024/01/x.csv", True),
    ("logs/x**", "logs/x/y", True),
    ("***/x", "x", True),
    ("***/x", "a/b/x", True),
    ("a/[!x]", "a/y", True),
    ("a/[!x]/b", "a///b", False),
    ("a[/]b", "a/b", False),
    ("a[,-0]b", "a/b", False),
    ("a[,-0]b", "a.b", True),
    ("[]x]", "]", True),
    ("[!]x]", "]", False),
    ("[z-a]", "z", False),
    ("[!z-a]", "z", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("a[b", "a[b", True),
    ("a[\\]]b", "a]b", True),
    ("x\\", "x\\", True),
    ("*", "line\nbreak", True),
    ("a.c", "abc", False),
])
def test_glob_examples(pattern: str, key: str, matches: bool) -> None:
    assert (compile_glob(pattern).match(key) is not None) is matches


SEGMENT_CHARS = "ab.-*?[]\\"
SEGMENTS = st.text(SEGMENT_CHARS, min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))
# A glob piece and text it (usually) matches: keys made of these match often, random ones seldom.
PIECES = {"a": "a", "b": "b", ".": ".", "-": "-", "*": "ba", "?": "-", "[ab]": "b", "[!a]": ".", "[a-c]": "b",
          "[]a]": "]", "[!]]": "a", "[^a]": "b", "[a-]": "-",
          "\\*": "*", "\\?": "?", "\\[": "[", "\\\\": "\\", "[": "[", "]": "]"}


@st.composite
def globs_and_keys(draw: st.DrawFn) -> tuple[str, str]:
    pattern: list[str] = []
    key: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 4)) == 0:
            pattern.append("**")
            key.extend(draw(st.lists(SEGMENTS, max_size=2)))
        else:
            pieces = draw(st.lists(st.sampled_from(sorted(PIECES)), min_size=1, max_size=4))
            pattern.append("".join(pieces))
            key.append("".join(PIECES[p] for p in pieces))
    made = "/".join(key)
    # Sometimes a random key, sometimes the made one with a character changed.
    return "/".join(pattern), draw(st.one_of(
        st.just(made), st.lists(SEGMENTS, min_size=1, max_size=4).map("/".join),
        st.builds(lambda i, c: made[:i] + c + made[i + 1:], st.integers(0, 8), st.sampled_from(SEGMENT_CHARS))))


@settings(max_examples=500, deadline=None, database=None)
@given(case=globs_and_keys())
def test_glob_matches_as_wcmatch_does(case: tuple[str, str]) -> None:
    """wcmatch (GLOBSTAR, dot files matched) is the reference for `**` as a whole segment."""
    pattern, key = case
    # An empty segment or a dot directory: a path to wcmatch more than a key.
    assume(key and not key.startswith("/") and "//" not in key and not {".", ".."} & set(key.split("/")))
    # Stars next to each other but not a whole "**" segment: they cross "/" here, not in wcmatch.
    assume(all(segment == "**" or "**" not in segment for segment in pattern.split("/")))
    expected = wcglob.globmatch(key, pattern, flags=REFERENCE_FLAGS)
    assert (compile_glob(pattern).match(key) is not None) is expected


@settings(max_examples=200, deadline=None, database=None)
@given(case=globs_and_keys())
def test_every_match_starts_with_the_literal_prefix(case: tuple[str, str]) -> None:
    pattern, key = case
    prefix = literal_prefix(pattern)
    if compile_glob(pattern).match(key):
        assert key.startswith(prefix)


def test_literal_prefix() -> None:
    assert literal_prefix("logs/2024/*.csv") == "logs/2024/"
    assert literal_prefix("logs/day?/x") == "logs/day"
    assert literal_prefix("**/x.csv") == ""
    assert literal_prefix("a\\*b/*") == "a*b/"
    assert literal_prefix("plain/key") == "plain/key"


@pytest.mark.parametrize(("key", "include", "exclude", "admitted"), [
    ("data/2024/x.csv", (), (), True),
    # Without "/": the key's last segment.
    ("data/2024/x.csv", ("*.csv",), (), True),
    ("data/2024/x.json", ("*.csv",), (), False),
    ("data/2024/x.csv", ("*.csv", "*.tsv"), ("x.*",), False),
    ("data/2024/_SUCCESS", (), ("_*",), False),
    # With "/": the whole key.
    ("data/2024/x.csv", ("data/*/x.csv",), (), True),
    ("data/2024/x.csv", ("*/x.csv",), (), False),
    ("data/2024/tmp/x.csv", (), ("**/tmp/**",), False),
    ("data/2024/x.csv", (), ("**/tmp/**",), True),
])
def test_include_and_exclude(key: str, include: tuple[str, ...], exclude: tuple[str, ...], admitted: bool) -> None:
    assert key_admitted(key, include, exclude) is admitted

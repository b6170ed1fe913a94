"""The objects of a multi-object source: a key, a prefix, a glob, or a list of keys, narrowed by
include/exclude patterns and a last-modified time, listed page by page (constant memory).

Globs: `*`, `?` and `[...]` / `[!...]` match within one path segment (never `/`); `**` matches across
segments, and as a whole segment any number of them, none included (`a/**/b` matches `a/b`); a
backslash makes the next character literal. An include or exclude pattern without `/` applies to the
key's last segment (`*.csv`), one with `/` to the whole key. Keys ending in `/` (folder markers) are
not objects; empty objects are.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from csvkafka_worker import aws
from csvkafka_worker.errors import BadInput, ConfigError, Reason, WorkerError
from csvkafka_worker.plan import ObjectEntry
from csvkafka_worker.retry import Retrier
from csvkafka_worker.source import refused
from csvkafka_worker.spec import GLOB_CHARS, S3_URI, SourceSpec


class Kind(StrEnum):
    OBJECT = "object"
    PREFIX = "prefix"
    GLOB = "glob"


@dataclass(frozen=True)
class SourcePattern:
    """`key` is the object's key, the prefix, or the glob."""

    bucket: str
    kind: Kind
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def list_prefix(self) -> str:
        return literal_prefix(self.key) if self.kind is Kind.GLOB else self.key

    def matches(self, bucket: str, key: str) -> bool:
        if bucket != self.bucket:
            return False
        if self.kind is Kind.OBJECT:
            return key == self.key
        if self.kind is Kind.PREFIX:
            return key.startswith(self.key)
        return compile_glob(self.key).match(key) is not None


def parse_source(uri: str) -> SourcePattern:
    match = S3_URI.match(uri)
    if match is None:
        raise ConfigError(f"source {uri!r} is not of the form s3://bucket/key, s3://bucket/prefix/ or s3://bucket/glob")
    key = match["key"]
    kind = Kind.GLOB if GLOB_CHARS.search(key) else Kind.PREFIX if key.endswith("/") else Kind.OBJECT
    return SourcePattern(match["bucket"], kind, key)


@functools.lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regular expression of a glob; `match` matches whole keys only."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            stars = len(pattern[i:]) - len(pattern[i:].lstrip("*"))
            whole_segment = (i == 0 or pattern[i - 1] == "/") and pattern[i + stars:i + stars + 1] == "/"
            if stars == 1:
                out.append("[^/]*")
            elif whole_segment:
                out.append("(?:.*/)?")
                stars += 1  # the "/" after it
            else:
                out.append(".*")
            i += stars
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (found := _bracket(pattern, i)) is not None:
            regex, i = found
            out.append(regex)
        else:
            if c == "\\" and i + 1 < n:
                i += 1
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _bracket(pattern: str, start: int) -> tuple[str, int] | None:
    """The regex of the class opening at `start` and the index after it; None when it does not close
    within the segment (the "[" is then literal)."""
    i = start + 1
    negate = pattern[i:i + 1] in ("!", "^")
    i += negate
    chars: list[tuple[str, str]] = []
    first = True
    while i < len(pattern) and (first or pattern[i] != "]"):
        first = False
        low, i = _class_char(pattern, i)
        if pattern[i:i + 1] == "-" and i + 1 < len(pattern) and pattern[i + 1] != "]":
            high, i = _class_char(pattern, i + 1)
        else:
            high = low
        if "/" in (low, high):
            return None
        if low <= high:
            chars.append((low, high))
    if i >= len(pattern):
        return None
    ranges = "".join(re.escape(a) if a == b else f"{re.escape(a)}-{re.escape(b)}" for a, b in chars)
    if negate:
        return f"[^/{ranges}]", i + 1
    return (f"(?!/)[{ranges}]" if ranges else "(?!)"), i + 1


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if pattern[i] == "\\" and i + 1 < len(pattern):
        return pattern[i + 1], i + 2
    return pattern[i], i + 1


def literal_prefix(pattern: str) -> str:
    """The literal start of a glob, which every key it matches begins with."""
    out: list[str] = []
    i = 0
    while i < len(pattern) and pattern[i] not in "*?[":
        if pattern[i] == "\\" and i + 1 < len(pattern):
            i += 1
        out.append(pattern[i])
        i += 1
    return "".join(out)


def list_objects(s3: Any, source: SourceSpec, retrier: Retrier) -> Iterator[ObjectEntry]:
    """The objects of a source spec (`uri` or `uris`, narrowed by include, exclude and modifiedAfter)."""
    patterns = [parse_source(uri) for uri in (source.uris or (source.uri or "",))]
    return list_patterns(s3, patterns, source.include, source.exclude, source.modified_after, retrier)


def list_patterns(s3: Any, patterns: Sequence[SourcePattern], include: Sequence[str], exclude: Sequence[str],
                  modified_after: datetime | None, retrier: Retrier) -> Iterator[ObjectEntry]:
    """The objects of the patterns in order (each listing in key order), each once (an object an earlier
    pattern matched is left out), narrowed by the filters. An object pattern is read by HEAD and must exist."""
    after = None if modified_after is None else _aware(modified_after)
    named: set[tuple[str, str]] = set()
    listed: list[SourcePattern] = []
    for pattern in patterns:
        found = [_head(s3, pattern, retrier)] if pattern.kind is Kind.OBJECT else _listing(s3, pattern, retrier)
        for entry in found:
            if (entry.bucket, entry.key) in named or any(p.matches(entry.bucket, entry.key) for p in listed):
                continue
            if key_admitted(entry.key, include, exclude) and (after is None or entry.last_modified > after):
                yield entry
        if pattern.kind is Kind.OBJECT:
            named.add((pattern.bucket, pattern.key))
        else:
            listed.append(pattern)


def key_admitted(key: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a key passes the include patterns (if any) and none of the exclude ones."""
    def matches(pattern: str) -> bool:
        return compile_glob(pattern).match(key if "/" in pattern else key.rpartition("/")[2]) is not None

    return (not include or any(map(matches, include))) and not any(map(matches, exclude))


def _listing(s3: Any, pattern: SourcePattern, retrier: Retrier) -> Iterator[ObjectEntry]:
    prefix = pattern.list_prefix
    request: dict[str, str] = {"Bucket": pattern.bucket, "Prefix": prefix}
    while True:
        try:
            page = retrier.call(lambda: s3.list_objects_v2(**request), aws.transient,
                                f"listing s3://{pattern.bucket}/{prefix}")
        except ClientError as error:
            raise _list_refused(error, pattern) from error
        for item in page.get("Contents", ()):
            key = str(item["Key"])
            if not key.endswith("/") and pattern.matches(pattern.bucket, key):
                yield ObjectEntry(pattern.bucket, key, int(item["Size"]), str(item.get("ETag", "")).strip('"'),
                                  _aware(item["LastModified"]))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
        request["ContinuationToken"] = str(token)


def _head(s3: Any, pattern: SourcePattern, retrier: Retrier) -> ObjectEntry:
    try:
        response = retrier.call(lambda: s3.head_object(Bucket=pattern.bucket, Key=pattern.key), aws.transient,
                                f"HEAD {pattern.uri}")
    except ClientError as error:
        if aws.error_code(error) in ("404", "NoSuchKey", "NotFound"):
            raise BadInput(f"source object {pattern.uri} does not exist; fix its bucket or key in the source, or "
                           "remove it", reason=Reason.SOURCE_NOT_FOUND) from error
        raise refused(error, pattern.uri, "HEAD") from error
    return ObjectEntry(pattern.bucket, pattern.key, int(response["ContentLength"]),
                       str(response.get("ETag", "")).strip('"'), _aware(response["LastModified"]))


def _list_refused(error: ClientError, pattern: SourcePattern) -> WorkerError:
    code = aws.error_code(error)
    if code in ("NoSuchBucket", "404"):
        return BadInput(f"bucket {pattern.bucket!r} of source {pattern.uri} does not exist; check the bucket name "
                        "in the source (and that it is in the worker's region)", reason=Reason.SOURCE_NOT_FOUND)
    if code in ("AccessDenied", "403", "Forbidden"):
        return BadInput(f"listing bucket {pattern.bucket!r} (source {pattern.uri}) is denied; grant s3:ListBucket "
                        f"on arn:aws:s3:::{pattern.bucket} to the worker's role (IRSA)",
                        reason=Reason.SOURCE_ACCESS_DENIED)
    return refused(error, pattern.uri, "ListObjectsV2")


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

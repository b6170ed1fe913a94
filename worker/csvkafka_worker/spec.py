"""The import spec: what one worker imports, from where, to where, and how.

This is the contract the operator shares with the worker. Field names (in their camelCase aliases)
are those of the `CsvKafkaImport` resource's `spec`, so the operator validates a resource by parsing
its spec with these models and renders the worker's command line with `to_cli_args`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from csvkafka_worker.producer_guard import weakening

S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")
# A key holding one of these is a glob (a backslash before one makes it literal); one ending in "/" a prefix.
GLOB_CHARS = re.compile(r"[*?\[]")


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")


class Compression(StrEnum):
    AUTO = "auto"
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"
    BZ2 = "bz2"


class ValueFormat(StrEnum):
    JSON = "json"
    LINE = "line"


class Delivery(StrEnum):
    AT_LEAST_ONCE = "at-least-once"
    EXACTLY_ONCE = "exactly-once"


class BadRowAction(StrEnum):
    FAIL = "fail"
    SKIP = "skip"
    DEAD_LETTER = "dead-letter"


class ObjectErrorAction(StrEnum):
    FAIL = "fail"
    SKIP = "skip"


class RerunMode(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    ALL = "all"


class AuthMechanism(StrEnum):
    NONE = "none"
    SCRAM_SHA_512 = "scram-sha-512"
    SCRAM_SHA_256 = "scram-sha-256"
    MSK_IAM = "msk-iam"


OneChar = Annotated[str, Field(min_length=1, max_length=1)]


class CsvDialect(Model):
    delimiter: OneChar = ","
    quote: OneChar = '"'
    escape: OneChar | None = None
    # Whether "" inside quotes is one quote (RFC 4180). Default: yes without an escape character,
    # no with one (the escape character escapes quotes then).
    doublequote: bool | None = None
    header: bool = True
    columns: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    skip_rows: int = Field(default=0, ge=0)
    # Each object's header must be exactly this (names and order), else that object fails.
    expected_header: tuple[str, ...] | None = None
    # A record (all its lines) may not be longer: a quote left open fails here, not at the end of the file.
    max_record_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError as unknown:
            raise ValueError(f"unknown encoding {value!r}; use a codec name such as utf-8 or latin-1") from unknown
        if "\n,\r\"\\;|\t".encode(value, errors="replace") != b"\n,\r\"\\;|\t":
            raise ValueError(f"encoding {value!r} is not ASCII-compatible; convert the file to UTF-8 (iconv -t utf-8)")
        return value

    @field_validator("delimiter", "quote", "escape")
    @classmethod
    def _ascii(cls, value: str | None) -> str | None:
        if value is not None and not (0 < ord(value) < 128):
            raise ValueError(f"{value!r} is not an ASCII character; the delimiter, quote and escape must be ASCII")
        return value

    @model_validator(mode="after")
    def _needs_names(self) -> CsvDialect:
        if self.escape is not None and self.escape == self.quote:
            # A doubled quote is RFC 4180's own escape; spelling it out as escape would mean something else.
            raise ValueError("escape equal to quote is the default RFC 4180 behaviour; leave escape unset")
        if self.delimiter in ("\r", "\n") or self.delimiter == self.quote:
            raise ValueError("the delimiter must differ from the quote character and from line breaks")
        if self.quote in ("\r", "\n") or self.escape in ("\r", "\n"):
            raise ValueError("the quote and escape characters cannot be line breaks")
        return self

    @property
    def doubled_quotes(self) -> bool:
        return self.escape is None if self.doublequote is None else self.doublequote


class SourceSpec(Model):
    """One object (`uri` names a key), every key under a prefix (`uri` ends in /), the keys a glob
    matches, or an explicit list (`uris`); `include`, `exclude` and `modifiedAfter` narrow the last three."""

    uri: str | None = None
    uris: tuple[str, ...] | None = Field(default=None, min_length=1)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    modified_after: datetime | None = None
    compression: Compression = Compression.AUTO
    csv: CsvDialect = CsvDialect()

    @field_validator("uri")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if value is not None and not S3_URI.match(value):
            raise ValueError(f"source uri {value!r} is not of the form s3://bucket/key, s3://bucket/prefix/ "
                             "or s3://bucket/glob")
        return value

    @field_validator("uris")
    @classmethod
    def _s3_uris(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for uri in value or ():
            if not S3_URI.match(uri) or uri.endswith("/") or GLOB_CHARS.search(uri):
                raise ValueError(f"source uris item {uri!r} is not of the form s3://bucket/key (one object each)")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("source uris lists an object twice")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> SourceSpec:
        if (self.uri is None) == (self.uris is None):
            raise ValueError("set exactly one of source.uri (an object, a prefix/ or a glob) and source.uris (a list)")
        return self

    @property
    def single_object(self) -> bool:
        """One named object, imported as before (its checkpoint item is the job id itself)."""
        return (self.uri is not None and not self.uri.endswith("/") and not GLOB_CHARS.search(self.uri)
                and not self.include and not self.exclude and self.modified_after is None)

    @property
    def bucket(self) -> str:
        """The bucket of `uri`, or of the first of `uris`."""
        match = S3_URI.match(self.uri or (self.uris or ("",))[0])
        assert match is not None
        return match["bucket"]

    @property
    def key(self) -> str:
        """The key (or prefix, or pattern) of `uri`; for a list, `list:` and a digest of it."""
        if self.uris is not None:
            return "list:" + hashlib.sha256("\n".join(self.uris).encode()).hexdigest()[:16]
        match = S3_URI.match(self.uri or "")
        assert match is not None
        return match["key"]


class AuthSpec(Model):
    mechanism: AuthMechanism = AuthMechanism.NONE
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    region: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> AuthSpec:
        scram = self.mechanism in (AuthMechanism.SCRAM_SHA_256, AuthMechanism.SCRAM_SHA_512)
        if scram and not (self.username and self.password):
            raise ValueError(f"auth mechanism {self.mechanism} needs a username and a password")
        return self


class SinkSpec(Model):
    bootstrap_servers: str = Field(min_length=1)
    topic: str = Field(min_length=1, max_length=249, pattern=r"^[a-zA-Z0-9._-]+$")
    key_column: str | None = None
    value_format: ValueFormat = ValueFormat.JSON
    headers: bool = True
    auth: AuthSpec = AuthSpec()
    producer: dict[str, str] = Field(default_factory=dict)

    @field_validator("producer")
    @classmethod
    def _keeps_delivery(cls, value: dict[str, str]) -> dict[str, str]:
        problems = weakening(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value


class CheckpointSpec(Model):
    table: str = Field(min_length=3, max_length=255)
    job_id: str | None = None
    every_rows: int = Field(default=100_000, ge=1)
    every_seconds: float = Field(default=5.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)


class BadRowsSpec(Model):
    action: BadRowAction = BadRowAction.FAIL
    dead_letter_topic: str | None = Field(default=None, validate_default=True)
    # None: no limit. A number: the import fails once more rows than this were bad.
    max_bad_rows: int | None = Field(default=None, ge=0)

    @field_validator("dead_letter_topic")
    @classmethod
    def _dead_letter_needs_topic(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("action") is BadRowAction.DEAD_LETTER and not value:
            raise ValueError("bad-row action dead-letter needs a dead-letter topic")
        return value


# How long each service may keep failing (errors, throttling, no answer) before the worker gives up.
RetrySeconds = Annotated[float, Field(ge=1, le=3600)]


class RetrySpec(Model):
    """Retry budgets, in seconds, of one streak of failures of each service; past it the worker exits 75
    with one line and the Job retries from the checkpoint."""

    s3_seconds: RetrySeconds = 120.0
    dynamodb_seconds: RetrySeconds = 120.0
    kafka_seconds: RetrySeconds = 120.0


class RerunSpec(Model):
    """A new `id` starts a new run of a finished import; `mode` says which objects it imports."""

    id: str | None = Field(default=None, min_length=1, max_length=63)
    mode: RerunMode = RerunMode.NEW


class RateLimitSpec(Model):
    """A ceiling for the whole import, split evenly among its shards."""

    rows_per_second: float | None = Field(default=None, gt=0)
    bytes_per_second: float | None = Field(default=None, gt=0)


class ReceiptsSpec(Model):
    """Where a receipt per fully delivered object goes, and the JSON manifest of them all at the end."""

    topic: str | None = Field(default=None, min_length=1, max_length=249, pattern=r"^[a-zA-Z0-9._-]+$")
    manifest_uri: str | None = None

    @field_validator("manifest_uri")
    @classmethod
    def _s3_object(cls, value: str | None) -> str | None:
        if value is not None and (not S3_URI.match(value) or value.endswith("/")):
            raise ValueError(f"receipts manifestUri {value!r} is not of the form s3://bucket/key")
        return value


class ImportSpec(Model):
    source: SourceSpec
    sink: SinkSpec
    checkpoint: CheckpointSpec
    delivery: Delivery = Delivery.AT_LEAST_ONCE
    bad_rows: BadRowsSpec = BadRowsSpec()
    retry: RetrySpec = RetrySpec()
    rerun: RerunSpec = RerunSpec()
    on_object_error: ObjectErrorAction = ObjectErrorAction.FAIL
    rate_limit: RateLimitSpec = RateLimitSpec()
    receipts: ReceiptsSpec = ReceiptsSpec()

    @property
    def job_id(self) -> str:
        return self.checkpoint.job_id or f"{self.source.bucket}/{self.source.key}->{self.sink.topic}"

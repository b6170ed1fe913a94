"""`csvkafka run` options: flags, their environment variables, and the way back from a spec to flags.

Every flag can also come from the environment; where the seed system had a variable for it
(`S3_BUCKET`+`S3_KEY`, `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`, `DYNAMODB_TABLE`, `JOB_ID`) that
name is kept, the others are `CSVKAFKA_<FLAG>`. A flag wins over the environment.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from csvkafka_worker.errors import ConfigError
from csvkafka_worker.spec import (
    AuthMechanism,
    BadRowAction,
    Compression,
    Delivery,
    ImportSpec,
    ObjectErrorAction,
    RerunMode,
    ValueFormat,
)


class EngineChoice(StrEnum):
    """Which engine runs the per-row work: the native core where it can, or one forced."""

    AUTO = "auto"
    NATIVE = "native"
    PYTHON = "python"


@dataclass(frozen=True)
class Flag:
    name: str
    dest: str
    help: str
    env: str | None = None
    choices: tuple[str, ...] | None = None
    kind: str = "str"  # str | int | float | bool (a switch) | onoff (true/false) | list

    @property
    def env_name(self) -> str:
        return self.env or "CSVKAFKA_" + self.name.upper().replace("-", "_")


def _values(enum: Any) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


# dest paths are dotted paths into the ImportSpec's alias form, or `run.<name>` for run options.
FLAGS: tuple[Flag, ...] = (
    Flag("source", "source.uri", "s3://bucket/key of one CSV object, s3://bucket/prefix/ or s3://bucket/glob "
         "(*, ?, [...] within a path segment, ** across)"),
    Flag("source-uris", "source.uris", "the objects to import, as s3://bucket/key, comma-separated", kind="list"),
    Flag("include", "source.include", "with a prefix, glob or list: only keys matching one of these globs",
         kind="list"),
    Flag("exclude", "source.exclude", "... and none of these", kind="list"),
    Flag("modified-after", "source.modifiedAfter", "... and last modified after this time (RFC 3339)"),
    Flag("compression", "source.compression", "compression of the object (auto: by extension, then magic bytes)",
         choices=_values(Compression)),
    Flag("delimiter", "source.csv.delimiter", "field delimiter (default ,)"),
    Flag("quote", "source.csv.quote", 'quote character (default ")'),
    Flag("escape", "source.csv.escape", "escape character (default: none, quotes are doubled as in RFC 4180)"),
    Flag("doublequote", "source.csv.doublequote",
         'whether "" inside quotes is one quote (default: true without --escape, false with it)', kind="onoff"),
    Flag("max-record-bytes", "source.csv.maxRecordBytes",
         "longest record (all its lines) accepted; a quote left open fails there (default 64 MiB)", kind="int"),
    Flag("no-header", "source.csv.header", "the first row is data, not column names", kind="bool"),
    Flag("columns", "source.csv.columns", "column names, comma-separated (replaces or supplies the header)",
         kind="list"),
    Flag("encoding", "source.csv.encoding", "text encoding of the object (default utf-8; a BOM is removed)"),
    Flag("skip-rows", "source.csv.skipRows", "lines to skip before the header", kind="int"),
    Flag("expected-header", "source.csv.expectedHeader",
         "column names each object's header must have, comma-separated (an object that differs fails)", kind="list"),
    Flag("bootstrap-servers", "sink.bootstrapServers", "Kafka bootstrap servers", env="KAFKA_BOOTSTRAP_SERVERS"),
    Flag("topic", "sink.topic", "topic to write to (must exist)", env="KAFKA_TOPIC"),
    Flag("key-column", "sink.keyColumn", "column whose value becomes the record key"),
    Flag("value-format", "sink.valueFormat", "json: an object keyed by header; line: the record's bytes",
         choices=_values(ValueFormat)),
    Flag("no-record-headers", "sink.headers", "do not add csvkafka.* Kafka headers (source, row)", kind="bool"),
    Flag("auth", "sink.auth.mechanism", "Kafka authentication", choices=_values(AuthMechanism)),
    Flag("tls", "sink.auth.tls", "connect to Kafka over TLS", kind="bool"),
    Flag("ca-file", "sink.auth.caFile", "PEM file of the CA that signed the brokers' certificates"),
    Flag("username", "sink.auth.username", "SASL/SCRAM user name", env="KAFKA_SASL_USERNAME"),
    Flag("password", "sink.auth.password", "SASL/SCRAM password (prefer the environment variable)",
         env="KAFKA_SASL_PASSWORD"),
    Flag("region", "sink.auth.region", "AWS region of the MSK cluster (msk-iam)"),
    Flag("producer-property", "sink.producer", "librdkafka property KEY=VALUE (repeatable)", kind="list"),
    Flag("checkpoint-table", "checkpoint.table", "DynamoDB table of checkpoints", env="DYNAMODB_TABLE"),
    Flag("job-id", "checkpoint.jobId", "checkpoint key (default: bucket/key->topic)", env="JOB_ID"),
    Flag("checkpoint-every-rows", "checkpoint.everyRows", "checkpoint after this many rows", kind="int"),
    Flag("checkpoint-every-seconds", "checkpoint.everySeconds", "... or after this many seconds", kind="float"),
    Flag("lease-seconds", "checkpoint.leaseSeconds", "how long a silent worker keeps its claim on the job",
         kind="float"),
    Flag("delivery", "delivery", "at-least-once or exactly-once (Kafka transactions)", choices=_values(Delivery)),
    Flag("on-bad-row", "badRows.action", "what to do with a bad row", choices=_values(BadRowAction)),
    Flag("dead-letter-topic", "badRows.deadLetterTopic", "topic for bad rows (with --on-bad-row dead-letter)"),
    Flag("max-bad-rows", "badRows.maxBadRows", "fail once more rows than this are bad", kind="int"),
    Flag("on-object-error", "onObjectError", "with many objects: fail the import at a bad object, or skip it "
         "(reported) and go on", choices=_values(ObjectErrorAction)),
    Flag("rerun-id", "rerun.id", "a new id re-lists the source of a finished import and runs again"),
    Flag("rerun-mode", "rerun.mode", "what a rerun imports: new keys, changed ETags too, or all",
         choices=_values(RerunMode)),
    Flag("rate-rows", "rateLimit.rowsPerSecond", "rows per second for the whole import (split among shards)",
         kind="float"),
    Flag("rate-bytes", "rateLimit.bytesPerSecond", "bytes per second for the whole import (split among shards)",
         kind="float"),
    Flag("receipts-topic", "receipts.topic", "topic for a receipt per fully delivered object"),
    Flag("manifest-uri", "receipts.manifestUri", "s3://bucket/key where the manifest of all receipts is written "
         "at the end"),
    Flag("s3-retry-seconds", "retry.s3Seconds", "how long S3 may keep failing before the worker exits 75 "
         "(default 120)", kind="float"),
    Flag("dynamodb-retry-seconds", "retry.dynamodbSeconds", "... DynamoDB, throttling included (default 120)",
         kind="float"),
    Flag("kafka-retry-seconds", "retry.kafkaSeconds", "... Kafka: a row's delivery timeout (default 120)",
         kind="float"),
    Flag("shard", "run.shard", "this worker's shard of the object, as INDEX/COUNT (default 0/1)",
         env="CSVKAFKA_SHARD"),
    Flag("metrics-port", "run.metrics_port", "serve Prometheus metrics on this port (0: off)", kind="int"),
    Flag("shutdown-timeout", "run.shutdown_timeout", "seconds from SIGTERM to exit", kind="float"),
    Flag("progress", "run.progress", "progress display", choices=("auto", "bar", "log", "none")),
    Flag("range-bytes", "run.range_bytes", "bytes per ranged S3 GET (default 64 MiB)", kind="int"),
    Flag("min-piece-bytes", "run.min_piece_bytes", "with many objects and shards: an uncompressed object is split "
         "among shards only into pieces at least this large (default 64 MiB)", kind="int"),
    Flag("engine", "run.engine", "per-row engine: the native core where it can run (auto), or forced",
         choices=tuple(EngineChoice)),
    Flag("interrupted-exit-code", "run.interrupted_exit_code",
         "exit code after a SIGTERM stop with a clean checkpoint (default 0; Jobs use 143)", kind="int"),
)


@dataclass(frozen=True)
class RunOptions:
    shard_index: int = 0
    shard_count: int = 1
    metrics_port: int = 0
    shutdown_timeout: float = 20.0
    progress: str = "auto"
    interrupted_exit_code: int = 0
    range_bytes: int = 64 * 1024 * 1024
    engine: EngineChoice = EngineChoice.AUTO
    min_piece_bytes: int = 64 * 1024 * 1024


def add_flags(parser: argparse.ArgumentParser) -> None:
    for flag in FLAGS:
        opt = f"--{flag.name}"
        help_text = f"{flag.help} [env {flag.env_name}]"
        if flag.kind == "bool":
            parser.add_argument(opt, action="store_true", default=None, help=help_text)
        elif flag.kind == "onoff":
            parser.add_argument(opt, choices=("true", "false"), help=help_text)
        elif flag.name == "producer-property":
            parser.add_argument(opt, action="append", metavar="KEY=VALUE", help=help_text)
        else:
            parser.add_argument(opt, choices=flag.choices, help=help_text)


def _convert(flag: Flag, raw: Any) -> Any:
    if flag.kind == "bool":
        on = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
        # The negative flags (--no-header, --no-record-headers) turn a default-true field off.
        return not on if flag.name.startswith("no-") else on
    if flag.kind == "onoff":
        text = str(raw).lower()
        if text not in ("1", "true", "yes", "0", "false", "no"):
            raise ValueError(text)
        return text in ("1", "true", "yes")
    if flag.kind == "int":
        return int(raw)
    if flag.kind == "float":
        return float(raw)
    if flag.name == "producer-property":
        items = raw if isinstance(raw, list) else [p for p in str(raw).split(";") if p]
        pairs: dict[str, str] = {}
        for item in items:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise ConfigError(f"--producer-property {item!r} is not KEY=VALUE")
            pairs[key.strip()] = value.strip()
        return pairs
    if flag.kind == "list":
        return [c.strip() for c in str(raw).split(",")]
    return raw


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def parse(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[ImportSpec, RunOptions]:
    """Builds the spec from flags, then the environment. Raises ConfigError naming the setting."""
    tree: dict[str, Any] = {}
    for flag in FLAGS:
        raw = getattr(args, flag.name.replace("-", "_"), None)
        if raw is None:
            raw = env.get(flag.env_name) or None
        if raw is None:
            continue
        try:
            value = _convert(flag, raw)
        except ValueError as bad:
            raise ConfigError(f"--{flag.name} (or {flag.env_name}) = {raw!r} is not a valid {flag.kind}") from bad
        _put(tree, flag.dest, value)

    if "uri" not in tree.get("source", {}) and env.get("S3_BUCKET") and env.get("S3_KEY"):
        _put(tree, "source.uri", f"s3://{env['S3_BUCKET']}/{env['S3_KEY']}")
    run = _run_options(tree.pop("run", {}), env)
    for required, hint in (("source", "--source (or S3_BUCKET and S3_KEY)"),
                           ("sink", "--bootstrap-servers and --topic"), ("checkpoint", "--checkpoint-table")):
        if required not in tree:
            raise ConfigError(f"missing {hint}: see `csvkafka run --help`")
    try:
        return ImportSpec.model_validate(tree), run
    except ValidationError as invalid:
        raise ConfigError(describe(invalid)) from invalid


def _run_options(raw: dict[str, Any], env: Mapping[str, str]) -> RunOptions:
    shard = raw.get("shard")
    index, count = 0, 1
    if shard:
        head, sep, tail = str(shard).partition("/")
        if not (sep and head.isdigit() and tail.isdigit() and 0 <= int(head) < int(tail)):
            raise ConfigError(f"--shard {shard!r} must be INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4")
        index, count = int(head), int(tail)
        # An Indexed Job gives each pod its index; the rendered shard flag carries only the count.
        if env.get("JOB_COMPLETION_INDEX", "").isdigit():
            index = int(env["JOB_COMPLETION_INDEX"])
    return RunOptions(
        shard_index=index, shard_count=count,
        metrics_port=raw.get("metrics_port", 0),
        shutdown_timeout=raw.get("shutdown_timeout", 20.0),
        progress=raw.get("progress", "auto"),
        interrupted_exit_code=raw.get("interrupted_exit_code", 0),
        range_bytes=raw.get("range_bytes", RunOptions.range_bytes),
        engine=EngineChoice(raw.get("engine", EngineChoice.AUTO)),
        min_piece_bytes=raw.get("min_piece_bytes", RunOptions.min_piece_bytes),
    )


def describe(invalid: ValidationError) -> str:
    """One line per problem, each naming the flag it came from."""
    by_dest = {flag.dest: flag for flag in FLAGS}
    problems = []
    for error in invalid.errors():
        # Locations use aliases for given values and field names for defaults: normalise to aliases.
        path = ".".join(to_camel(str(p)) for p in error["loc"])
        flag = by_dest.get(path)
        where = f"--{flag.name} ({flag.env_name})" if flag else path or "spec"
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def to_cli_args(spec: ImportSpec) -> list[str]:
    """The flags that make `csvkafka run` import exactly `spec` (secrets excluded: they go by env)."""
    tree = spec.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    args: list[str] = []
    for flag in FLAGS:
        if flag.dest.startswith("run.") or flag.name == "password":
            continue
        value: Any = tree
        for part in flag.dest.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        if flag.kind == "bool":
            if bool(value) != flag.name.startswith("no-"):
                args.append(f"--{flag.name}")
        elif flag.kind == "onoff":
            args += [f"--{flag.name}", "true" if value else "false"]
        elif flag.name == "producer-property":
            args += [a for k, v in sorted(value.items()) for a in ("--producer-property", f"{k}={v}")]
        elif flag.kind == "list":
            args += [f"--{flag.name}", ",".join(value)]
        else:
            args += [f"--{flag.name}", str(value)]
    return args

"""Flags and environment → ImportSpec, and back."""

from __future__ import annotations

import argparse

import pytest

from csvkafka_worker.options import ConfigError, EngineChoice, add_flags, parse, to_cli_args
from csvkafka_worker.spec import BadRowAction, Delivery, ValueFormat


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser


def parse_argv(argv: list[str], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse(run_parser().parse_args(argv), env or {})


MINIMAL = ["--source", "s3://data/exports/data.csv", "--bootstrap-servers", "b:9092", "--topic", "t",
           "--checkpoint-table", "checkpoints"]


def test_seed_environment_names_are_read() -> None:
    spec, _ = parse_argv([], {"S3_BUCKET": "my-data-bucket", "S3_KEY": "exports/data.csv",
                              "KAFKA_BOOTSTRAP_SERVERS": "b-1:9092", "KAFKA_TOPIC": "csv-import",
                              "DYNAMODB_TABLE": "csv-kafka-checkpoint", "JOB_ID": "csv-job-1"})
    assert spec.source.uri == "s3://my-data-bucket/exports/data.csv"
    assert (spec.sink.bootstrap_servers, spec.sink.topic) == ("b-1:9092", "csv-import")
    assert (spec.checkpoint.table, spec.job_id) == ("csv-kafka-checkpoint", "csv-job-1")


def test_a_flag_wins_over_the_environment() -> None:
    spec, _ = parse_argv([*MINIMAL, "--topic", "from-flag"], {"KAFKA_TOPIC": "from-env"})
    assert spec.sink.topic == "from-flag"


def test_spec_round_trips_through_cli_args() -> None:
    argv = [*MINIMAL, "--no-header", "--columns", "id,name", "--delimiter", ";", "--value-format", "line",
            "--delivery", "exactly-once", "--on-bad-row", "dead-letter", "--dead-letter-topic", "dlq",
            "--max-bad-rows", "10", "--producer-property", "linger.ms=50", "--key-column", "id", "--tls"]
    spec, _ = parse_argv(argv)
    assert spec.delivery is Delivery.EXACTLY_ONCE and spec.sink.value_format is ValueFormat.LINE
    assert spec.bad_rows.action is BadRowAction.DEAD_LETTER and spec.source.csv.header is False
    again, _ = parse_argv(to_cli_args(spec))
    assert again == spec


def test_missing_required_setting_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="missing --checkpoint-table"):
        parse_argv(MINIMAL[:6])


def test_dead_letter_without_topic_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="dead-letter needs a dead-letter topic"):
        parse_argv([*MINIMAL, "--on-bad-row", "dead-letter"])


def test_invalid_uri_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"--source \(CSVKAFKA_SOURCE\): source uri 'http://x' is not of the form"):
        parse_argv(["--source", "http://x", *MINIMAL[2:]])


def test_shard_index_comes_from_the_job_completion_index() -> None:
    _, run = parse_argv([*MINIMAL, "--shard", "0/4"], {"JOB_COMPLETION_INDEX": "3"})
    assert (run.shard_index, run.shard_count) == (3, 4)


def test_the_new_dialect_settings_round_trip_and_the_engine_is_a_run_option() -> None:
    argv = [*MINIMAL, "--escape", "\\", "--doublequote", "true", "--max-record-bytes", "1048576",
            "--engine", "python"]
    spec, run = parse_argv(argv)
    assert (spec.source.csv.doublequote, spec.source.csv.doubled_quotes) == (True, True)
    assert spec.source.csv.max_record_bytes == 1048576
    assert run.engine is EngineChoice.PYTHON
    again, _ = parse_argv(to_cli_args(spec))
    assert again == spec
    assert "--engine" not in to_cli_args(spec)  # how to run is the pod's business, not the spec's


@pytest.mark.parametrize(("setting", "message"), [
    (["--delimiter", "§"], "is not an ASCII character"),
    (["--encoding", "utf-16"], "is not ASCII-compatible; convert the file to UTF-8"),
    (["--max-record-bytes", "10"], "greater than or equal to 1024"),
])
def test_dialects_the_splitter_cannot_read_exactly_are_refused_with_the_fix(setting: list[str],
                                                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_argv([*MINIMAL, *setting])


def test_the_default_doublequote_follows_the_escape_character() -> None:
    plain, _ = parse_argv(MINIMAL)
    escaped, _ = parse_argv([*MINIMAL, "--escape", "\\"])
    assert plain.source.csv.doubled_quotes is True and escaped.source.csv.doubled_quotes is False


def test_retry_budgets_come_from_flags_or_the_environment_and_round_trip() -> None:
    spec, _ = parse_argv([*MINIMAL, "--s3-retry-seconds", "30", "--kafka-retry-seconds", "600"],
                         {"CSVKAFKA_DYNAMODB_RETRY_SECONDS": "45"})
    assert (spec.retry.s3_seconds, spec.retry.dynamodb_seconds, spec.retry.kafka_seconds) == (30, 45, 600)
    args = to_cli_args(spec)
    assert args[args.index("--dynamodb-retry-seconds") + 1] == "45.0"
    again, _ = parse_argv(args)
    assert again == spec
    assert "--s3-retry-seconds" not in to_cli_args(parse_argv(MINIMAL)[0])  # defaults are not rendered


def test_a_retry_budget_out_of_range_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--kafka-retry-seconds \(CSVKAFKA_KAFKA_RETRY_SECONDS\): Input should be "
                                          r"greater than or equal to 1"):
        parse_argv([*MINIMAL, "--kafka-retry-seconds", "0.5"])

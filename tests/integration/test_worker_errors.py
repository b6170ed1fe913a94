"""Bad input and broken infrastructure: each gives its exit code and one line naming the thing and the fix.

Rows are never lost: every row read is sent, dead-lettered or skipped, and the counts add up.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from csvkafka_worker.exit_codes import ExitCode
from tests.conftest import unique_name
from tests.support import consume_all, events, last_error_line, run_worker, worker_args

pytestmark = pytest.mark.integration

GOOD = b"1,a,x\n"
BAD_INPUTS = {
    "wrong-column-count": (b"id,name,note\n1,a,x\n2,only-two\n3,c,z\n", 2, "2 fields where the header has 3"),
    "undecodable": (b"id,name,note\n1,a,x\n2,\xff\xfe,y\n3,c,z\n", 2, "bytes not valid utf-8"),
    "unterminated-quote": (b'id,name,note\n1,a,x\n2,b,y\n3,"never closed\n', 3, "quoted field not closed"),
}


@pytest.fixture
def put(s3: Any, s3_bucket: str) -> Any:
    def upload(body: bytes, key: str = "in.csv") -> str:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)
        return f"s3://{s3_bucket}/{key}"

    return upload


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_row_with_fail_policy_stops_with_the_row_and_offset(case: str, engine: str, put: Any, kafka_topic: str,
                                                                checkpoint_table: str, bootstrap_servers: str) -> None:
    body, bad_row, reason = BAD_INPUTS[case]
    source = put(body)
    result = run_worker(worker_args(source=source, bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id=case))
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    message = last_error_line(result.stderr)
    assert message.startswith(f"row {bad_row} (byte offset ")
    assert source in message and reason in message and "set badRows.action to skip or dead-letter" in message
    # The rows before the bad one were delivered.
    assert [r.row for r in consume_all(bootstrap_servers, kafka_topic)] == list(range(1, bad_row))


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_dead_letter_keeps_the_original_bytes_and_where_they_came_from(
        case: str, engine: str, put: Any, kafka_topic: str, checkpoint_table: str, bootstrap_servers: str) -> None:
    body, bad_row, reason = BAD_INPUTS[case]
    source = put(body)
    dlq = unique_name("dlq")
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.create_topics([NewTopic(dlq, 1, 1)])[dlq].result(30)
    result = run_worker(worker_args(source=source, bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id=case,
                                    extra=["--on-bad-row", "dead-letter", "--dead-letter-topic", dlq]))
    assert result.returncode == 0, result.stderr
    [dead] = consume_all(bootstrap_servers, dlq)
    lines = body.split(b"\n")
    # The record's own bytes (a quote left open keeps its last line break: it is inside the quotes).
    assert dead.value.removesuffix(b"\n") == lines[bad_row]
    assert dead.headers["csvkafka.source"] == source.encode()
    assert dead.headers["csvkafka.row"] == str(bad_row).encode()
    offset = int(dead.headers["csvkafka.offset"])
    assert body[offset:offset + len(dead.value)] == dead.value
    assert reason in dead.headers["csvkafka.reason"].decode()
    finish = events(result.stderr, "finish")[-1]
    assert finish["rows_read"] == finish["rows_sent"] + finish["rows_dead_lettered"] + finish["rows_skipped"]
    assert finish["rows_dead_lettered"] == 1
    sent_rows = {r.row for r in consume_all(bootstrap_servers, kafka_topic)}
    assert sent_rows | {bad_row} == set(range(1, finish["rows_read"] + 1))


def test_skip_counts_and_max_bad_rows_stops_past_the_limit(put: Any, kafka_topic: str, checkpoint_table: str,
                                                            bootstrap_servers: str) -> None:
    body = b"id,name,note\n" + b"".join(b"%d,x\n" % i if i % 10 == 0 else b"%d,a,b\n" % i for i in range(1, 101))
    source = put(body)
    skipped = run_worker(worker_args(source=source, bootstrap=bootstrap_servers, topic=kafka_topic,
                                     table=checkpoint_table, job_id="skip", extra=["--on-bad-row", "skip"]))
    assert skipped.returncode == 0, skipped.stderr
    finish = events(skipped.stderr, "finish")[-1]
    assert (finish["rows_read"], finish["rows_sent"], finish["rows_skipped"]) == (100, 90, 10)

    limited = run_worker(worker_args(source=source, bootstrap=bootstrap_servers, topic=kafka_topic,
                                     table=checkpoint_table, job_id="limited",
                                     extra=["--on-bad-row", "skip", "--max-bad-rows", "5"]))
    assert limited.returncode == ExitCode.BAD_INPUT
    assert "more than badRows.maxBadRows=5" in last_error_line(limited.stderr)


def test_a_record_larger_than_kafka_accepts_is_a_bad_row(put: Any, kafka_topic: str, checkpoint_table: str,
                                                         bootstrap_servers: str) -> None:
    huge = b"x" * 5000
    source = put(b"id,name,note\n1,a,b\n2,a," + huge + b"\n3,c,d\n")
    result = run_worker(worker_args(source=source, bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id="huge",
                                    extra=["--producer-property", "message.max.bytes=4096"]))
    assert result.returncode == ExitCode.BAD_INPUT
    assert "row 2 " in last_error_line(result.stderr)
    assert "larger than a Kafka message may be (message.max.bytes=4096)" in last_error_line(result.stderr)


def error_of(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = run_worker(args, env=env, timeout=240)
    return result.returncode, last_error_line(result.stderr)


def test_missing_object(s3_bucket: str, kafka_topic: str, checkpoint_table: str, bootstrap_servers: str) -> None:
    code, message = error_of(worker_args(source=f"s3://{s3_bucket}/nope.csv", bootstrap=bootstrap_servers,
                                         topic=kafka_topic, table=checkpoint_table, job_id="j"))
    assert code == ExitCode.BAD_INPUT
    assert message == (f"source object s3://{s3_bucket}/nope.csv does not exist; check source.uri (bucket, key, "
                       "and the region of the bucket)")


def test_missing_topic(put: Any, checkpoint_table: str, bootstrap_servers: str) -> None:
    code, message = error_of(worker_args(source=put(b"a\n1\n"), bootstrap=bootstrap_servers, topic="no-such-topic",
                                         table=checkpoint_table, job_id="j"))
    assert code == ExitCode.BAD_INPUT
    assert message.startswith("topic 'no-such-topic' does not exist on Kafka at ")


def test_missing_table(put: Any, kafka_topic: str, bootstrap_servers: str) -> None:
    code, message = error_of(worker_args(source=put(b"a\n1\n"), bootstrap=bootstrap_servers, topic=kafka_topic,
                                         table="no-such-table", job_id="j"))
    assert code == ExitCode.BAD_INPUT
    assert "DynamoDB table 'no-such-table' does not exist" in message


def test_bad_configuration_names_the_flag(put: Any, kafka_topic: str, checkpoint_table: str,
                                          bootstrap_servers: str) -> None:
    code, message = error_of(worker_args(source=put(b"a\n1\n"), bootstrap=bootstrap_servers, topic=kafka_topic,
                                         table=checkpoint_table, job_id="j", extra=["--on-bad-row", "dead-letter"]))
    assert code == ExitCode.BAD_INPUT
    assert message == ("--dead-letter-topic (CSVKAFKA_DEAD_LETTER_TOPIC): bad-row action dead-letter needs a "
                       "dead-letter topic")


def test_unreachable_broker_is_an_infrastructure_failure(put: Any, kafka_topic: str, checkpoint_table: str) -> None:
    code, message = error_of(worker_args(source=put(b"a\n1\n"), bootstrap="127.0.0.1:1", topic=kafka_topic,
                                         table=checkpoint_table, job_id="j"))
    assert code == ExitCode.INFRASTRUCTURE
    assert message.startswith("Kafka at 127.0.0.1:1 is unreachable (")
    assert "check sink.bootstrapServers" in message


def test_wrong_scram_password_is_bad_configuration(put: Any, kafka_topic: str, checkpoint_table: str,
                                                   stack_env: dict[str, str]) -> None:
    code, message = error_of(
        worker_args(source=put(b"a\n1\n"), bootstrap=stack_env["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"], topic=kafka_topic,
                    table=checkpoint_table, job_id="j",
                    extra=["--auth", "scram-sha-512", "--tls", "--ca-file", stack_env["KAFKA_CA_PEM"],
                           "--username", stack_env["KAFKA_SCRAM_USERNAME"]]),
        env={"KAFKA_SASL_PASSWORD": "wrong"})
    assert code == ExitCode.BAD_INPUT
    assert "refused the connection" in message and "check sink.auth" in message


def test_scram_over_tls_imports(put: Any, kafka_topic: str, checkpoint_table: str, stack_env: dict[str, str]) -> None:
    result = run_worker(
        worker_args(source=put(b"a,b\n1,2\n"), bootstrap=stack_env["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"],
                    topic=kafka_topic, table=checkpoint_table, job_id="j",
                    extra=["--auth", "scram-sha-512", "--tls", "--ca-file", stack_env["KAFKA_CA_PEM"],
                           "--username", stack_env["KAFKA_SCRAM_USERNAME"]]),
        env={"KAFKA_SASL_PASSWORD": stack_env["KAFKA_SCRAM_PASSWORD"]})
    assert result.returncode == 0, result.stderr
    assert [r.json() for r in consume_all(stack_env["KAFKA_BOOTSTRAP_SERVERS"], kafka_topic)] == [{"a": "1", "b": "2"}]


def test_unreachable_s3_is_an_infrastructure_failure(kafka_topic: str, checkpoint_table: str,
                                                     bootstrap_servers: str) -> None:
    code, message = error_of(worker_args(source="s3://bucket-x/in.csv", bootstrap=bootstrap_servers,
                                         topic=kafka_topic, table=checkpoint_table, job_id="j",
                                         extra=["--s3-retry-seconds", "2"]),
                             env={"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1"})
    assert code == ExitCode.INFRASTRUCTURE
    assert message.startswith("S3 failed HEAD s3://bucket-x/in.csv ")
    assert "its retry budget of 2s is spent (last error: Could not connect to the endpoint URL" in message
    assert os.environ["AWS_ENDPOINT_URL"] != "http://127.0.0.1:1"

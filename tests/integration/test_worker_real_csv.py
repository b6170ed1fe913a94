"""CSV as it comes from the field, on both engines: stray quotes, giant fields, a quote left open.

Every row is in the topic, or the import stops at the row that cannot be read, naming it, with the
rows before it delivered and our one-line error as the last thing on stderr.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from csvkafka_worker.exit_codes import ExitCode
from tests.support import consume_all, events, last_error_line, run_worker, worker_args

pytestmark = pytest.mark.integration
csv.field_size_limit(2**31 - 1)


def csv_rows(data: bytes) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(data.decode(), newline=""))
    header = next(reader)
    return [dict(zip(header, row, strict=True)) for row in reader if row]


def import_object(body: bytes, s3: Any, bucket: str, topic: str, table: str, bootstrap: str, job_id: str,
                  extra: list[str] | None = None) -> Any:
    s3.put_object(Bucket=bucket, Key="in.csv", Body=body)
    return run_worker(worker_args(source=f"s3://{bucket}/in.csv", bootstrap=bootstrap, topic=topic, table=table,
                                  job_id=job_id, extra=extra), timeout=300)


def test_quotes_inside_unquoted_fields_are_data(engine: str, s3: Any, s3_bucket: str, kafka_topic: str,
                                                checkpoint_table: str, bootstrap_servers: str) -> None:
    body = b'id,size,note\n1,5" screen,x\n2,3" thing,y\n3,c,z\n'
    result = import_object(body, s3, s3_bucket, kafka_topic, checkpoint_table, bootstrap_servers, "inches")
    assert result.returncode == 0, result.stderr
    assert events(result.stderr, "start")[0]["engine"] == engine
    assert [r.json() for r in consume_all(bootstrap_servers, kafka_topic)] == csv_rows(body)
    assert len(csv_rows(body)) == 3


def test_a_quote_inside_a_header_name_is_data(engine: str, s3: Any, s3_bucket: str, kafka_topic: str,
                                              checkpoint_table: str, bootstrap_servers: str) -> None:
    body = b'id,na"me,note\n' + b"".join(b"%d,name %d,note\n" % (i, i) for i in range(200))
    result = import_object(body, s3, s3_bucket, kafka_topic, checkpoint_table, bootstrap_servers, "header")
    assert result.returncode == 0, result.stderr
    records = [r.json() for r in consume_all(bootstrap_servers, kafka_topic)]
    assert len(records) == 200 and records == csv_rows(body)
    assert set(records[0]) == {"id", 'na"me', "note"}


def test_a_field_larger_than_the_csv_modules_default_limit_imports(engine: str, s3: Any, s3_bucket: str,
                                                                  kafka_topic: str, checkpoint_table: str,
                                                                  bootstrap_servers: str) -> None:
    big = b"x" * 200_000
    body = b'id,blob\n1,"' + big + b'"\n2,' + big + b"\n3,small\n"
    result = import_object(body, s3, s3_bucket, kafka_topic, checkpoint_table, bootstrap_servers, "big-field")
    assert result.returncode == 0, result.stderr
    assert [r.json() for r in consume_all(bootstrap_servers, kafka_topic)] == csv_rows(body)


@pytest.mark.parametrize("limit", [None, 1024 * 1024])
def test_a_quote_left_open_stops_at_its_row_with_the_rows_before_delivered(
        engine: str, limit: int | None, s3: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
        bootstrap_servers: str) -> None:
    rows = [b"%d,name %d,some text for row %d\n" % (i, i, i) for i in range(1, 200_001)]
    rows[999] = b'1000,"never closed,oops\n'
    body = b"id,name,note\n" + b"".join(rows)
    offset = body.index(rows[999])
    extra = ["--max-record-bytes", str(limit)] if limit else []
    result = import_object(body, s3, s3_bucket, kafka_topic, checkpoint_table, bootstrap_servers, "open-quote",
                           extra)
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    message = last_error_line(result.stderr)
    assert message.startswith(f"row 1000 (byte offset {offset}) of s3://{s3_bucket}/in.csv"), message
    if limit:
        assert f"does not end within {limit} bytes" in message
    else:
        assert "quoted field not closed at the end of the object" in message
    # Our line is the last thing the worker said: nothing from librdkafka after it.
    assert result.stderr.rstrip().splitlines()[-1] == f"csvkafka: error: {message}"
    assert sorted(r.row for r in consume_all(bootstrap_servers, kafka_topic)) == list(range(1, 1000))

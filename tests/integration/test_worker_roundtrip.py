"""Round trips S3 → worker → Kafka: what a consumer reads equals what Python's csv module reads."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
from collections import Counter
from typing import Any

import pytest
import zstandard

from tests.support import consume_all, events, run_worker, worker_args

pytestmark = pytest.mark.integration

HEADER = b"id,name,comment,amount\n"
ROWS = [
    b'1,"Smith, John","said ""hello""",10.5\n',
    b'2,plain,"line one\nline two",\n',
    b'3,,"",0\n',
    b'4,\xc3\xa9l\xc3\xa8ve \xe2\x82\xac \xf0\x9f\x9a\x80,"crlf\r\ninside",-1\n',
    b"5,trailing space ,x,7\n",
    b'6,"quote "" at end""","",8\n',
]


def expected_rows(data: bytes, encoding: str = "utf-8-sig") -> Counter[tuple[tuple[str, str], ...]]:
    reader = csv.reader(io.StringIO(data.decode(encoding), newline=""))
    header = next(reader)
    return Counter(tuple(zip(header, row, strict=True)) for row in reader if row)


def consumed_rows(bootstrap: str, topic: str) -> Counter[tuple[tuple[str, str], ...]]:
    return Counter(tuple(r.json().items()) for r in consume_all(bootstrap, topic))


CASES: dict[str, tuple[bytes, str]] = {
    "quoted-commas-quotes-newlines": (HEADER + b"".join(ROWS), "data.csv"),
    "crlf": (HEADER.replace(b"\n", b"\r\n") + b"".join(r.replace(b"\n", b"\r\n") if not r.count(b'"') % 2 else r
                                                       for r in ROWS), "data.csv"),
    "bom": (b"\xef\xbb\xbf" + HEADER + b"".join(ROWS), "data.csv"),
    "no-final-newline": (HEADER + b"".join(ROWS)[:-1], "data.csv"),
    "blank-lines": (HEADER + b"\n".join(ROWS) + b"\n\n", "data.csv"),
    "gzip": (gzip.compress(HEADER + b"".join(ROWS * 50)), "data.csv.gz"),
    "zstd-no-extension": (zstandard.ZstdCompressor().compress(HEADER + b"".join(ROWS * 50)), "data.csv"),
    "bz2": (bz2.compress(HEADER + b"".join(ROWS * 50)), "data.csv.bz2"),
}


def decompress_any(body: bytes, key: str) -> bytes:
    if key.endswith(".gz"):
        return gzip.decompress(body)
    if key.endswith(".bz2"):
        return bz2.decompress(body)
    if body.startswith(b"\x28\xb5\x2f\xfd"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return body


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_equals_python_csv(case: str, engine: str, s3: Any, s3_bucket: str, kafka_topic: str,
                                      checkpoint_table: str, bootstrap_servers: str) -> None:
    body, key = CASES[case]
    s3.put_object(Bucket=s3_bucket, Key=key, Body=body)
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/{key}", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id=case))
    assert result.returncode == 0, result.stderr
    assert events(result.stderr, "start")[0]["engine"] == engine
    expected = expected_rows(decompress_any(body, key))
    assert consumed_rows(bootstrap_servers, kafka_topic) == expected
    finish = events(result.stderr, "finish")[-1]
    assert finish["rows_sent"] == finish["rows_read"] == sum(expected.values())


def test_newlines_inside_quotes_across_read_buffer_boundaries(engine: str, s3: Any, s3_bucket: str, kafka_topic: str,
                                                              checkpoint_table: str, bootstrap_servers: str) -> None:
    body = HEADER + b"".join(ROWS * 400)
    s3.put_object(Bucket=s3_bucket, Key="d.csv", Body=body)
    # 97-byte ranged GETs: every kind of record, quoted newline and multibyte character is cut somewhere.
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/d.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id="buffers", extra=["--range-bytes", "97"]))
    assert result.returncode == 0, result.stderr
    assert consumed_rows(bootstrap_servers, kafka_topic) == expected_rows(body)


def test_line_format_with_key_column_and_row_headers(engine: str, s3: Any, s3_bucket: str, kafka_topic: str,
                                                     checkpoint_table: str, bootstrap_servers: str) -> None:
    body = HEADER + b"".join(ROWS)
    s3.put_object(Bucket=s3_bucket, Key="d.csv", Body=body)
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/d.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id="line",
                                    extra=["--value-format", "line", "--key-column", "id"]))
    assert result.returncode == 0, result.stderr
    records = consume_all(bootstrap_servers, kafka_topic)
    assert [r.value for r in records] == [r.rstrip(b"\n").removesuffix(b"\r") for r in ROWS]
    assert [r.key for r in records] == [str(i).encode() for i in range(1, 7)]
    assert [r.row for r in records] == list(range(1, 7))
    assert {r.headers["csvkafka.source"] for r in records} == {f"s3://{s3_bucket}/d.csv".encode()}


def test_reapplying_after_success_sends_nothing(s3: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
                                                bootstrap_servers: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="d.csv", Body=HEADER + b"".join(ROWS))
    args = worker_args(source=f"s3://{s3_bucket}/d.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                       table=checkpoint_table, job_id="again")
    assert run_worker(args).returncode == 0
    again = run_worker(args)
    assert again.returncode == 0, again.stderr
    assert events(again.stderr, "already-complete")
    assert len(consume_all(bootstrap_servers, kafka_topic)) == len(ROWS)

"""One object imported by several workers at once, each on its own record-aligned byte range."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from collections import Counter
from typing import Any

import pytest

from tests.support import consume_all, events, worker_args

pytestmark = pytest.mark.integration


def test_three_shards_import_every_row_once_even_across_quoted_newlines(
        s3: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str, bootstrap_servers: str) -> None:
    body = b"id,text\n" + b"".join(b'%d,"multi\nline, %d"\n' % (i, i) if i % 3 else b"%d,plain\n" % i
                                    for i in range(30_000))
    s3.put_object(Bucket=s3_bucket, Key="big.csv", Body=body)
    workers = [subprocess.Popen(
        worker_args(source=f"s3://{s3_bucket}/big.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                    table=checkpoint_table, job_id="sharded", extra=["--shard", "0/3", "--range-bytes", "65536"]),
        env={**os.environ, "JOB_COMPLETION_INDEX": str(index)}, stderr=subprocess.PIPE, text=True)
        for index in range(3)]
    outputs = [w.communicate(timeout=180)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], outputs
    planned = sorted((e["range_start"], e["range_end"]) for out in outputs for e in events(out, "shard-planned"))
    assert planned[0][0] == len(b"id,text\n") and planned[-1][1] == len(body)
    assert planned[0][1] == planned[1][0] and planned[1][1] == planned[2][0]

    records = consume_all(bootstrap_servers, kafka_topic)
    expected = Counter(tuple(row) for row in csv.reader(io.StringIO(body.decode(), newline="")) if row)
    expected.pop(("id", "text"))
    assert Counter((r.json()["id"], r.json()["text"]) for r in records) == expected
    assert {r.headers["csvkafka.shard"] for r in records} == {b"0/3", b"1/3", b"2/3"}

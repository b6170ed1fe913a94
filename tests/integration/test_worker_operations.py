"""Operating the worker: the checkpoint commands that replace the seed's DynamoDB procedures, metrics."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from typing import Any

import orjson
import pytest

from tests.support import consume_all, run_worker, worker_args

pytestmark = pytest.mark.integration


def checkpoint_cli(table: str, job_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "csvkafka_worker", "checkpoint", *args, "--table", table,
                           "--job-id", job_id], capture_output=True, text=True, check=False, timeout=60)


def test_checkpoint_show_set_delete_drive_where_the_next_run_starts(
        s3: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str, bootstrap_servers: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="d.csv", Body=b"n\n" + b"".join(b"%d\n" % i for i in range(1, 101)))
    args = worker_args(source=f"s3://{s3_bucket}/d.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                       table=checkpoint_table, job_id="ops")
    assert "no checkpoint for job 'ops'" in checkpoint_cli(checkpoint_table, "ops", "show").stdout
    assert run_worker(args).returncode == 0

    shown = orjson.loads(checkpoint_cli(checkpoint_table, "ops", "show").stdout)
    assert (shown["state"], shown["last_line"], shown["total_sent"], shown["next_row"]) == ("completed", 100, 100, 101)

    # The seed's "restart from a specific line": rows 51.. again.
    assert "next run starts at row 51" in checkpoint_cli(checkpoint_table, "ops", "set", "--row", "50").stdout
    assert run_worker(args).returncode == 0
    # The seed's "wipe and redo": everything again.
    assert "deleted" in checkpoint_cli(checkpoint_table, "ops", "delete").stdout
    assert run_worker(args).returncode == 0

    values = [int(r.json()["n"]) for r in consume_all(bootstrap_servers, kafka_topic)]
    assert values == list(range(1, 101)) + list(range(51, 101)) + list(range(1, 101))


def test_metrics_endpoint_counts_rows(s3: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
                                     bootstrap_servers: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="d.csv", Body=b"n\n" + b"".join(b"%d\n" % i for i in range(300_000)))
    port = 19111
    worker = subprocess.Popen(worker_args(source=f"s3://{s3_bucket}/d.csv", bootstrap=bootstrap_servers,
                                          topic=kafka_topic, table=checkpoint_table, job_id="metrics",
                                          extra=["--metrics-port", str(port), "--range-bytes", "65536"]),
                              stderr=subprocess.DEVNULL)
    scraped = ""
    deadline = time.monotonic() + 60
    while worker.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
                scraped = response.read().decode()
        except OSError:
            time.sleep(0.05)
            continue
        if re.search(r'csvkafka_rows_read_total\{job="metrics"\} [1-9]', scraped):
            break
    worker.wait(120)
    assert worker.returncode == 0
    for name in ("csvkafka_rows_read_total", "csvkafka_rows_sent_total", "csvkafka_rows_bad_total",
                 "csvkafka_bytes_read_total", "csvkafka_checkpoint_age_seconds", "csvkafka_producer_queue_depth"):
        assert f'{name}{{job="metrics"}}' in scraped, name

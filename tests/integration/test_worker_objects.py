"""Many objects in one import: a prefix shared among workers, a receipt per object, the manifest, reruns."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import os
import subprocess
import time
import zlib
from collections import Counter
from typing import Any

import orjson
import pytest
import zstandard

from tests.support import Record, consume_all, events, new_topics, run_worker, worker_args

pytestmark = pytest.mark.integration


def _csv(rows: int, *, seed: int, quoted_newlines: bool = False) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "text"])
    for i in range(rows):
        text = f"line {i}\nof {seed}, quoted" if quoted_newlines and i % 4 == 0 else f"v{seed}-{i}"
        writer.writerow([f"{seed}-{i}", text])
    return out.getvalue().encode()


def _objects() -> dict[str, tuple[bytes, bytes]]:
    """key → (stored bytes, CSV bytes): plain, gzip, zstd and bz2; empty ones; quoted newlines; one big."""
    plain = {f"exports/part-{n:02d}.csv": _csv(rows, seed=n, quoted_newlines=n in (3, 7))
             for n, rows in enumerate([0, 1, 10, 500, 2_000, 7, 3_000, 1_200, 60_000, 42])}
    plain["exports/nested/deep/part-90.csv"] = _csv(800, seed=90)
    stored = {key: (body, body) for key, body in plain.items()}
    for n in range(4):
        body = _csv(1_500 + n, seed=100 + n, quoted_newlines=n == 1)
        stored[f"exports/gz/part-{n}.csv.gz"] = (gzip.compress(body), body)
        stored[f"exports/zst/part-{n}.csv.zst"] = (zstandard.ZstdCompressor().compress(body), body)
    stored["exports/bz/part-0.csv.bz2"] = (bz2.compress(_csv(300, seed=200)), _csv(300, seed=200))
    stored["exports/zero-bytes.csv"] = (b"", b"")
    return stored


def _rows(body: bytes) -> Counter[tuple[str, ...]]:
    rows = [tuple(row) for row in csv.reader(io.StringIO(body.decode(), newline="")) if row]
    return Counter(rows[1:])


def _by_object(records: list[Record]) -> dict[str, Counter[tuple[str, ...]]]:
    found: dict[str, Counter[tuple[str, ...]]] = {}
    for record in records:
        value = record.json()
        found.setdefault(record.headers["csvkafka.source"].decode(), Counter())[(value["id"], value["text"])] += 1
    return found


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("csvkafka: error") or "Traceback" in line]


def _shards(args: list[str], count: int, timeout: float = 240) -> list[tuple[int, str]]:
    workers = [subprocess.Popen([*args, "--shard", f"0/{count}"], env={**os.environ, "JOB_COMPLETION_INDEX": str(i)},
                                stderr=subprocess.PIPE, text=True) for i in range(count)]
    return [(w.wait(timeout), w.communicate()[1]) for w in workers]


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_a_prefix_among_four_workers_imports_every_object_once_with_receipts_and_a_manifest(
        s3: Any, s3_bucket: str, checkpoint_table: str, bootstrap_servers: str, delivery: str) -> None:
    stored = _objects()
    for key, (body, _) in stored.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)
    s3.put_object(Bucket=s3_bucket, Key="exports/README.txt", Body=b"not csv")
    manifest = f"s3://{s3_bucket}/manifests/run.json"
    with new_topics(bootstrap_servers, 2) as (topic, receipts):
        args = worker_args(source=f"s3://{s3_bucket}/exports/", bootstrap=bootstrap_servers, topic=topic,
                           table=checkpoint_table, job_id="many",
                           extra=["--exclude", "**/*.txt", "--receipts-topic", receipts, "--manifest-uri", manifest,
                                  "--delivery", delivery, "--min-piece-bytes", "200000", "--range-bytes", "65536"])
        results = _shards(args, 4)
        assert [code for code, _ in results] == [0, 0, 0, 0], [_errors(err) for _, err in results]
        records = consume_all(bootstrap_servers, topic)
        receipt_records = consume_all(bootstrap_servers, receipts)

    csv_objects = {key: text for key, (_, text) in stored.items()}
    expected = {f"s3://{s3_bucket}/{key}": _rows(text) for key, text in csv_objects.items() if _rows(text)}
    assert _by_object(records) == expected
    # The big object was split among workers: its rows carry more than one piece's header.
    big = f"s3://{s3_bucket}/exports/part-08.csv"
    assert len({r.headers.get("csvkafka.shard") for r in records if r.headers["csvkafka.source"] == big.encode()}) > 1

    receipts_by_uri = {r.key.decode(): orjson.loads(r.value) for r in receipt_records if r.key}
    assert set(receipts_by_uri) == {f"s3://{s3_bucket}/{key}" for key in csv_objects}
    for uri, receipt in receipts_by_uri.items():
        values = [r.value for r in records if r.headers["csvkafka.source"] == uri.encode()]
        assert receipt["rowsSent"] == len(values) == sum(expected.get(uri, Counter()).values())
        assert int(receipt["valuesCrc32Sum"], 16) == sum(zlib.crc32(v) for v in values) % 2**64
    body = s3.get_object(Bucket=s3_bucket, Key="manifests/run.json")["Body"].read()
    written = orjson.loads(body)
    assert {r["uri"] for r in written["receipts"]} == set(receipts_by_uri)
    assert written["totals"]["rowsSent"] == len(records)


def test_a_rerun_imports_only_the_changed_objects_and_a_poison_object_fails_alone(
        s3: Any, s3_bucket: str, checkpoint_table: str, bootstrap_servers: str) -> None:
    bodies = {f"in/{n}.csv": _csv(100 + n, seed=n) for n in range(10)}
    bodies["in/4.csv"] = b"id,other\n1,2\n"  # not the expected header
    for key, body in bodies.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)
    with new_topics(bootstrap_servers, 1) as (topic,):
        args = worker_args(source=f"s3://{s3_bucket}/in/*.csv", bootstrap=bootstrap_servers, topic=topic,
                           table=checkpoint_table, job_id="rerun",
                           extra=["--expected-header", "id,text", "--on-object-error", "skip"])
        first = run_worker(args)
        assert first.returncode == 0, first.stderr[-3000:]
        failed = events(first.stderr, "object-failed")
        assert [e["object"] for e in failed] == [f"s3://{s3_bucket}/in/4.csv"]
        assert "other" in failed[0]["message"]
        assert len(consume_all(bootstrap_servers, topic)) == sum(100 + n for n in range(10) if n != 4)

        # Two objects re-exported with new content, one new object: `changed` imports those three only.
        for n in (2, 6):
            bodies[f"in/{n}.csv"] = _csv(5, seed=1000 + n)
            s3.put_object(Bucket=s3_bucket, Key=f"in/{n}.csv", Body=bodies[f"in/{n}.csv"])
        s3.put_object(Bucket=s3_bucket, Key="in/new.csv", Body=_csv(3, seed=77))
        again = run_worker([*args, "--rerun-id", "second", "--rerun-mode", "changed"])
        assert again.returncode == 0, again.stderr[-3000:]
        records = consume_all(bootstrap_servers, topic)
    started = sorted(e["source"] for e in events(again.stderr, "start"))
    assert started == sorted(f"s3://{s3_bucket}/in/{name}" for name in ("2.csv", "6.csv", "new.csv"))
    # The object that failed is tried again (and fails again): a rerun finishes what the last run did not.
    assert [e["object"] for e in events(again.stderr, "object-failed")] == [f"s3://{s3_bucket}/in/4.csv"]
    sources = Counter(r.headers["csvkafka.source"].decode().rsplit("/", 1)[1] for r in records)
    assert sources["2.csv"] == 102 + 5 and sources["6.csv"] == 106 + 5 and sources["new.csv"] == 3
    assert sources["0.csv"] == 100 and "4.csv" not in sources


def test_a_worker_killed_mid_run_resumes_only_its_own_unfinished_objects(
        s3: Any, dynamodb: Any, s3_bucket: str, checkpoint_table: str, bootstrap_servers: str) -> None:
    # 150,000 rows (about 2.5 MB, three blocks) an object at 50,000 rows/s a worker: three seconds each.
    bodies = {f"k/{n:02d}.csv": _csv(150_000, seed=n) for n in range(6)}
    for key, body in bodies.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)
    with new_topics(bootstrap_servers, 1) as (topic,):
        args = [*worker_args(source=f"s3://{s3_bucket}/k/", bootstrap=bootstrap_servers, topic=topic,
                             table=checkpoint_table, job_id="killed",
                             extra=["--delivery", "exactly-once", "--checkpoint-every-seconds", "0.2",
                                    "--lease-seconds", "5", "--rate-rows", "100000"]), "--shard", "0/2"]
        victim = subprocess.Popen(args, env={**os.environ, "JOB_COMPLETION_INDEX": "1"}, stderr=subprocess.PIPE,
                                  text=True)
        other = subprocess.Popen(args, env={**os.environ, "JOB_COMPLETION_INDEX": "0"}, stderr=subprocess.PIPE,
                                 text=True)
        seen = ""
        assert victim.stderr is not None
        for line in victim.stderr:
            seen += line
            if seen.count('"event":"start"') >= 2:
                break
        second = events(seen, "start")[1]["source"].removeprefix("s3://")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # killed once its second object has a checkpoint part of the way
            item = dynamodb.get_item(TableName=checkpoint_table, Key={"job_id": {"S": f"killed@{second}"}},
                                     ConsistentRead=True).get("Item", {})
            if int(item.get("last_line", {}).get("N", "0")) > 0:
                break
            time.sleep(0.05)
        victim.kill()
        victim.wait(30)
        assert item["state"]["S"] == "running", item
        assert other.wait(240) == 0, _errors(other.communicate()[1])
        first_run = [e["source"] for e in events(seen, "start")]
        again = run_worker(args, env={"JOB_COMPLETION_INDEX": "1"}, timeout=240)
        assert again.returncode == 0, _errors(again.stderr)
        records = consume_all(bootstrap_servers, topic)
    resumed = events(again.stderr, "start")
    # The object it finished is not started again; the one it was in resumes from its checkpoint; the
    # worker of shard 0 ran once and its objects are not touched.
    assert first_run[0] not in [e["source"] for e in resumed]
    assert resumed[0]["source"] == first_run[1] and 0 < resumed[0]["row"] < 150_000
    expected = {f"s3://{s3_bucket}/{key}": _rows(body) for key, body in bodies.items()}
    assert _by_object(records) == expected  # exactly once: every row once
    # The shards' summaries count every row, those of the object finished before the kill included.
    summaries = [dynamodb.get_item(TableName=checkpoint_table, Key={"job_id": {"S": f"killed#{i}/2"}},
                                   ConsistentRead=True)["Item"] for i in range(2)]
    assert sum(int(item["total_sent"]["N"]) for item in summaries) == len(records) == 6 * 150_000

"""Imports of many objects through the operator on the local stack's real nodes: a prefix of plain, gzip
and zstd objects shared among four worker pods, a receipt per object and the manifest; one shard's pod
killed mid-run; a rerun of the changed objects; a poison object skipped or failing the import.

Needs `dev/stack up` (the session fixture starts what is missing, the operator included).
"""

# The fixtures of test_operator_imports and test_operator_faults are imported by name, and named again
# as the tests' arguments.
# ruff: noqa: F811

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import zstandard

from devstack import images
from devstack import nodes as stack_nodes
from devstack.layout import Layout
from tests.e2e.test_operator_faults import current_operator  # noqa: F401  (fixture)
from tests.e2e.test_operator_imports import (  # noqa: F401  (fixtures)
    apply,
    condition,
    get,
    kubectl,
    make_import,
    ns,
    operator,
    wait_for,
    wait_until,
)
from tests.support import Record, consume_all, new_topics

pytestmark = pytest.mark.e2e

Rows = Counter[tuple[str, ...]]


@pytest.fixture(scope="module")
def current_image(stack_env: dict[str, str]) -> None:
    """The nodes run this checkout's worker: the image is built again when its inputs changed (a no-op
    otherwise) and loaded into each node's containerd when it holds an older build."""
    layout = Layout.from_env()
    archives = images.build(layout)
    for node in stack_nodes.nodes(layout):
        images.load(node.socket, node.dir, archives)


@pytest.fixture
def stack(current_image: None, current_operator: None) -> None:
    """Worker and operator both current."""


@pytest.fixture
def receipts_topic(bootstrap_servers: str) -> Iterator[str]:
    with new_topics(bootstrap_servers, 1) as [topic]:
        yield topic


def csv_body(rows: int, *, seed: int | str, quoted_newlines: bool = False, width: int = 0,
             header: tuple[str, str] = ("id", "text")) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    padding = "x" * width
    for i in range(rows):
        text = f"line {i}\nof {seed}, quoted" if quoted_newlines and i % 4 == 0 else f"v{seed}-{i}{padding}"
        writer.writerow([f"{seed}-{i}", text])
    return out.getvalue().encode()


def same(body: bytes) -> tuple[bytes, bytes]:
    """A plain object: stored as the CSV it is."""
    return body, body


def rows_of(body: bytes) -> Rows:
    rows = [tuple(row) for row in csv.reader(io.StringIO(body.decode(), newline="")) if row]
    return Counter(rows[1:])


def by_object(records: list[Record]) -> dict[str, Rows]:
    found: dict[str, Rows] = {}
    for record in records:
        value = record.json()
        found.setdefault(record.headers["csvkafka.source"].decode(), Counter())[(value["id"], value["text"])] += 1
    return found


def put_all(s3: Any, bucket: str, stored: dict[str, tuple[bytes, bytes]]) -> dict[str, bytes]:
    """Uploads key → (stored bytes, CSV bytes); returns uri → CSV bytes."""
    for key, (body, _) in stored.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return {f"s3://{bucket}/{key}": text for key, (_, text) in stored.items()}


def expected_rows(texts: dict[str, bytes]) -> dict[str, Rows]:
    return {uri: rows for uri, text in texts.items() if (rows := rows_of(text))}


def job_pods(ns: str, job: str) -> list[dict[str, Any]]:
    return list(json.loads(kubectl("get", "pods", "-n", ns, "-l", f"job-name={job}", "-o", "json").stdout)["items"])


def index_of(pod: dict[str, Any]) -> int:
    return int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])


def pods_created(ns: str, job: str) -> Counter[int]:
    """How many pods the Job controller created per completion index, from its SuccessfulCreate events
    (a deleted pod is gone from the API, its event stays): pod names are `{job}-{index}-{suffix}`."""
    listed = json.loads(kubectl("get", "events", "-n", ns, "-o", "json", "--field-selector",
                                f"involvedObject.kind=Job,involvedObject.name={job},reason=SuccessfulCreate").stdout)
    names = [e["message"].removeprefix("Created pod: ") for e in listed["items"]]
    return Counter(int(name.removeprefix(f"{job}-").split("-")[0]) for name in names)


def worker_events(ns: str, job: str, name: str) -> list[dict[str, Any]]:
    """The worker's JSON events called `name` in the logs of every pod of `job`."""
    found = []
    for pod in job_pods(ns, job):
        logs = kubectl("logs", "-n", ns, pod["metadata"]["name"], "--tail=-1").stdout.splitlines()
        found += [e for line in logs if line.startswith("{") and (e := json.loads(line)).get("event") == name]
    return found


# -- a prefix among four pods ----------------------------------------------------------------------

BIG_KEY = "exports/big/part-00.csv"


def prefix_objects() -> dict[str, tuple[bytes, bytes]]:
    """22 objects, key → (stored bytes, CSV bytes): 13 plain (one of about 50 MB, one header only, one
    of no bytes at all), 4 gzip, 4 zstd and one more plain; a plain and a zstd one with quoted newlines."""
    plain = {f"exports/part-{n:02d}.csv": csv_body(rows, seed=n, quoted_newlines=n == 3)
             for n, rows in enumerate([0, 1, 10, 500, 2_000, 7, 3_000, 1_200, 42, 800, 20_000])}
    stored = {key: same(body) for key, body in plain.items()}
    stored["exports/empty.csv"] = (b"", b"")
    for n in range(4):
        body = csv_body(1_500 + n, seed=f"g{n}")
        stored[f"exports/gz/part-{n}.csv.gz"] = (gzip.compress(body), body)
        body = csv_body(1_500 + n, seed=f"z{n}", quoted_newlines=n == 1)
        stored[f"exports/zst/part-{n}.csv.zst"] = (zstandard.ZstdCompressor().compress(body), body)
    stored["exports/nested/deep/part-90.csv"] = same(csv_body(900, seed=90))
    big = csv_body(100_000, seed="big", width=490)
    stored[BIG_KEY] = same(big)
    return stored


def test_a_prefix_of_objects_among_four_pods_matches_its_receipts_and_manifest(
        stack: None, ns: str, s3: Any, s3_bucket: str, make_import: Callable[..., dict[str, Any]],
        kafka_topic: str, bootstrap_servers: str, receipts_topic: str) -> None:
    stored = prefix_objects()
    assert len(stored) >= 20 and 45e6 < len(stored[BIG_KEY][0]) < 55e6
    texts = put_all(s3, s3_bucket, stored)
    manifest_uri = f"s3://{s3_bucket}/manifests/people.json"
    apply(make_import(f"s3://{s3_bucket}/exports/", parallelism=4,
                      receipts={"topic": receipts_topic, "manifestUri": manifest_uri}))
    status = wait_for(ns, "people", "Succeeded", timeout=420)
    assert status["objects"]["total"] == status["objects"]["done"] == len(stored), status["objects"]
    assert status["objects"]["failed"] == 0
    assert [s["state"] for s in status["shards"]] == ["completed"] * 4

    # The topic holds the files row by row (as at-least-once writes them with no failure: once each).
    records = consume_all(bootstrap_servers, kafka_topic)
    expected = expected_rows(texts)
    assert by_object(records) == expected
    assert status["recordsSent"] == len(records) == sum(sum(rows.values()) for rows in expected.values())

    # One receipt per object, empty ones included, counting and summing what the topic holds of it.
    receipts = {r.key.decode(): orjson.loads(r.value) for r in consume_all(bootstrap_servers, receipts_topic)
                if r.key}
    assert set(receipts) == set(texts)
    values: dict[str, list[bytes]] = {}
    for record in records:
        values.setdefault(record.headers["csvkafka.source"].decode(), []).append(record.value)
    for uri, receipt in receipts.items():
        sent = values.get(uri, [])
        assert receipt["rowsSent"] == len(sent) == sum(expected.get(uri, Counter()).values()), uri
        assert int(receipt["valuesCrc32Sum"], 16) == sum(zlib.crc32(v) for v in sent) % 2**64, uri
    # 50 MB is below the planner's smallest piece (64 MiB): the big object goes whole to one shard.
    big = f"s3://{s3_bucket}/{BIG_KEY}"
    # Its receipt covers its rows' bytes (after the header line) in one range.
    assert receipts[big]["byteRange"] == {"start": len(b"id,text\n"), "end": len(stored[BIG_KEY][0])}
    assert len({r.headers.get("csvkafka.shard") for r in records if r.headers["csvkafka.source"] == big.encode()}) == 1

    manifest = orjson.loads(s3.get_object(Bucket=s3_bucket, Key="manifests/people.json")["Body"].read())
    assert {r["uri"]: r for r in manifest["receipts"]} == receipts
    assert manifest["totals"]["rowsSent"] == len(records) and manifest["totals"]["objects"] == len(stored)

    # kubectl csvimport objects lists every object, completed, with its rows.
    listed = kubectl("csvimport", "objects", "people", "-n", ns).stdout
    lines = {line.split()[0]: line.split() for line in listed.splitlines()[3:]}
    assert f"{len(stored)} objects in the plan: {len(stored)} completed" in listed
    assert set(lines) == set(texts)
    for uri, cells in lines.items():
        assert cells[1:3] == ["completed", f"{sum(expected.get(uri, Counter()).values()):,}"], cells


# -- one shard's pod killed ------------------------------------------------------------------------


def test_a_shard_s_pod_killed_mid_run_is_the_only_one_run_again_and_every_row_lands_once(
        stack: None, ns: str, s3: Any, s3_bucket: str, make_import: Callable[..., dict[str, Any]],
        kafka_topic: str, bootstrap_servers: str) -> None:
    stored = {f"in/part-{n:02d}.csv": same(csv_body(20_000, seed=n)) for n in range(12)}
    texts = put_all(s3, s3_bucket, stored)
    # 20,000 rows a second for the import, 5,000 for each shard: every shard runs some 12 s.
    apply(make_import(f"s3://{s3_bucket}/in/", parallelism=4, delivery="exactly-once",
                      rateLimit={"rowsPerSecond": 20_000}, checkpoint={"everySeconds": 1, "leaseSeconds": 10}))

    def shard_1_mid_run() -> bool:
        shards = get(ns, "people").get("status", {}).get("shards", [])
        return len(shards) == 4 and shards[1]["state"] == "running" and shards[1]["recordsSent"] > 0

    wait_until(shard_1_mid_run, what="shard 1's summary item to show rows sent while it runs", timeout=180)
    job = get(ns, "people")["status"]["jobName"]
    [killed] = [p["metadata"]["name"] for p in job_pods(ns, job) if index_of(p) == 1]
    kubectl("delete", "pod", killed, "-n", ns, "--grace-period=0", "--force")
    assert get(ns, "people")["status"]["shards"][1]["state"] != "completed"

    status = wait_for(ns, "people", "Succeeded", timeout=300)
    records = consume_all(bootstrap_servers, kafka_topic)
    assert by_object(records) == expected_rows(texts)
    assert status["recordsSent"] == len(records) == 12 * 20_000
    assert pods_created(ns, job) == Counter({0: 1, 1: 2, 2: 1, 3: 1})
    assert killed not in {p["metadata"]["name"] for p in job_pods(ns, job)}


# -- a rerun of the changed objects ----------------------------------------------------------------


def test_a_rerun_of_changed_objects_imports_exactly_the_two_re_uploaded(
        stack: None, ns: str, s3: Any, s3_bucket: str, make_import: Callable[..., dict[str, Any]],
        kafka_topic: str, bootstrap_servers: str) -> None:
    stored = {f"daily/{n}.csv": same(csv_body(300 + n, seed=n)) for n in range(6)}
    texts = put_all(s3, s3_bucket, stored)
    source = f"s3://{s3_bucket}/daily/*.csv"
    apply(make_import(source, parallelism=2))
    first = wait_for(ns, "people", "Succeeded")
    before = consume_all(bootstrap_servers, kafka_topic)
    assert by_object(before) == expected_rows(texts)

    changed = {f"daily/{n}.csv": same(csv_body(40 + n, seed=f"new{n}")) for n in (1, 4)}
    new_texts = put_all(s3, s3_bucket, changed)
    apply(make_import(source, parallelism=2, rerun={"id": "2", "mode": "changed"}))
    second = wait_until(lambda: (s := get(ns, "people").get("status", {})).get("observedRerunId") == "2"
                        and s.get("phase") == "Succeeded" and s["jobName"] != first["jobName"] and s,
                        what="the rerun to succeed", timeout=240)

    records = consume_all(bootstrap_servers, kafka_topic)
    assert records[:len(before)] == before
    assert by_object(records[len(before):]) == expected_rows(new_texts)
    started = sorted(e["source"] for e in worker_events(ns, second["jobName"], "start"))
    assert started == sorted(new_texts)


# -- a poison object -------------------------------------------------------------------------------


@pytest.fixture
def poisoned(s3: Any, s3_bucket: str) -> tuple[str, dict[str, bytes]]:
    """Ten objects, the fifth with a header other than the expected one; returns its uri and the rest."""
    stored = {f"in/{n}.csv": same(csv_body(200 + n, seed=n)) for n in range(10)}
    stored["in/4.csv"] = same(csv_body(10, seed=4, header=("id", "other")))
    texts = put_all(s3, s3_bucket, stored)
    poison = f"s3://{s3_bucket}/in/4.csv"
    return poison, {uri: text for uri, text in texts.items() if uri != poison}


def test_a_poison_object_skipped_fails_alone_with_its_reason_in_the_status(
        stack: None, ns: str, s3_bucket: str, make_import: Callable[..., dict[str, Any]],
        poisoned: tuple[str, dict[str, bytes]], kafka_topic: str, bootstrap_servers: str) -> None:
    poison, good = poisoned
    apply(make_import(f"s3://{s3_bucket}/in/", parallelism=2, onObjectError="skip",
                      source={"csv": {"expectedHeader": ["id", "text"]}}))
    status = wait_for(ns, "people", "Succeeded")
    assert status["phase"] == "Succeeded"
    failed = condition(status, "ObjectsFailed")
    assert (failed["status"], failed["reason"]) == ("True", "ObjectsFailed")
    assert "1 object failed and was skipped (spec.onObjectError: skip)" in failed["message"]
    assert poison in failed["message"] and "not expected ['other']" in failed["message"]
    [item] = status["failedObjects"]
    assert (item["uri"], item["reason"]) == (poison, "BadInput")
    assert "missing ['text']" in item["message"]
    assert (status["objects"]["total"], status["objects"]["done"], status["objects"]["failed"]) == (10, 9, 1)
    assert by_object(consume_all(bootstrap_servers, kafka_topic)) == expected_rows(good)


def test_a_poison_object_under_on_object_error_fail_fails_the_import_naming_it(
        stack: None, ns: str, s3_bucket: str, make_import: Callable[..., dict[str, Any]],
        poisoned: tuple[str, dict[str, bytes]]) -> None:
    poison, _ = poisoned
    apply(make_import(f"s3://{s3_bucket}/in/", parallelism=2, onObjectError="fail",
                      source={"csv": {"expectedHeader": ["id", "text"]}}))
    status = wait_for(ns, "people", "Failed", timeout=240)
    assert status["phase"] == "Failed"
    failed = condition(status, "Failed")
    assert poison in failed["message"] and "expectedHeader" in failed["message"], failed

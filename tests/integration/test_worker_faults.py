"""Service faults during an import: every one ends, within its retry budget, with the right exit code and
one line, and the rows delivered before it are those the checkpoint counts.

DynamoDB throttling and an S3 that stops answering are played by an HTTP proxy in this process in
front of moto (moto itself never throttles); a service that accepts connections and never answers
by a listening socket that nobody reads. Budgets are kept small with the worker's own settings.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from csvkafka_worker.exit_codes import ExitCode
from tests.support import consume_all, events, last_error_line, run_worker, worker_args

pytestmark = pytest.mark.integration

FORWARD, THROTTLE, SLOW_DOWN, HANG = "forward", "throttle", "slow-down", "hang"
THROTTLED_BODY = (b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
                  b'"message":"The level of configured provisioned throughput for the table was exceeded."}')
SLOW_DOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                  b'<Message>Please reduce your request rate.</Message></Error>')


class FaultProxy:
    """Forwards each HTTP request to moto, answers it with DynamoDB's or S3's throttling error, or never
    answers, as `decide(n, method, path)` says for the n-th request (from 1)."""

    def __init__(self, upstream: str, decide: Callable[[int, str, str], str]) -> None:
        target = urllib.parse.urlsplit(upstream)
        self.decide = decide
        self.requests = 0
        self.throttled = 0
        self.released = threading.Event()
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    proxy.requests += 1
                    number = proxy.requests
                action = proxy.decide(number, self.command, self.path)
                if action == HANG:
                    proxy.released.wait()
                    self.close_connection = True
                    return
                if action in (THROTTLE, SLOW_DOWN):
                    with lock:
                        proxy.throttled += 1
                    if action == THROTTLE:
                        self._answer(400, [("Content-Type", "application/x-amz-json-1.0")], THROTTLED_BODY)
                    else:
                        self._answer(503, [("Content-Type", "application/xml")], SLOW_DOWN_BODY)
                    return
                upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                upstream_conn.request(self.command, self.path, body, dict(self.headers.items()))
                response = upstream_conn.getresponse()
                payload = response.read()
                # A HEAD's Content-Length is the object's size, not that of its (empty) body.
                dropped = ("transfer-encoding", "connection") if self.command == "HEAD" else \
                    ("content-length", "transfer-encoding", "connection")
                headers = [(k, v) for k, v in response.getheaders() if k.lower() not in dropped]
                upstream_conn.close()
                self._answer(response.status, headers, payload)

            def _answer(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxies(stack_env: dict[str, str]) -> Iterator[Callable[[Callable[[int, str, str], str]], FaultProxy]]:
    made: list[FaultProxy] = []

    def make(decide: Callable[[int, str, str], str]) -> FaultProxy:
        made.append(FaultProxy(stack_env["AWS_ENDPOINT_URL"], decide))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def black_hole() -> Iterator[str]:
    """host:port of a socket that completes connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def csv_body(rows: int) -> bytes:
    return b"id,name\n" + b"".join(b"%d,name-%d\n" % (i, i) for i in range(1, rows + 1))


def rows_in(bootstrap: str, topic: str) -> Counter[int]:
    return Counter(int(r.json()["id"]) for r in consume_all(bootstrap, topic))


def checkpoint_item(dynamodb: Any, table: str, job_id: str) -> dict[str, str]:
    item = dynamodb.get_item(TableName=table, Key={"job_id": {"S": job_id}}, ConsistentRead=True)["Item"]
    return {name: next(iter(value.values())) for name, value in item.items()}


def checkpointed_rows(dynamodb: Any, table: str, job_id: str, bootstrap: str, topic: str) -> tuple[dict[str, str], int]:
    """The job's checkpoint item and its rows consumed, which are exactly the topic's rows, each once."""
    item = checkpoint_item(dynamodb, table, job_id)
    delivered = int(item["last_line"])
    assert rows_in(bootstrap, topic) == Counter(range(1, delivered + 1))
    return item, delivered


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def metric(scraped: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", scraped, re.MULTILINE)
    return float(found[1]) if found else None


def test_dynamodb_throttling_is_retried_counted_and_the_import_is_exact(
        proxies: Any, s3: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
        bootstrap_servers: str) -> None:
    rows = 60_000
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(rows))
    # The lease claim three times in a row, then every third call (checkpoints) until eight were throttled.
    proxy = proxies(lambda n, _m, _p: THROTTLE if n <= 3 or (n % 3 == 0 and n <= 18) else FORWARD)
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id="throttled",
                                    extra=["--checkpoint-every-rows", "2000", "--range-bytes", "65536",
                                           "--dynamodb-retry-seconds", "30"]),
                        env={"AWS_ENDPOINT_URL_DYNAMODB": proxy.url})
    assert result.returncode == 0, result.stderr
    assert proxy.throttled == 8 and proxy.requests > 18
    finish = events(result.stderr, "finish")[-1]
    assert finish["throttled"] == {"dynamodb": 8}
    assert finish["rows_sent"] == rows
    assert rows_in(bootstrap_servers, kafka_topic) == Counter(range(1, rows + 1))


def test_s3_slow_down_is_retried_counted_and_the_import_is_exact(
        proxies: Any, s3: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
        bootstrap_servers: str) -> None:
    rows = 60_000
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(rows))
    # Every other ranged GET after the preamble's answers 503 SlowDown once, five in all.
    proxy = proxies(lambda n, _m, _p: SLOW_DOWN if n in (3, 5, 7, 9, 11) else FORWARD)
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id="slow-down", extra=["--range-bytes", "65536"]),
                        env={"AWS_ENDPOINT_URL_S3": proxy.url})
    assert result.returncode == 0, result.stderr
    assert proxy.throttled == 5
    assert events(result.stderr, "finish")[-1]["throttled"] == {"s3": 5}
    assert rows_in(bootstrap_servers, kafka_topic) == Counter(range(1, rows + 1))


def test_dynamodb_throttled_past_its_budget_ends_in_exit_75_and_one_line(
        proxies: Any, s3: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
        bootstrap_servers: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(10))
    proxy = proxies(lambda _n, _m, _p: THROTTLE)
    port = 19131
    started = time.monotonic()
    worker = subprocess.Popen(
        worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                    table=checkpoint_table, job_id="hopeless",
                    extra=["--dynamodb-retry-seconds", "8", "--metrics-port", str(port)]),
        stderr=subprocess.PIPE, text=True, env={**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url})
    # While it is stuck, the metrics say so: throttles grow, and so does the checkpoint's age.
    seen: list[tuple[float, float]] = []
    while worker.poll() is None and time.monotonic() - started < 60:
        scraped = scrape(port)
        throttles = metric(scraped, 'csvkafka_throttled_total{job="hopeless",service="dynamodb"}')
        age = metric(scraped, 'csvkafka_checkpoint_age_seconds{job="hopeless"}')
        if throttles and age is not None:
            seen.append((throttles, age))
        time.sleep(0.5)
    _, stderr = worker.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert worker.returncode == ExitCode.INFRASTRUCTURE, stderr
    assert elapsed < 8 + 20  # the budget, one last attempt and the interpreter's start
    message = last_error_line(stderr)
    assert message.startswith(f"DynamoDB throttled update_item on table {checkpoint_table!r} (job 'hopeless') ")
    assert "its retry budget of 8s is spent (last error: An error occurred (ProvisionedThroughputExceededException)" \
        in message
    assert "raise the table's write capacity or switch it to on-demand, or raise retry.dynamodbSeconds" in message
    assert len(seen) >= 3, stderr
    assert seen[-1][0] > seen[0][0] and seen[-1][1] > seen[0][1] + 1
    assert proxy.throttled >= seen[-1][0]
    assert "Traceback" not in stderr


def test_s3_that_never_answers_ends_within_its_budget(black_hole: str, kafka_topic: str, checkpoint_table: str,
                                                      bootstrap_servers: str) -> None:
    started = time.monotonic()
    result = run_worker(worker_args(source="s3://bucket-x/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id="j", extra=["--s3-retry-seconds", "4"]),
                        env={"AWS_ENDPOINT_URL_S3": f"http://{black_hole}"}, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == ExitCode.INFRASTRUCTURE, result.stderr
    message = last_error_line(result.stderr)
    assert message.startswith("S3 failed HEAD s3://bucket-x/in.csv ")
    assert "its retry budget of 4s is spent (last error: Read timeout on endpoint URL" in message
    assert "check the S3 endpoint and the network to it" in message
    assert elapsed < 4 + 2 + 15


def test_dynamodb_that_never_answers_ends_within_its_budget(black_hole: str, s3: Any, s3_bucket: str,
                                                            kafka_topic: str, checkpoint_table: str,
                                                            bootstrap_servers: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(10))
    started = time.monotonic()
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id="j", extra=["--dynamodb-retry-seconds", "4"]),
                        env={"AWS_ENDPOINT_URL_DYNAMODB": f"http://{black_hole}"}, timeout=120)
    assert result.returncode == ExitCode.INFRASTRUCTURE, result.stderr
    message = last_error_line(result.stderr)
    assert message.startswith(f"DynamoDB failed update_item on table {checkpoint_table!r} (job 'j') ")
    assert "its retry budget of 4s is spent (last error: Read timeout on endpoint URL" in message
    assert time.monotonic() - started < 4 + 2 + 15


SILENT_ROWS = 100_000


@pytest.fixture
def s3_silent_mid_import(proxies: Any, s3: Any, s3_bucket: str) -> FaultProxy:
    """in.csv of SILENT_ROWS rows, behind a proxy where the HEAD, the preamble's GET and six 64 KiB ranges
    answer; then S3 goes silent."""
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(SILENT_ROWS))
    proxy: FaultProxy = proxies(lambda n, _m, _p: FORWARD if n <= 8 else HANG)
    return proxy


def test_s3_lost_mid_import_ends_with_the_delivered_rows_checkpointed(
        s3_silent_mid_import: FaultProxy, dynamodb: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
        bootstrap_servers: str) -> None:
    rows, proxy = SILENT_ROWS, s3_silent_mid_import
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id="s3-lost",
                                    extra=["--range-bytes", "65536", "--s3-retry-seconds", "4"]),
                        env={"AWS_ENDPOINT_URL_S3": proxy.url}, timeout=120)
    assert result.returncode == ExitCode.INFRASTRUCTURE, result.stderr
    message = last_error_line(result.stderr)
    assert re.match(rf"S3 failed reading s3://{s3_bucket}/in.csv at byte \d+ \d+ times in \d+s, its retry budget of "
                    r"4s is spent \(last error: Read timeout", message), message
    item, delivered = checkpointed_rows(dynamodb, checkpoint_table, "s3-lost", bootstrap_servers, kafka_topic)
    assert (item["state"], item["reason"]) == ("failed", "S3Unavailable")
    assert 0 < delivered < rows and int(item["total_sent"]) == delivered

    # Once S3 is back, the next attempt finishes the import.
    again = run_worker(worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                   table=checkpoint_table, job_id="s3-lost", extra=["--range-bytes", "65536"]))
    assert again.returncode == 0, again.stderr
    assert rows_in(bootstrap_servers, kafka_topic) == Counter(range(1, rows + 1))


def test_sigterm_while_s3_is_silent_checkpoints_and_stops_at_once(
        s3_silent_mid_import: FaultProxy, dynamodb: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
        bootstrap_servers: str) -> None:
    rows, proxy = SILENT_ROWS, s3_silent_mid_import
    args = worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                       table=checkpoint_table, job_id="silent", extra=["--range-bytes", "65536"])
    # The default S3 budget (120 s) is far longer than a pod's grace period.
    worker = subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "AWS_ENDPOINT_URL_S3": proxy.url})
    deadline = time.monotonic() + 60
    while proxy.requests <= 8:
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1)
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert time.monotonic() - stopped_at < 20  # the default shutdown timeout
    assert events(stderr, "finish")[-1]["state"] == "interrupted"
    item, delivered = checkpointed_rows(dynamodb, checkpoint_table, "silent", bootstrap_servers, kafka_topic)
    assert item["state"] == "interrupted" and 0 < delivered < rows

    again = run_worker(args)
    assert again.returncode == 0, again.stderr
    assert rows_in(bootstrap_servers, kafka_topic) == Counter(range(1, rows + 1))


def test_kafka_that_never_answers_ends_in_exit_75(black_hole: str, s3: Any, s3_bucket: str, kafka_topic: str,
                                                  checkpoint_table: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(10))
    started = time.monotonic()
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=black_hole, topic=kafka_topic,
                                    table=checkpoint_table, job_id="j", extra=["--kafka-retry-seconds", "3"]),
                        timeout=120)
    assert result.returncode == ExitCode.INFRASTRUCTURE, result.stderr
    assert last_error_line(result.stderr).startswith(f"Kafka at {black_hole} is unreachable (")
    assert time.monotonic() - started < 3 + 20


def slowly(_n: int, _method: str, _path: str) -> str:
    time.sleep(0.1)
    return FORWARD


def change_on(request: int, change: Callable[[], object]) -> Callable[[int, str, str], str]:
    """Forwards every request, slowly, and changes the object just before the `request`-th."""

    def decide(n: int, _method: str, _path: str) -> str:
        time.sleep(0.05)
        if n == request:
            change()
        return FORWARD

    return decide


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_an_object_overwritten_mid_import_stops_with_what_was_delivered_checkpointed(
        delivery: str, proxies: Any, s3: Any, dynamodb: Any, s3_bucket: str, kafka_topic: str,
        checkpoint_table: str, bootstrap_servers: str) -> None:
    rows = 100_000
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(rows))
    etag = s3.head_object(Bucket=s3_bucket, Key="in.csv")["ETag"].strip('"')
    proxy = proxies(change_on(10, lambda: s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(10))))
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id="changed",
                                    extra=["--range-bytes", "65536", "--checkpoint-every-rows", "5000",
                                           "--delivery", delivery]),
                        env={"AWS_ENDPOINT_URL_S3": proxy.url})
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    assert last_error_line(result.stderr) == (
        f"s3://{s3_bucket}/in.csv was overwritten since this import started (ETag is no longer {etag}); the rows "
        "delivered so far are in the checkpoint. Reset the import to load the new version (kubectl csvimport reset, "
        "or csvkafka checkpoint delete), or restore the old version")
    # Only rows of the old version, each once, exactly those the checkpoint counts.
    item, delivered = checkpointed_rows(dynamodb, checkpoint_table, "changed", bootstrap_servers, kafka_topic)
    assert (item["state"], item["reason"], item["source_etag"]) == ("failed", "SourceChanged", etag)
    assert 0 < delivered < rows


def test_an_object_deleted_mid_import_stops_with_what_was_delivered_checkpointed(
        proxies: Any, s3: Any, dynamodb: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
        bootstrap_servers: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(100_000))
    proxy = proxies(change_on(10, lambda: s3.delete_object(Bucket=s3_bucket, Key="in.csv")))
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id="deleted", extra=["--range-bytes", "65536"]),
                        env={"AWS_ENDPOINT_URL_S3": proxy.url})
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    assert last_error_line(result.stderr) == (f"source object s3://{s3_bucket}/in.csv does not exist; check "
                                              "source.uri (bucket, key, and the region of the bucket)")
    item, delivered = checkpointed_rows(dynamodb, checkpoint_table, "deleted", bootstrap_servers, kafka_topic)
    assert (item["state"], item["reason"]) == ("failed", "SourceNotFound") and delivered > 0


def test_a_resume_against_an_overwritten_object_is_refused(
        proxies: Any, s3: Any, dynamodb: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str,
        bootstrap_servers: str) -> None:
    rows = 100_000
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(rows))
    etag = s3.head_object(Bucket=s3_bucket, Key="in.csv")["ETag"].strip('"')
    proxy = proxies(slowly)  # slow enough to interrupt mid-way
    args = worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                       table=checkpoint_table, job_id="resumed",
                       extra=["--range-bytes", "65536", "--checkpoint-every-rows", "5000"])
    worker = subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "AWS_ENDPOINT_URL_S3": proxy.url})
    deadline = time.monotonic() + 60
    while int(checkpoint_item_or_empty(dynamodb, checkpoint_table, "resumed").get("last_line", 0)) == 0:
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    interrupted = checkpoint_item(dynamodb, checkpoint_table, "resumed")
    assert interrupted["state"] == "interrupted"

    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(rows // 2))
    new_etag = s3.head_object(Bucket=s3_bucket, Key="in.csv")["ETag"].strip('"')
    result = run_worker(args)
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    assert last_error_line(result.stderr).startswith(
        f"s3://{s3_bucket}/in.csv was overwritten since this import started (ETag {etag} → {new_etag}); ")
    after, delivered = checkpointed_rows(dynamodb, checkpoint_table, "resumed", bootstrap_servers, kafka_topic)
    assert (after["state"], after["reason"], delivered) == ("failed", "SourceChanged", int(interrupted["last_line"]))


def checkpoint_item_or_empty(dynamodb: Any, table: str, job_id: str) -> dict[str, str]:
    try:
        return checkpoint_item(dynamodb, table, job_id)
    except KeyError:
        return {}


def test_a_shard_of_an_object_overwritten_after_another_shard_started_is_refused(
        s3: Any, s3_bucket: str, kafka_topic: str, checkpoint_table: str, bootstrap_servers: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(20_000))
    etag = s3.head_object(Bucket=s3_bucket, Key="in.csv")["ETag"].strip('"')

    def shard(index: int) -> subprocess.CompletedProcess[str]:
        return run_worker(worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers,
                                      topic=kafka_topic, table=checkpoint_table, job_id="sharded",
                                      extra=["--shard", f"{index}/2"]))

    first = shard(0)
    assert first.returncode == 0, first.stderr
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(30_000))
    new_etag = s3.head_object(Bucket=s3_bucket, Key="in.csv")["ETag"].strip('"')
    second = shard(1)
    assert second.returncode == ExitCode.BAD_INPUT, second.stderr
    assert last_error_line(second.stderr).startswith(
        f"s3://{s3_bucket}/in.csv was overwritten since this import started (ETag {etag} → {new_etag}); ")
    # Only shard 0's rows, all of the old version.
    delivered = events(first.stderr, "finish")[-1]["rows_sent"]
    assert sum(rows_in(bootstrap_servers, kafka_topic).values()) == delivered


@pytest.fixture
def producer_quota(stack_env: dict[str, str]) -> Iterator[Callable[[str, int], None]]:
    """Sets a broker-side produce quota (bytes/s) on a client id, with Kafka's own ConfigCommand."""
    java = ["java", "-Xmx256m", "-cp", f"{stack_env['CSVKAFKA_CACHE']}/kafka/libs/*", "kafka.admin.ConfigCommand",
            "--bootstrap-server", stack_env["KAFKA_BOOTSTRAP_SERVERS"], "--entity-type", "clients"]
    limited: list[str] = []

    def limit(client_id: str, bytes_per_second: int) -> None:
        subprocess.run([*java, "--entity-name", client_id, "--alter", "--add-config",
                        f"producer_byte_rate={bytes_per_second}"], check=True, capture_output=True, timeout=120)
        limited.append(client_id)

    yield limit
    for client_id in limited:
        subprocess.run([*java, "--entity-name", client_id, "--alter", "--delete-config", "producer_byte_rate"],
                       check=False, capture_output=True, timeout=120)


def test_a_kafka_produce_quota_is_waited_out_and_counted(
        engine: str, producer_quota: Callable[[str, int], None], s3: Any, s3_bucket: str, kafka_topic: str,
        checkpoint_table: str, bootstrap_servers: str) -> None:
    rows = 10_000
    s3.put_object(Bucket=s3_bucket, Key="in.csv", Body=csv_body(rows))
    job_id = kafka_topic  # unique: the quota is the client id's, csvkafka-<job id>
    # The broker measures a client's rate over about ten seconds: ~180 KB at 10 KB/s is held back for
    # several seconds, with throttle times in its produce responses.
    producer_quota(f"csvkafka-{job_id}", 10_000)
    result = run_worker(worker_args(source=f"s3://{s3_bucket}/in.csv", bootstrap=bootstrap_servers, topic=kafka_topic,
                                    table=checkpoint_table, job_id=job_id))
    assert result.returncode == 0, result.stderr
    finish = events(result.stderr, "finish")[-1]
    assert finish["throttled"].get("kafka", 0) > 0, result.stderr[-3000:]
    assert rows_in(bootstrap_servers, kafka_topic) == Counter(range(1, rows + 1))

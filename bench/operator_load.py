"""`python -m bench operator-load --imports N`: N tiny CsvKafkaImports applied at once to the stack's operator.

Each import reads its own small CSV object (--rows rows) into a topic of its own (one partition), on the
stack's real kubelets, through the operator that `dev/stack up` runs. The bench waits (bounded) until
every import has Succeeded and then reports:

- exact rows per import (the topic's offsets; at-least-once, so a duplicate shows as a surplus);
- status lag per import, p50/p95/max: from the final checkpoint (its `timestamp`, whole seconds) to the
  moment the bench's watch saw phase Succeeded; also to the Succeeded condition's lastTransitionTime
  (whole seconds on both sides);
- the operator process's CPU seconds (utime + stime from /proc/PID/stat, before and after) and its RSS
  (sampled VmRSS peak during the run, and VmHWM, the peak since the process started);
- Kubernetes API requests: the operator's own count when its liveness endpoint reports one, and the
  apiserver's `apiserver_request_total` delta over all clients (the job controller's, the kubelets' and
  this bench's requests included), both per import; DynamoDB requests per import when the operator
  reports them.

The imports run in a namespace of their own; at most --max-pods of their worker pods fit at once
(each requests --pod-cpu of the on-demand node's two cores), and the operator's own cap per namespace
holds them back when it has one. Everything created is deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from bench import machine
from bench.stack import REPO, Stack, stack_env, unique

GROUP, VERSION, PLURAL, KIND = "csvkafka.io", "v1alpha1", "csvimports", "CsvKafkaImport"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench operator-load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imports", type=int, default=100, help="imports applied at once (default 100)")
    parser.add_argument("--rows", type=int, default=1000, help="rows of each import's object (default 1,000)")
    parser.add_argument("--pod-cpu", default="250m", help="CPU request of each worker pod (default 250m: "
                        "eight fit on the on-demand node)")
    parser.add_argument("--capacity", default="on-demand", help="spec.capacity of every import")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds to wait for every import (default 1200)")
    parser.add_argument("--label", default="", help="a name for this run in the report, e.g. before or after")
    parser.add_argument("--out", type=Path, help="directory for the report (default under the cache)")
    parser.add_argument("--keep", action="store_true", help="keep the namespace, topics, objects and table")
    return parser.parse_args(argv)


# -- the operator process and its counters ------------------------------------------------------------


def operator_process() -> tuple[int, str]:
    """The stack's operator: its PID and its liveness URL, from `dev/stack status`."""
    out = subprocess.run([str(REPO / "dev" / "stack"), "status"], capture_output=True, text=True,
                         check=False).stdout
    for line in out.splitlines():
        words = line.split()
        if words[:2] == ["operator", "running"]:
            pid = int(words[3].rstrip(")"))
            url = next((w for w in words if w.startswith("http")), "")
            return pid, url
    raise SystemExit("the stack's operator is not running: start it with dev/stack up")


def cpu_seconds(pid: int) -> float:
    # Fields after the command (which may hold spaces): utime and stime are the 14th and 15th.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def operator_counters(liveness: str) -> dict[str, float]:
    """What the operator counts of its own requests (its liveness endpoint's `requests`), if it does."""
    try:
        with urllib.request.urlopen(liveness, timeout=5) as response:
            report = json.loads(response.read() or b"{}")
    except (OSError, ValueError):
        return {}
    found = report.get("requests") if isinstance(report, dict) else None
    return {str(k): float(v) for k, v in found.items()} if isinstance(found, dict) else {}


def apiserver_requests() -> float:
    """Sum of `apiserver_request_total` over every label: all clients' requests so far."""
    metrics = subprocess.run(["kubectl", "get", "--raw", "/metrics"], capture_output=True, text=True, check=True,
                             timeout=60).stdout
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("apiserver_request_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Sampler:
    """VmRSS of a process every quarter second, in a thread; the peak seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, memory_kib(self.pid, "VmRSS"))
            self._stop.wait(0.25)


# -- the imports ---------------------------------------------------------------------------------------


def csv_object(rows: int) -> bytes:
    return b"".join([b"id,name,amount\n", *(b"%d,name-%d,%d.%02d\n" % (i, i, i, i % 100) for i in range(rows))])


def manifest(namespace: str, name: str, uri: str, topic: str, bootstrap: str, table: str,
             args: argparse.Namespace) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"uri": uri},
            "sink": {"bootstrapServers": bootstrap, "topic": topic},
            "checkpoint": {"table": table, "jobId": f"{namespace}/{name}"},
            "capacity": args.capacity,
            "resources": {"requests": {"cpu": args.pod_cpu, "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        },
    }


@dataclass
class Watcher:
    """When each import was first seen Succeeded or Failed, by a watch on the namespace."""

    custom: Any
    namespace: str
    seen: dict[str, tuple[str, float]] = field(default_factory=dict)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from kubernetes import watch

        while not self.stop.is_set():
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in stream.stream(  # type: ignore[no-untyped-call]
                        self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL,
                        timeout_seconds=30):
                    self._note(event["object"], time.time())
                    if self.stop.is_set():
                        break
            except Exception as error:
                print(f"watch: {error}; watching again", file=sys.stderr)
                self.stop.wait(0.5)

    def _note(self, body: dict[str, Any], at: float) -> None:
        name = body["metadata"]["name"]
        self.bodies[name] = body
        phase = (body.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and name not in self.seen:
            self.seen[name] = (phase, at)


@dataclass(frozen=True)
class Result:
    imports: int
    succeeded: int
    failed: list[str]
    wrong_counts: list[str]
    lag_seen: list[float]
    lag_condition: list[float]
    lag_kubernetes: list[float]
    lag_operator: list[float]
    wall_s: float
    cpu_s: float
    rss_peak_mib: float
    hwm_mib: float
    operator_requests: dict[str, float]
    apiserver_requests: float
    queued_seen: int
    load: tuple[float, float]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Load:
    """What one run created: its namespace, and per import its topic."""

    namespace: str
    names: list[str]
    topics: dict[str, str]


def prepare(stack: Stack, core: Any, args: argparse.Namespace) -> Load:
    from kubernetes import client

    namespace = unique("oload")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    names = [f"imp-{i:03d}" for i in range(args.imports)]
    load = Load(namespace, names, {name: unique(f"oload-{name}") for name in names})
    body = csv_object(args.rows)
    for name in names:
        stack.s3.put_object(Bucket=stack.bucket, Key=f"{namespace}/{name}.csv", Body=body)
    for future in stack.admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                                             for t in load.topics.values()]).values():
        future.result(60)
    deadline = time.monotonic() + 60
    while core.list_namespaced_service_account(namespace).items == []:
        if time.monotonic() > deadline:
            raise TimeoutError(f"namespace {namespace} has no default ServiceAccount after 60 s")
        time.sleep(0.2)
    return load


@dataclass
class Measured:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    rss_peak_kib: int = 0
    operator_requests: dict[str, float] = field(default_factory=dict)
    apiserver_requests: float = 0.0
    queued: set[str] = field(default_factory=set)
    load: tuple[float, float] = (0.0, 0.0)


def apply_and_wait(stack: Stack, custom: Any, load: Load, watcher: Watcher, args: argparse.Namespace,
                   say: Callable[[str], None]) -> Measured:
    """Applies every import at once and waits (bounded) for all to finish, measuring the operator."""
    pid, liveness = operator_process()
    measured = Measured()
    requests_before, apiserver_before = operator_counters(liveness), apiserver_requests()
    cpu_before, started, load_before = cpu_seconds(pid), time.monotonic(), os.getloadavg()[0]
    bootstrap = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
    with Sampler(pid) as sampler:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda name: custom.create_namespaced_custom_object(
                GROUP, VERSION, load.namespace, PLURAL, manifest(
                    load.namespace, name, f"s3://{stack.bucket}/{load.namespace}/{name}.csv", load.topics[name],
                    bootstrap, stack.table, args)), load.names))
        say(f"applied {args.imports} imports in {time.monotonic() - started:.1f} s; operator pid {pid}")
        last_said = 0.0
        while len(watcher.seen) < args.imports and time.monotonic() - started < args.timeout:
            measured.queued |= {n for n, b in list(watcher.bodies.items()) if _queued(b)}
            if time.monotonic() - last_said > 15:
                last_said = time.monotonic()
                say(f"{len(watcher.seen)}/{args.imports} finished after {last_said - started:.0f} s")
            time.sleep(0.25)
        measured.wall_s = time.monotonic() - started
        measured.load = (load_before, os.getloadavg()[0])
        time.sleep(1)  # the operator's last status patches and events are in the counts too
        measured.cpu_s = cpu_seconds(pid) - cpu_before
        requests_after, apiserver_after = operator_counters(liveness), apiserver_requests()
    measured.rss_peak_kib = sampler.peak_kib
    measured.operator_requests = {k: v - requests_before.get(k, 0.0) for k, v in requests_after.items()}
    measured.apiserver_requests = apiserver_after - apiserver_before
    return measured


def run(stack: Stack, args: argparse.Namespace, say: Callable[[str], None]) -> Result:
    from kubernetes import client, config

    api = config.new_client_from_config()  # type: ignore[no-untyped-call]
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    load = prepare(stack, core, args)
    say(f"{args.imports} imports of {args.rows:,} rows in namespace {load.namespace}")
    try:
        watcher = Watcher(custom, load.namespace)
        threading.Thread(target=watcher.run, daemon=True).start()
        measured = apply_and_wait(stack, custom, load, watcher, args, say)
        watcher.stop.set()
        return evaluate(stack, load, watcher, measured, args)
    finally:
        if not args.keep:
            _clean_up(core, stack, load)


def evaluate(stack: Stack, load: Load, watcher: Watcher, measured: Measured, args: argparse.Namespace) -> Result:
    pid, _ = operator_process()
    finals = _final_checkpoints(stack, watcher.bodies)
    lag_seen: list[float] = []
    lag_condition: list[float] = []
    lag_kubernetes: list[float] = []
    lag_operator: list[float] = []
    wrong: list[str] = []
    consumer = stack.watermark_consumer()
    try:
        for name in load.names:
            body = watcher.bodies.get(name, {})
            phase, at = watcher.seen.get(name, ("", 0.0))
            if phase == "Succeeded" and finals.get(name):
                lag_seen.append(at - finals[name])
                cond = next((c for c in body.get("status", {}).get("conditions", [])
                             if c["type"] == "Succeeded" and c["status"] == "True"), None)
                if cond:
                    lag_condition.append(epoch(cond["lastTransitionTime"]) - finals[name])
                completed = body.get("status", {}).get("completionTime")
                if completed:  # the Job's completionTime: what Kubernetes took, and what the operator took
                    lag_kubernetes.append(epoch(completed) - finals[name])
                    lag_operator.append(at - epoch(completed))
            low, high = consumer.get_watermark_offsets(TopicPartition(load.topics[name], 0), timeout=10,
                                                       cached=False)
            if high - low != args.rows:
                wrong.append(f"{name}: {high - low:,} records, expected {args.rows:,}")
    finally:
        consumer.close()
    return Result(
        imports=args.imports,
        succeeded=sum(1 for phase, _ in watcher.seen.values() if phase == "Succeeded"),
        failed=[n for n in load.names if watcher.seen.get(n, ("", 0.0))[0] != "Succeeded"],
        wrong_counts=wrong, lag_seen=lag_seen, lag_condition=lag_condition,
        lag_kubernetes=lag_kubernetes, lag_operator=lag_operator, wall_s=measured.wall_s,
        cpu_s=measured.cpu_s, rss_peak_mib=measured.rss_peak_kib / 1024, hwm_mib=memory_kib(pid, "VmHWM") / 1024,
        operator_requests=measured.operator_requests, apiserver_requests=measured.apiserver_requests,
        queued_seen=len(measured.queued), load=measured.load)


def _queued(body: dict[str, Any]) -> bool:
    return any(c.get("type") == "Progressing" and c.get("reason") == "Queued"
               for c in (body.get("status") or {}).get("conditions", []))


def _final_checkpoints(stack: Stack, bodies: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each import's final checkpoint time: the latest `timestamp` of its shards' items."""
    by_job = {shard["jobId"]: name for name, body in bodies.items()
              for shard in (body.get("status") or {}).get("shards", [])}
    finals: dict[str, float] = {}
    job_ids = list(by_job)
    for start in range(0, len(job_ids), 100):
        keys = [{"job_id": {"S": j}} for j in job_ids[start:start + 100]]
        while keys:
            response = stack.dynamodb.batch_get_item(RequestItems={stack.table: {"Keys": keys,
                                                                                 "ConsistentRead": True}})
            for item in response["Responses"].get(stack.table, []):
                name = by_job[item["job_id"]["S"]]
                finals[name] = max(finals.get(name, 0.0), float(item["timestamp"]["N"]))
            keys = response.get("UnprocessedKeys", {}).get(stack.table, {}).get("Keys", [])
    return finals


def _clean_up(core: Any, stack: Stack, load: Load) -> None:
    subprocess.run(["kubectl", "delete", "csvimports", "--all", "-n", load.namespace, "--timeout=120s"],
                   capture_output=True, check=False)
    core.delete_namespace(load.namespace)
    for future in stack.admin.delete_topics(list(load.topics.values())).values():
        try:
            future.result(60)
        except Exception as error:
            print(f"deleting a topic: {error}", file=sys.stderr)
    for name in load.names:
        stack.s3.delete_object(Bucket=stack.bucket, Key=f"{load.namespace}/{name}.csv")


# -- the report ----------------------------------------------------------------------------------------


def table(result: Result, label: str) -> str:
    n = result.imports
    ops = result.operator_requests
    kube = ops.get("kubernetes")
    dynamodb = ops.get("dynamodb")
    rows = [
        ("run", label or "-"),
        ("imports", f"{n} ({result.succeeded} Succeeded)"),
        ("exact row counts", "all" if not result.wrong_counts else f"{n - len(result.wrong_counts)} of {n}"),
        ("imports seen Queued", str(result.queued_seen)),
        ("wall time", f"{result.wall_s:.1f} s"),
        ("machine load (1-min load average at start, end)", f"{result.load[0]:.1f}, {result.load[1]:.1f}"),
        ("status lag, seen (p50 / p95 / max)", _lag(result.lag_seen)),
        ("status lag, condition time (p50 / p95 / max)", _lag(result.lag_condition)),
        ("of which final checkpoint → Job completionTime", _lag(result.lag_kubernetes)),
        ("of which Job completionTime → Succeeded seen", _lag(result.lag_operator)),
        ("operator CPU", f"{result.cpu_s:.1f} s ({result.cpu_s / n:.3f} s per import)"),
        ("operator RSS peak (sampled) / VmHWM", f"{result.rss_peak_mib:.0f} MiB / {result.hwm_mib:.0f} MiB"),
        ("Kubernetes requests by the operator", "not reported by this operator" if kube is None
         else f"{kube:,.0f} ({kube / n:.1f} per import)"),
        ("apiserver requests, all clients", f"{result.apiserver_requests:,.0f} "
                                            f"({result.apiserver_requests / n:.1f} per import)"),
        ("DynamoDB requests by the operator", "not reported by this operator" if dynamodb is None
         else f"{dynamodb:,.0f} ({dynamodb / n:.1f} per import)"),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def _lag(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"{statistics.median(values):.1f} / {percentile(values, 0.95):.1f} / {max(values):.1f} s "
            f"(n = {len(values)})")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    env = stack_env()
    stack = Stack(env, partitions=1)
    out = args.out or Path(env.get("CSVKAFKA_CACHE") or Path.home() / ".cache" / "csvkafka") / "bench" / "runs" \
        / time.strftime("operator-load-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = run(stack, args, lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        stack.close(keep=args.keep)
    text = "\n\n".join([
        f"### Operator load: {args.imports} imports of {args.rows:,} rows, {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"Command: `python -m bench operator-load {' '.join(argv)}`",
        "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in machine.describe())]),
        table(result, args.label),
        *([("Not Succeeded: " + ", ".join(result.failed))] if result.failed else []),
        *([("Wrong counts: " + "; ".join(result.wrong_counts))] if result.wrong_counts else []),
    ]) + "\n"
    (out / "report.md").write_text(text)
    print(text)
    return 0 if not result.failed and not result.wrong_counts else 1

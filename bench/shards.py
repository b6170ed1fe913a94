"""`python -m bench shards`: 1, 2 and 4 shards over one object and over a prefix of the same bytes.

Each shard is a `csvkafka run` process of its own, all of a run's shards spawned at once, as the
pods of an Indexed Job would be: over one object each gets `--shard i/N` (shards.py splits the
object), over a prefix each gets `--shard 0/N` and JOB_COMPLETION_INDEX=i (the plan shares the
objects out). Both sources hold the same CSV bytes, cut from the cached 1 GB bench file at indexed
row boundaries: one uncompressed object of --bytes, and --objects objects of mixed sizes that add
up to it (every --gzip-every-th gzipped). Every run writes into a fresh topic on the stack's one
broker, and the topic's records are counted after it: a run that left more or fewer than the rows
is a failed run.

Per run: wall time from the first spawn to the last exit, rows/s and CSV MB/s over it, the speed-up
against 1 shard of the same source, the CPU seconds of the workers (wait4 of each process tree) and
of the busiest shard (the speed-up with a core per shard), of the broker and of moto (/proc/PID/stat
before and after) and of everything else on the machine (/proc/stat), the 1-minute load average
before, and the bytes the broker stored per CSV byte (the topic's log segments).

    python -m bench shards                               # 1, 2, 4 shards, at-least-once, ~300 MB
    python -m bench shards --eos                         # and exactly-once for 1 and the most shards
    python -m bench shards --bytes 2e8 --shards 1,2      # smaller, fewer
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import data, machine, measure
from bench.contenders import Target, worker_argv
from bench.operator_load import CLK_TCK, cpu_seconds
from bench.stack import REPO, Stack, stack_env

MB = 1_000_000
CACHE = Path.home() / ".cache" / "csvkafka"
BASE_BYTES = int(1e9)  # the bench file every source is cut from (resume-big's, usually cached)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench shards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bytes", type=float, default=3e8, help="CSV bytes of each source (default 3e8, at most 1e9)")
    parser.add_argument("--objects", type=int, default=40, help="objects of the prefix (default 40)")
    parser.add_argument("--gzip-every", type=int, default=5,
                        help="every N-th object of the prefix is gzipped (default 5; 0: none)")
    parser.add_argument("--shards", default="1,2,4", help="shard counts, comma-separated (default 1,2,4)")
    parser.add_argument("--sources", default="object,prefix", help="object, prefix or both (default both)")
    parser.add_argument("--value-format", default="json", choices=("json", "line"))
    parser.add_argument("--eos", action="store_true",
                        help="also exactly-once with 1 shard and with the most shards, on each source")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of each topic (default 3)")
    parser.add_argument("--worker-flags", default="", help="extra `csvkafka run` flags for every shard")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between runs (broker cleanup)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a run may take (default 1800)")
    parser.add_argument("--out", type=Path, help="directory for logs and the report (default under the cache)")
    parser.add_argument("--keep", action="store_true", help="keep the topics, bucket and table")
    return parser.parse_args(argv)


# -- the sources ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One object of a source: its local file, its key, its CSV rows and bytes, and its stored bytes."""

    path: Path
    key: str
    rows: int
    csv_bytes: int
    stored_bytes: int


@dataclass(frozen=True)
class Source:
    name: str  # object | prefix
    uri: str
    pieces: tuple[Piece, ...]

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.pieces)

    @property
    def csv_bytes(self) -> int:
        return sum(p.csv_bytes for p in self.pieces)

    @property
    def stored_bytes(self) -> int:
        return sum(p.stored_bytes for p in self.pieces)

    def describe(self) -> str:
        gz = [p for p in self.pieces if p.key.endswith(".gz")]
        sizes = sorted(p.csv_bytes for p in self.pieces)
        return (f"{len(self.pieces)} object{'s' if len(self.pieces) > 1 else ''}, {self.rows:,} rows, "
                f"{self.csv_bytes / MB:,.1f} MB of CSV"
                + (f" ({sizes[0] / MB:,.1f} to {sizes[-1] / MB:,.1f} MB each; {len(gz)} gzipped: "
                   f"{self.stored_bytes / MB:,.1f} MB stored)" if len(self.pieces) > 1 else ", uncompressed"))


def blocks_of(total: int, count: int, seed: int) -> list[int]:
    """`total` index blocks shared among `count` objects of mixed sizes (each ≥ 1 block, 1:15 spread),
    the same for the same arguments."""
    if count > total:
        raise SystemExit(f"--objects {count}: the source has only {total} blocks of {data.INDEX_EVERY:,} rows")
    rng = random.Random(seed)
    weights = [rng.choice((1, 1, 2, 3, 5, 8, 15)) for _ in range(count)]
    shares = [max(1, int((total - count) * w / sum(weights))) for w in weights]
    shares[shares.index(max(shares))] += total - sum(shares)
    return shares


def _cut(base: Path, start: int, end: int, dest: Path, *, header: bool, compress: bool) -> None:
    """Writes base[start:end] (the header first if asked) to dest, gzipped if asked; atomically."""
    partial = dest.with_suffix(dest.suffix + ".partial")
    with base.open("rb") as src, (gzip.open(partial, "wb", compresslevel=6) if compress
                                  else partial.open("wb")) as out:
        if header:
            out.write(data.HEADER)
        src.seek(start)
        left = end - start
        while left:
            chunk = src.read(min(left, 16 * 1024 * 1024))
            out.write(chunk)
            left -= len(chunk)
    partial.rename(dest)


def sources(data_dir: Path, target_bytes: int, objects: int, gzip_every: int) -> tuple[Piece, list[Piece]]:
    """The one object and the prefix's objects, cut from the cached 1 GB file (generated on first use)."""
    base = data.ensure(data_dir, data.rows_for_bytes(BASE_BYTES))
    if target_bytes > base.size:
        raise SystemExit(f"--bytes {target_bytes:,}: at most {base.size:,} (the bench's 1 GB file)")
    # Whole indexed blocks only: their rows are known.
    blocks = next((i for i, offset in enumerate(base.offsets) if offset >= target_bytes), len(base.offsets) - 1)
    rows, end = blocks * data.INDEX_EVERY, base.offsets[blocks]
    directory = data_dir / f"shards-{rows}-{objects}-{gzip_every}"
    directory.mkdir(parents=True, exist_ok=True)
    one = directory / f"one-{rows}.csv"
    if not one.exists():
        _cut(base.path, 0, end, one, header=False, compress=False)
    pieces: list[Piece] = []
    first = 0
    for n, count in enumerate(blocks_of(blocks, objects, seed=1)):
        compress = gzip_every > 0 and n % gzip_every == gzip_every - 1
        path = directory / f"part-{n:03d}.csv{'.gz' if compress else ''}"
        start, stop = base.offsets[first], base.offsets[first + count]
        if not path.exists():
            _cut(base.path, start, stop, path, header=True, compress=compress)
        pieces.append(Piece(path, f"prefix/{path.name}", count * data.INDEX_EVERY,
                            len(data.HEADER) + stop - start, path.stat().st_size))
        first += count
    return Piece(one, f"one/{one.name}", rows, end, end), pieces


# -- the runs ------------------------------------------------------------------------------------------


def stack_pid(name: str) -> int:
    """The PID `dev/stack status` gives for `name` (kafka, moto)."""
    out = subprocess.run([str(REPO / "dev" / "stack"), "status"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        words = line.split()
        if words[:2] == [name, "running"] and len(words) > 3:
            return int(words[3].rstrip(")"))
    raise SystemExit(f"the stack's {name} is not running: start it with dev/stack up")


def machine_cpu_seconds() -> float:
    """CPU seconds every core spent busy since boot: /proc/stat's first line less idle and iowait."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK


@dataclass
class ShardRun:
    source: Source
    shards: int
    delivery: str
    measured: list[measure.Measured]
    records: int
    broker_cpu_s: float
    moto_cpu_s: float
    machine_cpu_s: float  # every process on the machine, from /proc/stat
    topic_bytes: int  # the topic's log segments on the broker's disk: what the broker stores per replica

    @property
    def others_cpu_s(self) -> float:
        """CPU the rest of the machine took during the run (other work, the kernel's own)."""
        return self.machine_cpu_s - self.worker_cpu_s - self.broker_cpu_s - self.moto_cpu_s

    @property
    def startup_s(self) -> float | None:
        """From the first spawn to the last shard's first log line (a prefix logs a `start` per object)."""
        firsts = [min(e["ts"] for e in m.events) for m in self.measured if m.events]
        if len(firsts) < self.shards:
            return None
        return float(max(firsts)) - min(m.spawned_at for m in self.measured)

    @property
    def streaming_rows_per_s(self) -> float | None:
        """Rows per second from the first shard's first log line to the last `finish` line."""
        firsts = [min(e["ts"] for e in m.events) for m in self.measured if m.events]
        finishes = [e["ts"] for m in self.measured if (e := m.event("finish")) is not None]
        if len(firsts) < self.shards or len(finishes) < self.shards:
            return None
        return float(self.source.rows / (max(finishes) - min(firsts)))

    @property
    def wall_s(self) -> float:
        """From the first spawn to the last exit."""
        start = min(m.spawned_at for m in self.measured)
        return max(m.spawned_at + m.wall_s for m in self.measured) - start

    @property
    def first_exit_s(self) -> float:
        start = min(m.spawned_at for m in self.measured)
        return min(m.spawned_at + m.wall_s for m in self.measured) - start

    @property
    def worker_cpu_s(self) -> float:
        return sum(m.cpu_s for m in self.measured)

    @property
    def busiest_cpu_s(self) -> float:
        """CPU seconds of the shard that used the most: the wall time it would need on a core of its own."""
        return max(m.cpu_s for m in self.measured)

    @property
    def rows_per_s(self) -> float:
        return self.source.rows / self.wall_s

    @property
    def mb_per_s(self) -> float:
        return self.source.csv_bytes / MB / self.wall_s

    @property
    def load(self) -> float:
        return self.measured[0].load_before

    def problems(self) -> list[str]:
        found = [f"shard {i} exit {m.exit_code} ({m.log})" for i, m in enumerate(self.measured) if m.exit_code != 0]
        if self.records != self.source.rows:
            found.append(f"{self.records:,} records in the topic, {self.source.rows:,} expected")
        return found


def topic_bytes(log_dir: Path, topic: str) -> int:
    """Bytes of the topic's log segments (record batches as the broker stores them, compressed)."""
    return sum(f.stat().st_size for f in log_dir.glob(f"{topic}-*/*.log"))


def run_shards(stack: Stack, source: Source, shards: int, delivery: str, args: argparse.Namespace,
               logs: Path, pids: dict[str, int], log_dir: Path) -> ShardRun:
    """`shards` workers over `source`, spawned at once; the topic counted after the last exits."""
    topic = stack.create_topic(f"shards-{source.name}-{shards}")
    target = Target(path=source.pieces[0].path, uri=source.uri, topic=topic, table=stack.table, job_id=topic,
                    bootstrap=stack.bootstrap, rows=source.rows)
    flags = ("--engine", "native", *args.worker_flags.split())

    def one(index: int) -> measure.Measured:
        shard = f"{index}/{shards}" if source.name == "object" else f"0/{shards}"
        argv = worker_argv(target, args.value_format, delivery, (*flags, "--shard", shard))
        return measure.run(argv, log=logs / f"{source.name}-{shards}-{delivery}-{index}.log", timeout=args.timeout,
                           env={**os.environ, "JOB_COMPLETION_INDEX": str(index)})

    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    machine_before = machine_cpu_seconds()
    with ThreadPoolExecutor(max_workers=shards) as pool:
        measured = list(pool.map(one, range(shards)))
    machine_after = machine_cpu_seconds()
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    records = stack.count_records(topic, transactional=delivery == "exactly-once")
    stored = topic_bytes(log_dir, topic)
    if not args.keep:
        stack.delete_topic(topic)
    time.sleep(args.pause)
    return ShardRun(source, shards, delivery, measured, records, after["kafka"] - before["kafka"],
                    after["moto"] - before["moto"], machine_after - machine_before, stored)


# -- the report ----------------------------------------------------------------------------------------


COLUMNS = ("source", "delivery", "shards", "wall s (first exit)", "start-up s", "rows/s", "CSV MB/s",
           "speed-up vs 1", "rows/s after start", "worker CPU s", "busiest shard CPU s", "CPU speed-up vs 1",
           "broker CPU s", "moto CPU s", "others' CPU s", "load before", "in Kafka per CSV byte", "records / rows",
           "result")


def row(run: ShardRun, base: ShardRun | None) -> list[str]:
    """One line of the table; `base` is the 1-shard run of the same source and delivery."""
    problems = run.problems()
    return [
        run.source.name, run.delivery, str(run.shards), f"{run.wall_s:.1f} ({run.first_exit_s:.1f})",
        f"{run.startup_s:.1f}" if run.startup_s is not None else "", f"{run.rows_per_s:,.0f}", f"{run.mb_per_s:.1f}",
        f"{base.wall_s / run.wall_s:.2f}x" if base is not None else "",
        f"{run.streaming_rows_per_s:,.0f}" if run.streaming_rows_per_s else "",
        f"{run.worker_cpu_s:.1f}", f"{run.busiest_cpu_s:.1f}",
        f"{base.busiest_cpu_s / run.busiest_cpu_s:.2f}x" if base is not None else "",
        f"{run.broker_cpu_s:.1f}", f"{run.moto_cpu_s:.1f}", f"{run.others_cpu_s:.1f}", f"{run.load:.1f}",
        f"{run.topic_bytes / run.source.csv_bytes:.2f}", f"{run.records:,} / {run.source.rows:,}",
        "ok" if not problems else "FAILED: " + "; ".join(problems)]


def table(runs: list[ShardRun]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|" + "---:|" * (len(COLUMNS) - 3) + "---|"]
    for run in runs:
        base = next((r for r in runs if r.source is run.source and r.delivery == run.delivery and r.shards == 1
                     and not r.problems()), None)
        lines.append("| " + " | ".join(row(run, base)) + " |")
    return "\n".join(lines)


def render(argv: list[str], sources_run: list[Source], runs: list[ShardRun]) -> str:
    return "\n\n".join([
        f"## Shards {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "Command: `python -m bench shards" + (" " + " ".join(argv) if argv else "") + "`",
        "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in machine.describe())]),
        "\n".join(f"- {s.name}: `{s.uri}`: {s.describe()}" for s in sources_run),
        table(runs),
        "Wall: first spawn to last exit (first exit in brackets). Start-up: first spawn to the last shard's "
        "first log line. Speed-up: 1 shard's wall over this run's, same source and delivery. Rows/s after start: "
        "from the first shard's first log line to the last `finish` line. Worker CPU: user + system of every shard's "
        "process tree (wait4). CPU speed-up: the 1-shard run's CPU seconds over the busiest shard's, the speed-up "
        "if each shard had a core of its own and nothing else limited it. Broker and moto: their processes' "
        "utime + stime over the run; others': the machine's busy CPU (/proc/stat) less those three, i.e. "
        f"whatever else ran (the machine had {os.cpu_count()} x wall CPU seconds to give). In Kafka per CSV "
        "byte: the topic's log segments on the broker's disk (lz4 batches, one replica) over the CSV bytes. "
        "Records: counted in the topic after the run "
        "(`read_committed`, read one by one for exactly-once).",
    ]) + "\n"


def main(argv: list[str]) -> int:
    # A SIGTERM runs the `finally` that deletes what the run created.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    args = parse_args(argv)
    counts = [int(n) for n in args.shards.split(",")]
    names = [n.strip() for n in args.sources.split(",")]
    if not set(names) <= {"object", "prefix"}:
        raise SystemExit(f"--sources {args.sources!r}: object, prefix or both (object,prefix)")
    env = stack_env()
    cache = Path(env.get("CSVKAFKA_CACHE") or CACHE) / "bench"
    out = args.out or cache / "runs" / time.strftime("shards-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    one, parts = sources(cache / "data", int(args.bytes), args.objects, args.gzip_every)
    stack = Stack(env, args.partitions)
    pids = {"kafka": stack_pid("kafka"), "moto": stack_pid("moto")}
    log_dir = Path(env.get("CSVKAFKA_CACHE") or CACHE) / "state" / "kafka" / "data"
    runs: list[ShardRun] = []
    chosen: list[Source] = []
    try:
        for piece in (one, *parts):
            stack.s3.upload_file(str(piece.path), stack.bucket, piece.key)
        chosen = [s for s in (Source("object", f"s3://{stack.bucket}/{one.key}", (one,)),
                              Source("prefix", f"s3://{stack.bucket}/prefix/", tuple(parts))) if s.name in names]
        plan = [(s, n, "at-least-once") for s in chosen for n in counts]
        if args.eos:
            plan += [(s, n, "exactly-once") for s in chosen for n in sorted({min(counts), max(counts)})]
        for source in chosen:
            say(f"{source.name}: {source.describe()}")
        for source, shards, delivery in plan:
            run = run_shards(stack, source, shards, delivery, args, out / "logs", pids, log_dir)
            runs.append(run)
            say(f"  {source.name:<6} {delivery:<13} {shards} shard(s): {run.wall_s:6.1f} s  "
                f"{run.rows_per_s:>10,.0f} rows/s  {run.mb_per_s:6.1f} MB/s  workers {run.worker_cpu_s:5.1f} "
                f"broker {run.broker_cpu_s:5.1f} moto {run.moto_cpu_s:5.1f} others {run.others_cpu_s:5.1f} CPU s  "
                f"load {run.load:.1f}  "
                f"{'; '.join(run.problems()) or 'ok'}")
    finally:
        if not args.keep:
            for piece in (one, *parts):
                stack.s3.delete_object(Bucket=stack.bucket, Key=piece.key)
        stack.close(keep=args.keep)
    text = render(argv, chosen, runs)
    (out / "report.md").write_text(text)
    print(text)
    say(f"report and logs: {out}")
    return 1 if any(r.problems() for r in runs) else 0


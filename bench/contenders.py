"""The contenders: what each one runs, and how many records it must leave in the topic.

kcat gets the worker's own librdkafka settings (kafka_config.PRODUCER_DEFAULTS), so the two differ
only in what produces the records, not in how librdkafka batches, compresses and acknowledges them.
`kcat-hdr` also sends the two headers the worker sends by default (`csvkafka.source`, `csvkafka.row`),
as static `-H` values of the same length, so a worker with headers is compared with kcat with headers.

The engine contenders (`json-native`, `line-python-nohdr`, `json-native-eos`, ...) choose the
worker's engine with `csvkafka run --engine NAME`, or with CSVKAFKA_ENGINE, or not at all
(`ENGINE_VIA`: flag, env, omit); `omit` runs every one of them on the worker's default engine, for
a worker that has no `--engine` yet. The `json-alo`, `line-eos`, ... contenders never name an engine.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from bench.data import DataFile
from csvkafka_worker.kafka_config import PRODUCER_DEFAULTS

PYTHON = sys.executable
WORKER = [PYTHON, "-m", "csvkafka_worker", "run"]
# message.timeout.ms and socket.keepalive.enable do not change throughput; the rest is passed as is.
KCAT_SETTINGS = {key: str(value).lower() if isinstance(value, bool) else str(value)
                 for key, value in PRODUCER_DEFAULTS.items()}


@dataclass(frozen=True)
class Target:
    """Where one contender writes: the object (and its local copy), the topic, the checkpoint item."""

    path: Path
    uri: str
    topic: str
    table: str
    job_id: str
    bootstrap: str
    rows: int = 1_000_000  # rows of the object: the length of kcat-hdr's static csvkafka.row value


ENGINES = ("native", "python")
ENGINE_VIA = ("flag", "env", "omit")  # how an engine contender names its engine (see the module's doc)
ENGINE_ENV = "CSVKAFKA_ENGINE"


@dataclass(frozen=True)
class Contender:
    name: str
    kind: str  # kcat | naive | worker | floor
    label: str
    value_format: str = "json"
    delivery: str = "at-least-once"
    variant: str = ""  # kcat: "headers"; floor: its variant
    worker_flags: tuple[str, ...] = ()
    engine: str = ""  # worker: native | python, or "" for the worker's default (no --engine)
    engine_via: str = "flag"  # one of ENGINE_VIA

    @property
    def transactional(self) -> bool:
        return self.kind == "worker" and self.delivery == "exactly-once"

    @property
    def record_headers(self) -> bool:
        """Whether each record carries the csvkafka.source and csvkafka.row headers."""
        if self.kind == "kcat":
            return self.variant == "headers"
        if self.kind == "worker":
            return "--no-record-headers" not in self.worker_flags
        return False

    def env(self) -> dict[str, str]:
        """Environment variables to add for this contender's process."""
        if self.kind == "worker" and self.engine and self.engine_via == "env":
            return {ENGINE_ENV: self.engine}
        return {}

    def argv(self, target: Target) -> list[str]:
        if self.kind == "kcat":
            settings = [arg for key, value in KCAT_SETTINGS.items() for arg in ("-X", f"{key}={value}")]
            headers = [arg for name, value in kcat_headers(target) for arg in ("-H", f"{name}={value}")] \
                if self.variant == "headers" else []
            return ["kcat", "-P", "-b", target.bootstrap, "-t", target.topic, "-l", *settings, *headers,
                    str(target.path)]
        if self.kind == "naive":
            return [PYTHON, "-m", "bench.naive", "--source", target.uri, "--topic", target.topic,
                    "--table", target.table, "--job-id", target.job_id, "--bootstrap-servers", target.bootstrap]
        if self.kind == "floor":
            return [PYTHON, "-m", "bench.floor", str(target.path), "--topic", target.topic, "--variant", self.variant,
                    "--bootstrap-servers", target.bootstrap]
        engine = ("--engine", self.engine) if self.engine and self.engine_via == "flag" else ()
        return worker_argv(target, self.value_format, self.delivery, (*engine, *self.worker_flags))

    def expected_records(self, data: DataFile) -> int:
        """kcat and the Python floor send every line, header included; the naive loop every line after
        the header; the worker one record per CSV row."""
        if self.kind in ("kcat", "floor"):
            return data.lines
        if self.kind == "naive":
            return data.lines - 1
        return data.rows


def with_flags(contender: Contender, flags: tuple[str, ...]) -> Contender:
    """`contender` with more `csvkafka run` flags (no change for the other kinds)."""
    if contender.kind != "worker" or not flags:
        return contender
    return replace(contender, worker_flags=contender.worker_flags + flags,
                   label=f"{contender.label} {' '.join(flags)}")


def kcat_headers(target: Target) -> list[tuple[str, str]]:
    """kcat-hdr's two static headers: the worker's names, values as long as the worker's (its
    `csvkafka.source` is the object's URI, its `csvkafka.row` a row number; the last row's has the
    most digits)."""
    return [("csvkafka.source", target.uri), ("csvkafka.row", str(max(1, target.rows)))]


def with_engine_via(contender: Contender, via: str) -> Contender:
    """`contender` naming its engine `via` flag, env or omit (no change for the others); auto is the
    flag, which every worker since the native core accepts."""
    via = "flag" if via == "auto" else via
    if via not in ENGINE_VIA:
        raise ValueError(f"engine via {via!r}: one of {', '.join(ENGINE_VIA)}")
    if contender.kind != "worker" or not contender.engine or via == contender.engine_via:
        return contender
    plain = contender.label.replace(f" --engine {contender.engine}", "")
    label = {"flag": plain.replace("csvkafka run", f"csvkafka run --engine {contender.engine}", 1),
             "env": f"{ENGINE_ENV}={contender.engine} {plain}",
             "omit": f"{plain} [engine flag omitted: the default engine, not necessarily {contender.engine}]"}[via]
    return replace(contender, engine_via=via, label=label)


def worker_has_engine_flag() -> bool:
    """Whether this checkout's `csvkafka run` accepts --engine (its --help lists it)."""
    found = subprocess.run([*WORKER, "--help"], capture_output=True, text=True, check=False, timeout=120)
    return found.returncode == 0 and "--engine" in found.stdout


def worker_argv(target: Target, value_format: str, delivery: str, flags: tuple[str, ...] = ()) -> list[str]:
    """`csvkafka run` for `target`."""
    return [*WORKER, "--source", target.uri, "--bootstrap-servers", target.bootstrap, "--topic", target.topic,
            "--checkpoint-table", target.table, "--job-id", target.job_id, "--value-format", value_format,
            "--delivery", delivery, "--progress", "log", *flags]


def _worker(fmt: str, delivery: str) -> Contender:
    short = {"at-least-once": "alo", "exactly-once": "eos"}[delivery]
    return Contender(name=f"{fmt}-{short}", kind="worker", value_format=fmt, delivery=delivery,
                     label=f"csvkafka run --value-format {fmt} --delivery {delivery}")


def _engine(fmt: str, engine: str, delivery: str = "at-least-once", *, headers: bool = True) -> Contender:
    """A contender on one engine: `{fmt}-{engine}`, `-nohdr` without record headers, `-eos` exactly-once."""
    name = f"{fmt}-{engine}" + ("" if headers else "-nohdr") + ("-eos" if delivery == "exactly-once" else "")
    flags = () if headers else NO_HEADERS
    return Contender(name=name, kind="worker", value_format=fmt, delivery=delivery, engine=engine,
                     worker_flags=flags, label=f"csvkafka run --engine {engine} --value-format {fmt} "
                     f"--delivery {delivery}" + ("" if headers else " --no-record-headers"))


NO_HEADERS = ("--no-record-headers",)
KCAT = (
    Contender("kcat", "kcat", "kcat -P -l (local file, worker's librdkafka settings)"),
    Contender("kcat-hdr", "kcat", "kcat -P -l -H csvkafka.source=<uri> -H csvkafka.row=<n> (static headers, "
              "worker's librdkafka settings)", variant="headers"),
)
NAIVE = Contender("naive", "naive", "naive loop (smart_open lines, produce+poll(0), put_item/50k)")
# Each engine in both formats, with and without record headers, at-least-once; exactly-once on native.
ENGINE_RUNS = (
    *(_engine(fmt, engine, headers=headers) for engine in ENGINES for fmt in ("json", "line")
      for headers in (True, False)),
    *(_engine(fmt, "native", "exactly-once") for fmt in ("json", "line")),
)
CORE = (*KCAT, NAIVE, *ENGINE_RUNS)
# The worker on its default engine, without --engine (the core contenders before engines existed).
DEFAULT_ENGINE = (
    _worker("json", "at-least-once"),
    _worker("json", "exactly-once"),
    _worker("line", "at-least-once"),
    _worker("line", "exactly-once"),
)
# What the worker pays per row, taken apart: the Kafka calls alone, without and with what it adds.
FLOOR = tuple(Contender(f"floor-{v}", "floor", f"python produce() floor: {v}", variant=v)
              for v in ("plain", "callback", "headers", "full", "batch", "batch-callback"))
ALL = {c.name: c for c in (*CORE, *DEFAULT_ENGINE, *FLOOR)}

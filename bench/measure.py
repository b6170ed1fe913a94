"""Running one contender as a subprocess: wall time, CPU time, peak RSS, time to its first record.

Peak RSS is the kernel's resident high-water mark (VmHWM in /proc/PID/status) of each process in
the contender's tree, read every 10 ms and summed over the processes. (`ru_maxrss` from `wait4`
would be simpler but is wrong here: Linux carries the high-water mark across `exec`, so a child
forked from this benchmark process starts with this process's own RSS as its peak.) CPU time is
user + system of the child and its children, from `wait4`; a contender that keeps both cores busy
shows more CPU seconds than wall seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass
class Measured:
    argv: list[str]
    exit_code: int
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    log: Path
    spawned_at: float  # epoch seconds, to compare with the ts of the worker's log events
    load_before: float  # 1-minute load average when the run started: other work on the machine
    first_record_s: float | None = None  # from spawn to the first record seen in the topic
    stopped_s: float | None = None  # from SIGTERM to exit, when the watcher sent one
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, name: str) -> dict[str, Any] | None:
        found = [e for e in self.events if e.get("event") == name]
        return found[-1] if found else None

    def since_spawn(self, name: str) -> float | None:
        """Seconds from the spawn to the worker's `name` log event (its ts has millisecond precision)."""
        found = self.event(name)
        return None if found is None else float(found["ts"]) - self.spawned_at


def run(argv: Sequence[str], *, log: Path, env: dict[str, str] | None = None, timeout: float = 3600,
        first_record: Callable[[], bool] | None = None, stop_after_first: bool = False,
        poll_interval: float = 0.005) -> Measured:
    """Runs `argv` to its end, stderr and stdout into `log`.

    With `first_record`, a watcher thread calls it every `poll_interval` seconds from the spawn on
    and records when it first returns True; with `stop_after_first` it then sends SIGTERM.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        load_before = float(Path("/proc/loadavg").read_text().split()[0])
        spawned_at = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=env)
        seen: dict[str, float] = {}
        done = threading.Event()
        watcher = None
        if first_record is not None:
            watcher = threading.Thread(target=_watch, name="first-record", daemon=True,
                                       args=(process, started, first_record, stop_after_first, poll_interval, seen,
                                             done))
            watcher.start()
        peaks: dict[int, int] = {}
        sampler = threading.Thread(target=_sample_rss, name="rss", daemon=True, args=(process.pid, peaks, done))
        sampler.start()
        killer = threading.Timer(timeout, _kill, args=(process.pid,))
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()  # the benchmark itself is stopping: leave no contender running
            process.wait()
            raise
        finally:
            ended = time.perf_counter()
            killer.cancel()
            done.set()
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.join()
        if watcher is not None:
            watcher.join()
    return Measured(
        argv=list(argv), exit_code=process.returncode, wall_s=ended - started,
        cpu_s=usage.ru_utime + usage.ru_stime, peak_rss_bytes=sum(peaks.values()), log=log,
        spawned_at=spawned_at, load_before=load_before,
        first_record_s=seen.get("first"), stopped_s=ended - seen["term"] if "term" in seen else None,
        events=read_events(log))


def _watch(process: subprocess.Popen[bytes], started: float, first_record: Callable[[], bool], stop: bool,
           interval: float, seen: dict[str, float], done: threading.Event) -> None:
    while not done.is_set():
        if first_record():
            seen["first"] = time.perf_counter() - started
            if stop and not done.is_set():
                seen["term"] = time.perf_counter()
                process.send_signal(signal.SIGTERM)
            return
        time.sleep(interval)


def _sample_rss(root: int, peaks: dict[int, int], done: threading.Event, interval: float = 0.01) -> None:
    """Keeps, per process of the tree under `root`, the largest VmHWM seen (bytes)."""
    while not done.is_set():
        for pid in _tree(root):
            hwm = _vm_hwm(pid)
            if hwm > peaks.get(pid, 0):
                peaks[pid] = hwm
        done.wait(interval)


def _tree(root: int) -> list[int]:
    pids, i = [root], 0
    while i < len(pids):
        try:
            children = Path(f"/proc/{pids[i]}/task/{pids[i]}/children").read_text().split()
        except OSError:
            children = []
        pids += [int(child) for child in children]
        i += 1
    return pids


def _vm_hwm(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def read_events(log: Path) -> list[dict[str, Any]]:
    """The JSON lines of a worker's log (other lines are ignored)."""
    events = []
    for line in log.read_bytes().splitlines():
        if line.startswith(b"{"):
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return events

"""What the worker tells people while it runs: JSON log lines, or a progress bar on a terminal.

Every line is one JSON object (event, job, row, offset, rows/s, ...) so log pipelines (CloudWatch,
Loki) can filter it; a progress line is written every few seconds. On a terminal the progress
line is a bar with rows, bytes, rate and an ETA from the object's size instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import orjson


@dataclass
class Snapshot:
    rows_read: int
    rows_sent: int
    rows_bad: int
    offset: int
    total_bytes: int | None


def log_line(stream: TextIO, event: str, level: str = "info", **fields: Any) -> None:
    record = {"ts": round(time.time(), 3), "level": level, "event": event, **fields}
    stream.write(orjson.dumps(record).decode() + "\n")
    stream.flush()


def eta_seconds(done: int, total: int | None, rate_bytes: float) -> float | None:
    if not total or rate_bytes <= 0 or done >= total:
        return None
    return (total - done) / rate_bytes


class Progress:
    def __init__(self, job_id: str, mode: str = "auto", *, stream: TextIO = sys.stderr, interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id = job_id
        self.bar = mode == "bar" or (mode == "auto" and stream.isatty())
        self.quiet = mode == "none"
        self.stream = stream
        self.interval = 0.5 if self.bar else interval
        self._clock = clock
        self._started = clock()
        self._last = (self._started, 0, 0)  # time, rows, offset
        self._start_offset: int | None = None
        self.rows_per_second = 0.0
        self.bytes_per_second = 0.0

    def event(self, event: str, level: str = "info", **fields: Any) -> None:
        if self.bar:
            self.stream.write("\n")
        log_line(self.stream, event, level, job=self.job_id, **fields)

    def update(self, snap: Snapshot, *, force: bool = False) -> None:
        now = self._clock()
        if self._start_offset is None:
            self._start_offset = snap.offset
        then, rows_then, offset_then = self._last
        if not force and now - then < self.interval:
            return
        elapsed = max(now - then, 1e-6)
        self.rows_per_second = (snap.rows_read - rows_then) / elapsed
        self.bytes_per_second = (snap.offset - offset_then) / elapsed
        self._last = (now, snap.rows_read, snap.offset)
        if self.quiet:
            return
        eta = eta_seconds(snap.offset, snap.total_bytes, self.bytes_per_second)
        if self.bar:
            self.stream.write("\r" + render_bar(snap, self.rows_per_second, eta))
            self.stream.flush()
        else:
            percent = round(100 * snap.offset / snap.total_bytes, 1) if snap.total_bytes else None
            log_line(self.stream, "progress", job=self.job_id, row=snap.rows_read, offset=snap.offset,
                     rows_sent=snap.rows_sent, rows_bad=snap.rows_bad, percent=percent,
                     rows_per_second=round(self.rows_per_second), eta_seconds=None if eta is None else round(eta))


def render_bar(snap: Snapshot, rows_per_second: float, eta: float | None, width: int = 30) -> str:
    fraction = min(1.0, snap.offset / snap.total_bytes) if snap.total_bytes else 0.0
    filled = int(fraction * width)
    total = f"/{snap.total_bytes / 1e6:,.1f}" if snap.total_bytes else ""
    eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta is not None else "--:--:--"
    return (f"[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:5.1f}% {snap.rows_read:,} rows "
            f"{snap.offset / 1e6:,.1f}{total} MB {rows_per_second:,.0f} rows/s ETA {eta_text}")

"""Progress lines and the terminal bar."""

from __future__ import annotations

import io

import orjson

from csvkafka_worker.progress import Progress, Snapshot, eta_seconds, render_bar


def test_bar_shows_percent_rows_bytes_rate_and_eta() -> None:
    bar = render_bar(Snapshot(rows_read=500_000, rows_sent=500_000, rows_bad=0, offset=60_000_000,
                              total_bytes=120_000_000), rows_per_second=100_000, eta=65)
    assert bar.startswith("[###############...............]  50.0% 500,000 rows 60.0/120.0 MB 100,000 rows/s")
    assert bar.endswith("ETA 00:01:05")


def test_eta_from_bytes_and_rate() -> None:
    assert eta_seconds(25, 100, 5.0) == 15.0
    assert eta_seconds(100, 100, 5.0) is None
    assert eta_seconds(10, None, 5.0) is None


def test_progress_log_lines_are_json_with_rate() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress("job-1", "log", stream=out, interval=5, clock=lambda: now[0])
    progress.update(Snapshot(0, 0, 0, 0, 1000))
    now[0] = 2.0
    progress.update(Snapshot(10, 10, 0, 100, 1000))
    assert out.getvalue() == ""
    now[0] = 10.0
    progress.update(Snapshot(1000, 990, 10, 500, 1000))
    line = orjson.loads(out.getvalue())
    assert (line["event"], line["job"], line["row"], line["offset"], line["percent"]) == ("progress", "job-1", 1000,
                                                                                         500, 50.0)
    assert line["rows_per_second"] == 100 and line["rows_bad"] == 10

"""The results as markdown: one table of runs, one of the issue's targets, one per profile."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench import profile
from bench.scenarios import MB, ResumeResult, Run

RSS_LIMIT = 200 * MB


@dataclass(frozen=True)
class Summary:
    """The median of a contender's repeated runs on one file."""

    runs: tuple[Run, ...]

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def name(self) -> str:
        return self.first.contender.name

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)

    @property
    def wall_s(self) -> float:
        return statistics.median(run.measured.wall_s for run in self.runs)

    @property
    def rows_per_s(self) -> float:
        return self.first.expected / self.wall_s

    @property
    def spread(self) -> str:
        rates = [run.rows_per_s for run in self.runs]
        return f"{min(rates):,.0f} to {max(rates):,.0f}" if len(rates) > 1 else ""

    @property
    def mb_per_s(self) -> float:
        return self.first.data.size / MB / self.wall_s

    @property
    def streaming_rows_per_s(self) -> float | None:
        rates = [r for r in (run.streaming_rows_per_s for run in self.runs) if r is not None]
        return statistics.median(rates) if rates else None

    @property
    def start_s(self) -> float | None:
        """Seconds from spawn to the worker's `start` event: imports, HEAD, claim, probe, preamble."""
        found = [t for t in (run.measured.since_spawn("start") for run in self.runs) if t is not None]
        return statistics.median(found) if found else None

    @property
    def cpu_s(self) -> float:
        return statistics.median(run.measured.cpu_s for run in self.runs)

    @property
    def load(self) -> str:
        loads = [run.measured.load_before for run in self.runs]
        return f"{min(loads):.1f}" if len(loads) == 1 else f"{min(loads):.1f} to {max(loads):.1f}"

    @property
    def peak_rss(self) -> int:
        return max(run.measured.peak_rss_bytes for run in self.runs)


def summarise(runs: Iterable[Run]) -> list[Summary]:
    grouped: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.contender.name, str(run.data.path)), []).append(run)
    return [Summary(tuple(group)) for group in grouped.values()]


def runs_table(summaries: Sequence[Summary]) -> str:
    lines = ["| contender | object | rows/s | (range) | MB/s | wall s | start s | rows/s after start | CPU s | "
             "peak RSS MB | records in topic | load avg | result |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for s in summaries:
        run = s.first
        after = f"{s.streaming_rows_per_s:,.0f}" if s.streaming_rows_per_s else ""
        start = f"{s.start_s:.2f}" if s.start_s is not None else ""
        result = "ok" if s.ok else "FAILED: " + "; ".join(r.problem() for r in s.runs if not r.ok)
        lines.append(
            f"| {run.contender.label} | {run.data.size / MB:,.0f} MB | {s.rows_per_s:,.0f} | {s.spread} | "
            f"{s.mb_per_s:.1f} | {s.wall_s:.2f} | {start} | {after} | {s.cpu_s:.2f} | {s.peak_rss / MB:.0f} | "
            f"{run.records:,} / {run.expected:,} | {s.load} | {result} |")
    return "\n".join(lines)


def targets_table(summaries: Sequence[Summary], resumed: ResumeResult | None) -> str:
    by_name = {(s.name, s.first.data.size): s for s in summaries}
    main_size = max((s.first.data.size for s in summaries if s.name == "kcat"), default=None)
    rows: list[tuple[str, str, str, str]] = []

    def rate(name: str) -> Summary | None:
        found = by_name.get((name, main_size)) if main_size else None
        return found if found is not None and found.ok else None

    kcat = rate("kcat")
    for name, floor in (("json-alo", 0.60), ("json-eos", 0.60), ("line-alo", 0.85), ("line-eos", 0.85)):
        mine = rate(name)
        if kcat and mine:
            ratio = mine.rows_per_s / kcat.rows_per_s
            rows.append((f"{name} rows/s ≥ {floor:.0%} of kcat", f"{ratio:.1%}", _verdict(ratio >= floor),
                         f"{mine.rows_per_s:,.0f} vs {kcat.rows_per_s:,.0f}; short by "
                         f"{max(0.0, floor * kcat.rows_per_s - mine.rows_per_s):,.0f} rows/s"))
    for fmt in ("json", "line"):
        alo, eos = rate(f"{fmt}-alo"), rate(f"{fmt}-eos")
        if alo and eos:
            ratio = eos.rows_per_s / alo.rows_per_s
            rows.append((f"{fmt}: exactly-once within 10 % of at-least-once", f"{ratio:.1%}",
                         _verdict(ratio >= 0.9), f"{eos.rows_per_s:,.0f} vs {alo.rows_per_s:,.0f} rows/s"))
    for s in summaries:
        if s.first.contender.kind == "worker" and s.ok:
            rows.append((f"peak RSS < 200 MB: {s.name}, {s.first.data.size / MB:,.0f} MB object",
                         f"{s.peak_rss / MB:.0f} MB", _verdict(s.peak_rss < RSS_LIMIT), ""))
    if resumed is not None and resumed.fresh_s and resumed.resumed_s:
        rows.append((f"resume at 90 % of a {resumed.data.size / MB:,.0f} MB object: first record ≤ 1.2x fresh start",
                     f"{resumed.ratio:.2f}x", _verdict(resumed.ratio <= 1.2 and not resumed.problems),
                     f"median {statistics.median(resumed.resumed_s):.2f} s vs "
                     f"{statistics.median(resumed.fresh_s):.2f} s"))
    lines = ["| target | measured | met | detail |", "|---|---:|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def resume_table(result: ResumeResult) -> str:
    def series(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values) + (f" (median {statistics.median(values):.2f})" if values else "")

    return "\n".join([
        "| | seconds from spawn to the first record in the topic |",
        "|---|---|",
        f"| fresh start (row 0) | {series(result.fresh_s)} |",
        f"| resume at row {result.rows_before:,}, byte {result.offset:,} "
        f"({100 * result.offset / result.data.size:.1f} %) | {series(result.resumed_s)} |",
        f"| fresh start: SIGTERM → exit | {series(result.stop_s)} |",
        f"| SIGTERM'd fresh run restarted to the end | {result.restart_after_sigterm} |",
        *(f"| problem | {p} |" for p in result.problems),
    ])


def profile_table(run: Run, stages: list[profile.Stage]) -> str:
    header = (f"{run.contender.value_format}, {run.data.rows:,} rows: {run.measured.wall_s:.2f} s wall under "
              f"py-spy ({'ok' if run.ok else 'FAILED: ' + run.problem()})")
    return header + "\n\n" + profile.table(stages, run.data.rows)


def _verdict(met: bool) -> str:
    return "yes" if met else "**no**"

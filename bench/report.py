"""The results as markdown: one table of runs, the ratios between contenders, one table of the
issue's targets, one per profile, one of the open-quote runs (the cost section is bench.cost)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench import cost, profile
from bench.scenarios import MB, MIB, OpenQuoteResult, ResumeResult, Run

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
    def engine_ran(self) -> str:
        """The engine(s) the worker's `start` event says ran ("" if it does not say, or no worker)."""
        found = {str(e["engine"]) for e in (run.measured.event("start") for run in self.runs) if e and "engine" in e}
        return ", ".join(sorted(found))

    @property
    def cpu_us_per_row(self) -> float:
        """Median CPU seconds per row, in microseconds."""
        return self.cpu_s * 1e6 / self.first.expected

    @property
    def cores(self) -> float:
        """CPU cores used: median CPU seconds over median wall seconds."""
        return self.cpu_s / self.wall_s

    @property
    def rows_per_cpu_s(self) -> float:
        """Rows/s per core used (rows per median CPU second); times `cores` it gives `rows_per_s`."""
        return self.first.expected / self.cpu_s if self.cpu_s > 0 else float("nan")

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
    lines = ["| contender | what runs | engine ran | object | rows/s | (range) | MB/s | wall s | start s | "
             "rows/s after start | CPU s | CPU µs/row | cores | peak RSS MB | records in topic | load avg | result |",
             "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for s in summaries:
        run = s.first
        after = f"{s.streaming_rows_per_s:,.0f}" if s.streaming_rows_per_s else ""
        start = f"{s.start_s:.2f}" if s.start_s is not None else ""
        result = "ok" if s.ok else "FAILED: " + "; ".join(r.problem() for r in s.runs if not r.ok)
        lines.append(
            f"| {s.name} | {run.contender.label} | {s.engine_ran} | {run.data.size / MB:,.0f} MB | "
            f"{s.rows_per_s:,.0f} | {s.spread} | "
            f"{s.mb_per_s:.1f} | {s.wall_s:.2f} | {start} | {after} | {s.cpu_s:.2f} | {s.cpu_us_per_row:.2f} | "
            f"{s.cores:.2f} | {s.peak_rss / MB:.0f} | {run.records:,} / {run.expected:,} | {s.load} | {result} |")
    return "\n".join(lines)


def main_object(summaries: Sequence[Summary]) -> str | None:
    """The file most contenders ran on (the main object, not the big ones)."""
    paths = [str(s.first.data.path) for s in summaries]
    return max(set(paths), key=paths.count) if paths else None


def ratios_table(summaries: Sequence[Summary]) -> str:
    """Worker contenders against kcat (like with like: with record headers against `kcat-hdr`,
    without against `kcat`) and against the naive loop; exactly-once against at-least-once; native
    against python. Each ratio is of the medians; "per repeat" is the range of the ratios of the
    runs made in the same round (the n-th run of one against the n-th run of the other)."""
    path = main_object(summaries)
    on_main = [s for s in summaries if str(s.first.data.path) == path]
    by_name = {s.name: s for s in on_main}
    workers = [s for s in on_main if s.first.contender.kind == "worker"]

    def usable(name: str) -> Summary | None:
        found = by_name.get(name)
        return found if found is not None and found.ok else None

    sections: list[tuple[str, list[tuple[Summary, Summary]]]] = []
    versus_kcat = []
    for s in workers:
        base = usable("kcat-hdr" if s.first.contender.record_headers else "kcat")
        if base is not None:
            versus_kcat.append((s, base))
    sections.append(("against kcat: with record headers vs `kcat-hdr`, without vs `kcat`", versus_kcat))
    naive = usable("naive")
    sections.append(("against the seed-style naive loop", [(s, naive) for s in workers if naive is not None]))
    eos_pairs = []
    for s in workers:
        if s.first.contender.delivery == "exactly-once":
            alo = _sibling(s, workers, delivery="at-least-once")
            if alo is not None and alo.ok:
                eos_pairs.append((s, alo))
    sections.append(("exactly-once vs at-least-once (wall time, start-up included)", eos_pairs))
    engine_pairs = []
    for s in workers:
        if s.first.contender.engine == "native":
            python = _sibling(s, workers, engine="python")
            if python is not None and python.ok:
                engine_pairs.append((s, python))
    sections.append(("native vs python engine", engine_pairs))

    lines = ["| comparison | rows/s ratio | per repeat | rows/s | CPU µs/row ratio | CPU µs/row | "
             "rows/s after start ratio |",
             "|---|---:|---|---|---:|---|---:|"]
    for title, pairs in sections:
        omitted = any(a.first.contender.engine_via == "omit" and a.first.contender.engine
                      for pair in pairs for a in pair)
        lines.append(f"| **{title}**" + (" (engine flag omitted: the default engine ran)" if omitted else "")
                     + " | | | | | | |")
        if not pairs:
            lines.append("| (no pair measured) | | | | | | |")
        for mine, base in pairs:
            same = mine.first.contender.engine != base.first.contender.engine and mine.engine_ran \
                and mine.engine_ran == base.engine_ran
            lines.append(_ratio_row(mine, base) + (f" (both ran {mine.engine_ran})" if same else "") + " |")
    return "\n".join(lines)


def _ratio_row(mine: Summary, base: Summary) -> str:
    """One line of the ratios table; the last cell is left open for a remark."""
    per_round = [a.rows_per_s / b.rows_per_s for a, b in zip(mine.runs, base.runs, strict=False) if a.ok and b.ok]
    spread = f"{min(per_round):.1%} to {max(per_round):.1%}" if len(per_round) > 1 else ""
    after = ""
    if mine.streaming_rows_per_s and base.streaming_rows_per_s:
        after = f"{mine.streaming_rows_per_s / base.streaming_rows_per_s:.1%}"
    failed = "" if mine.ok else " (FAILED)"
    return (f"| {mine.name}{failed} / {base.name} | {mine.rows_per_s / base.rows_per_s:.1%} | {spread} | "
            f"{mine.rows_per_s:,.0f} vs {base.rows_per_s:,.0f} | {mine.cpu_us_per_row / base.cpu_us_per_row:.2f}x | "
            f"{mine.cpu_us_per_row:.2f} vs {base.cpu_us_per_row:.2f} | {after}")


def _sibling(summary: Summary, among: Sequence[Summary], *, delivery: str | None = None,
             engine: str | None = None) -> Summary | None:
    """The contender in `among` that runs what `summary` runs, but with `delivery` or `engine`."""
    mine = summary.first.contender
    wanted = (mine.value_format, delivery or mine.delivery, mine.variant, mine.worker_flags, engine or mine.engine)
    for other in among:
        theirs = other.first.contender
        if theirs.kind == "worker" and \
                (theirs.value_format, theirs.delivery, theirs.variant, theirs.worker_flags, theirs.engine) == wanted:
            return other
    return None


def targets_table(summaries: Sequence[Summary], resumed: ResumeResult | None) -> str:
    by_name = {(s.name, s.first.data.size): s for s in summaries}
    main_size = max((s.first.data.size for s in summaries if s.name == "kcat"), default=None)
    rows: list[tuple[str, str, str, str]] = []

    def rate(name: str) -> Summary | None:
        found = by_name.get((name, main_size)) if main_size else None
        return found if found is not None and found.ok else None

    def first_rate(*names: str) -> tuple[str, Summary | None]:
        """The first of `names` that was measured (the native engine's, else the default engine's)."""
        for name in names:
            found = rate(name)
            if found is not None:
                return name, found
        return names[0], None

    kcat = rate("kcat")
    for names, floor in ((("json-native", "json-alo"), 0.60), (("json-native-eos", "json-eos"), 0.60),
                         (("line-native", "line-alo"), 0.85), (("line-native-eos", "line-eos"), 0.85)):
        name, mine = first_rate(*names)
        if kcat and mine:
            ratio = mine.rows_per_s / kcat.rows_per_s
            rows.append((f"{name} rows/s ≥ {floor:.0%} of kcat", f"{ratio:.1%}", _verdict(ratio >= floor),
                         f"{mine.rows_per_s:,.0f} vs {kcat.rows_per_s:,.0f}; short by "
                         f"{max(0.0, floor * kcat.rows_per_s - mine.rows_per_s):,.0f} rows/s"))
    for fmt in ("json", "line"):
        alo_name, alo = first_rate(f"{fmt}-native", f"{fmt}-alo")
        _, eos = first_rate(f"{fmt}-native-eos" if alo_name.endswith("native") else f"{fmt}-eos")
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


def cost_table(summaries: Sequence[Summary]) -> str:
    """bench.cost's section for every contender that ran on the main object."""
    path = main_object(summaries)
    return cost.table([cost.Measured(s.name, s.rows_per_cpu_s, s.cores, s.peak_rss, s.ok)
                       for s in summaries if str(s.first.data.path) == path])


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


def open_quote_table(result: OpenQuoteResult, uri: str) -> str:
    file = result.file
    bad = f"row {file.bad_row:,}"
    lines = [f"{file.data.rows:,} rows, {file.data.size / MB:,.1f} MB; {bad} starts at byte {file.bad_offset:,} and "
             f"opens a quoted field that never closes ({file.past_bad:,} bytes = {file.past_bad / MIB:,.2f} MiB from "
             f"there to the end; the rows after it are written without `\"`, which would close it). The clean "
             f"runs read the rows before it alone ({file.clean.size:,} bytes): what any run costs until it reaches "
             f"{bad}.",
             "",
             f"| engine | engine ran | object | --max-record-bytes | exit | last stderr line | wall s | CPU s | "
             f"read past {bad} | CPU s / MiB past | CPU s over clean / MiB past | peak RSS MB | records in topic | "
             "result |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in result.runs:
        limit = f"{run.limit:,}" if run.limit is not None else f"default ({run.effective_limit:,})"
        if run.clean:
            read, per_mib, over = "", "", ""
        else:
            read = f"{run.read_past:,} B = {run.read_past / MIB:,.2f} MiB" + (" (to the end)" if run.to_eof
                                                                              else " (≥, the limit)")
            per_mib = f"{run.cpu_s_per_mib:.3f}" if run.cpu_s_per_mib is not None else ""
            base = result.clean_cpu_s(run.engine)
            over = f"{(run.measured.cpu_s - base) / (run.read_past / MIB):.3f}" if base is not None else ""
        message = run.last_line.replace(f" of {uri}", " of <object>").replace("|", "\\|") if not run.clean else ""
        problems = run.problems()
        lines.append(
            f"| {run.engine} | {run.engine_ran} | {'rows before ' + bad if run.clean else bad + ' open'} | {limit} | "
            f"{run.measured.exit_code} | {message} | {run.measured.wall_s:.2f} | {run.measured.cpu_s:.2f} | {read} | "
            f"{per_mib} | {over} | {run.measured.peak_rss_bytes / MB:,.0f} | {run.records:,} / {file.bad_row - 1:,} | "
            f"{'ok' if not problems else 'FAILED: ' + '; '.join(problems)} |")
    lines += ["", f"Expected: exit 65, a last stderr line starting `csvkafka: error: row {file.bad_row} (byte offset "
              f"{file.bad_offset})`, and {file.bad_row - 1:,} records in the topic (the clean runs: exit 0). CPU s: "
              "user + system of the worker's process tree. Read past: bytes the worker is known to have scanned from "
              f"{bad}'s offset on: to the end of the object, or the record limit (the scanner is fed 1 MiB blocks, so "
              "it may have scanned up to a block more; S3 prefetch reads further ahead). CPU s over clean: the CPU "
              "seconds beyond the clean run's on the same engine (start-up, the rows before, the checkpoint), per "
              "MiB past the bad row. The object's URI is shortened to `<object>`."]
    return "\n".join(lines)


def _verdict(met: bool) -> str:
    return "yes" if met else "**no**"

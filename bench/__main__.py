"""`python -m bench`: every contender in one run on the local stack, then a markdown report.

    python -m bench                        # the core contenders and the resume test, 1M rows
    python -m bench --repeat 3             # each throughput contender 3 times, medians reported
    python -m bench --only kcat,line-alo   # some contenders (names or groups, see --help)
    python -m bench --only rss-big,resume-big   # the 2 GB and 1 GB objects (slow)
    python -m bench --only resume-gzip     # resume at 90 % of the 1 GB object gzipped: from byte 0 vs seek point
    python -m bench --only open-quote      # what an unterminated quote costs, on both engines
    python -m bench --engine-via omit --only baseline,python   # a worker without --engine yet
    python -m bench operator-load --imports 100   # the operator under load (see bench/operator_load.py)
    python -m bench shards                 # 1, 2 and 4 shards over one object and a prefix (see bench/shards.py)

The engine contenders (json-native, line-python-nohdr, json-native-eos, ...) pick the worker's engine
with `csvkafka run --engine NAME` (--engine-via flag), CSVKAFKA_ENGINE (env), or not at all (omit: all
of them run the default engine). The default, auto, is flag if `csvkafka run --help` lists --engine,
else omit; the report says which. BENCH_ENGINE_VIA sets the default.

Generated CSV files are cached (under $CSVKAFKA_CACHE/bench/data); logs, profiles and the report
go to --out. Every bucket, table and topic a run creates is deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import compressed, contenders, data, machine, operator_load, report, shards
from bench.scenarios import Bench, OpenQuoteResult, ResumeResult, Run, open_quote, resume
from bench.stack import Stack, stack_env

GROUPS: dict[str, tuple[str, ...]] = {
    "core": (*(c.name for c in contenders.CORE), "resume"),
    "baseline": (*(c.name for c in contenders.KCAT), contenders.NAIVE.name),
    "native": tuple(c.name for c in contenders.ENGINE_RUNS if c.engine == "native"),
    "python": tuple(c.name for c in contenders.ENGINE_RUNS if c.engine == "python"),
    "noengine": tuple(c.name for c in contenders.DEFAULT_ENGINE),
    "floor": tuple(c.name for c in contenders.FLOOR),
    "profile": ("profile-json", "profile-line"),
    "big": ("rss-big", "resume-big", "resume-gzip"),
    "errors": ("open-quote",),
}
GROUPS["all"] = tuple(dict.fromkeys(name for group in ("core", "noengine", "floor", "profile", "big", "errors")
                                    for name in GROUPS[group]))
SCENARIOS = ("resume", "profile-json", "profile-line", "rss-big", "resume-big", "resume-gzip", "open-quote")
# Scenarios that run the main object (--rows); without them and without contenders it is not generated.
ON_MAIN = ("resume", "profile-json", "profile-line")
ENGINE_SCENARIOS = ("open-quote",)  # scenarios that run each engine, named like the engine contenders
CACHE = Path.home() / ".cache" / "csvkafka"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the main object (default 1,000,000)")
    parser.add_argument("--only", default="core",
                        help="comma-separated contenders, scenarios or groups: " + "; ".join(
                            f"{g} = {','.join(names)}" for g, names in GROUPS.items() if g != "all")
                        + "; all (default core)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per throughput contender (medians reported)")
    parser.add_argument("--big-bytes", type=float, default=2e9, help="size of the rss-big object (default 2e9)")
    parser.add_argument("--resume-bytes", type=float, default=1e9,
                        help="size of the resume-big object and of resume-gzip's CSV (default 1e9)")
    parser.add_argument("--resume-repeat", type=int, default=3, help="fresh/resumed pairs per resume test")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of each topic (default 3)")
    parser.add_argument("--out", type=Path, help="directory for logs and the report (default under the cache)")
    parser.add_argument("--data-dir", type=Path, help="where generated CSV files are cached")
    parser.add_argument("--keep", action="store_true", help="keep the topics, bucket and table")
    parser.add_argument("--worker-flags", default="", help="extra `csvkafka run` flags for every worker run, "
                        "e.g. \"--range-bytes 1048576\"")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between runs (broker cleanup)")
    parser.add_argument("--engine-via", choices=("auto", *contenders.ENGINE_VIA),
                        default=os.environ.get("BENCH_ENGINE_VIA", "auto"),
                        help="how the engine contenders choose the engine: flag (csvkafka run --engine NAME), "
                        "env (CSVKAFKA_ENGINE=NAME), omit (neither: the worker's default engine, for a worker "
                        "without --engine), auto (flag if `csvkafka run --help` lists --engine, else omit); "
                        "default $BENCH_ENGINE_VIA or auto")
    args = parser.parse_args(argv)
    if args.engine_via not in ("auto", *contenders.ENGINE_VIA):
        parser.error(f"BENCH_ENGINE_VIA={args.engine_via!r}: one of auto, {', '.join(contenders.ENGINE_VIA)}")
    return args


def engine_via(requested: str, chosen: list[str]) -> tuple[str, str]:
    """How the chosen engine contenders will name their engine, and a line for the report."""
    if not any(contenders.ALL[name].engine for name in chosen if name in contenders.ALL) \
            and not any(name in ENGINE_SCENARIOS for name in chosen):
        return requested, ""
    has_flag = contenders.worker_has_engine_flag()
    via = requested if requested != "auto" else "flag" if has_flag else "omit"
    if via == "flag" and not has_flag:
        raise SystemExit("`csvkafka run --help` lists no --engine: this worker cannot choose an engine yet. "
                         "Run with --engine-via omit (or BENCH_ENGINE_VIA=omit) to run the engine contenders "
                         "on the worker's default engine.")
    if via == "flag":
        return via, "Engine: chosen per contender with `csvkafka run --engine NAME`."
    if via == "env":
        return via, (f"Engine: chosen per contender with {contenders.ENGINE_ENV}=NAME"
                     + ("." if has_flag else "; **`csvkafka run --help` lists no --engine, so the worker may have "
                        "ignored it and run its default engine for every contender**."))
    return via, ("**Engine flag omitted** (--engine-via omit" + (", auto: `csvkafka run --help` lists no --engine"
                 if requested == "auto" else "") + "): every `-native` and `-python` contender ran the worker's "
                 "default engine, so their names do not say which engine ran, and native vs python compares the "
                 "same code.")


def selection(only: str) -> list[str]:
    names: list[str] = []
    for part in (p.strip() for p in only.split(",")):
        for name in GROUPS.get(part, (part,)):
            if name not in contenders.ALL and name not in SCENARIOS:
                raise SystemExit(f"unknown contender or scenario {name!r}; see python -m bench --help")
            if name not in names:
                names.append(name)
    return names


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the `finally` that deletes what the run created


def render(argv: list[str], repeat: int, summaries: list[report.Summary], resumed: ResumeResult | None,
           sections: list[str], engine_note: str) -> str:
    """The report; without throughput runs (e.g. --only open-quote) only the sections of what ran."""
    return "\n\n".join([
        f"## Results {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "Command: `python -m bench " + shlex.join(argv) + "`" if argv else "Command: `python -m bench`",
        *([engine_note] if engine_note else []),
        "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in machine.describe())]),
        *([f"### Runs (median of {repeat})\n\n" + report.runs_table(summaries)
           + "\n\nCPU s: user + system time of the contender's process tree (from wait4); CPU µs/row = CPU s / rows; "
           "cores = CPU s / wall s. The broker's and moto's CPU are not included.",
           f"### Ratios (medians of {repeat})\n\n" + report.ratios_table(summaries)] if summaries else []),
        *(["### Targets\n\n" + report.targets_table(summaries, resumed)] if summaries or resumed else []),
        *(["### Cost of 100M rows on AWS Fargate Spot (us-east-1)\n\n" + report.cost_table(summaries)]
          if summaries else []),
        *sections,
    ]) + "\n"


def main_object(stack: Stack, data_dir: Path, rows: int, say: Callable[[str], None]) -> tuple[data.DataFile, str, str]:
    """The main object (--rows), generated on first use and uploaded: (file, URI, ETag)."""
    main_data = data.ensure(data_dir, rows)
    say(f"main object: {main_data.rows:,} rows, {main_data.size / 1e6:,.1f} MB ({main_data.path})")
    uri, etag = stack.upload(main_data.path)
    return main_data, uri, etag


def run_open_quote(bench: Bench, data_dir: Path, via: str, sections: list[str]) -> OpenQuoteResult:
    """The open-quote scenario on its own object (and the clean rows before its bad row); adds its section."""
    bad = data.ensure_open_quote(data_dir)
    bench.say(f"open-quote object: {bad.data.rows:,} rows, {bad.data.size / 1e6:,.1f} MB, row {bad.bad_row:,} "
              f"opens a quote at byte {bad.bad_offset:,} ({bad.data.path})")
    bad_uri, _ = bench.stack.upload(bad.data.path)
    clean_uri, _ = bench.stack.upload(bad.clean.path)
    quoted = open_quote(bench, bad, bad_uri, clean_uri, via)
    sections.append(f"### Open quote: row {bad.bad_row:,} of {bad.data.rows:,}, fail policy\n\n"
                    + report.open_quote_table(quoted, bad_uri))
    bench.stack.delete_object(bad_uri)
    bench.stack.delete_object(clean_uri)
    return quoted


def run_gzip_resume(bench: Bench, data_dir: Path, args: argparse.Namespace, sections: list[str]) -> list[str]:
    """The resume-gzip scenario on resume-big's CSV, gzipped; adds its section, returns its problems."""
    result = compressed.gzip_resume(bench, data.ensure(data_dir, data.rows_for_bytes(int(args.resume_bytes))),
                                    args.resume_repeat)
    sections.append("### Resume at 90 % of a gzip object: from byte 0 vs from a seek point\n\n"
                    + compressed.table(result))
    return result.problems


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _stop)
    args = parse_args(argv)
    chosen = selection(args.only)
    via, engine_note = engine_via(args.engine_via, chosen)
    print(engine_note.replace("**", "").replace("`", ""), file=sys.stderr, flush=True)
    env = stack_env()
    cache = Path(env.get("CSVKAFKA_CACHE") or CACHE) / "bench"
    out = args.out or cache / "runs" / time.strftime("%Y%m%d-%H%M%S")
    data_dir = args.data_dir or cache / "data"
    out.mkdir(parents=True, exist_ok=True)
    stack = Stack(env, args.partitions)
    extra = tuple(shlex.split(args.worker_flags))
    bench = Bench(stack, out / "logs", keep=args.keep, pause_s=args.pause, worker_flags=extra,
                  say=lambda line: print(line, file=sys.stderr, flush=True))
    runs: list[Run] = []
    sections: list[str] = []
    resumed: ResumeResult | None = None
    try:
        throughput = [contenders.with_flags(contenders.with_engine_via(contenders.ALL[name], via), extra)
                      for name in chosen if name in contenders.ALL]
        if throughput or any(name in ON_MAIN for name in chosen):
            main_data, uri, etag = main_object(stack, data_dir, args.rows, bench.say)
        for attempt in range(args.repeat):
            for contender in throughput:
                runs.append(bench.throughput(contender, main_data, uri, tag=f"-{attempt}"))
        for fmt in ("json", "line"):
            if f"profile-{fmt}" in chosen:
                run, stages = bench.profile(fmt, main_data, uri)
                sections.append(f"### Profile: {fmt}\n\n" + report.profile_table(run, stages))
        if "resume" in chosen:
            resumed = resume(bench, main_data, uri, etag, args.resume_repeat)
            sections.append(f"### Resume at 90 %, {main_data.size / 1e6:,.0f} MB object\n\n"
                            + report.resume_table(resumed))
        if "resume-big" in chosen:
            big = data.ensure(data_dir, data.rows_for_bytes(int(args.resume_bytes)))
            big_uri, big_etag = stack.upload(big.path)
            resumed = resume(bench, big, big_uri, big_etag, args.resume_repeat)
            sections.append(f"### Resume at 90 %, {big.size / 1e6:,.0f} MB object\n\n" + report.resume_table(resumed))
            stack.delete_object(big_uri)
        gz_problems = run_gzip_resume(bench, data_dir, args, sections) if "resume-gzip" in chosen else []
        if "rss-big" in chosen:
            big = data.ensure(data_dir, data.rows_for_bytes(int(args.big_bytes)))
            bench.say(f"big object: {big.rows:,} rows, {big.size / 1e6:,.1f} MB")
            big_uri, _ = stack.upload(big.path)
            for name in ("json-alo", "line-alo"):
                runs.append(bench.throughput(contenders.with_flags(contenders.ALL[name], extra), big, big_uri,
                                             tag="-big"))
            stack.delete_object(big_uri)
        quoted = run_open_quote(bench, data_dir, via, sections) if "open-quote" in chosen else None
    finally:
        stack.close(keep=args.keep)

    summaries = report.summarise(runs)
    text = render(argv, args.repeat, summaries, resumed, sections, engine_note)
    (out / "report.md").write_text(text)
    print(text)
    bench.say(f"report and logs: {out}")
    failed = [s.name for s in summaries if not s.ok] + (resumed.problems if resumed else []) \
        + (quoted.problems if quoted else []) + gz_problems
    return 1 if failed else 0


if __name__ == "__main__":
    COMMANDS = {"operator-load": operator_load.main, "shards": shards.main}
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]) if sys.argv[1:2] and sys.argv[1] in COMMANDS else main(sys.argv[1:]))

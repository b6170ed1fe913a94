"""`python -m bench`: every contender in one run on the local stack, then a markdown report.

    python -m bench                        # quick: the core contenders and the resume test, 1M rows
    python -m bench --repeat 3             # each throughput contender 3 times, medians reported
    python -m bench --only kcat,line-alo   # some contenders (names or groups, see --help)
    python -m bench --only rss-big,resume-big   # the 2 GB and 1 GB objects (slow)

Generated CSV files are cached (under $CSVKAFKA_CACHE/bench/data); logs, profiles and the report
go to --out. Every bucket, table and topic a run creates is deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from pathlib import Path

from bench import contenders, data, machine, report
from bench.scenarios import Bench, ResumeResult, Run, resume
from bench.stack import Stack, stack_env

GROUPS: dict[str, tuple[str, ...]] = {
    "core": (*(c.name for c in contenders.CORE), "resume"),
    "floor": tuple(c.name for c in contenders.FLOOR),
    "exp": tuple(c.name for c in contenders.EXPERIMENTS),
    "profile": ("profile-json", "profile-line"),
    "big": ("rss-big", "resume-big"),
}
GROUPS["all"] = tuple(name for group in ("core", "floor", "exp", "profile", "big") for name in GROUPS[group])
SCENARIOS = ("resume", "profile-json", "profile-line", "rss-big", "resume-big")
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
    parser.add_argument("--resume-bytes", type=float, default=1e9, help="size of the resume-big object (default 1e9)")
    parser.add_argument("--resume-repeat", type=int, default=3, help="fresh/resumed pairs per resume test")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of each topic (default 3)")
    parser.add_argument("--out", type=Path, help="directory for logs and the report (default under the cache)")
    parser.add_argument("--data-dir", type=Path, help="where generated CSV files are cached")
    parser.add_argument("--keep", action="store_true", help="keep the topics, bucket and table")
    parser.add_argument("--worker-flags", default="", help="extra `csvkafka run` flags for every worker run, "
                        "e.g. \"--range-bytes 1048576\"")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between runs (broker cleanup)")
    return parser.parse_args(argv)


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


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _stop)
    args = parse_args(argv)
    chosen = selection(args.only)
    env = stack_env()
    cache = Path(env.get("CSVKAFKA_CACHE") or CACHE) / "bench"
    out = args.out or cache / "runs" / time.strftime("%Y%m%d-%H%M%S")
    data_dir = args.data_dir or cache / "data"
    out.mkdir(parents=True, exist_ok=True)
    stack = Stack(env, args.partitions)
    extra = tuple(shlex.split(args.worker_flags))
    bench = Bench(stack, out / "logs", keep=args.keep, pause_s=args.pause, worker_flags=extra,
                  say=lambda line: print(line, file=sys.stderr, flush=True))
    say = bench.say
    runs: list[Run] = []
    sections: list[str] = []
    resumed: ResumeResult | None = None
    try:
        main_data = data.ensure(data_dir, args.rows)
        say(f"main object: {main_data.rows:,} rows, {main_data.size / 1e6:,.1f} MB ({main_data.path})")
        uri, etag = stack.upload(main_data.path)
        throughput = [contenders.with_flags(contenders.ALL[name], extra) for name in chosen if name in contenders.ALL]
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
        if "rss-big" in chosen:
            big = data.ensure(data_dir, data.rows_for_bytes(int(args.big_bytes)))
            say(f"big object: {big.rows:,} rows, {big.size / 1e6:,.1f} MB")
            big_uri, _ = stack.upload(big.path)
            for name in ("json-alo", "line-alo"):
                runs.append(bench.throughput(contenders.with_flags(contenders.ALL[name], extra), big, big_uri,
                                             tag="-big"))
            stack.delete_object(big_uri)
    finally:
        stack.close(keep=args.keep)

    summaries = report.summarise(runs)
    text = "\n\n".join([
        f"## Results {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "Command: `python -m bench " + shlex.join(argv) + "`" if argv else "Command: `python -m bench`",
        "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in machine.describe())]),
        "### Runs (median of " + str(args.repeat) + ")\n\n" + report.runs_table(summaries),
        "### Targets\n\n" + report.targets_table(summaries, resumed),
        *sections,
    ]) + "\n"
    (out / "report.md").write_text(text)
    print(text)
    say(f"report and logs: {out}")
    failed = [s.name for s in summaries if not s.ok] + (resumed.problems if resumed else [])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

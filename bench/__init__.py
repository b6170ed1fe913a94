"""Benchmark harness: csvkafka against kcat and the naive loop it replaces (`python -m bench --help`).

Modules: data (deterministic CSV), stack (S3, topics, tables, counts), contenders (what runs),
measure (timing and peak RSS of one subprocess), scenarios (throughput, resume, profiles),
report (markdown: runs, ratios, targets), cost (100M rows on Fargate Spot), machine (what it ran
on); naive and floor are run as subprocesses.
"""

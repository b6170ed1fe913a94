"""`csvkafka run` with a worker change applied from outside, to measure what the change would buy.

    python -m bench.patched gc,trim-json <csvkafka run flags>

- `gc`: freeze the start-up objects and raise the cyclic GC's threshold (700 → 200,000). The worker
  allocates a few container objects per row (field lists, dicts, header tuples), so with the
  default threshold the collector runs every few hundred rows.
- `trim-json`: copy each orjson value into a right-sized bytes object. orjson ≥ 3.12 returns its
  output in a buffer of at least 4 KiB that it never shrinks, so a block's worth of values
  (~69,000 rows of ~300 bytes) holds ~285 MB instead of ~20 MB. (The copy goes through a Python
  function here; inside the worker it would be `b"".join((dumps(row), b""))` in the comprehension.)
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import orjson

import csvkafka_worker.encode
from csvkafka_worker.cli import main

PATCHES = ("gc", "trim-json")


class _TrimmedOrjson:
    @staticmethod
    def dumps(value: Any) -> bytes:
        return b"".join((orjson.dumps(value), b""))


def apply(patches: list[str]) -> None:
    for patch in patches:
        if patch == "gc":
            gc.freeze()
            gc.set_threshold(200_000, 100, 100)
        elif patch == "trim-json":
            vars(csvkafka_worker.encode)["orjson"] = _TrimmedOrjson
        else:
            raise SystemExit(f"unknown patch {patch!r}; known: {', '.join(PATCHES)}")


if __name__ == "__main__":
    apply([p for p in sys.argv[1].split(",") if p])
    sys.exit(main(["run", *sys.argv[2:]]))

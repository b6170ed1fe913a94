"""What deleting a multi-object import removes: its plan, every object's items, receipts, the manifest's marker."""

from __future__ import annotations

import json
import zlib
from typing import Any

from csvkafka_operator.cleanup import kept_ids, page_ids
from csvkafka_worker.planstore import header_id

JOB = "b/in/->t"
MiB = 1024 * 1024


def _header(pages: int, extent: int) -> dict[str, Any]:
    return {"job_id": {"S": header_id(JOB)}, "run_id": {"S": "initial"}, "state": {"S": "complete"},
            "objects": {"N": "3"}, "total_bytes": {"N": "0"}, "pages": {"N": str(pages)},
            "extent": {"N": str(extent)}, "generation": {"N": "1"}}


def _page(*entries: tuple[str, int]) -> dict[str, Any]:
    rows = [["b", key, size, "etag", "2026-11-30T00:00:00+00:00"] for key, size in entries]
    return {"entries": {"B": zlib.compress(json.dumps(rows).encode())}}


def test_every_page_ever_written_is_deleted() -> None:
    assert page_ids(JOB, _header(pages=1, extent=3)) == [f"{JOB}!plan!0", f"{JOB}!plan!1", f"{JOB}!plan!2"]
    assert page_ids(JOB, None) == []


def test_objects_their_pieces_receipts_the_plan_and_the_manifest_marker() -> None:
    # Two shards: the 200 MiB uncompressed object is cut in two pieces of at least 64 MiB.
    pages = [_page(("in/a.csv", 10), ("in/big.csv", 200 * MiB)), _page(("in/c.csv.gz", 5))]
    ids = kept_ids(JOB, _header(pages=2, extent=2), pages, shard_count=2)
    obj = f"{JOB}@b/in"
    assert set(ids) == {
        f"{obj}/a.csv", f"{obj}/a.csv!receipt",
        f"{obj}/big.csv#0/2", f"{obj}/big.csv#1/2", f"{obj}/big.csv!receipt",
        f"{obj}/c.csv.gz", f"{obj}/c.csv.gz!receipt",
        f"{JOB}!plan!0", f"{JOB}!plan!1", f"{JOB}!plan", f"{JOB}!manifest"}


def test_without_a_plan_only_the_manifest_marker_may_be_left() -> None:
    assert kept_ids(JOB, None, [], shard_count=4) == [f"{JOB}!manifest"]

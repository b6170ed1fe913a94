"""Load receipts: their JSON, merging a split object's pieces, the manifest."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csvkafka_worker.receipts import Manifest, Receipt, merge
from csvkafka_worker.watermark import Counts

T0 = datetime(2026, 11, 30, 16, 30, 0, 123000, tzinfo=UTC)
URI, ETAG = "s3://exports/2026-11-30/part-0007.csv.gz", "9b2cf535f27731c974343645a3985328"


def receipt(start: int = 0, end: int = 1000, sent: int = 10, dead: int = 1, skipped: int = 2,
            checksum: int = 0xDEADBEEF, offsets: dict[int, tuple[int, int]] | None = None,
            at: datetime = T0) -> Receipt:
    return Receipt("orders", "run-1", URI, ETAG, start, end, sent, dead, skipped, checksum,
                   {0: (5, 14)} if offsets is None else offsets, at)


def test_a_receipt_is_camel_case_json_in_a_fixed_order() -> None:
    value = receipt(offsets={2: (100, 104), 0: (5, 14)}).encode()
    assert value == (b'{"jobId":"orders","runId":"run-1","uri":"s3://exports/2026-11-30/part-0007.csv.gz",'
                     b'"etag":"9b2cf535f27731c974343645a3985328","byteRange":{"start":0,"end":1000},"rowsSent":10,'
                     b'"rowsDeadLettered":1,"rowsSkipped":2,"valuesCrc32Sum":"00000000deadbeef",'
                     b'"offsets":{"0":[5,14],"2":[100,104]},"completedAt":"2026-11-30T16:30:00.123Z"}')
    assert Receipt.decode(value) == receipt(offsets={2: (100, 104), 0: (5, 14)})


def test_a_receipt_is_made_from_delivered_counts() -> None:
    counts = Counts(sent=10, dead_lettered=1, skipped=2, checksum=0xDEADBEEF, offsets={0: (5, 14)})
    assert Receipt.of("orders", "run-1", URI, ETAG, (0, 1000), counts, T0) == receipt()


offsets_strategy = st.dictionaries(st.integers(0, 63), st.tuples(st.integers(0, 2**40), st.integers(0, 2**20))
                                   .map(lambda p: (p[0], p[0] + p[1])), max_size=4)
receipts_strategy = st.builds(
    lambda start, length, sent, dead, skipped, checksum, offsets, seconds: receipt(
        start, start + length, sent, dead, skipped, checksum, offsets, T0 + timedelta(milliseconds=seconds)),
    st.integers(0, 2**50), st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**30), st.integers(0, 2**30),
    st.integers(0, 2**64 - 1), offsets_strategy, st.integers(-10**9, 10**9))


@given(receipts_strategy)
def test_any_receipt_round_trips(value: Receipt) -> None:
    assert Receipt.decode(value.encode()) == value
    assert len(orjson.loads(value.encode())["valuesCrc32Sum"]) == 16


@st.composite
def split_object(draw: st.DrawFn) -> list[Receipt]:
    """The receipts of an object cut at random points into pieces."""
    size = draw(st.integers(0, 2**40))
    cuts = sorted(draw(st.lists(st.integers(0, size), max_size=6)))
    bounds = [0, *cuts, size]
    return [replace_range(draw(receipts_strategy), a, b) for a, b in itertools.pairwise(bounds)]


def replace_range(value: Receipt, start: int, end: int) -> Receipt:
    from dataclasses import replace

    return replace(value, byte_start=start, byte_end=end)


def reference(pieces: list[Receipt]) -> tuple[Any, ...]:
    """What a merge must give, computed the plain way."""
    offsets: dict[int, tuple[int, int]] = {}
    for piece in pieces:
        for partition, (first, last) in piece.offsets.items():
            offsets.setdefault(partition, (first, last))
            offsets[partition] = (min(offsets[partition][0], first), max(offsets[partition][1], last))
    return (min(p.byte_start for p in pieces), max(p.byte_end for p in pieces), sum(p.rows_sent for p in pieces),
            sum(p.rows_dead_lettered for p in pieces), sum(p.rows_skipped for p in pieces),
            sum(p.values_crc32_sum for p in pieces) % 2**64, offsets, max(p.completed_at for p in pieces))


def summary(value: Receipt) -> tuple[Any, ...]:
    return (value.byte_start, value.byte_end, value.rows_sent, value.rows_dead_lettered, value.rows_skipped,
            value.values_crc32_sum, value.offsets, value.completed_at)


@given(split_object(), st.randoms(use_true_random=False))
def test_merging_is_commutative_and_associative(pieces: list[Receipt], rand: random.Random) -> None:
    whole = merge(pieces)
    assert summary(whole) == reference(pieces)
    shuffled = list(pieces)
    rand.shuffle(shuffled)
    assert merge(shuffled) == whole
    # Merged in groups of neighbours (as shards might report), then merged again: the same receipt.
    cut = rand.randrange(len(pieces) + 1)
    groups = [g for g in (pieces[:cut], pieces[cut:]) if g]
    assert merge(merge(g) for g in groups) == whole
    assert (whole.job_id, whole.run_id, whole.uri, whole.etag) == ("orders", "run-1", URI, ETAG)


def test_merging_refuses_pieces_of_different_objects_or_versions() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="ETag other"):
        merge([receipt(0, 10), replace(receipt(10, 20), etag="other")])
    with pytest.raises(ValueError, match="no receipts"):
        merge([])


def test_merging_refuses_a_gap_in_the_byte_range() -> None:
    with pytest.raises(ValueError, match="bytes 10-12 uncovered"):
        merge([receipt(0, 10), receipt(12, 20)])


def test_a_manifest_holds_the_receipts_and_their_totals() -> None:
    second = Receipt("orders", "run-1", "s3://exports/b.csv", "e2", 0, 500, 7, 0, 0, 2**64 - 1, {1: (0, 6)}, T0)
    manifest = Manifest("orders", "orders", "run-1", T0 + timedelta(minutes=1), (receipt(), second))
    raw = orjson.loads(manifest.encode())
    assert list(raw) == ["importName", "jobId", "runId", "generatedAt", "totals", "receipts"]
    assert raw["generatedAt"] == "2026-11-30T16:31:00.123Z"
    assert raw["totals"] == {"objects": 2, "bytes": 1500, "rowsSent": 17, "rowsDeadLettered": 1, "rowsSkipped": 2,
                             "valuesCrc32Sum": f"{(0xDEADBEEF + 2**64 - 1) % 2**64:016x}"}
    assert [r["uri"] for r in raw["receipts"]] == [URI, "s3://exports/b.csv"]
    assert Manifest.decode(manifest.encode()) == manifest


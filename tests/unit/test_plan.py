"""The plan's pure rules: which shard imports which piece of which object, and what a rerun does."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csvkafka_worker.checkpoint import State
from csvkafka_worker.plan import (
    Action,
    ObjectEntry,
    Unit,
    assign,
    decide,
    uncompressed_by_suffix,
)
from csvkafka_worker.spec import RerunMode

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
MIN = 100  # a small minimum piece, so that small examples split


def entry(key: str, size: int, etag: str = "e1") -> ObjectEntry:
    return ObjectEntry("b", key, size, etag, WHEN)


def all_units(entries: list[ObjectEntry], shards: int, min_piece: int = MIN) -> list[list[Unit]]:
    total = sum(e.size for e in entries)
    return [list(assign(iter(entries), total, i, shards, min_piece=min_piece)) for i in range(shards)]


def load(units: list[Unit]) -> int:
    return sum(u.nominal_end - u.nominal_start for u in units)


def test_an_object_across_a_cut_is_split_there() -> None:
    shards = all_units([entry("a.csv", 1000)], 2)
    assert [(u.piece, u.pieces, u.nominal_start, u.nominal_end) for u in shards[0]] == [(0, 2, 0, 500)]
    assert [(u.piece, u.pieces, u.nominal_start, u.nominal_end) for u in shards[1]] == [(1, 2, 500, 1000)]


def test_one_object_spans_several_cuts() -> None:
    shards = all_units([entry("big.csv", 1200)], 4)
    assert [[(u.piece, u.pieces, u.nominal_start, u.nominal_end) for u in s] for s in shards] == [
        [(0, 4, 0, 300)], [(1, 4, 300, 600)], [(2, 4, 600, 900)], [(3, 4, 900, 1200)]]


def test_a_compressed_object_is_never_split_and_goes_to_its_midpoints_shard() -> None:
    # Line: a.csv [0, 100), b.csv.gz [100, 1000); cut at 500: the gzip object's midpoint 550 is in shard 1.
    shards = all_units([entry("a.csv", 100), entry("b.csv.gz", 900)], 2)
    assert [(u.entry.key, u.pieces) for u in shards[0]] == [("a.csv", 1)]
    assert [(u.entry.key, u.pieces, u.nominal_start, u.nominal_end) for u in shards[1]] == [("b.csv.gz", 1, 0, 900)]


def test_a_cut_leaving_a_short_piece_is_dropped() -> None:
    # 250 bytes over 2 shards: the cut at 125 would leave two pieces of 125 < 200: whole, to the midpoint's shard.
    shards = all_units([entry("a.csv", 250)], 2, min_piece=200)
    assert [len(s) for s in shards] == [0, 1]
    # 1000 bytes over 8 shards (cuts every 125), minimum 300: the first cut 300 bytes in (375) is kept, then
    # none leaves 300 bytes after it; each piece goes to the shard of its midpoint (187, 687).
    shards = all_units([entry("a.csv", 1000)], 8, min_piece=300)
    assert [[(u.nominal_start, u.nominal_end) for u in s] for s in shards] == [
        [], [(0, 375)], [], [], [], [(375, 1000)], [], []]


def test_empty_objects_belong_to_one_shard_each() -> None:
    entries = [entry("empty0.csv", 0), entry("a.csv", 300), entry("empty1.csv", 0), entry("b.csv", 300),
               entry("empty2.csv", 0)]
    shards = all_units(entries, 3)
    owners = {u.entry.key: i for i, s in enumerate(shards) for u in s if u.entry.size == 0}
    assert owners == {"empty0.csv": 0, "empty1.csv": 1, "empty2.csv": 2}
    assert [u.nominal_end for s in shards for u in s if u.entry.size == 0] == [0, 0, 0]


def test_only_empty_objects() -> None:
    shards = all_units([entry("x", 0), entry("y", 0)], 3)
    assert [len(s) for s in shards] == [0, 0, 2]


def test_more_shards_than_bytes() -> None:
    shards = all_units([entry("a.csv", 3)], 8, min_piece=1)
    pieces = sorted((u.nominal_start, u.nominal_end) for s in shards for u in s)
    assert pieces == [(0, 1), (1, 2), (2, 3)]


def test_entries_adding_up_past_total_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="total_bytes"):
        list(assign([entry("a", 10), entry("b", 10)], 15, 0, 2))
    with pytest.raises(ValueError, match="shard 2"):
        list(assign([], 0, 2, 2))


def test_splittable_by_suffix() -> None:
    assert uncompressed_by_suffix(entry("x/data.csv", 1))
    assert uncompressed_by_suffix(entry("x.gz/data.csv", 1))
    assert not any(uncompressed_by_suffix(entry(f"data.csv{s}", 1)) for s in (".gz", ".GZIP", ".zst", ".zstd", ".bz2"))


SIZES = st.one_of(st.just(0), st.integers(1, 60), st.integers(1, 3000))


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[ObjectEntry], int, int]:
    sizes = draw(st.lists(SIZES, max_size=25))
    gz = draw(st.lists(st.booleans(), min_size=len(sizes), max_size=len(sizes)))
    entries = [entry(f"k{i}.csv" + (".gz" if z else ""), s) for i, (s, z) in enumerate(zip(sizes, gz, strict=True))]
    return entries, draw(st.integers(1, 8)), draw(st.sampled_from([1, 50, MIN, 700]))


@settings(max_examples=400, deadline=None, database=None)
@given(plan=plans())
def test_every_object_is_covered_once_and_shards_are_balanced(plan: tuple[list[ObjectEntry], int, int]) -> None:
    entries, count, min_piece = plan
    shards = all_units(entries, count, min_piece)
    pieces: dict[str, list[Unit]] = defaultdict(list)
    for units in shards:
        keys = [u.entry.key for u in units]
        assert keys == sorted(keys, key=lambda k: int(k[1:].split(".")[0])), "a shard's units are in plan order"
        for u in units:
            pieces[u.entry.key].append(u)
    assert set(pieces) == {e.key for e in entries}
    for e in entries:
        got = sorted(pieces[e.key], key=lambda u: u.piece)
        assert [u.piece for u in got] == list(range(len(got)))
        assert all(u.pieces == len(got) for u in got)
        assert got[0].nominal_start == 0 and got[-1].nominal_end == e.size
        assert all(a.nominal_end == b.nominal_start for a, b in pairwise(got)), "contiguous"
        if len(got) > 1:
            assert uncompressed_by_suffix(e) and all(u.nominal_end - u.nominal_start >= min_piece for u in got)
    total = sum(e.size for e in entries)
    unsplit = max([e.size for e in entries if not uncompressed_by_suffix(e)], default=0)
    slack = max(unsplit, 2 * min_piece)
    for i, units in enumerate(shards):
        ideal = (i + 1) * total // count - i * total // count
        assert abs(load(units) - ideal) <= slack
    assert shards == all_units(entries, count, min_piece), "deterministic"


@settings(max_examples=200, deadline=None, database=None)
@given(plan=plans())
def test_split_at_every_cut_when_pieces_are_long_enough(plan: tuple[list[ObjectEntry], int, int]) -> None:
    """With no compressed object and pieces of any length allowed, every shard gets exactly S/N."""
    entries, count, _ = plan
    entries = [entry(e.key.removesuffix(".gz"), e.size) for e in entries]
    total = sum(e.size for e in entries)
    for i, units in enumerate(all_units(entries, count, min_piece=1)):
        assert load(units) == (i + 1) * total // count - i * total // count


CHECKPOINTS = [
    # mode, checkpoint (etag, state) or None, same run, action
    (RerunMode.NEW, None, False, Action.IMPORT),
    (RerunMode.NEW, ("e1", State.COMPLETED), False, Action.SKIP),
    (RerunMode.NEW, ("e0", State.COMPLETED), False, Action.SKIP),
    (RerunMode.NEW, ("e1", State.INTERRUPTED), False, Action.IMPORT),
    (RerunMode.NEW, ("e1", State.FAILED), False, Action.IMPORT),
    (RerunMode.NEW, ("e0", State.FAILED), False, Action.REIMPORT),
    (RerunMode.CHANGED, None, False, Action.IMPORT),
    (RerunMode.CHANGED, ("e1", State.COMPLETED), False, Action.SKIP),
    (RerunMode.CHANGED, (None, State.COMPLETED), False, Action.SKIP),
    (RerunMode.CHANGED, ("e0", State.COMPLETED), False, Action.REIMPORT),
    (RerunMode.CHANGED, ("e1", State.RUNNING), False, Action.IMPORT),
    (RerunMode.CHANGED, ("e0", State.INTERRUPTED), False, Action.REIMPORT),
    (RerunMode.ALL, None, False, Action.IMPORT),
    (RerunMode.ALL, ("e1", State.COMPLETED), False, Action.REIMPORT),
    (RerunMode.ALL, ("e1", State.INTERRUPTED), False, Action.REIMPORT),
    # A restarted worker of the same run resumes, whatever the mode.
    (RerunMode.ALL, ("e1", State.COMPLETED), True, Action.SKIP),
    (RerunMode.ALL, ("e1", State.INTERRUPTED), True, Action.IMPORT),
    (RerunMode.CHANGED, ("e0", State.COMPLETED), True, Action.SKIP),
    (RerunMode.NEW, ("e0", State.RUNNING), True, Action.IMPORT),
]


@pytest.mark.parametrize(("mode", "prior", "same_run", "action"), CHECKPOINTS)
def test_rerun_decision(mode: RerunMode, prior: tuple[str | None, State] | None, same_run: bool,
                        action: Action) -> None:
    assert decide(mode, entry("k.csv", 10, etag="e1"), prior, same_run=same_run) is action

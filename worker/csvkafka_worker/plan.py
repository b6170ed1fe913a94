"""Which shard imports which objects of a multi-object source, and which objects a rerun imports again.

The plan's objects, in plan order, form one virtual line of bytes of total S; shard i of N takes
[i*S//N, (i+1)*S//N). An object straddling a cut is split there into pieces when it can be read
from any byte (not compressed) and no piece would be shorter than `min_piece`; a cut that would
leave a shorter piece is dropped, and each piece (or the whole object) goes to the shard holding
its midpoint. So every shard's load is within max(largest unsplit object, 2 * min_piece) of S/N,
every object's pieces cover it exactly once, and every shard computes the same pieces alone,
streaming over the plan in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import pairwise

from csvkafka_worker.checkpoint import State
from csvkafka_worker.spec import RerunMode

MIN_PIECE_BYTES = 64 * 1024 * 1024
# Compressed objects are read from their first byte: never split.
COMPRESSED_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd", ".bz2")


@dataclass(frozen=True)
class ObjectEntry:
    """One object of the source as listed; `etag` without quotes."""

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Unit:
    """Piece `piece` (0-based) of `pieces` of an object: bytes [nominal_start, nominal_end) of it
    before record alignment; one piece is the whole object."""

    entry: ObjectEntry
    piece: int
    pieces: int
    nominal_start: int
    nominal_end: int


def uncompressed_by_suffix(entry: ObjectEntry) -> bool:
    return not entry.key.lower().endswith(COMPRESSED_SUFFIXES)


def assign(entries: Iterable[ObjectEntry], total_bytes: int, shard_index: int, shard_count: int, *,
           splittable: Callable[[ObjectEntry], bool] = uncompressed_by_suffix,
           min_piece: int = MIN_PIECE_BYTES) -> Iterator[Unit]:
    """Shard `shard_index`'s units, in plan order; `total_bytes` is the sum of the entries' sizes."""
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard {shard_index} is not one of 0..{shard_count - 1}")
    line = _Line(total_bytes, shard_count)
    start = 0
    for entry in entries:
        end = start + entry.size
        if end > total_bytes:
            raise ValueError(f"the entries add up to more than total_bytes ({total_bytes})")
        cuts = _kept_cuts(line.cuts_inside(start, end), start, end, min_piece) if splittable(entry) else []
        bounds = [start, *cuts, end]
        for piece, (first, stop) in enumerate(pairwise(bounds)):
            if line.shard_of(first + (stop - first) // 2) == shard_index:
                yield Unit(entry, piece, len(bounds) - 1, first - start, stop - start)
        start = end


class _Line:
    """The cuts i*S//N (0 < i < N) of a line of S bytes among N shards."""

    def __init__(self, total: int, shards: int) -> None:
        self.total = total
        self.shards = shards

    def cut(self, i: int) -> int:
        return i * self.total // self.shards

    def shard_of(self, at: int) -> int:
        """The shard whose range holds byte `at`: the number of cuts at or below it (an empty shard's
        cut coincides with the next one, which wins)."""
        if self.total == 0:
            return self.shards - 1
        # cut(i) <= at  <=>  i*S < (at+1)*N
        return min(self.shards - 1, ((at + 1) * self.shards - 1) // self.total)

    def cuts_inside(self, start: int, end: int) -> list[int]:
        """The distinct cuts strictly between start and end, in order."""
        found: list[int] = []
        i = self.shard_of(start) + 1
        while i < self.shards and self.cut(i) < end:
            if self.cut(i) > start and (not found or found[-1] != self.cut(i)):
                found.append(self.cut(i))
            i += 1
        return found


def _kept_cuts(cuts: list[int], start: int, end: int, min_piece: int) -> list[int]:
    """The cuts that leave every piece at least `min_piece` long, taken greedily from the start."""
    kept: list[int] = []
    for cut in cuts:
        if cut - (kept[-1] if kept else start) >= min_piece and end - cut >= min_piece:
            kept.append(cut)
    return kept


class Action(StrEnum):
    IMPORT = "import"  # from its checkpoint, if any
    SKIP = "skip"
    REIMPORT = "reimport"  # its checkpoints reset (a new run_id) first


def decide(mode: RerunMode, entry: ObjectEntry, prior: tuple[str | None, State] | None, *,
           same_run: bool = False) -> Action:
    """What a run does with a listed object, given the (etag, state) of its checkpoint, if any.

    `same_run`: the checkpoint was written by this run (a restarted worker), which never imports
    an object twice whatever the mode; an object overwritten since is the importer's to report.
    An ETag of None (unknown) counts as unchanged.
    """
    if prior is None:
        return Action.IMPORT
    etag, state = prior
    completed = state is State.COMPLETED
    if same_run:
        return Action.SKIP if completed else Action.IMPORT
    if mode is RerunMode.ALL:
        return Action.REIMPORT
    if etag not in (None, entry.etag):
        return Action.REIMPORT if mode is RerunMode.CHANGED or not completed else Action.SKIP
    return Action.SKIP if completed else Action.IMPORT

"""Where a read of a compressed object starts: at byte 0, or at a seek point at or below the resume offset.

    entered(read, size, compression, uri, point, index)

`read(byte)` streams the object from a compressed byte on (a ranged GET); the result is the
decompressed stream from `point.offset` on, and the points it passes go to `index`.

Shards of one compressed object (not done: shards.check_shardable refuses them) would need the
same points before any shard starts: gzip's only come from decoding everything before them, so a
planning pass would decode the object once (rapidgzip can do it in parallel), keep one point per
shard boundary with its window in that shard's checkpoint item, and give the planner decompressed
byte ranges and a reader that enters at the point and skips to the range (this module). Objects
made of many members or frames (bgzip, pigz --independent, pzstd, pbzip2) need no such pass: a
shard could find the first member start after its nominal compressed byte by its magic, checked
by decoding a little.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator

from csvkafka_worker import decompress, gzip_blocks
from csvkafka_worker.seekpoints import Kind, SeekIndex, SeekPoint
from csvkafka_worker.spec import Compression

_GZIP_MAGIC = b"\x1f\x8b"


def entered(read: Callable[[int], Generator[bytes, None, None]], size: int, compression: Compression, uri: str,
            point: SeekPoint, index: SeekIndex) -> Iterator[bytes]:
    if point.kind is Kind.DEFLATE:
        chunks = read(point.byte)
        first = next(chunks, b"")
        # A deflate block never starts with 0x1f at a byte boundary (block type 3 does not exist): a
        # point there is the header of the next gzip member.
        if point.bit % 8 or not first.startswith(_GZIP_MAGIC):
            return decompress.from_deflate_point(itertools.chain([first], chunks), point, uri, index)
        chunks.close()
        point = SeekPoint(Kind.STREAM, point.bit, point.offset)
    if compression is Compression.GZIP:
        return gzip_blocks.decompressed(read, size, point, uri, index)
    return decompress.decompressed(read(point.byte), compression, uri, at=point, index=index)


def description(compression: Compression, point: SeekPoint, offset: int, resuming: bool) -> str:
    """How a read that must reach decompressed `offset` starts, for the worker's start line."""
    if compression is Compression.NONE:
        return f"ranged GET at byte {offset}"
    if point.offset > 0:
        return (f"seek point at compressed byte {point.byte} (decompressed {point.offset}), "
                f"{offset - point.offset} bytes skipped")
    if not resuming:
        return "from the start"
    unit = {Compression.GZIP: "gzip seek point", Compression.ZSTD: "zstd frame start",
            Compression.BZ2: "bz2 stream start"}[compression]
    single = "" if compression is Compression.GZIP else f" (a single {compression} " \
        f"{'frame' if compression is Compression.ZSTD else 'stream'} cannot be entered in the middle)"
    return f"resume re-reads from byte 0: no {unit} kept before offset {offset}{single}"

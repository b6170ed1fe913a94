"""Seek points: places where a compressed object can be entered without reading what comes before.

Two kinds:
- `stream`: the start of a gzip member, a zstd frame or a bz2 stream (as `cat a.gz b.gz`, pigz
  --independent, bgzip, pbzip2 or zstd's seekable format make): a decoder starts there afresh.
- `deflate`: the start of a deflate block inside a gzip member, which depends on the 32 KiB of output
  before it (zlib's zran technique). It starts at a bit, not a byte; Python's zlib cannot be primed
  with bits (no inflatePrime), so `enter_deflate` puts in front of that byte a few empty deflate
  blocks whose length makes the block start where the bit says, and zlib reads on from there.

A checkpoint keeps the one point at or below its offset (`SeekIndex.best`), encoded in a line of
text with its window compressed: a resume fetches the object from that point's byte on.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from enum import StrEnum

WINDOW = 32 * 1024  # deflate's largest back-reference


class Kind(StrEnum):
    STREAM = "stream"
    DEFLATE = "deflate"


@dataclass(frozen=True)
class SeekPoint:
    kind: Kind
    bit: int  # where the point starts in the compressed object, in bits
    offset: int  # the decompressed offset the point starts at
    window: bytes = b""  # deflate: the output's last WINDOW bytes before `offset`

    @property
    def byte(self) -> int:
        return self.bit // 8

    def encode(self) -> str:
        window = base64.b64encode(zlib.compress(self.window, 9)).decode() if self.window else ""
        return f"v1:{self.kind.value}:{self.bit}:{self.offset}:{window}"

    @staticmethod
    def decode(text: str) -> SeekPoint | None:
        """The point of `encode`, or None for text it did not write (a resume then starts at byte 0)."""
        parts = text.split(":")
        if len(parts) != 5 or parts[0] != "v1" or parts[1] not in set(Kind):
            return None
        try:
            window = zlib.decompress(base64.b64decode(parts[4], validate=True)) if parts[4] else b""
            return SeekPoint(Kind(parts[1]), int(parts[2]), int(parts[3]), window)
        except (ValueError, zlib.error):
            return None


def described(text: str) -> str:
    """A checkpoint's seek point for people (`csvkafka checkpoint show`): where it is, not its window."""
    point = SeekPoint.decode(text)
    if point is None:
        return "unreadable: the next resume reads the object from byte 0"
    within = f" bit {point.bit % 8}," if point.bit % 8 else ""
    return (f"{point.kind} at compressed byte {point.byte},{within} decompressed offset {point.offset}"
            + (f" ({len(point.window)}-byte window)" if point.window else ""))


def _field(value: int, width: int) -> list[int]:
    """A deflate header field: its bits, least significant first."""
    return [(value >> i) & 1 for i in range(width)]


def _code(value: int, width: int) -> list[int]:
    """A Huffman code: its bits, most significant first."""
    return [(value >> i) & 1 for i in reversed(range(width))]


# An empty block with the fixed code: BFINAL 0, BTYPE 01, end-of-block (7 zero bits). 10 bits.
_EMPTY_FIXED = [0, *_field(1, 2), *_code(0, 7)]
# An empty block with a dynamic code whose only literal is end-of-block (1 bit long; zlib accepts a
# lone code of length 1). 95 bits: its odd length is what makes odd bit positions reachable.
_CODE_LENGTH_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)
_CODE_LENGTHS = {18: 1, 0: 2, 1: 2}  # canonical codes: 18 → 0, 0 → 10, 1 → 11
_EMPTY_DYNAMIC = [
    0, *_field(2, 2),  # BFINAL 0, BTYPE 10
    *_field(0, 5), *_field(0, 5), *_field(15, 4),  # 257 literal/length codes, 1 distance code, 19 code lengths
    *(bit for symbol in _CODE_LENGTH_ORDER for bit in _field(_CODE_LENGTHS.get(symbol, 0), 3)),
    *_code(0, 1), *_field(138 - 11, 7), *_code(0, 1), *_field(118 - 11, 7),  # literals 0-255: length 0
    *_code(3, 2),  # end-of-block: length 1
    *_code(2, 2),  # the distance code: length 0
    *_code(0, 1),  # the block's end-of-block
]


def empty_blocks(residue: int) -> list[int]:
    """Bits of empty deflate blocks whose count is `residue` modulo 8 (0 for none)."""
    if residue % 2 == 0:
        return _EMPTY_FIXED * (residue // 2)
    return _EMPTY_DYNAMIC + _EMPTY_FIXED * ((residue - len(_EMPTY_DYNAMIC)) % 8 // 2)


def _pack(bits: list[int]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        out[i // 8] |= bit << (i % 8)
    return bytes(out)


def enter_deflate(bit: int, data: bytes) -> bytes:
    """Raw deflate data that a fresh inflater reads as the block starting at bit `bit` % 8 of `data`.

    `data` starts at byte `bit // 8` of the compressed object. The bits before the block in its
    first byte are replaced by the tail of the empty blocks; whole bytes of them go in front.
    """
    residue = bit % 8
    if residue == 0 or not data:
        return data
    prefix = empty_blocks(residue)
    head, tail = prefix[:-residue], prefix[-residue:]
    low = sum(value << i for i, value in enumerate(tail))
    return _pack(head) + bytes([data[0] & (0xFF << residue) & 0xFF | low]) + data[1:]


class SeekIndex:
    """The seek points a read has passed, for checkpoints to pick from.

    A checkpoint at offset N takes the last point at or below N; points before that one can never
    be better for a later checkpoint (offsets only grow), so they are dropped. At most `keep`
    points wait (each deflate point holds its 32 KiB window): the oldest go first.
    """

    def __init__(self, keep: int = 64) -> None:
        self._keep = keep
        self._points: list[SeekPoint] = []

    def add(self, point: SeekPoint) -> None:
        if self._points and point.offset <= self._points[-1].offset:
            return
        self._points.append(point)
        del self._points[:-self._keep]

    def best(self, offset: int) -> SeekPoint | None:
        """The last point at or below `offset`, if one was seen since the last such call."""
        below = [i for i, point in enumerate(self._points) if point.offset <= offset]
        if not below:
            return None
        point = self._points[below[-1]]
        del self._points[:below[-1] + 1]
        return point

    def __len__(self) -> int:
        return len(self._points)


class History:
    """The last WINDOW bytes of a decompressed stream, to cut a deflate point's window from."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset  # the stream offset just after `tail`
        self._tail = b""

    def window_at(self, offset: int, chunk: bytes) -> bytes:
        """The WINDOW bytes before `offset`, which lies within `chunk` (the output that follows)."""
        cut = offset - self.offset
        return (self._tail + chunk[:cut])[-WINDOW:]

    def append(self, chunk: bytes) -> None:
        self._tail = (self._tail + chunk[-WINDOW:])[-WINDOW:]
        self.offset += len(chunk)

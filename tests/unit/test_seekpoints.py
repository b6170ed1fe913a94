"""Seek points against the reference: from any point a read records, the stream decodes to exactly
the suffix of the whole object's decompression (the zlib/zstandard/bz2 loop of decompress.py)."""

from __future__ import annotations

import bz2
import gzip
import random
import zlib
from collections.abc import Callable, Generator

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csvkafka_worker import decompress, entry, gzip_blocks
from csvkafka_worker.errors import BadInput
from csvkafka_worker.gzip_blocks import ForwardFile
from csvkafka_worker.seekpoints import WINDOW, Kind, SeekIndex, SeekPoint, described, empty_blocks, enter_deflate
from csvkafka_worker.spec import Compression

URI = "s3://bucket/data.csv"
# Small rapidgzip chunks, so that objects of a few hundred KiB have many deflate points.
CHUNK = 64 * 1024


def rows(seed: int, count: int) -> bytes:
    """CSV-like text that compresses about as real files do (repeats, and random digits)."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghij,") for _ in range(rng.randint(1, 12))) for _ in range(50)]
    return b"".join(b"%d,%s,%d\n" % (i, rng.choice(words), rng.getrandbits(rng.choice((8, 32, 64))))
                    for i in range(count))


def reader(blob: bytes, piece: int) -> Callable[[int], Generator[bytes, None, None]]:
    """A ranged GET over `blob` from any byte, in pieces of `piece` bytes."""
    def read(byte: int) -> Generator[bytes, None, None]:
        for at in range(byte, len(blob), piece):
            yield blob[at:at + piece]
    return read


def compress(compression: Compression, parts: list[bytes], level: int) -> bytes:
    """One member/frame/stream per part, concatenated."""
    one = {Compression.GZIP: lambda part: gzip.compress(part, min(level, 9)),
           Compression.ZSTD: lambda part: zstandard.ZstdCompressor(level=level).compress(part),
           Compression.BZ2: lambda part: bz2.compress(part, min(max(level, 1), 9))}[compression]
    return b"".join(one(part) for part in parts)


def reference(blob: bytes, compression: Compression) -> bytes:
    return b"".join(decompress.decompressed(iter([blob]), compression, URI))


def all_points(blob: bytes, compression: Compression, piece: int, poll: int = 1) -> tuple[bytes, list[SeekPoint]]:
    collected: list[SeekPoint] = []

    class Collect(SeekIndex):
        def add(self, point: SeekPoint) -> None:
            collected.append(point)

    read = reader(blob, piece)
    if compression is Compression.GZIP:
        out = b"".join(gzip_blocks.decompressed(read, len(blob), decompress.START, URI, Collect(), CHUNK, poll,
                                                piece))
    else:
        out = b"".join(entry.entered(read, len(blob), compression, URI, decompress.START, Collect()))
    return out, collected


def check_every_point(blob: bytes, compression: Compression, piece: int, poll: int = 1) -> list[SeekPoint]:
    whole = reference(blob, compression)
    out, points = all_points(blob, compression, piece, poll)
    assert out == whole
    for point in points:
        decoded = SeekPoint.decode(point.encode())
        assert decoded == point
        # A resume takes a point out of its checkpoint, and reads from its byte on.
        suffix = b"".join(entry.entered(reader(blob, piece), len(blob), compression, URI, decoded, SeekIndex()))
        assert suffix == whole[point.offset:], (point.kind, point.bit, point.offset)
    return points


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), sizes=st.lists(st.integers(0, 30_000), min_size=1, max_size=3),
       level=st.integers(1, 9), piece=st.sampled_from([1000, 4096, 65_536, 1 << 20]),
       poll=st.sampled_from([1, 100_000, 1 << 20]))
def test_gzip_every_point_yields_the_suffix(seed: int, sizes: list[int], level: int, piece: int, poll: int) -> None:
    # Asking for the map rarely (poll) leaves points out, never gives one a wrong window; `piece` is
    # also the size of the reads from rapidgzip.
    parts = [rows(seed + i, size) for i, size in enumerate(sizes)]
    points = check_every_point(compress(Compression.GZIP, parts, level), Compression.GZIP, piece, poll)
    assert all(point.kind is Kind.DEFLATE for point in points)


def test_a_big_gzip_member_has_a_point_every_chunk_with_its_window() -> None:
    data = rows(7, 120_000)
    blob = gzip.compress(data, 6)
    points = check_every_point(blob, Compression.GZIP, 1 << 20)
    assert len(points) >= len(blob) // CHUNK - 1
    assert {point.bit % 8 for point in points} != {0}, "points fall inside bytes, not only on byte boundaries"
    for point in points:
        assert point.window == data[max(0, point.offset - WINDOW):point.offset]


def test_points_passed_before_the_map_named_them_are_left_out() -> None:
    blob = gzip.compress(b"".join(rows(seed, 30_000) for seed in range(3)), 6)
    every = check_every_point(blob, Compression.GZIP, 4096, poll=1)
    # Asked for every 100 kB of output, the map names some points the output has passed already.
    sparse = check_every_point(blob, Compression.GZIP, 4096, poll=100_000)
    assert 0 < len(sparse) < len(every)


@settings(max_examples=25, deadline=None)
@given(compression=st.sampled_from([Compression.ZSTD, Compression.BZ2]), seed=st.integers(0, 2**32),
       sizes=st.lists(st.integers(0, 8_000), min_size=1, max_size=4), level=st.integers(1, 19),
       piece=st.sampled_from([100, 4096, 1 << 20]))
def test_frame_and_stream_starts_yield_the_suffix(compression: Compression, seed: int, sizes: list[int],
                                                   level: int, piece: int) -> None:
    parts = [rows(seed + i, size) for i, size in enumerate(sizes)]
    blob = compress(compression, parts, level)
    points = check_every_point(blob, compression, piece)
    # Every member after the first starts a point, at the end of the ones before it.
    ends = [sum(len(part) for part in parts[:i]) for i in range(1, len(parts) + 1)]
    assert [point.offset for point in points] == ends


def test_a_single_zstd_frame_has_no_point_inside() -> None:
    blob = zstandard.ZstdCompressor(level=3).compress(rows(1, 20_000))
    _, points = all_points(blob, Compression.ZSTD, 4096)
    assert [point.offset for point in points] == [len(reference(blob, Compression.ZSTD))]
    assert "single zstd frame cannot be entered" in entry.description(Compression.ZSTD, decompress.START, 500, True)


@pytest.mark.parametrize("residue", range(8))
def test_empty_blocks_reach_every_bit_position_and_decode_to_nothing(residue: int) -> None:
    bits = empty_blocks(residue)
    assert len(bits) % 8 == residue
    # The blocks, then a final empty stored block that starts at bit `residue` of a byte.
    stored = [1, 0, 0]  # BFINAL 1, BTYPE 00
    tail = bits + stored
    tail += [0] * (-len(tail) % 8)
    packed = bytes(sum(bit << i for i, bit in enumerate(tail[at:at + 8])) for at in range(0, len(tail), 8))
    decoder = zlib.decompressobj(wbits=-15)
    assert decoder.decompress(packed + b"\x00\x00\xff\xff") == b""
    assert decoder.eof


def test_enter_deflate_keeps_the_bits_after_the_point() -> None:
    data = bytes([0b1011_0110, 0xAA, 0x55])
    for bit in range(8):
        entered = enter_deflate(bit, data)
        assert entered[-2:] == data[1:]
        assert entered[-3] >> bit == data[0] >> bit


def test_a_corrupt_gzip_after_a_point_is_bad_input() -> None:
    blob = gzip.compress(rows(3, 40_000), 6)
    _, points = all_points(blob, Compression.GZIP, 1 << 20)
    point = points[0]
    broken = blob[:point.byte + 10] + bytes(200) + blob[point.byte + 210:]
    with pytest.raises(BadInput, match="not valid gzip data"):
        b"".join(entry.entered(reader(broken, 4096), len(broken), Compression.GZIP, URI, point, SeekIndex()))
    with pytest.raises(BadInput, match="truncated"):
        b"".join(entry.entered(reader(blob[:-100], 4096), len(blob) - 100, Compression.GZIP, URI, point,
                               SeekIndex()))


def test_encoded_points_fit_a_checkpoint_item_and_reject_foreign_text() -> None:
    point = SeekPoint(Kind.DEFLATE, 8_000_003, 123_456_789, rows(5, 2_000)[-WINDOW:])
    text = point.encode()
    assert len(text) < 40_000
    assert SeekPoint.decode(text) == point
    for foreign in ("", "v2:deflate:1:2:", "v1:deflate:x:2:", "v1:lzma:1:2:", "v1:deflate:1:2:!!!"):
        assert SeekPoint.decode(foreign) is None
    assert described(text) == f"deflate at compressed byte 1000000, bit 3, decompressed offset 123456789 " \
                              f"({WINDOW}-byte window)"
    assert described(SeekPoint(Kind.STREAM, 800, 5000).encode()) == "stream at compressed byte 100, decompressed " \
                                                                    "offset 5000"
    assert described("v9:?") == "unreadable: the next resume reads the object from byte 0"


def test_the_index_gives_the_last_point_at_or_below_and_forgets_older_ones() -> None:
    index = SeekIndex(keep=3)
    for offset in (10, 20, 20, 30, 40, 50):
        index.add(SeekPoint(Kind.STREAM, 8 * offset, offset))
    assert len(index) == 3  # 30, 40, 50: the oldest went first
    assert index.best(25) is None
    assert index.best(45) == SeekPoint(Kind.STREAM, 320, 40)
    assert index.best(45) is None  # nothing newer since
    assert index.best(1000) == SeekPoint(Kind.STREAM, 400, 50)
    assert len(index) == 0


def test_forward_file_rereads_what_it_keeps_and_opens_a_new_stream_before_that() -> None:
    blob = bytes(range(256)) * 64
    opened: list[int] = []

    def read(byte: int) -> Generator[bytes, None, None]:
        opened.append(byte)
        yield from reader(blob, 1000)(byte)

    file = ForwardFile(read, len(blob), keep=2048)
    assert file.seek(0, 2) == len(blob) and file.seek(0) == 0
    assert file.read(5000) == blob[:5000]
    file.seek(3000)
    assert file.read(100) == blob[3000:3100]
    assert opened == [0]
    file.seek(100)
    assert file.read(10) == blob[100:110]
    assert opened == [0, 100] and file.streams == 2
    file.seek(len(blob) - 10)
    assert file.read(100) == blob[-10:]
    assert file.read(100) == b""

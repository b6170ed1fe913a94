"""gzip read with rapidgzip, which reports where its deflate blocks start: the object's seek points.

Python's zlib tells nothing of block boundaries; rapidgzip (a maintained C++ decoder) keeps a map
of them, about one every `chunk_bytes` of output, as compressed bit offset → decompressed offset.
Each one the output passes becomes a deflate seek point, its window cut from the output. rapidgzip
reads a file object: `ForwardFile` serves it a ranged GET's forward stream. Its memory grows
with `chunk_bytes` (measured on a 1 GB CSV gzipped: peak RSS 141 MB at 1 MiB, 342 MB at 4 MiB; zlib's
loop 46 MB); its CPU is zlib's within 15 % (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Generator, Iterator

import rapidgzip

from csvkafka_worker.decompress import DECODER_ERRORS, corrupt_as_bad_input
from csvkafka_worker.seekpoints import History, Kind, SeekIndex, SeekPoint
from csvkafka_worker.spec import Compression

# rapidgzip's chunk: about the distance between two seek points, in decompressed bytes.
CHUNK_BYTES = 1024 * 1024
READ_BYTES = 1024 * 1024
# The map of block starts is copied whole when asked for, so it is asked for less often as it grows:
# after 1/64 of the output so far (a resume re-reads at most that share), at least 1 MiB, at most 64 MiB.
POLL_BYTES = 1024 * 1024
POLL_MAX = 64 * 1024 * 1024
POLL_SHARE = 64


Read = Callable[[int], Generator[bytes, None, None]]  # the object's bytes from a position on (a ranged GET)


class ForwardFile(io.RawIOBase):
    """A read-only file of `size` bytes over the forward stream `read(0)`.

    Reads mostly go forward; the last `keep` bytes stay readable again, and a read before them (the
    decoder going back further, as its threads may) starts a new stream there. A seek only moves the
    position, so asking for the size (seek to the end, tell) costs nothing. Reads come from
    rapidgzip's threads: one at a time.
    """

    def __init__(self, read: Read, size: int, keep: int = 4 * CHUNK_BYTES) -> None:
        super().__init__()
        self._read = read
        self._chunks = read(0)
        self._size = size
        self._keep = keep
        self._position = 0
        self._buffer = bytearray()
        self._buffer_start = 0
        self._lock = threading.Lock()
        self.streams = 1  # how many streams were opened: 1 unless the decoder went back

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._lock:
            if self._position < self._buffer_start:
                self._chunks.close()
                self._chunks = self._read(self._position)
                self.streams += 1
                self._buffer, self._buffer_start = bytearray(), self._position
            want = min(len(buffer), self._size - self._position)
            while self._buffer_start + len(self._buffer) < self._position + want:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._buffer += chunk
                self._trim(self._position)
            start = self._position - self._buffer_start
            data = self._buffer[start:start + want]
            buffer[:len(data)] = data
            self._position += len(data)
            self._trim(self._position)
            return len(data)

    def _trim(self, position: int) -> None:
        excess = min(position - self._keep - self._buffer_start, len(self._buffer))
        if excess > 0:
            del self._buffer[:excess]
            self._buffer_start += excess

    def close(self) -> None:
        self._chunks.close()
        super().close()


def decompressed(read: Read, size: int, at: SeekPoint, uri: str, index: SeekIndex,
                 chunk_bytes: int = CHUNK_BYTES, poll_bytes: int = POLL_BYTES, read_bytes: int = READ_BYTES
                 ) -> Iterator[bytes]:
    """The decompressed stream of a gzip object (`size` bytes, read by `read`) from the member start `at`;
    the deflate blocks it passes go to `index`.

    The map is asked for after `poll_bytes` of output or more (see POLL_SHARE); the points between
    the output and the decoder's frontier then become seek points as the output passes them (one
    passed before it was known has no window left to cut, and is left out).
    """
    history = History(at.offset)
    pending: list[tuple[int, int]] = []  # (decompressed offset, compressed bit), not yet reached
    added = at.offset  # the decompressed offset of the last point added
    polled = at.offset - poll_bytes  # the output's end when the map was last asked for
    file = ForwardFile(lambda position: read(at.byte + position), size - at.byte, keep=4 * chunk_bytes)
    with contextlib.closing(file), \
            corrupt_as_bad_input(Compression.GZIP, uri, (*DECODER_ERRORS, ValueError, RuntimeError)), \
            rapidgzip.RapidgzipFile(file, parallelization=1, chunk_size=chunk_bytes) as gz:
        while chunk := gz.read(read_bytes):
            end = history.offset + len(chunk)
            if end - polled >= min(max(poll_bytes, (end - at.offset) // POLL_SHARE), POLL_MAX):
                polled = end
                pending = [(at.offset + offset, at.bit + bit)
                           for bit, offset in sorted(gz.available_block_offsets().items())
                           if at.offset + offset > added and at.offset + offset >= history.offset
                           and bit < 8 * size]
            while pending and pending[0][0] <= end:
                offset, bit = pending.pop(0)
                index.add(SeekPoint(Kind.DEFLATE, bit, offset, history.window_at(offset, chunk)))
                added = offset
            history.append(chunk)
            yield chunk

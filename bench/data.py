"""Deterministic benchmark CSV: 10 columns of mixed text and numbers, ~120 bytes a row.

The same `rows` and `seed` always give the same bytes. About a third of the names are quoted
because they hold a comma, one comment in 20 holds doubled quotes, and one row in 1,000 has a
newline inside a quoted field, so a line-based reader and a CSV reader disagree on those rows.

Beside each file a small JSON index records its size, row and line counts, and the byte offset of
every 10,000th row, so that a checkpoint can be written by hand on a record boundary.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

HEADER = b"id,ref,name,email,city,amount,quantity,ordered_on,status,comment\n"
INDEX_EVERY = 10_000
BYTES_PER_ROW = 120  # close to the measured average; used to turn a target size into a row count

_FIRST = ("Anna", "Bjorn", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko", "Lars",
          "Maya", "Nils", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara")
_LAST = ("Smith", "Okafor", "Garcia", "Muller", "Rossi", "Tanaka", "Kowalski", "Nguyen", "Dubois", "Silva",
         "Andersson", "Haddad", "OBrien", "Novak", "Ivanova", "Fischer", "Moreau", "Jensen", "Costa", "Sato")
_CITIES = ("Amsterdam", "Berlin", "Cairo", "Dublin", "Edinburgh", "Frankfurt", "Geneva", "Helsinki", "Istanbul",
           "Jakarta", "Kyoto", "Lisbon", "Madrid", "Nairobi", "Oslo", "Porto", "Quito", "Reykjavik", "Seoul",
           "Toronto", "Utrecht", "Valencia", "Warsaw", "Zurich")
_STATUS = ("new", "paid", "shipped", "delivered", "returned", "cancelled")
_PLAIN = ("standard delivery", "leave at the door", "gift wrap please", "call before arrival",
          "second attempt", "no comment", "fragile items inside", "customer prefers mornings")
_QUOTED = ('"box says ""this side up"", handle with care"', '"left with neighbour, flat 2"',
           '"label reads ""FRAGILE"" twice"', '"price match, see ticket 4411"')
_MULTILINE = ('"first line of the note\nsecond line, after a break"', '"address line 1\naddress line 2"')


@dataclass(frozen=True)
class DataFile:
    """A generated CSV file and what is known about it without reading it again."""

    path: Path
    rows: int  # data rows (CSV records after the header)
    lines: int  # newline-terminated physical lines, header included
    size: int
    offsets: list[int]  # offsets[i]: byte offset where row i * INDEX_EVERY + 1 starts

    def boundary_near(self, fraction: float) -> tuple[int, int]:
        """(rows before, byte offset) of an indexed record boundary at about `fraction` of the file."""
        target = fraction * self.size
        i = min(range(len(self.offsets)), key=lambda j: abs(self.offsets[j] - target))
        return i * INDEX_EVERY, self.offsets[i]


def rows_for_bytes(size: int) -> int:
    return max(1, size // BYTES_PER_ROW)


def ensure(directory: Path, rows: int, seed: int = 1) -> DataFile:
    """The file for (rows, seed) under `directory`, generated on first use."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"rows-{rows}-seed-{seed}.csv"
    index_path = path.with_suffix(".json")
    if path.exists() and index_path.exists():
        meta = json.loads(index_path.read_text())
        if meta.get("size") == path.stat().st_size and meta.get("index_every") == INDEX_EVERY:
            return DataFile(path=path, rows=meta["rows"], lines=meta["lines"], size=meta["size"],
                            offsets=meta["offsets"])
    data = generate(path, rows, seed)
    meta = {k: v for k, v in asdict(data).items() if k != "path"}
    index_path.write_text(json.dumps({**meta, "index_every": INDEX_EVERY}))
    return data


def generate(path: Path, rows: int, seed: int) -> DataFile:
    rng = random.Random(seed)
    offsets: list[int] = []
    size = 0
    extra_lines = 0
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        out.write(HEADER)
        size += len(HEADER)
        row = 1
        while row <= rows:
            count = min(10_000, rows - row + 1)
            chunk: list[bytes] = []
            for i in range(row, row + count):
                if (i - 1) % INDEX_EVERY == 0:
                    offsets.append(size + sum(map(len, chunk)))
                line = _row(rng, i)
                extra_lines += line.count(b"\n") - 1
                chunk.append(line)
            block = b"".join(chunk)
            out.write(block)
            size += len(block)
            row += count
    partial.rename(path)
    return DataFile(path=path, rows=rows, lines=rows + 1 + extra_lines, size=size, offsets=offsets)


def _row(rng: random.Random, i: int) -> bytes:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    name = f'"{last}, {first}"' if rng.random() < 0.33 else f"{first} {last}"
    pick = rng.random()
    if pick < 0.001:
        comment = rng.choice(_MULTILINE)
    elif pick < 0.05:
        comment = rng.choice(_QUOTED)
    else:
        comment = rng.choice(_PLAIN)
    text = (f"{i},{rng.getrandbits(64):016x},{name},{first.lower()}.{last.lower()}{i % 97}@example.com,"
            f"{rng.choice(_CITIES)},{rng.randrange(100, 10_000_000) / 100:.2f},{rng.randrange(1, 500)},"
            f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d},{rng.choice(_STATUS)},{comment}\n")
    return text.encode()


# -- an unterminated quote ----------------------------------------------------------------------------

OPEN_QUOTE_LINE = b'"never closed, this quote opens a field that no later quote closes\n'


@dataclass(frozen=True)
class OpenQuoteFile:
    """An object whose row `bad_row` opens a quoted field that never closes, and a clean object of the
    rows before it (the same bytes up to `bad_offset`: what a run that stops there costs anyway)."""

    data: DataFile
    bad_row: int
    bad_offset: int  # where the bad row's record starts
    clean: DataFile  # the rows before the bad one alone

    @property
    def past_bad(self) -> int:
        """Bytes from the bad row's start to the end of the object."""
        return self.data.size - self.bad_offset


def ensure_open_quote(directory: Path, rows: int = 200_000, bad_row: int = 1000, seed: int = 1) -> OpenQuoteFile:
    """The bench data of (rows, seed), but row `bad_row` replaced by `{bad_row},"never closed, ...`, generated
    on first use.

    The rows after it are written without their `"` characters: the worker reads CSV as the csv module
    does (strict off), so the next `"` would close the open field, the field would go on unquoted, and
    the bad row would swallow the lines up to the next line break after it as one record (with this
    data, rows 1000 to 1002 as one 10-field row, sent without an error). Without quotes after it, the
    field stays open to the end of the object, the case measured here.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"open-quote-rows-{rows}-row-{bad_row}-seed-{seed}.csv"
    clean_path = path.with_name(f"open-quote-rows-{bad_row - 1}-seed-{seed}.csv")
    index_path = path.with_suffix(".json")
    if path.exists() and clean_path.exists() and index_path.exists():
        meta = json.loads(index_path.read_text())
        if meta.get("size") == path.stat().st_size and meta.get("clean", {}).get("size") == clean_path.stat().st_size:
            return OpenQuoteFile(DataFile(path=path, **meta["data"]), bad_row, meta["bad_offset"],
                                 DataFile(path=clean_path, **meta["clean"]))
    found = _generate_open_quote(path, clean_path, rows, bad_row, seed)
    index_path.write_text(json.dumps({
        "size": found.data.size, "bad_offset": found.bad_offset,
        "data": {k: v for k, v in asdict(found.data).items() if k != "path"},
        "clean": {k: v for k, v in asdict(found.clean).items() if k != "path"}}))
    return found


def _generate_open_quote(path: Path, clean_path: Path, rows: int, bad_row: int, seed: int) -> OpenQuoteFile:
    if not 1 <= bad_row <= rows:
        raise ValueError(f"bad row {bad_row} not in 1..{rows}")
    rng = random.Random(seed)
    offsets: list[int] = []
    size = len(HEADER)
    extra_lines = 0
    bad_offset = clean_lines = 0
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        out.write(HEADER)
        for i in range(1, rows + 1):
            if (i - 1) % INDEX_EVERY == 0:
                offsets.append(size)
            line = _row(rng, i)  # drawn for every row, so the rows before the bad one are the bench data's
            if i == bad_row:
                bad_offset = size
                clean_lines = i + extra_lines  # the header and rows 1..i-1
                line = f"{i},".encode() + OPEN_QUOTE_LINE
            elif i > bad_row:
                line = line.replace(b'"', b"")
            extra_lines += line.count(b"\n") - 1
            out.write(line)
            size += len(line)
    with partial.open("rb") as whole, clean_path.with_suffix(".partial").open("wb") as out:
        out.write(whole.read(bad_offset))
    clean_path.with_suffix(".partial").rename(clean_path)
    partial.rename(path)
    # Physical lines of the whole object: everything from the bad row on is one record, but still lines.
    data = DataFile(path=path, rows=rows, lines=rows + 1 + extra_lines, size=size, offsets=offsets)
    clean = DataFile(path=clean_path, rows=bad_row - 1, lines=clean_lines, size=bad_offset,
                     offsets=[o for o in offsets if o < bad_offset])
    return OpenQuoteFile(data, bad_row, bad_offset, clean)

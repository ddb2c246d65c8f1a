"""Rows of an emissions CSV that may hold several blocks, each read by its own header, streamed.

A file can hold more than one schema: CodeCarbon 2.x appending to our file (or the other way
round) writes its own header line and rows with its own, shorter, columns. Reading those rows
with the first header would put each value under another column's name, so every line that
names all the required columns starts a new block, and the rows after it are read with it.
A row whose field count matches neither its block's header nor another header of the file is
skipped and counted, never guessed at: `Skipped` says which lines and why.

The file is read a line at a time and no row is kept (issue 33: a million rows read in seconds
and a few MB). Most lines are cut with `str.split` up to the last column the caller asks for
(`Block.cut`), which is several times faster than the `csv` module; a line the quick cut cannot
read exactly (more than one quoted cell, an escaped quote, a cell over several lines) goes
through `csv`, so every line reads as `csv` would read it.
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

# Line numbers a warning names before it says "and N more".
SHOWN_LINES = 5


@dataclass
class Skipped:
    """Rows of one file left out: their line numbers and field counts, and the headers'."""

    path: str
    lines: list[tuple[int, int]] = field(default_factory=list)
    header_fields: set[int] = field(default_factory=set)

    def message(self) -> str:
        """One line: how many rows, why, and the first few line numbers."""
        shown = ", ".join(f"{line} ({count} fields)" for line, count in self.lines[:SHOWN_LINES])
        more = len(self.lines) - SHOWN_LINES
        expected = " or ".join(str(n) for n in sorted(self.header_fields))
        return (
            f"{self.path!r}: skipped {len(self.lines)} row{'s' if len(self.lines) != 1 else ''} "
            f"whose field count matches no header of the file ({expected} fields): "
            f"line{'s' if len(self.lines) != 1 else ''} {shown}"
            + (f" and {more} more" if more > 0 else "")
        )


def is_header(fields: list[str], required: tuple[str, ...]) -> bool:
    """A header line: it names every required column (no data row does)."""
    names = set(fields)
    return all(column in names for column in required)


@dataclass
class Block:
    """One header of a file: its columns, where each is, and how far a quick cut must go."""

    header: list[str]
    at: dict[str, int]
    # The wanted columns of a row's head, in order (b"" for one this header lacks).
    wanted: Callable[[list[bytes]], tuple[bytes, ...]]
    # The fields a row's head holds exactly: up to the last column the caller wants (then one
    # empty cell that the columns this header lacks point at).
    cut: int
    # The wanted columns' indexes, sorted: cells before a quoted one that no one wants are
    # left unsplit (`_cut`).
    indexes: list[int]

    @classmethod
    def of(cls, header: list[str], wanted: tuple[str, ...]) -> Block:
        at = {name: i for i, name in enumerate(header)}
        cut = 1 + max((at[n] for n in wanted if n in at), default=0)
        where = [at.get(n, -1) for n in wanted]
        if len(where) < 2:
            where += [-1] * (2 - len(where))  # itemgetter of one index gives a bare cell
        indexes = sorted(i for i in where if i >= 0)
        return cls(header, at, itemgetter(*where), cut, indexes)

    def cells(self, record: bytes) -> dict[str, str]:
        """Every column of `record` by name (read with `csv`)."""
        return dict(zip(self.header, _parse(record), strict=True))


def _cut(line: bytes, quotes: int, block: Block) -> tuple[list[bytes], int] | None:
    """The first `block.cut` fields of a one-line record of `quotes` quote characters (and
    maybe one more piece, the rest of the line), and its field count; None when only `csv` can
    read it exactly. Cells between the wanted ones before a quoted cell read as b""."""
    n = block.cut
    if quotes == 0:
        return line.split(b",", n), line.count(b",") + 1
    if quotes != 2:
        return None
    pre, inside, post = line.split(b'"')
    if (pre and pre[-1:] != b",") or (post and post[:1] != b","):
        return None  # a quote inside a cell, not around it
    at = pre.count(b",")  # the quoted cell's index
    count = at + post.count(b",") + 1
    if n <= at:
        return pre.split(b",", n), count
    # Split only up to the last wanted cell before the quoted one.
    before = bisect_left(block.indexes, at)
    upto = block.indexes[before - 1] + 1 if before else 0
    head = pre.split(b",", upto)[:upto]
    head += [b""] * (at - upto)
    head.append(inside)
    head += post.split(b",", n - at)[1:]
    return head, count


def _parse(record: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(record.decode("utf-8"), newline="")), [])


# One data row: its block, its first fields as bytes (`Block.cut` of them, then b""; the
# wanted ones exact, which `block.wanted(head)` picks), the record (`Block.cells` reads it
# whole) and its line. Bytes, not text: decoding every line of a million-row file costs more
# than the rest of reading it, and `float()` reads bytes.
Row = tuple[Block, list[bytes], bytes, int]


def _records(handle: Iterator[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """Each record with the number of its first line and its count of quote characters:
    lines joined while a quoted cell is open."""
    number = 0
    for line in handle:
        number += 1
        quotes = line.count(b'"')
        if quotes % 2:
            start, pending = number, [line]
            for more in handle:
                number += 1
                pending.append(more)
                quotes += more.count(b'"')
                if quotes % 2 == 0:
                    break
            yield start, quotes, b"".join(pending).rstrip(b"\r\n")
        else:
            yield number, quotes, line.rstrip(b"\r\n")


def rows(
    path: Path, required: tuple[str, ...], skipped: Skipped, wanted: tuple[str, ...] = ()
) -> Iterator[Row]:
    """Each data row of `path`, read by its block's header, one at a time.

    The first line must be a header (a ValueError naming the missing columns otherwise). Rows
    that fit no header go to `skipped`; blank lines are not rows. `wanted` names the columns
    the caller reads from the row's head; any column is in `Block.cells(record)`.
    """
    with path.open("rb") as handle:
        records = _records(handle)
        first = next(records, None)
        header = _parse(first[2]) if first else []
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(
                f"{str(path)!r} is not a carbonmeter or CodeCarbon emissions CSV: no "
                f"{', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
            )
        block = Block.of(header, wanted)
        # Headers of this file by field count: a row that fits an earlier block's header (its
        # writer appended after the other's block) is still read by its own columns.
        blocks = {len(header): block}
        width = len(header)
        for number, quotes, record in records:
            if not record:
                continue
            # Cheap tests first: a data row starts with its timestamp's digits and names no
            # column (a full read decides).
            if not record[:1].isdigit() and b"energy_consumed" in record and b"run_id" in record:
                fields = _parse(record)
                if is_header(fields, required):
                    block = Block.of(fields, wanted)
                    width = len(fields)
                    blocks[width] = block
                    continue
            quick = _cut(record, quotes, block)
            count = len(_parse(record)) if quick is None else quick[1]
            fits = block if count == width else blocks.get(count)
            if fits is None:
                skipped.lines.append((number, count))
                skipped.header_fields = set(blocks)
                continue
            if quick is None or fits is not block:
                head = [cell.encode() for cell in _parse(record)[: fits.cut]]
            else:
                head = quick[0]
            head.append(b"")
            yield fits, head, record, number

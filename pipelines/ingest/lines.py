"""Physical line numbers for CSV records, as an editor shows them.

DuckDB's CSV reader numbers records, not lines: it skips empty lines, and a quoted field
may hold line breaks, so a record can start several lines after the one before it. An
auditor opening `<file>:<line>` must land on the line that holds the row, so each record's
first physical line is worked out here from two facts:

- the empty lines of the file, from one pass over its bytes (`scan`); line breaks are LF,
  CRLF or a lone CR, as editors count them;
- how many line breaks each record's fields hold, which DuckDB reports (the loader counts
  them only when the file has a quote character at all).

A record can never start on an empty line (DuckDB skips those), and it covers one line
plus the breaks inside its fields; walking both lists gives every record's first line as
a few breakpoints (record number from which `line = record + first_line + shift`). A
plain file (no quote, no empty line) has one record per line and no breakpoint. When the
walk does not end on the file's last line, DuckDB and the scan disagree on how the file
splits into lines, and the file is rejected rather than given wrong line numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHUNK_BYTES = 16 * 1024 * 1024
LF, CR = 10, 13


@dataclass(frozen=True)
class FileShape:
    """What the line walk needs to know about a CSV file's bytes."""

    has_quotes: bool
    empty_lines: tuple[int, ...]  # physical line numbers (1-based) holding no character at all
    last_content_line: int  # the last line holding a character (0 for an empty file)
    unterminated: bool = False  # the last line holds characters but no line break (a cut file)
    odd_quotes: bool = False  # an odd number of quote characters: a quoted field may never close

    def data_lines(self, first_line: int) -> int:
        """The lines holding something from `first_line` on: a file's rows as an editor counts
        them, whatever a reader makes of its quotes."""
        return max(self.last_content_line - first_line + 1
                   - sum(1 for e in self.empty_lines if first_line <= e <= self.last_content_line), 0)


@dataclass(frozen=True)
class LineMap:
    """Record k (0-based, after the header) starts on line k + first_line + shift, where
    shift is that of the last breakpoint at or before k."""

    first_line: int
    breakpoints: tuple[tuple[int, int], ...] = field(default=())

    def line_of(self, record: int) -> int:
        """The first physical line of record `record` (0-based)."""
        shift = 0
        for from_record, s in self.breakpoints:
            if from_record > record:
                break
            shift = s
        return record + self.first_line + shift


class LinesDisagree(ValueError):
    """DuckDB's records and the file's physical lines cannot be lined up."""


def _chunks(path: Path):
    """The file in chunks that never end inside a run of line-break bytes, so an empty
    line (two breaks in a row) always lies within one chunk."""
    with open(path, "rb") as fh:
        pending = b""
        while True:
            block = fh.read(CHUNK_BYTES)
            data = pending + block
            if not block:
                if data:
                    yield data
                return
            cut = len(data)
            while cut > 0 and data[cut - 1] in (LF, CR):
                cut -= 1
            if cut == 0:  # a chunk of nothing but line breaks: keep reading
                pending = data
                continue
            pending = data[cut:]
            yield data[:cut]


def _breaks(chunk: bytes, has_cr: bool = True) -> int:
    return chunk.count(b"\n") + (chunk.count(b"\r") - chunk.count(b"\r\n") if has_cr else 0)


def _empty_lines_in(chunk: bytes, breaks_before: int) -> list[int]:
    """Line numbers of the empty lines that start inside this chunk: a line break directly
    followed by the start of another one (LF, or CR not part of the first break)."""
    a = np.frombuffer(chunk, dtype=np.uint8)
    is_cr = a == CR
    is_lf = a == LF
    next_byte = np.empty_like(a)
    next_byte[:-1], next_byte[-1] = a[1:], 0
    # A break ends at an LF, or at a CR that no LF follows (a CR before an LF is half of CRLF).
    ends = np.flatnonzero(is_lf | (is_cr & (next_byte != LF)))
    followed_by_break = np.isin(next_byte[ends], (LF, CR))
    # Break i (0-based in the file) ends line i + 1; the line after it is line i + 2.
    return (np.flatnonzero(followed_by_break) + breaks_before + 2).tolist()


@dataclass(frozen=True)
class LineCount:
    """A file's lines counted in one cheap pass, for files whose breaks are all LF."""

    lines: int  # physical lines, the last one counted whether or not a break ends it
    unterminated: bool  # the last line holds characters but no line break
    spaceless_ascii: bool = False  # no space and no byte above ASCII: no cell can start or end with a space


def count_lines(path: Path) -> LineCount | None:
    """The file's lines when every break is an LF (no CR byte anywhere), else None. If the
    records DuckDB read fill exactly the lines after the header, no record spans two lines
    and no line is empty, so the records are the lines and `scan` is not needed: it looks
    for empty lines and costs several times this (0.7 s against 0.2 s at 10^7 rows). numpy counts
    the breaks: `bytes.count` took 2.8 s at 10^8 rows, this 1.2 s. The same pass notes whether
    the file holds a space or a non-ASCII byte (what trim could drop): most exports hold
    neither, and then the loader trims no cell (load.trimmed)."""
    breaks, tail, spaceless_ascii = 0, b"", True
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
            if b"\r" in block:
                return None
            breaks += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == LF))
            spaceless_ascii = spaceless_ascii and block.isascii() and b" " not in block
            tail = block[-1:]
    if not tail:
        return None
    unterminated = tail != b"\n"
    return LineCount(breaks + unterminated, unterminated, spaceless_ascii)


def scan(path: Path) -> FileShape:
    """One pass over the bytes: quote characters, empty lines and the last line with content."""
    has_quotes, quotes, empty, breaks, size, tail = False, 0, [], 0, 0, b""
    for i, chunk in enumerate(_chunks(path)):
        if i == 0 and chunk[:1] in (b"\n", b"\r"):
            empty.append(1)
        quotes += chunk.count(b'"')
        has_quotes = quotes > 0
        has_cr = b"\r" in chunk  # most files have none: half the passes over the chunk are for CRs
        if b"\n\n" in chunk or has_cr and (b"\n\r" in chunk or b"\r\r" in chunk):
            empty.extend(_empty_lines_in(chunk, breaks))
        breaks += _breaks(chunk, has_cr)
        size += len(chunk)
        tail = chunk[-1:]
    if size == 0:
        return FileShape(False, (), 0)
    # The line a final break ends, or the unterminated last line; empty lines before it
    # (trailing blank lines) hold nothing either.
    last = breaks if tail in (b"\n", b"\r") else breaks + 1
    empty_set = set(empty)
    while last in empty_set:
        last -= 1
    return FileShape(has_quotes, tuple(empty), last, unterminated=tail not in (b"\n", b"\r"),
                     odd_quotes=quotes % 2 == 1)


def walk(records: int, first_line: int, shape: FileShape, inner_breaks: dict[int, int]) -> LineMap:
    """Each record's first physical line, from the empty lines and the line breaks inside
    each record's fields (`inner_breaks`: record number -> breaks, only where > 0)."""
    empties = iter(e for e in shape.empty_lines if e >= first_line)
    next_empty = next(empties, math.inf)
    multi_line = sorted(inner_breaks)
    m = 0
    line, k, shift, breakpoints = first_line, 0, 0, []
    while k < records:
        while next_empty < line:  # an empty line inside a multi-line record
            next_empty = next(empties, math.inf)
        if next_empty == line:  # an empty line between records: DuckDB skipped it
            line += 1
            next_empty = next(empties, math.inf)
            continue
        if line - first_line - k != shift:
            shift = line - first_line - k
            breakpoints.append((k, shift))
        next_multi = multi_line[m] if m < len(multi_line) else math.inf
        if k == next_multi:
            line += 1 + inner_breaks[k]
            k, m = k + 1, m + 1
            continue
        step = int(min(next_multi - k, next_empty - line, records - k))
        k, line = k + step, line + step
    if line - 1 != shape.last_content_line:
        raise LinesDisagree(f"{records} records end on line {line - 1}, but the file's last line with "
                            f"content is {shape.last_content_line}")
    return LineMap(first_line, tuple(breakpoints))

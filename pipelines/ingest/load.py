"""Loading export files into the warehouse: read as text, check every row, quarantine, merge.

Plain functions over a DuckDB connection; the Dagster assets in `assets.py` call them.
Every raw row ends accepted, quarantined or counted as an exact duplicate, and the
ledger `ingest.applied_files` records the three counts per file for reconciliation.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import os
import re
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb

from pipelines.ingest.contract import (
    EXTRAS_COLUMN,
    OVERFLOW_COLUMN,
    Contract,
    Extra,
    Table,
    derived_columns,
    identifier_flag,
    numbered,
    row_checks,
    typed_ref,
)
from pipelines.ingest.exports import (
    READY_MARKER,
    ExportFile,
    column_label,
    complete_exports,
    export_files,
    unfit_exports,
)
from pipelines.ingest.lines import FileShape, LineCount, LineMap, LinesDisagree, count_lines, scan, walk
from pipelines.migrations import migrate
from pipelines.settings import size_in_bytes
from pipelines.sqlfiles import has_table, quote_ident, quote_literal, run_sql, sql

PROVENANCE_COLUMNS = "export_id VARCHAR, source_file VARCHAR, line_number BIGINT"


class FileRejected(Exception):
    """A whole file breaks the contract; `rule` and `detail` go to quarantine (no values)."""

    def __init__(self, rule: str, detail: str, column: str = "", rows: int | None = None):
        super().__init__(detail)
        self.rule, self.detail, self.column, self.rows = rule, detail, column, rows


@dataclass
class FileResult:
    export_file: ExportFile
    rows_read: int
    failed: int = 0
    duplicates: int = 0
    staged: int = 0
    rejected: bool = False


# --- warehouse bookkeeping ----------------------------------------------------------


def contract_hash(contract: Contract) -> str:
    """The contract a warehouse is loaded under: its file, and what it takes from the instrument
    registry (each code and range), so a changed range reloads the warehouse from the exports."""
    ranges = "".join(f"\n# instrument {i.name}: {i.minimum!r}..{i.maximum!r}" for i in contract.instruments.values())
    return hashlib.sha256((contract.text + ranges).encode()).hexdigest()[:16]


def ensure_warehouse(con, contract: Contract) -> None:
    """Create what is missing (no data changes): the migrations not applied yet
    (pipelines/migrations.py) and the contract's core tables. A warehouse from before per-table
    application counts its applied exports as applied to every table."""
    migrate(con)
    for table in contract.tables.values():
        cols = ", ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in table.columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS core.{table.name} ({cols}, {PROVENANCE_COLUMNS})")
    if not con.execute("SELECT count(*) FROM ingest.applied_exports").fetchall()[0][0]:
        con.execute("INSERT INTO ingest.applied_exports SELECT e.export_id, t.table_name, e.applied_at "
                    "FROM (SELECT export_id, max(applied_at) AS applied_at FROM ingest.applied_files "
                    "GROUP BY export_id) e, (SELECT unnest(?) AS table_name) t", [list(contract.tables)])


def reset_warehouse(con, contract: Contract) -> None:
    """Forget everything loaded, so every complete export is applied again from scratch."""
    for table in contract.tables.values():
        con.execute(f"DROP TABLE IF EXISTS core.{table.name}")  # the contract's: made again as it says now
    ensure_warehouse(con, contract)
    for name in ("applied_files", "applied_exports", "quarantine", "extra_columns", "export_findings", "state"):
        con.execute(f"DELETE FROM ingest.{name}")  # the migrations' tables: emptied, kept
    con.execute("INSERT INTO ingest.state VALUES (?)", [contract_hash(contract)])


class InputsMissing(Exception):
    """Applying the raw folder as it is now would publish less than is published: the run
    stops before it changes anything. The message names what is missing and what to do."""


@dataclass(frozen=True)
class IngestPlan:
    """Which exports this run applies, and whether the warehouse starts from scratch."""

    exports: list[Path]
    pending: list[Path]
    rebuild_reason: str | None
    dropped: tuple[str, ...] = ()  # what an explicit rebuild let go (vanished or changed exports)

    @property
    def pending_ids(self) -> list[str]:
        return [p.name for p in self.pending]


@dataclass
class Applied:
    """What the ledger says of one export: the tables it was applied to, and its files."""

    tables: set[str] = field(default_factory=set)
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # source_file -> (table, fingerprint)


def _ledger(con) -> dict[str, Applied]:
    """Every export applied (to at least one table), from the ingest ledger."""
    ledger: dict[str, Applied] = {}
    if has_table(con, "ingest", "applied_exports"):
        for e, t in con.execute("SELECT export_id, table_name FROM ingest.applied_exports").fetchall():
            ledger.setdefault(e, Applied()).tables.add(t)
    if has_table(con, "ingest", "applied_files"):
        for e, t, f, fp in con.execute(
                "SELECT export_id, table_name, source_file, fingerprint FROM ingest.applied_files").fetchall():
            ledger.setdefault(e, Applied()).files[f] = (t, fp)
    return ledger


def applied_exports(warehouse: Path) -> set[str] | None:
    """The exports the warehouse has applied (the ingest ledger), read-only; None while a
    run holds the warehouse (DuckDB lets one process open a file being written)."""
    if not Path(warehouse).exists():
        return set()
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except (duckdb.IOException, duckdb.ConnectionException):  # held by another process / this one
        return None
    try:
        return set(_ledger(con))
    finally:
        con.close()


def last_logged_run(warehouse: Path) -> tuple[str, str] | None:
    """The warehouse's latest run in its run log (run id, status), read-only; None while a run
    holds the warehouse, or when it has none or cannot be read (then a run finds out why)."""
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except (duckdb.Error, OSError):  # held by another process, or not a database
        return None
    try:
        rows = con.execute("SELECT run_id, status FROM quality.run_log ORDER BY run_time DESC LIMIT 1").fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return rows[0] if rows else None


CONTENT_HASH = "sha256:"


def _stat_key(path: Path) -> str:
    """Size, modification and change times and inode: equal, the file was not rewritten."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def content_fingerprint(path: Path) -> str:
    """How the ledger knows an applied file: its stat key and the SHA-256 of its content,
    computed once, when the file is applied."""
    digest = hashlib.sha256()
    key = _stat_key(path)
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"{key} {CONTENT_HASH}{digest.hexdigest()}"


def still_the_same(fingerprint: str, path: Path) -> tuple[bool, str]:
    """Whether `path` is still the file the ledger recorded, and its fingerprint now. An
    unchanged stat key is trusted; otherwise (a copy, a re-delivery, a touch) the content is
    hashed again: a file with the same size and time but other content is a changed file. A
    ledger from before content hashes holds size and time only, compared as they were."""
    key, _, content = fingerprint.partition(" " + CONTENT_HASH)
    if not content:
        st = os.stat(path)
        return key == f"{st.st_size}:{st.st_mtime_ns}", fingerprint
    if key == _stat_key(path):
        return True, fingerprint
    now = content_fingerprint(path)
    return now.endswith(CONTENT_HASH + content), now


def exports_awaiting_checks(con) -> set[str]:
    """Applied exports whose dataset checks were never stored (their run died or failed
    first): a run must follow even when no export is new (the next run checks them)."""
    if not has_table(con, "ingest", "applied_exports"):
        return set()
    if not has_table(con, "quality", "dataset_checked"):
        return set(_ledger(con))
    return {e for (e,) in con.execute(sql("quality", "unchecked_exports")).fetchall()}


def _gone_or_changed(ledger: dict[str, Applied], exports: list[Path], contract: Contract,
                     refreshed: dict[str, str] | None = None) -> list[str]:
    """What was applied before and is not in the raw folder as it was: vanished exports,
    and files of applied tables that vanished, changed or were added. Files found the same
    by their content with another stat key (copied, touched) go to `refreshed`."""
    present = {p.name: p for p in exports}
    problems = []
    for export_id in sorted(ledger, key=lambda e: e.encode()):
        if export_id not in present:
            problems.append(f"export {export_id} is gone (its folder, or the {READY_MARKER} that makes it complete)")
            continue
        applied = ledger[export_id]
        now = {f.source_file: f.path for f in export_files(present[export_id], list(contract.tables))
               if f.table in applied.tables}
        before = {f: fp for f, (t, fp) in applied.files.items()}
        gone = sorted(set(before) - set(now))
        changed = []
        for f in sorted(set(before) & set(now)):
            same, fingerprint = still_the_same(before[f], now[f])
            if not same:
                changed.append(f)
            elif fingerprint != before[f] and refreshed is not None:
                refreshed[f] = fingerprint
        added = sorted(set(now) - set(before))
        for what, files in (("is gone", gone), ("changed after it was applied", changed),
                            ("was added after its export was applied", added)):
            problems += [f"{f} {what}" for f in files]
    return problems


def pending_for_table(con, table_name: str) -> list[Path]:
    """The exports this run applies that `table_name` has not taken yet (all of them, unless
    a run stopped half-way through the ingest)."""
    return [Path(p) for (p,) in con.execute(
        "SELECT path FROM ingest.pending_exports e WHERE NOT EXISTS (SELECT 1 FROM ingest.applied_exports a "
        "WHERE a.export_id = e.export_id AND a.table_name = ?) ORDER BY e.export_id", [table_name]).fetchall()]


def plan_ingest(con, raw_dir: Path, contract: Contract, rebuild: bool = False) -> IngestPlan:
    """New exports are applied on top. A raw folder that is missing or empty, or that lost
    or changed exports applied before, stops the run before anything is written (InputsMissing),
    unless `rebuild` asks to drop them; a changed contract or an export that sorts before
    applied ones rebuilds from the exports present (nothing is lost)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise InputsMissing(f"the raw folder {raw_dir} does not exist (a mistyped --raw or CLINIC_RAW_DIR, or "
                            "a share that is not mounted?). Nothing was changed or published; point the run "
                            "at the folder of exports and run again.")
    exports = complete_exports(raw_dir, contract)
    if not exports:
        unfit = unfit_exports(raw_dir, contract)
        raise InputsMissing(f"the raw folder {raw_dir} holds no complete export (a folder with a _READY file"
                            f"{f' and a name that fits the export grammar; {unfit[0]}' if unfit else ''}). "
                            "Nothing was changed or published; check the folder (is the share mounted? is "
                            "an export still being written?) and run again.")
    ensure_warehouse(con, contract)
    ledger = _ledger(con)
    refreshed: dict[str, str] = {}
    problems = _gone_or_changed(ledger, exports, contract, refreshed)
    if problems and not rebuild:
        raise InputsMissing(
            f"{len(problems)} thing(s) applied before are not in {raw_dir} as they were: "
            + "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
            + ". Nothing was changed or published. If the raw folder is wrong or incomplete, fix it and "
            "run again; to drop what is gone on purpose, run `clinic run --rebuild`, which rebuilds the "
            "warehouse from the exports present.")
    if refreshed and not problems:  # the same content found under a new stat key: hashed once more, not every run
        con.executemany("UPDATE ingest.applied_files SET fingerprint = ? WHERE source_file = ?",
                        [(fp, f) for f, fp in refreshed.items()])
    state = con.execute("SELECT contract_hash FROM ingest.state").fetchall()
    applied_ids = sorted(ledger, key=lambda e: e.encode())
    tables = set(contract.tables)
    new = [p for p in exports if p.name not in ledger or ledger[p.name].tables != tables]
    reason = None
    if problems:
        reason = "rebuild requested, dropping: " + "; ".join(problems)
    elif rebuild:
        reason = "rebuild requested"
    elif not state:
        reason = "new warehouse"
    elif state[0][0] != contract_hash(contract):
        reason = "the contract changed"
    elif new and new[0].name not in ledger and applied_ids and new[0].name.encode() < applied_ids[-1].encode():
        reason = f"export {new[0].name} sorts before exports already applied"
    if reason is not None:
        reset_warehouse(con, contract)
        return IngestPlan(exports, exports, reason, tuple(problems))
    return IngestPlan(exports, new, None)


# --- reading one file ---------------------------------------------------------------


HEADER_BYTES = 1024 * 1024  # a header row longer than this is not a header


def _normalise(name: str) -> str:
    return name.strip().lower()


def literal_path(path: Path) -> str:
    """A path as a SQL literal that DuckDB reads as this one file, never as a pattern:
    glob characters are bracketed (`*` -> `[*]`), which matches only themselves."""
    return quote_literal(re.sub(r"([*?\[])", r"[\1]", str(Path(path).absolute())))


def open_regular(path: Path):
    """The file for reading in binary, if it is still a regular file: opened without following
    a link and without blocking (a FIFO put in its place after the export was listed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as error:
        raise FileRejected("unreadable_file", f"the file cannot be opened ({error.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileRejected("unreadable_file", "the entry is not a regular file")
    return os.fdopen(fd, "rb")


def _csv_header(path: Path) -> tuple[list[str], int]:
    """The header's column names and how many physical lines it takes (a quoted name may
    hold a line break). Any line ending (LF, CRLF, CR) is read; the header is line 1."""
    with open_regular(path) as fh:
        head = fh.read(HEADER_BYTES)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head.strip(b"\r\n"):
        raise FileRejected("unreadable_file", "the file has no header row")
    if head[:1] in (b"\r", b"\n"):
        raise FileRejected("unreadable_file", "line 1 is empty: the header row must be the first line")
    try:  # a cut through the last character of the block is not an encoding error
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < HEADER_BYTES)
    except UnicodeDecodeError:
        raise FileRejected("unreadable_file", "the file is not UTF-8 text") from None
    stream = io.StringIO(text, newline="")
    try:
        names = next(csv.reader(stream))
    except csv.Error:
        raise FileRejected("unreadable_file", "the header row cannot be read as CSV") from None
    if len(head) == HEADER_BYTES and stream.tell() == len(text) and not text.endswith(("\n", "\r")):
        raise FileRejected("unreadable_file", f"the header row does not end within its first "
                                              f"{HEADER_BYTES // (1024 * 1024)} MiB: a header is the column "
                                              "names on line 1, followed by a line break")
    return names, 1 + sum(len(re.findall(r"\r\n|\r|\n", n)) for n in names)


def _check_header(contract: Contract, table: Table, names: list[str]) -> list[Extra]:
    """Reject identifier columns and missing or doubled contract columns; name the extra
    columns (their names are recorded only after passing the identifier checks)."""
    normalised = [_normalise(n) for n in names]
    for name in normalised:
        if contract.identifier_label(name):
            raise FileRejected("identifier_column", "a column name looks like an identifier value (not shown)")
        if contract.is_identifier_column(name):
            raise FileRejected("identifier_column", f"column {name} is a direct identifier", name)
    doubled = sorted({n for n in normalised if n in table.column_names and normalised.count(n) > 1})
    if doubled:
        raise FileRejected("unreadable_file", f"column {doubled[0]} appears twice", doubled[0])
    missing = [c for c in table.required if c not in normalised]
    if missing:
        raise FileRejected("missing_required_column",
                           f"required column {', '.join(missing)} is missing", missing[0])
    return [Extra(column_label(n, i), i) for i, n in enumerate(normalised, 1) if n not in table.column_names]


@dataclass(frozen=True)
class SourceFile:
    """One file, read: a FROM-clause fragment whose columns are all the pipeline's own
    (contract columns by their contract names, the extra columns' cells as one list, the
    overflow field, and with `count_breaks` the line breaks inside each field, as a list in
    file order), so no name in the file can shadow a working column."""

    fragment: str
    extras: list[Extra]
    first_line: int  # physical line of the first data record (Parquet: row 1)
    path: Path | None = None  # CSV only: the file, whose lines number the records
    positions: dict[str, int] = field(default_factory=dict)  # contract column -> its field in the file
    counts_breaks: bool = False  # the fragment lists each field's line breaks (__breaks)
    flags_breaks: bool = False  # the fragment says whether any field of the row holds one (__any_break)
    counted: LineCount | None = None  # the file's lines, when all its breaks are LF
    shape: FileShape | None = None  # the file's scan, when it was needed


BREAKS_COLUMN = "__breaks"
ANY_BREAK_COLUMN = "__any_break"
# The line breaks (LF, CRLF or a lone CR) inside one field.
_BREAKS_IN = ("lambda f: CASE WHEN contains(f, chr(10)) OR contains(f, chr(13)) "
              "THEN len(regexp_extract_all(f, '\\r\\n|\\r|\\n')) ELSE 0 END")


def _field_select(table: Table, positions: dict[str, int], extras: list[Extra], field_name,
                  fields: int, count_breaks: bool, flag_breaks: bool = False) -> str:
    """Each contract column from its field (as text; classify_rows trims it), the extra columns'
    fields as one list and, with `count_breaks`, the line breaks in each of the `fields` fields
    (with `flag_breaks`, whether any of them holds one): each field is named a fixed number of
    times, so the SQL grows linearly with the width of the file."""
    parts = []
    for col in table.column_names:
        if col in positions:
            parts.append(f"{field_name(positions[col])} AS {quote_ident(col)}")
        else:
            parts.append(f"CAST(NULL AS VARCHAR) AS {quote_ident(col)}")
    if extras:
        parts.append(f"[{', '.join(field_name(e.position) for e in extras)}] AS {EXTRAS_COLUMN}")
    if count_breaks:
        every = ", ".join(field_name(i) for i in range(1, fields + 1))
        parts.append(f"list_transform([{every}], {_BREAKS_IN}) AS {BREAKS_COLUMN}")
    elif flag_breaks:
        joined = f"concat({', '.join(field_name(i) for i in range(1, fields + 1))})"
        parts.append(f"(contains({joined}, chr(10)) OR contains({joined}, chr(13))) AS {ANY_BREAK_COLUMN}")
    return ", ".join(parts)


def raw_source(contract: Contract, table: Table, ef: ExportFile, con, parallel: bool = True,
               count_breaks: bool = False, known: SourceFile | None = None) -> SourceFile:
    """Read one file's header and build the fragment that reads its rows. Header problems
    reject the file here, before any row is read. `count_breaks` lists the line breaks in
    each field (read_and_classify asks for it only when some record spans lines). The file's
    lines are counted (or, when it holds a CR, scanned: then rows whose fields hold a break
    are flagged, as a CR can split a CRLF between two records); `known`: a reading of the same
    file that did that already."""
    if ef.path.suffix.lower() == ".csv":
        names, header_lines = _csv_header(ef.path)
        extras = _check_header(contract, table, names)
        counted = known.counted if known else count_lines(ef.path)
        shape = known.shape if known else (scan(ef.path) if counted is None else None)
        flag_breaks = not count_breaks and shape is not None and shape.has_quotes
        positions = {}
        for i, n in enumerate(names, 1):
            positions.setdefault(_normalise(n), i)
        fields = [f"__field{i}" for i in range(1, len(names) + 1)] + [OVERFLOW_COLUMN]
        columns = "{" + ", ".join(f"{quote_literal(f)}: 'VARCHAR'" for f in fields) + "}"
        select = _field_select(table, positions, extras, lambda i: f"__field{i}", len(names), count_breaks,
                               flag_breaks)
        fragment = sql("ingest", "read_csv_file", path=literal_path(ef.path), columns=columns,
                       fields=f"{select}, {OVERFLOW_COLUMN}", parallel=str(parallel).lower())
        return SourceFile(fragment, extras, header_lines + 1, ef.path, positions, count_breaks, flag_breaks,
                          counted, shape)
    try:
        names = [r[0] for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({literal_path(ef.path)})").fetchall()]
    except duckdb.Error as error:
        raise rejected_file(error) from None
    extras = _check_header(contract, table, names)
    positions = {}
    for i, n in enumerate(names, 1):
        positions.setdefault(_normalise(n), i)
    select = _field_select(table, positions, extras,
                           lambda i: f"CAST({quote_ident(names[i - 1])} AS VARCHAR)", len(names), False)
    return SourceFile(sql("ingest", "read_parquet_file", path=literal_path(ef.path), fields=select), extras, 1,
                      positions=positions)


def _count_rows(con, path: Path) -> int:
    """Data rows of a rejected file: its records as the reader counts them when it can read
    the file (a Parquet footer, a CSV split into records), else its non-empty lines after
    the header."""
    if path.suffix.lower() == ".parquet":
        try:
            return con.execute(f"SELECT count(*) FROM read_parquet({literal_path(path)})").fetchall()[0][0]
        except duckdb.Error:
            return 0
    try:
        return con.execute(
            f"SELECT count(*) FROM read_csv({literal_path(path)}, header = true, auto_detect = false, "
            "columns = {'__field1': 'VARCHAR'}, delim = ',', quote = '\"', escape = '\"', "
            "null_padding = true, strict_mode = false, encoding = 'utf-8', parallel = false)").fetchall()[0][0]
    except duckdb.Error:
        with path.open("rb") as fh:
            lines = sum(1 for line in fh if line.strip(b"\r\n"))
        return max(lines - 1, 0)


# What DuckDB raises when the machine, not the file, failed the read: out of memory, a disk full
# while spilling, an interrupted or broken engine. The file is then no more unreadable than
# before, and quarantining it whole would record its rows as bad data and apply the export
# without them: the run fails instead (`clinic run` says what to do), and the next one reads
# the file again.
NOT_THE_FILES_FAULT = (duckdb.OutOfMemoryException, duckdb.IOException, duckdb.InterruptException,
                       duckdb.FatalException, duckdb.InternalException)


def rejected_file(error: duckdb.Error) -> FileRejected:
    """The file's rejection for a DuckDB error reading it, or the error raised again when the
    machine failed, not the file (NOT_THE_FILES_FAULT)."""
    if isinstance(error, NOT_THE_FILES_FAULT):
        raise error
    return FileRejected("unreadable_file", _safe_reason(error))


def _safe_reason(error: Exception) -> str:
    """DuckDB errors can quote file content; keep only the kind of error and the line."""
    line = re.search(r"[Ll]ine:? *(\d+)", str(error))
    where = f" near line {line.group(1)}" if line else ""
    kind = "not valid UTF-8" if "unicode" in str(error).lower() else "not a readable table"
    return f"the file is {kind}{where}"


@dataclass(frozen=True)
class ClassifiedRows:
    """Where one file's classified rows are kept while it is checked, staged and quarantined."""

    name: str  # as the SQL names it
    create: str  # what CREATE makes it: a TEMP TABLE, or a TABLE of the scratch database


IN_MEMORY = ClassifiedRows("classified_rows", "TEMP TABLE")
SCRATCH = "ingest_scratch"  # a DuckDB file in the warehouse's spill folder, for a file too big for memory
ON_DISK = ClassifiedRows(f"{SCRATCH}.classified_rows", "TABLE")
SCRATCH_FILE = "clinic_ingest_{pid}.duckdb"
SCRATCH_ABOVE = 0.5  # a file larger than this share of DuckDB's memory cap is classified on disk


def classified_rows_for(con, path: Path | None) -> ClassifiedRows:
    """In memory, or, for a file larger than half of DuckDB's memory cap, in a scratch DuckDB
    file. A temp table is kept uncompressed (84 bytes a row for measurements, twice the CSV's
    40): past the cap it spills as is, 7.6 GB to disk and back at 10^8 rows. A table of a
    database file is compressed as it is written (1.3 GB there): loading measurements at L took
    84 s instead of 102 s (benchmarks/ingest_profile.py, side by side). Below the cap the temp
    table is faster (classifying 10^7 rows: 3.5 s, 4.4 s on disk), as nothing spills. The
    scratch file holds patients' rows: it is deleted when the export is applied or fails
    (drop_scratch), and a killed run's by the next run (resources.remove_stale_spill_files)."""
    [(database, spill_dir, cap)] = con.execute(
        "SELECT (SELECT path FROM duckdb_databases() WHERE database_name = current_database()), "
        "current_setting('temp_directory'), current_setting('memory_limit')").fetchall()
    limit = size_in_bytes(cap)
    if path is None or database is None or not spill_dir or limit is None \
            or path.stat().st_size <= SCRATCH_ABOVE * limit:
        return IN_MEMORY
    if _scratch_path(con) is None:
        folder = Path(spill_dir)
        folder.mkdir(parents=True, exist_ok=True)
        scratch = folder / SCRATCH_FILE.format(pid=os.getpid())
        _remove_database_file(scratch)  # a killed process's that had this pid (the next run keeps a live pid's)
        con.execute(f"ATTACH {quote_literal(str(scratch))} AS {SCRATCH}")
    return ON_DISK


def _scratch_path(con) -> Path | None:
    """The scratch database's file, when it is attached."""
    found = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = ?", [SCRATCH]).fetchall()
    return Path(found[0][0]) if found else None


def drop_scratch(con) -> None:
    """Detach and delete the scratch database, if a file of this export needed one."""
    path = _scratch_path(con)
    if path is not None:
        con.execute(f"DETACH {SCRATCH}")
        _remove_database_file(path)


def _remove_database_file(path: Path) -> None:
    for part in (path, path.with_name(path.name + ".wal")):
        part.unlink(missing_ok=True)


def read_and_classify(con, contract: Contract, table: Table, ef: ExportFile,
                      rows: ClassifiedRows = IN_MEMORY) -> list[Extra]:
    """Read and check one file into classified_file (with each record's physical line); a
    file DuckDB cannot read, or whose records cannot be lined up with its lines, is rejected.
    The line breaks inside each field are listed only when some record spans lines: listing
    them for every row costs about as much as all the checks, so the file is read without, and
    read once more, counting them, only when one does (see lines_of)."""
    source = _read_and_classify(con, contract, table, ef, count_breaks=False, rows=rows)
    try:
        line_map, unterminated = lines_of(con, source, rows)
    except RecordsSpanLines as spanning:  # the file's scan is kept for the second reading
        source = _read_and_classify(con, contract, table, ef, count_breaks=True,
                                    known=replace(source, shape=spanning.shape), rows=rows)
        line_map, unterminated = lines_of(con, source, rows)
    number_lines(con, line_map, rows)
    if unterminated:
        run_sql(con, "ingest", "quarantine_truncated_line", classified_rows=rows.name)
    return source.extras


def _read_and_classify(con, contract: Contract, table: Table, ef: ExportFile, count_breaks: bool,
                       known: SourceFile | None = None, rows: ClassifiedRows = IN_MEMORY) -> SourceFile:
    """The classified rows and check_names for one file (see classify_file)."""
    for parallel in (True, False):
        source = None
        try:
            source = raw_source(contract, table, ef, con, parallel=parallel, count_breaks=count_breaks,
                                known=known)
            classify_file(con, contract, table, source, rows)
            return source
        except duckdb.Error as error:
            if parallel and "parallel" in str(error):  # quoted newlines need the serial reader
                known = source or known  # its lines counted once
                continue
            raise rejected_file(error) from None
    raise AssertionError("unreachable: the serial reader either reads the file or raises")


class RecordsSpanLines(Exception):
    """Some record of the file spans lines: read it again, counting the breaks in its fields
    (`shape`: the file's scan, which found it)."""

    def __init__(self, shape: FileShape):
        super().__init__("a record spans lines")
        self.shape = shape


def lines_of(con, source: SourceFile, rows: ClassifiedRows = IN_MEMORY) -> tuple[LineMap, bool]:
    """Each record's physical line (see lines.py) and whether the file's last line is cut
    short, from the classified rows and the file's lines. In a file whose breaks are all LF, the
    records fill the lines after the header exactly when each record is one line and no line
    is empty: then the lines need only be counted (count_lines), not scanned. Else, with the
    scan, a record spanning lines shows as records that do not line up with the lines past
    the empty ones (LF breaks only: each break in a field is a line of the record) or, in a
    file holding a CR, as a flagged row: either raises RecordsSpanLines (read again, counting
    them). A file whose records cannot be lined up with its lines is rejected."""
    if source.path is None:  # Parquet: row k is record k
        return LineMap(source.first_line), False
    records = _count(con, f"SELECT count(*) FROM {rows.name}")
    counted = source.counted
    if counted is not None and records == counted.lines - source.first_line + 1:
        return LineMap(source.first_line), counted.unterminated
    shape = source.shape or scan(source.path)
    if source.flags_breaks and con.execute(f"SELECT 1 FROM {rows.name} WHERE __inner_breaks > 0 LIMIT 1"
                                           ).fetchall():
        raise RecordsSpanLines(shape)
    inner = dict(con.execute(f"SELECT rowid, __inner_breaks FROM {rows.name} WHERE __inner_breaks > 0"
                             ).fetchall()) if source.counts_breaks else {}
    try:
        line_map, disagree = walk(records, source.first_line, shape, inner), None
    except LinesDisagree as error:
        if shape.has_quotes and not source.counts_breaks and not source.flags_breaks:
            raise RecordsSpanLines(shape) from None
        line_map, disagree = None, error
    # A rejected file's rows are its data lines: its records are what the reader could not split.
    rows_in_file = shape.data_lines(source.first_line)
    if shape.odd_quotes and records - 1 in inner:
        # A quote that never closes makes the rest of the file one field of the last record: its
        # rows would be neither loaded nor quarantined. The file is rejected, every line counted.
        where = f" on line {line_map.line_of(records - 1)}" if line_map else ""
        raise FileRejected("unreadable_file", f"a quoted field opened{where} is never closed, so the lines "
                                              "after it would be read as its text; close or remove that quote",
                           rows=rows_in_file)
    if disagree is not None:
        raise FileRejected("unreadable_file", f"the file cannot be split into lines as an editor shows "
                                              f"them ({disagree}); check its line endings and quotes",
                           rows=rows_in_file)
    return line_map, shape.unterminated


def number_lines(con, line_map: LineMap, rows: ClassifiedRows = IN_MEMORY) -> None:
    """classified_file: the classified rows with each record's physical line."""
    con.execute("CREATE OR REPLACE TEMP TABLE line_shifts (from_record BIGINT, shift BIGINT)")
    if line_map.breakpoints:
        con.executemany("INSERT INTO line_shifts VALUES (?, ?)", list(line_map.breakpoints))
    run_sql(con, "ingest", "number_lines", first_line=line_map.first_line, classified_rows=rows.name,
            shifts="ASOF LEFT JOIN line_shifts s ON c.rowid >= s.from_record" if line_map.breakpoints else "",
            shift="coalesce(s.shift, 0)" if line_map.breakpoints else "0")


def classify_file(con, contract: Contract, table: Table, source: SourceFile,
                  rows: ClassifiedRows = IN_MEMORY) -> None:
    """Typed values and the first failing check of every row of `source` -> `rows`, and what
    each check number means -> check_names."""
    names, statement = classify_sql(contract, table, source, rows)
    con.execute("CREATE OR REPLACE TEMP TABLE check_names "
                "(check_no INTEGER, rule VARCHAR, column_name VARCHAR)")
    con.execute("INSERT INTO check_names SELECT unnest(?), unnest(?), unnest(?)",
                [list(column) for column in zip(*names, strict=True)])
    con.execute(statement)
    checks, per_value = numbered(row_checks(contract, table, source.extras)), per_value_columns(table, source)
    for col in table.columns:
        if col.name in per_value:
            mine = [(first, c) for first, c in checks if c.value_only and c.field == col.name]
            run_sql(con, "ingest", "value_checks", column=quote_ident(col.name), classified_rows=rows.name,
                    identifier=identifier_flag(contract, col),
                    failure_cases=" ".join(f"WHEN {c.condition} THEN {first}" for first, c in mine),
                    detail_cases=" ".join(f"WHEN __failed_check = {first} THEN {c.detail}" for first, c in mine))


def per_value_columns(table: Table, source: SourceFile) -> frozenset[str]:
    """The text columns whose value-only checks run once per distinct value (value_checks.sql),
    after the rest of the row's checks. Not when the file is read counting the line breaks in
    its fields: the line of a failing cell is worked out from those, in the same pass."""
    return frozenset() if source.counts_breaks else frozenset(c.name for c in table.columns if c.type == "text")


def classify_sql(contract: Contract, table: Table, source: SourceFile, rows: ClassifiedRows = IN_MEMORY,
                 ) -> tuple[list[tuple[int, str, str]], str]:
    """The check names (number, rule, column) and the classify_rows statement for one file.
    A family of checks (the extra columns') is one condition; its number is its first plus the
    index of the column that failed, so the SQL grows linearly with the width of the file."""
    checks = numbered(row_checks(contract, table, source.extras))
    names = [(first + k, c.rule, column) for first, c in checks for k, column in enumerate(c.columns or [c.column])]
    per_value = per_value_columns(table, source)

    def number(first, c) -> str:
        return f"{first} - 1 + {c.which}" if c.columns else str(first)

    def numbers(first, c) -> str:
        return f"BETWEEN {first} AND {first + c.numbers - 1}"

    failure_cases = " ".join(f"WHEN {c.condition} THEN {number(first, c)}" for first, c in checks
                             if not (c.value_only and c.field in per_value))
    detail_cases = " ".join(f"WHEN __failed_check {numbers(first, c)} THEN {c.detail}" for first, c in checks)
    numbers_, derived = derived_columns(contract, table, source.extras, per_value)
    spaces_possible = not (source.counted and source.counted.spaceless_ascii)
    typed = ", ".join(f"{typed_ref(c)} AS {quote_ident(c.name)}" for c in table.columns)
    if source.counts_breaks:  # the line of the field holding the failing value: the breaks before it
        extra_fields = "[" + ", ".join(str(e.position) for e in source.extras) + "]"
        field_of = " ".join(
            f"WHEN __failed_check {numbers(first, c)} THEN "
            + (f"{extra_fields}[__failed_check - {first - 1}]" if c.columns else str(source.positions[c.field]))
            for first, c in checks if c.columns or c.field in source.positions)
        line_offset = f"coalesce(list_sum({BREAKS_COLUMN}[1:(CASE {field_of} END) - 1]), 0)"
        inner_breaks = f"coalesce(list_sum({BREAKS_COLUMN}), 0)"
    else:  # no record spans lines, or the file is read again counting them (read_and_classify)
        line_offset, inner_breaks = "0", f"CAST({ANY_BREAK_COLUMN} AS INTEGER)" if source.flags_breaks else "0"
    return names, sql("ingest", "classify_rows", source=source.fragment, create=rows.create,
                      classified_rows=rows.name,
                      trimmed_columns=", ".join(f"{trimmed(c, spaces_possible)} AS {quote_ident(c)}"
                                                for c in table.column_names),
                      number_columns=", ".join(numbers_) or "1 AS __no_numbers",
                      derived_columns=", ".join(derived), typed_columns=typed,
                      failure_cases=failure_cases, detail_cases=detail_cases,
                      line_offset=line_offset, inner_breaks=inner_breaks)


def trimmed(column: str, spaces_possible: bool = True) -> str:
    """`nullif(trim(c), '')` (trim drops spaces, ASCII and Unicode, at both ends; empty is NULL)
    trimming only values that can start or end with one: a space at either end, or any non-ASCII
    character (strlen counts bytes, length characters). A leading space is found as `c < '!'`
    (every string whose first byte is a space or below, the empty one too): a comparison of the
    string's stored prefix, where starts_with cost a third of the guard. Trimming every value
    allocated a string per cell and cost more than all the other checks of a narrow file; even
    the guard cost a fifth of classifying measurements, so a file that holds no space and no
    non-ASCII byte at all (`spaces_possible` false: count_lines saw its bytes) is trimmed nowhere."""
    c = quote_ident(column)
    if not spaces_possible:
        return f"nullif({c}, '')"
    return (f"CASE WHEN {c} < '!' OR ends_with({c}, ' ') OR strlen({c}) <> length({c}) "
            f"THEN nullif(trim({c}), '') ELSE nullif({c}, '') END")


def _count(con, query: str) -> int:
    return con.execute(query).fetchone()[0]


def load_file(con, contract: Contract, table: Table, ef: ExportFile, file_order: int,
              straight_to_core: bool = False, begin: Callable[[], None] = lambda: None) -> FileResult:
    """Check one file row by row; failed rows to batch_quarantine, the rest to export_batch (or,
    with `straight_to_core`, rows whose key the file holds once to the core table). Reading
    happens outside the export's transaction (a DuckDB error, e.g. a file that needs the serial
    reader, aborts a transaction); what it writes to warehouse tables, inside it (`begin`)."""
    literal = {k: quote_literal(v) for k, v in
               (("export_id", ef.export_id), ("table_name", table.name), ("source_file", ef.source_file))}
    classified = classified_rows_for(con, ef.path)
    try:
        extras = read_and_classify(con, contract, table, ef, classified)
    except FileRejected as rejected:
        rows = rejected.rows if rejected.rows is not None else _count_rows(con, ef.path)
        con.execute("INSERT INTO batch_quarantine VALUES (?, ?, ?, NULL, ?, ?, ?, ?)",
                    [ef.export_id, table.name, ef.source_file, rejected.rule, rejected.column,
                     rejected.detail, rows])
        return FileResult(ef, rows_read=rows, failed=rows, rejected=True)
    if extras:  # one statement for any number of extra columns
        con.execute("INSERT INTO batch_extra_columns SELECT ?, ?, ?, unnest(?)",
                    [ef.export_id, table.name, ef.source_file, [e.name for e in extras]])
    rows_read = _count(con, f"SELECT count(*) FROM {classified.name}")  # one row per record, as numbered
    key = _key_sql(table)["key"]
    repeats = _count(con, f"SELECT count(*) - count(DISTINCT hash({key})) FROM {classified.name} "
                          "WHERE __failed_check IS NULL")
    run_sql(con, "ingest", "repeated_key_hashes", classified_rows=classified.name, key=key,
            search=str(repeats > 0).lower())
    if straight_to_core:
        begin()
    failed = run_sql(con, "ingest", "quarantine_failed_rows", **literal).fetchone()[0]  # the rows inserted
    columns = ", ".join(quote_ident(c) for c in table.column_names)
    run_sql(con, "ingest", "stage_file_rows", columns=columns, file_order=file_order,
            single_key_rows_into=f"core.{table.name}" if straight_to_core else "export_batch",
            file_order_column="" if straight_to_core else f", {file_order}",
            key=key, classified_rows=classified.name, **literal)
    staged = _count(con, f"SELECT count(*) FROM export_batch WHERE source_file = {literal['source_file']}")
    if straight_to_core:  # the core table was empty and this is its export's only file: all of it is this file's
        staged += _count(con, f"SELECT count(*) FROM core.{table.name}")
    if classified == IN_MEMORY:  # free its memory before the next file or the merge (a scratch file goes whole)
        con.execute(f"DROP TABLE {classified.name}")
    return FileResult(ef, rows_read=rows_read, failed=failed,
                      duplicates=rows_read - failed - staged, staged=staged)


def _key_sql(table: Table) -> dict[str, str]:
    key = ", ".join(quote_ident(k) for k in table.key)
    return {
        "key": key,
        "key_names": quote_literal(", ".join(table.key)),
        "key_match": " AND ".join(f"c.{quote_ident(k)} = n.{quote_ident(k)}" for k in table.key),
        "same_values": " AND ".join(
            f"c.{quote_ident(c)} IS NOT DISTINCT FROM n.{quote_ident(c)}" for c in table.value_columns
        ) or "true",
    }


class _Transaction:
    """One export's writes to one table: begun once (by the first write), committed with the
    ledger, rolled back on any error, so a kill or a failure leaves no half-applied export."""

    def __init__(self, con):
        self.con, self.open = con, False

    def begin(self) -> None:
        if not self.open:
            self.con.execute("BEGIN TRANSACTION")
            self.open = True

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if self.open:
            self.con.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


def apply_export(con, contract: Contract, table: Table, export_dir: Path,
                 identity_columns: tuple[str, ...] = ()) -> list[FileResult]:
    """Load every file of `table` in one export, quarantine contradictions, record patients
    whose `identity_columns` changed (identity_conflict), merge into core, and record it in the
    ledger, all in one transaction: applied whole or not at all."""
    files = [f for f in export_files(export_dir, list(contract.tables)) if f.table == table.name]
    try:
        with _Transaction(con) as transaction:
            results = (_load_and_merge(con, contract, table, files, transaction.begin, identity_columns)
                       if files else [])
            transaction.begin()
            con.execute("INSERT INTO ingest.applied_exports VALUES (?, ?, now())", [export_dir.name, table.name])
    except BaseException:  # the scratch goes too, without hiding why the export failed
        with contextlib.suppress(duckdb.Error, OSError):
            drop_scratch(con)
        raise
    drop_scratch(con)  # after the commit: a transaction writes to one database only
    return results


def _load_and_merge(con, contract: Contract, table: Table, files: list[ExportFile],
                    begin: Callable[[], None], identity_columns: tuple[str, ...] = ()) -> list[FileResult]:
    for name in ("quarantine", "extra_columns"):  # held back until the transaction
        con.execute(f"CREATE OR REPLACE TEMP TABLE batch_{name} AS SELECT * FROM ingest.{name} LIMIT 0")
    cols = ", ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in table.columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE export_batch ({cols}, {PROVENANCE_COLUMNS}, "
                "file_order INTEGER)")
    key_cols = ", ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in table.columns if c.name in table.key)
    con.execute(f"CREATE OR REPLACE TEMP TABLE export_repeated_keys ({key_cols})")
    straight_to_core = len(files) == 1 and not con.execute(
        f"SELECT 1 FROM core.{table.name} LIMIT 1").fetchall()
    # The files' SHA-256 (for the ledger) in a thread while DuckDB reads them: hashlib lets go
    # of the GIL, and at L it was 2.9 s after the load instead of beside it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hashing:
        fingerprints = [hashing.submit(content_fingerprint, ef.path) for ef in files]
        try:
            results = [load_file(con, contract, table, ef, i, straight_to_core, begin)
                       for i, ef in enumerate(files)]
        except BaseException:
            hashing.shutdown(cancel_futures=True)
            raise
        fingerprints = [f.result() for f in fingerprints]
    begin()
    for name in ("quarantine", "extra_columns"):
        con.execute(f"INSERT INTO ingest.{name} SELECT * FROM batch_{name}")
    keys = _key_sql(table)
    candidates = "export_batch" if len(files) > 1 else (
        f"(SELECT * FROM export_batch SEMI JOIN export_repeated_keys USING ({keys['key']}))")
    run_sql(con, "ingest", "quarantine_conflicting_keys", table_name=quote_literal(table.name),
            columns=", ".join(quote_ident(c) for c in table.column_names), candidates=candidates, **keys)
    conflicts = dict(con.execute(
        "SELECT source_file, count(*) FROM conflicting GROUP BY source_file").fetchall())
    first_file_wins = "" if len(files) == 1 else (
        f"QUALIFY row_number() OVER (PARTITION BY {keys['key']} ORDER BY file_order, line_number) = 1")
    # With several files of a table, a row equal to one of an earlier file (conflicting ones are
    # quarantined above) is an exact duplicate of it, counted so, not accepted.
    repeated = {} if len(files) == 1 else dict(con.execute(
        f"SELECT source_file, count(*) FROM (SELECT source_file, row_number() OVER (PARTITION BY {keys['key']} "
        "ORDER BY file_order, line_number) AS nth FROM export_batch) WHERE nth > 1 GROUP BY source_file").fetchall())
    if identity_columns and not straight_to_core:
        record_identity_conflicts(con, table, identity_columns, keys)
    run_sql(con, "ingest", "merge_export", table_name=table.name, first_file_wins=first_file_wins, **keys)
    for r, fingerprint in zip(results, fingerprints, strict=True):
        n_conflict = conflicts.get(r.export_file.source_file, 0)  # quarantined too, after the file's own checks
        n_repeated = repeated.get(r.export_file.source_file, 0)
        r.staged, r.failed = r.staged - n_conflict - n_repeated, r.failed + n_conflict
        r.duplicates += n_repeated
        con.execute(
            "INSERT INTO ingest.applied_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [r.export_file.export_id, table.name, r.export_file.source_file, fingerprint,
             r.rows_read, r.staged, r.failed, r.duplicates, r.rejected],
        )
    return results


def record_identity_conflicts(con, table: Table, columns: tuple[str, ...], keys: dict[str, str]) -> None:
    """An identity_conflict finding per key already loaded whose `columns` this export changes."""
    differs = {c: f"c.{quote_ident(c)} IS DISTINCT FROM n.{quote_ident(c)}" for c in columns}
    run_sql(con, "ingest", "identity_conflicts", table_name=table.name, table_literal=quote_literal(table.name),
            key=keys["key"], key_match=keys["key_match"], any_differs=" OR ".join(differs.values()),
            differing=", ".join(f"CASE WHEN {d} THEN {quote_literal(c)} END" for c, d in differs.items()))


def ingest_table(con, contract: Contract, table_name: str, exports: list[Path],
                 progress: Callable[[str], None] = lambda _: None,
                 identity_columns: tuple[str, ...] = ()) -> list[FileResult]:
    """Apply the pending exports, in order, to one table."""
    table = contract.tables[table_name]
    results = []
    for export_dir in exports:
        done = apply_export(con, contract, table, export_dir, identity_columns)
        for r in done:
            progress(f"{r.export_file.source_file}: {r.rows_read:,} rows read, {r.failed:,} quarantined, "
                     f"{r.duplicates:,} duplicates")
        results.extend(done)
    return results

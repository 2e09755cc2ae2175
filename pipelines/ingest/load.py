"""Loading export files into the warehouse: read as text, check every row, quarantine, merge.

Plain functions over a DuckDB connection; the Dagster assets in `assets.py` call them.
Every raw row ends accepted, quarantined or counted as an exact duplicate, and the
ledger `ingest.applied_files` records the three counts per file for reconciliation.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.ingest.contract import (
    OVERFLOW_COLUMN,
    Contract,
    Table,
    derived_columns,
    row_checks,
    typed_ref,
)
from pipelines.ingest.exports import ExportFile, complete_exports, export_files
from pipelines.sqlfiles import quote_ident, quote_literal, run_sql, sql

PROVENANCE_COLUMNS = "export_id VARCHAR, source_file VARCHAR, line_number BIGINT"


class FileRejected(Exception):
    """A whole file breaks the contract; `rule` and `detail` go to quarantine (no values)."""

    def __init__(self, rule: str, detail: str, column: str = ""):
        super().__init__(detail)
        self.rule, self.detail, self.column = rule, detail, column


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
    return hashlib.sha256(contract.text.encode()).hexdigest()[:16]


def ensure_warehouse(con, contract: Contract) -> None:
    run_sql(con, "ingest", "warehouse_schema")
    for table in contract.tables.values():
        cols = ", ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in table.columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS core.{table.name} ({cols}, {PROVENANCE_COLUMNS})")


def reset_warehouse(con, contract: Contract) -> None:
    """Forget everything loaded, so every complete export is applied again from scratch."""
    for table in contract.tables.values():
        con.execute(f"DROP TABLE IF EXISTS core.{table.name}")
    for name in ("applied_files", "quarantine", "extra_columns", "state"):
        con.execute(f"DROP TABLE IF EXISTS ingest.{name}")
    ensure_warehouse(con, contract)
    con.execute("INSERT INTO ingest.state VALUES (?)", [contract_hash(contract)])


@dataclass(frozen=True)
class IngestPlan:
    """Which exports this run applies, and whether the warehouse starts from scratch."""

    exports: list[Path]
    pending: list[Path]
    rebuild_reason: str | None

    @property
    def pending_ids(self) -> list[str]:
        return [p.name for p in self.pending]


def plan_ingest(con, raw_dir: Path, contract: Contract) -> IngestPlan:
    """New exports are applied on top; anything that would change history forces a rebuild."""
    ensure_warehouse(con, contract)
    exports = complete_exports(raw_dir)
    applied = dict(
        ((e, f), fp)
        for e, f, fp in con.execute(
            "SELECT export_id, source_file, fingerprint FROM ingest.applied_files").fetchall()
    )
    state = con.execute("SELECT contract_hash FROM ingest.state").fetchall()
    applied_ids = sorted({e for e, _ in applied}, key=lambda s: s.encode())
    reason = None
    if not state:
        reason = "new warehouse"
    elif state[0][0] != contract_hash(contract):
        reason = "the contract changed"
    else:
        present = {p.name: p for p in exports}
        for export_id in applied_ids:
            if export_id not in present:
                reason = f"export {export_id} is no longer in the raw folder"
                break
            files = export_files(present[export_id], list(contract.tables))
            now = {(f.export_id, f.source_file): f.fingerprint for f in files}
            before = {k: v for k, v in applied.items() if k[0] == export_id}
            if now != before:
                reason = f"export {export_id} changed after it was applied"
                break
        new = [p for p in exports if p.name not in set(applied_ids)]
        if reason is None and new and applied_ids and new[0].name.encode() < applied_ids[-1].encode():
            reason = f"export {new[0].name} sorts before exports already applied"
    if reason is not None:
        reset_warehouse(con, contract)
        return IngestPlan(exports, exports, reason)
    return IngestPlan(exports, [p for p in exports if p.name not in set(applied_ids)], None)


# --- reading one file ---------------------------------------------------------------


def _normalise(name: str) -> str:
    return name.strip().lower()


def _csv_header(path: Path) -> list[str]:
    with path.open("rb") as fh:
        first = fh.readline()
    if first.startswith(b"\xef\xbb\xbf"):
        first = first[3:]
    try:
        line = first.decode("utf-8")
    except UnicodeDecodeError:
        raise FileRejected("unreadable_file", "the file is not UTF-8 text") from None
    if not line.strip():
        raise FileRejected("unreadable_file", "the file has no header row")
    return next(csv.reader(io.StringIO(line)))


def _check_header(contract: Contract, table: Table, names: list[str]) -> list[str]:
    """Reject identifier columns and missing required ones; return the extra columns."""
    normalised = [_normalise(n) for n in names]
    for name in normalised:
        if any(re.search(p, name, re.I) for _, p in contract.identifier_values):
            raise FileRejected("identifier_column", "a column name looks like an identifier value")
        if contract.is_identifier_column(name):
            raise FileRejected("identifier_column", f"column {name} is a direct identifier", name)
    if len(set(normalised)) != len(normalised):
        raise FileRejected("unreadable_file", "two columns have the same name")
    missing = [c for c in table.required if c not in normalised]
    if missing:
        raise FileRejected("missing_required_column",
                           f"required column {', '.join(missing)} is missing", missing[0])
    return [n for n in normalised if n not in table.column_names]


def _trimmed_columns(table: Table, source_names: dict[str, str], extras: list[str]) -> str:
    """Select list mapping each file column (text, trimmed, empty as NULL) to its contract name."""
    parts = []
    for name in table.column_names + extras:
        if name in source_names:
            src = f"CAST({quote_ident(source_names[name])} AS VARCHAR)"
            parts.append(f"nullif(trim({src}), '') AS {quote_ident(name)}")
        else:
            parts.append(f"CAST(NULL AS VARCHAR) AS {quote_ident(name)}")
    return ", ".join(parts)


def _count_rows(con, path: Path) -> int:
    """Data rows of a rejected file: a Parquet file's row count when its footer is readable
    (0 when not), else the non-empty lines after the header."""
    if path.suffix.lower() == ".parquet":
        try:
            return con.execute(f"SELECT count(*) FROM read_parquet({quote_literal(str(path))})").fetchone()[0]
        except duckdb.Error:
            return 0
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return max(lines - 1, 0)


def _safe_reason(error: Exception) -> str:
    """DuckDB errors can quote file content; keep only the kind of error and the line."""
    line = re.search(r"[Ll]ine:? *(\d+)", str(error))
    where = f" near line {line.group(1)}" if line else ""
    kind = "not valid UTF-8" if "unicode" in str(error).lower() else "not a readable table"
    return f"the file is {kind}{where}"


def raw_source(contract: Contract, table: Table, ef: ExportFile, con, parallel: bool = True
               ) -> tuple[str, list[str]]:
    """The FROM-clause that reads one file as text columns named as in the contract, and
    the file's extra columns. Header problems reject the file here, before any row is read."""
    path = str(ef.path)
    if ef.path.suffix.lower() == ".csv":
        names = _csv_header(ef.path)
        extras = _check_header(contract, table, names)
        normalised = [_normalise(n) for n in names] + [OVERFLOW_COLUMN]
        columns = "{" + ", ".join(f"{quote_literal(n)}: 'VARCHAR'" for n in normalised) + "}"
        select = _trimmed_columns(table, {n: n for n in normalised}, extras)
        select += f", {quote_ident(OVERFLOW_COLUMN)}"
        return sql("ingest", "read_csv_file", path=quote_literal(path), columns=columns,
                   trimmed_columns=select, parallel=str(parallel).lower()), extras
    try:
        names = [r[0] for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({quote_literal(path)})").fetchall()]
    except duckdb.Error as error:
        raise FileRejected("unreadable_file", _safe_reason(error)) from None
    extras = _check_header(contract, table, names)
    select = _trimmed_columns(table, {_normalise(n): n for n in names}, extras)
    return sql("ingest", "read_parquet_file", path=quote_literal(path), trimmed_columns=select), extras


def read_and_classify(con, contract: Contract, table: Table, ef: ExportFile) -> list[str]:
    """Read and check one file into classified_file; a file DuckDB cannot read is rejected."""
    first_line = 2 if ef.path.suffix.lower() == ".csv" else 1
    for parallel in (True, False):
        try:
            source, extras = raw_source(contract, table, ef, con, parallel=parallel)
            classify_file(con, contract, table, extras, source, first_line)
            return extras
        except duckdb.Error as error:
            if parallel and "parallel" in str(error):  # quoted newlines need the serial reader
                continue
            raise FileRejected("unreadable_file", _safe_reason(error)) from None
    raise AssertionError("unreachable: the serial attempt returns or raises")


def classify_file(con, contract: Contract, table: Table, extras: list[str], source: str,
                  first_line: int) -> None:
    """Typed values and the first failing check of every row of `source` -> classified_file."""
    checks = row_checks(contract, table, extras)
    con.execute("CREATE OR REPLACE TEMP TABLE check_names "
                "(check_no INTEGER, rule VARCHAR, column_name VARCHAR)")
    con.executemany("INSERT INTO check_names VALUES (?, ?, ?)",
                    [(i, c.rule, c.column) for i, c in enumerate(checks, 1)])
    failure_cases = " ".join(f"WHEN {c.condition} THEN {i}" for i, c in enumerate(checks, 1))
    detail_cases = " ".join(f"WHEN {i} THEN {c.detail}" for i, c in enumerate(checks, 1))
    numbers, derived = derived_columns(contract, table, extras)
    typed = ", ".join(f"{typed_ref(c)} AS {quote_ident(c.name)}" for c in table.columns)
    run_sql(con, "ingest", "classify_rows", source=source, first_line=first_line,
            typed_key=", ".join(typed_ref(c) for c in table.columns if c.name in table.key),
            number_columns=", ".join(numbers) or "1 AS __no_numbers",
            derived_columns=", ".join(derived), typed_columns=typed,
            failure_cases=failure_cases, detail_cases=detail_cases)


def _count(con, query: str) -> int:
    return con.execute(query).fetchone()[0]


def load_file(con, contract: Contract, table: Table, ef: ExportFile, file_order: int,
              straight_to_core: bool = False) -> FileResult:
    """Check one file row by row; failed rows to quarantine, the rest to export_batch (or,
    with `straight_to_core`, rows whose key the file holds once to the core table)."""
    literal = {k: quote_literal(v) for k, v in
               (("export_id", ef.export_id), ("table_name", table.name), ("source_file", ef.source_file))}
    try:
        extras = read_and_classify(con, contract, table, ef)
    except FileRejected as rejected:
        rows = _count_rows(con, ef.path)
        con.execute("INSERT INTO ingest.quarantine VALUES (?, ?, ?, NULL, ?, ?, ?, ?)",
                    [ef.export_id, table.name, ef.source_file, rejected.rule, rejected.column,
                     rejected.detail, rows])
        return FileResult(ef, rows_read=rows, failed=rows, rejected=True)
    for extra in extras:
        con.execute("INSERT INTO ingest.extra_columns VALUES (?, ?, ?, ?)",
                    [ef.export_id, table.name, ef.source_file, extra])
    rows_read = _count(con, "SELECT count(*) FROM classified_file")
    run_sql(con, "ingest", "quarantine_failed_rows", **literal)
    failed = _count(con, "SELECT count(*) FROM classified_file WHERE failed_check IS NOT NULL")
    columns = ", ".join(quote_ident(c) for c in table.column_names)
    run_sql(con, "ingest", "stage_file_rows", columns=columns, file_order=file_order,
            single_key_rows_into=f"core.{table.name}" if straight_to_core else "export_batch",
            file_order_column="" if straight_to_core else f", {file_order}",
            key=", ".join(quote_ident(k) for k in table.key), **literal)
    staged = sum(_count(con, f"SELECT count(*) FROM {t} WHERE source_file = {literal['source_file']}")
                 for t in ["export_batch"] + ([f"core.{table.name}"] if straight_to_core else []))
    con.execute("DROP TABLE classified_rows")  # free its memory before the next file or the merge
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


def apply_export(con, contract: Contract, table: Table, export_dir: Path) -> list[FileResult]:
    """Load every file of `table` in one export, quarantine contradictions, merge into core."""
    files = [f for f in export_files(export_dir, list(contract.tables)) if f.table == table.name]
    if not files:
        return []
    cols = ", ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in table.columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE export_batch ({cols}, {PROVENANCE_COLUMNS}, "
                "file_order INTEGER)")
    key_cols = ", ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in table.columns if c.name in table.key)
    con.execute(f"CREATE OR REPLACE TEMP TABLE export_repeated_keys ({key_cols})")
    straight_to_core = len(files) == 1 and not con.execute(
        f"SELECT 1 FROM core.{table.name} LIMIT 1").fetchall()
    results = [load_file(con, contract, table, ef, i, straight_to_core) for i, ef in enumerate(files)]
    keys = _key_sql(table)
    candidates = "export_batch" if len(files) > 1 else (
        f"(SELECT * FROM export_batch SEMI JOIN export_repeated_keys USING ({keys['key']}))")
    run_sql(con, "ingest", "quarantine_conflicting_keys", table_name=quote_literal(table.name),
            columns=", ".join(quote_ident(c) for c in table.column_names), candidates=candidates, **keys)
    conflicts = dict(con.execute(
        "SELECT source_file, count(*) FROM conflicting GROUP BY source_file").fetchall())
    first_file_wins = "" if len(files) == 1 else (
        f"QUALIFY row_number() OVER (PARTITION BY {keys['key']} ORDER BY file_order, line_number) = 1")
    run_sql(con, "ingest", "merge_export", table_name=table.name, first_file_wins=first_file_wins, **keys)
    for r in results:
        n_conflict = conflicts.get(r.export_file.source_file, 0)
        con.execute(
            "INSERT INTO ingest.applied_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [r.export_file.export_id, table.name, r.export_file.source_file, r.export_file.fingerprint,
             r.rows_read, r.staged - n_conflict, r.failed + n_conflict, r.duplicates, r.rejected],
        )
    return results


def ingest_table(con, contract: Contract, table_name: str, exports: list[Path],
                 progress: Callable[[str], None] = lambda _: None) -> list[FileResult]:
    """Apply the pending exports, in order, to one table."""
    table = contract.tables[table_name]
    results = []
    for export_dir in exports:
        done = apply_export(con, contract, table, export_dir)
        for r in done:
            progress(f"{r.export_file.source_file}: {r.rows_read} rows read, {r.failed} quarantined, "
                     f"{r.duplicates} duplicates")
        results.extend(done)
    return results

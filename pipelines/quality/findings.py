"""What the published data_quality mart says, in the words the run summary and the dashboards
share: each failing check with its meaning (the catalogue's description), the column or
instrument it concerns, and a count in the unit it counts; and one status sentence that is
true about rows quarantined under checks that still pass (below their threshold)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache

SEVERITY_ORDER = "CASE severity WHEN 'fatal' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"
# Checks whose count is of findings about an export (a missing table, an unknown file) or of
# files: "1 row" would be false, so they show no count.
NOT_ROW_COUNTS = ("missing_table", "unknown_file", "extra_column")


@dataclass(frozen=True)
class FailingCheck:
    severity: str
    check: str
    table: str
    export: str
    column: str  # the columns the check reads ('' for a whole row, file or export)
    count: str  # "3 of 120 rows", or '' where a count of rows would not be true
    meaning: str  # the catalogue's one sentence
    detail: str  # which columns, lines or instruments failed
    where: str = ""  # the column, instrument, file or export it concerns, in words (where_text)


# A row check's detail as check_results.sql writes it: each column hit with its rows ("sex 2, age_years 1").
_COLUMN_COUNTS = re.compile(r"^(\w+) (\d+)$")


@cache
def named_rows(expectations_dir: str) -> dict[str, str]:
    """The Great Expectations checks whose failures name rows, and what a row is (a suite's
    `names_rows_by`, e.g. dataset_distribution's `instrument`), by check name."""
    from pipelines.quality.gx_validation import gx_check_name, suite_files

    found = {}
    for path in suite_files(expectations_dir):
        suite = json.loads(path.read_text(encoding="utf-8"))
        by = (suite.get("meta") or {}).get("names_rows_by")
        for e in suite.get("expectations", []) if by else []:
            found[gx_check_name(e["type"], e.get("kwargs", {}))] = by
    return found


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def where_text(check: str, table: str, column: str, detail: str, rows_named_by: str | None = None,
               level: str = "") -> str:
    """Where a failing check failed, said in words: `column sex (2 rows), age_years (1 row)`,
    `instrument calprotectin_ug_g (column mean_ratio)`, `file ...`, or the finding's own sentence."""
    pairs = [_COLUMN_COUNTS.match(part) for part in detail.split(", ")] if detail else []
    if pairs and all(pairs):
        said = ", ".join(f"{m[1]} ({_plural(int(m[2]), 'row')})" for m in pairs)
        return f"column{'s' if len(pairs) > 1 else ''} {said}"
    if check.startswith("gx:"):
        of = f"column {column}" if column else ""
        if detail:
            named = f"{rows_named_by or 'row'}{'s' if ', ' in detail else ''} {detail}"
            return f"{named} ({of})" if of else named
        return of or ("the export as a whole" if table == "(export)" else "the table as a whole")
    if check == "reconciliation" and detail:
        return f"file{'s' if ', ' in detail else ''} {detail}"
    if check == "extra_column" and detail:
        return f"extra columns {detail}"
    if detail:
        return detail  # a finding's own sentence (identity_conflict, unknown_file, missing_table, ...)
    if column:
        return f"column{'s' if ',' in column else ''} {column}"
    if table == "(export)":
        return "the export as a whole"
    return {"row": "whole rows", "file": "whole files"}.get(level, "the table as a whole")


def count_text(level: str, check: str, table: str, failed, checked) -> str:
    if failed is None or check in NOT_ROW_COUNTS or table == "(export)":
        return ""
    unit = " rows" if level in ("row", "file") else ""
    return f"{int(failed):,} of {int(checked):,}{unit}" if checked is not None else f"{int(failed):,}{unit}"


def failing_checks(con, expectations_dir=None) -> list[FailingCheck]:
    """Every failing check of the published data_quality mart, fatal first, each with where it
    failed in words (what a GX check's named rows are is read from its suite)."""
    from pipelines.settings import setting_value

    rows_named_by = named_rows(str(expectations_dir or setting_value("expectations_dir")))
    rows = con.execute(f"""
        SELECT severity, check_name, table_name, export_id, coalesce(column_name, ''), level, rows_failed,
               rows_checked, coalesce(description, ''), coalesce(detail, '')
        FROM marts.data_quality WHERE status = 'fail'
        ORDER BY {SEVERITY_ORDER}, export_id, table_name, check_name""").fetchall()
    return [FailingCheck(sev, check, table, export, column, count_text(level, check, table, failed, checked),
                         meaning, detail, where_text(check, table, column, detail, rows_named_by.get(check), level))
            for sev, check, table, export, column, level, failed, checked, meaning, detail in rows]


@dataclass(frozen=True)
class CheckStatus:
    failing: int
    failing_by_severity: dict[str, int]
    passing: int
    not_run: int
    rows_quarantined_passing: int  # rows quarantined under checks that pass (below their threshold)

    def sentence(self) -> str:
        """"2 checks fail (1 fatal, 1 warning), 138 pass (13 rows quarantined under checks that pass:
        below their threshold)", true whichever numbers are zero."""
        if self.failing:
            by = ", ".join(f"{n} {s}" for s, n in self.failing_by_severity.items())
            text = f"{self.failing} {'check fails' if self.failing == 1 else 'checks fail'} ({by}), {self.passing} pass"
        else:
            text = f"all {self.passing} checks pass"
        if self.rows_quarantined_passing:
            n = self.rows_quarantined_passing
            text += (f" ({n:,} {'row' if n == 1 else 'rows'} quarantined under checks that pass, being below "
                     "their threshold)")
        if self.not_run:
            text += f", {self.not_run} not run"
        return text


def check_status(con) -> CheckStatus:
    counts = dict(con.execute("SELECT status, count(*) FROM marts.data_quality GROUP BY ALL").fetchall())
    by_severity = dict(con.execute(f"""
        SELECT severity, count(*) FROM marts.data_quality WHERE status = 'fail'
        GROUP BY severity ORDER BY any_value({SEVERITY_ORDER})""").fetchall())
    [(quarantined,)] = con.execute("""
        SELECT coalesce(sum(q.rows_affected), 0) FROM marts.quarantine q
        JOIN marts.data_quality d ON d.export_id = q.export_id AND d.table_name = q.table_name
                                 AND d.check_name = q.rule AND d.status = 'pass'""").fetchall()
    return CheckStatus(counts.get("fail", 0), by_severity, counts.get("pass", 0), counts.get("not run", 0),
                       int(quarantined))

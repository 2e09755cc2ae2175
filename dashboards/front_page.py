"""The front page (index.html): the clinic's question answered at a glance, then the last run,
then what changed since the run published before it.

1. Per indication (grouped, with group and all-patients rows): n evaluable and the share
   meaningful / minimal / intolerant with its Wilson 95% interval (from
   marts.response_by_indication), drawn as a small bar against the clinic's belief (60/20/20
   in the rules file); a suppressed cell of the release says so.
2. The last run: internal - when, which exports, rows read and quarantined, failing checks
   (linked to the data-quality page); release - only run and rules version.
3. What changed (internal): the snapshot published before this run (`<marts>/current` while
   this run builds its set) is attached read-only and compared patient by patient
   (sql/dashboards/*.sql): patients per indication and category before -> after, and how
   many moved between categories. The release shows no changes: it is protected together with
   every earlier release, but says nothing itself about what changed between them.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from dashboards.page import DATA_DOCS_LINK, RunLabel, pages_for, table
from dashboards.page import label as _label
from pipelines.quality.findings import check_status, failing_checks
from pipelines.sqlfiles import quote_literal, sql

SHARES = ("meaningful", "minimal", "intolerant")
# The category colours of every page (dashboards/build.py draws with these too).
CATEGORY_COLOURS = {"meaningful": "#1b7837", "minimal": "#e08214", "intolerant": "#b2182b",
                    "not_assessable": "#878787"}
BAR_WIDTH = 150  # px for 0-100%
HATCH = ("<svg width='0' height='0' style='position:absolute'><defs><pattern id='hatch' width='6' height='6' "
         "patternUnits='userSpaceOnUse' patternTransform='rotate(45)'><rect width='6' height='6' fill='#eee'/>"
         "<line x1='0' y1='0' x2='0' y2='6' stroke='#888' stroke-width='2'/></pattern></defs></svg>")


def front_page(con, run: RunLabel, belief: dict[str, float], previous: Path | None) -> list[str]:
    parts = [HATCH, _answer(con, run, belief), _last_run(con, run)]
    parts.append(_release_changes_note() if run.release else _changes(con, previous))
    links = "".join(f"<li><a href='{slug}.html'>{html.escape(title)}</a>: {html.escape(what)}</li>"
                    for slug, title, what in pages_for(run) if slug != "index")
    parts.append(f"<h2>Every page</h2><ul>{links}</ul>")
    return parts


# --- 1. the answer ------------------------------------------------------------------------


def _answer(con, run: RunLabel, belief: dict[str, float]) -> str:
    rbi = con.execute("SELECT * FROM marts.response_by_indication").df()
    ordered, classes = [], []
    for group in sorted(rbi.indication_group.dropna().unique()):
        ordered.append(rbi[(rbi.level == "indication_group") & (rbi.indication_group == group)])
        classes.append("group")
        members = rbi[(rbi.level == "indication") & (rbi.indication_group == group)].sort_values(
            ["indication", "regimen"])
        ordered.append(members)
        classes += [""] * len(members)
    ordered.append(rbi[rbi.level == "all"])
    classes.append("all")
    rows = pd.concat(ordered)
    shown = pd.DataFrame({
        "indication (regimen)": [_row_name(r) for r in rows.itertuples()],
        "n evaluable (n/a)": [_evaluable(r) for r in rows.itertuples()],
        **{f"{cat} · belief {belief[cat]:.0f}%": [_share_cell(r, cat, belief[cat]) for r in rows.itertuples()]
           for cat in SHARES},
    })
    share_columns = tuple(c for c in shown.columns if "belief" in c)
    return ("<h2>Does naltrexone work as the clinic believes?</h2>"
            f"<p class='note'>Share of evaluable patients (meaningful + minimal + intolerant) in each category, "
            f"with its Wilson 95% interval (the black whisker), against the clinic's belief of "
            f"{belief['meaningful']:.0f}% / {belief['minimal']:.0f}% / {belief['intolerant']:.0f}% (the dashed "
            "line). <b>above</b> / <b>below</b>: the whole interval lies above or below the belief; n: patients "
            "in the category. n/a: not-assessable patients, counted beside the rates, not in them. Details: <a href='outcomes.html'>Outcomes</a>."
            + (" Suppressed: a count of 1-" f"{run.min_cell_size - 1} or one that would reveal it." if run.release
               else "") + "</p>"
            + table(shown, numeric=("n evaluable (n/a)",), raw=share_columns, row_class=classes,
                    css="answer"))


def _row_name(r) -> str:
    if r.level == "all":
        return "all patients"
    if r.level == "indication_group":
        return f"{_label(r.indication_group)} (group)"
    return f"{_label(r.indication)} ({_label(r.regimen)})"


def _count(value) -> str:
    return "suppressed" if pd.isna(value) else f"{int(value):,}"


def _evaluable(r) -> str:
    if pd.isna(r.n_evaluable) and pd.isna(r.n_not_assessable):
        return "suppressed"
    return f"{_count(r.n_evaluable)} ({_count(r.n_not_assessable)})"


def _share_cell(r, cat: str, believed: float) -> str:
    """A small bar: the share to scale, its interval as a whisker, the belief as a dashed line."""
    pct, low, high = (getattr(r, f"pct_{cat}"), getattr(r, f"pct_{cat}_low"), getattr(r, f"pct_{cat}_high"))
    scale = BAR_WIDTH / 100
    belief_line = (f"<line x1='{believed * scale:.1f}' x2='{believed * scale:.1f}' y1='0' y2='20' stroke='#222' "
                   "stroke-width='1.2' stroke-dasharray='3,2'/>")
    if pd.isna(pct):
        count = getattr(r, f"n_{cat}")
        hidden = pd.isna(count) or pd.isna(r.n_evaluable)
        text = ("no evaluable patient" if not hidden else "suppressed" if pd.isna(count)
                else f"rate suppressed · n {int(count)}")
        fill = "url(#hatch)" if hidden else "#f4f4f4"
        return (f"<span class='share'><svg width='{BAR_WIDTH}' height='20' role='img' aria-label='{text}'>"
                f"<rect x='0' y='4' width='{BAR_WIDTH}' height='12' fill='{fill}'/>{belief_line}</svg>"
                f"<span style='color:#666'>{text}</span></span>")
    verdict = "above" if low > believed else "below" if high < believed else ""
    svg = (f"<svg width='{BAR_WIDTH}' height='20' role='img' aria-label='{pct:.0f}%'>"
           f"<rect x='0' y='4' width='{BAR_WIDTH}' height='12' fill='#eeeeee'/>"
           f"<rect x='0' y='4' width='{pct * scale:.1f}' height='12' fill='{CATEGORY_COLOURS[cat]}' fill-opacity='0.85'/>"
           f"<line x1='{low * scale:.1f}' x2='{high * scale:.1f}' y1='10' y2='10' stroke='#111' stroke-width='1.6'/>"
           f"<line x1='{low * scale:.1f}' x2='{low * scale:.1f}' y1='6' y2='14' stroke='#111' stroke-width='1.6'/>"
           f"<line x1='{high * scale:.1f}' x2='{high * scale:.1f}' y1='6' y2='14' stroke='#111' stroke-width='1.6'/>"
           f"{belief_line}</svg>")
    mark = f" <b>{verdict}</b>" if verdict else ""
    return (f"<span class='share'>{svg}<span>{pct:.0f}% ({low:.0f}–{high:.0f}) · n "
            f"{_count(getattr(r, f'n_{cat}'))}{mark}</span></span>")


# --- 2. the last run ----------------------------------------------------------------------


def _last_run(con, run: RunLabel) -> str:
    if run.release:
        return ("<h2>This release</h2>"
                + ("<p><b>PREVIEW - NOT FOR RELEASE.</b> Built by a run for the clinic to look at; only "
                   "<code>clinic release</code> makes a release.</p>" if run.release_id == "preview" else "")
                + f"<p>Release <code>{html.escape(run.release_id or '')}</code>, built from run "
                f"<code>{html.escape(run.run_id[:8])}</code> at {html.escape(run.run_time)} UTC "
                f"with rules version <b>{html.escape(run.rules_version)}</b>; counts from 1 to "
                f"{run.min_cell_size - 1} are suppressed, with every cell that would reveal one, in this "
                "release or together with any earlier release. <code>manifest.json</code> beside these pages "
                "lists each file with its SHA-256, the method, the audit's result and how many cells are "
                "published.</p>")
    r = con.execute("SELECT * FROM marts.run_info ORDER BY run_time DESC LIMIT 1").df().iloc[0]
    status, failing = check_status(con), failing_checks(con)
    checks = (f"<span class='{'status-bad' if status.failing else 'status-ok'}'>"
              f"{html.escape(status.sentence())}</span>")
    listed = "".join(
        f"<li><code>{html.escape(f.check)}</code> on {html.escape(f.table)} ({html.escape(f.export)})"
        + (f", {html.escape(f.count)}" if f.count else "")
        + (f" ({html.escape(f.where if len(f.where) <= 120 else f.where[:117] + '...')})" if f.where else "")
        + (f": {html.escape(f.meaning)}" if f.meaning else "") + "</li>"
        for f in failing[:5])
    if len(failing) > 5:
        listed += f"<li>... and {len(failing) - 5} more on the <a href='data_quality.html'>data-quality page</a></li>"
    exports_now = (r.exports_new or "").replace(",", ", ") or "none (nothing new)"
    return ("<h2>The last run</h2>" + table(pd.DataFrame([
        ("when", f"{r.run_time:%Y-%m-%d %H:%M} UTC, run {r.run_id[:8]} ({r.ingest_mode}), status {r.status}"),
        ("exports applied now", exports_now),
        ("exports reflected", (r.exports_applied or "").replace(",", ", ") or "none"),
        ("rows read now", f"{r.rows_in:,}: accepted {r.rows_accepted:,}, quarantined {r.rows_quarantined:,}, "
                          f"exact duplicates {r.rows_duplicate:,}"),
        ("patients published", f"{r.patients_out:,}"),
        ("versions", f"rules {r.rules_version}, code {r.code_version}"),
    ], columns=["", "last run"]))
            + f"<p>Data quality: {checks}. <a href='data_quality.html'>What to fix, and every check</a>; "
              f"<a href='{DATA_DOCS_LINK}'>Great Expectations' Data Docs</a> of this run's validations.</p>"
            + (f"<ul>{listed}</ul>" if listed else ""))


# --- 3. what changed ----------------------------------------------------------------------


def _changes(con, previous: Path | None) -> str:
    head = "<h2>What changed since the previous run</h2>"
    if previous is None or not Path(previous).exists():
        return head + "<p class='note'>This is the first published run: nothing to compare with.</p>"
    con.execute(f"ATTACH {quote_literal(str(Path(previous).resolve()))} AS previous (READ_ONLY)")
    try:
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = "
                                            "'previous' AND schema_name = 'marts'").fetchall()}
        if not {"patient_response", "run_info"} <= tables:
            return head + "<p class='note'>The previous snapshot has no patient_response to compare with.</p>"
        before = con.execute(sql("dashboards", "previous_run")).fetchall()
        counts = con.execute(sql("dashboards", "category_counts_before_after")).df()
        moves = con.execute(sql("dashboards", "category_moves")).fetchall()
    finally:
        con.execute("DETACH previous")
    prev_run = (f"run {before[0][0][:8]} at {before[0][1]} UTC (rules version {before[0][2]})" if before
                else "the previous snapshot")
    if counts.empty:
        return head + f"<p class='note'>Compared with {html.escape(prev_run)}: no patients either side.</p>"
    cells = counts.pivot_table(index="indication", columns="category", values=["n_before", "n_after"],
                               aggfunc="sum", fill_value=0)
    categories = [c for c in CATEGORY_COLOURS if c in set(counts.category)]
    rows, changed_rows = [], 0
    for indication in cells.index:
        row = {"indication": _label(indication)}
        before_total = after_total = 0
        for cat in categories:
            b, a = int(cells.loc[indication, ("n_before", cat)]), int(cells.loc[indication, ("n_after", cat)])
            before_total, after_total = before_total + b, after_total + a
            row[_label(cat)] = _before_after(b, a)
        row["patients"] = _before_after(before_total, after_total)
        changed_rows += any("→" in v for v in row.values())
        rows.append(row)
    frame = pd.DataFrame(rows)
    moved = "".join(f"<li>{html.escape(_label(f))} → {html.escape(_label(t))}: {n:,} patient(s)</li>"
                    for f, t, n in moves)
    summary = (f"{changed_rows} of {len(rows)} indications changed" if moves else
               "no patient changed category, and none came or went")
    return (head + f"<p>Compared with {html.escape(prev_run)}: {summary}. Cells read before → after "
            "(patients per category).</p>"
            + table(frame, raw=tuple(frame.columns[1:]))
            + (f"<h3>Patients who moved</h3><ul>{moved}</ul>" if moved else ""))


def _before_after(before: int, after: int) -> str:
    if before == after:
        return f"{after:,}"
    return f"<span style='background:#fff3cd'>{before:,} → {after:,} ({after - before:+,})</span>"


def _release_changes_note() -> str:
    return ("<h2>What changed</h2><p class='note'>Not shown for a release. Every release is protected together "
            "with every earlier one: no count of 1 to 10 patients, also of the patients added or changed "
            "between two releases, can be worked out from any set of them.</p>")


"""The dashboards and their front page, built from a snapshot: the internal one (unsuppressed,
for the clinic's own team) or the release bundle's (small cells suppressed).

Pages open from disk with no network: Plotly is one local `plotly.min.js` beside the pages
(include_plotlyjs='directory'), and no chart offers a link or an upload to an online service.
Charts use only aggregate marts; patient-level tables never feed a chart. A suppressed cell is
drawn as suppressed (hatched, labelled), never as 0. Colours are fixed per category, dose band,
stage and status (mappings below), so they mean the same on every page and every run.
"""

from __future__ import annotations

import html
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.front_page import CATEGORY_COLOURS, front_page
from dashboards.page import DATA_DOCS_LINK, RunLabel, labels_from, pages_for, prose, table, write_page
from dashboards.page import label as _label
from pipelines.quality.findings import check_status, failing_checks

CATEGORIES = ("meaningful", "minimal", "intolerant", "not_assessable")
# A release may pool the categories of a table (its grain, sql/marts/<mart>.yml): one line, "all".
POOLED = "all"
# LDN bands light to dark with the dose; the other regimens are one band each.
DOSE_BAND_COLOURS = {"<1.5 mg": "#9ecae1", "1.5-3 mg": "#4292c6", "3-4.5 mg": "#08519c", ">4.5 mg": "#081d58",
                     "standard_oral": "#8c6d31", "xr_injectable": "#bd9e39"}
SPARE_COLOURS = ("#7b4173", "#a55194", "#ce6dbd", "#de9ed6")  # a band the rules file adds later
STAGE_COLOURS = {"enrolled": "#d0d1e6", "with_baseline": "#a6bddb", "reached_assessment_window": "#74a9cf",
                 "assessed": "#2b8cbe"}
SLEEP_COLOUR = "#5e3c99"
STATUS_COLOURS = {"pass": "#1b7837", "not run": "#bdbdbd", "fail (info)": "#92c5de",
                  "fail (warning)": "#f4a582", "fail (fatal)": "#b2182b"}
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=13)
SUPPRESSED = "suppressed"
SUPPRESSED_STYLE = dict(color="rgba(160,160,160,0.25)", pattern=dict(shape="/", fgcolor="#6f6f6f", size=8))


def band_colour(label: str, order: int) -> str:
    return DOSE_BAND_COLOURS.get(label) or SPARE_COLOURS[int(order) % len(SPARE_COLOURS)]


def _titled(fig: go.Figure, title: str, run: RunLabel, height: int = 560) -> go.Figure:
    fig.update_layout(
        title=dict(text=f"{html.escape(title)}<br><sup>{html.escape(run.subtitle())}</sup>", x=0.01),
        font=FONT, height=height, margin=dict(t=110, l=80, r=40, b=90),
        legend=dict(orientation="h", y=-0.18),
    )
    return fig


def _wrapped(code: str, width: int = 13) -> str:
    """A tick label on lines of about `width` characters, so neighbours do not run together."""
    lines, line = [], ""
    for word in _label(code).split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


def _n(value) -> str:
    return "*" if pd.isna(value) else str(int(value))


def _value(value) -> str:
    """A median as an analyst reads it: whole numbers from 100 on, one decimal below."""
    if pd.isna(value):
        return "–"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}".removesuffix(".0")


# --- outcomes ----------------------------------------------------------------------------


def outcomes_figures(con, run: RunLabel, belief: dict[str, float]) -> list[go.Figure]:
    rbi = con.execute("SELECT * FROM marts.response_by_indication").df()
    figures = []
    for level, label_cols, title in (
        ("indication", ["indication", "regimen"], "Response by indication and regimen"),
        ("indication_group", ["indication_group"], "Response by indication group"),
    ):
        rows = pd.concat([rbi[rbi.level == level], rbi[rbi.level == "all"]])
        labels = [
            ("<br>".join(_wrapped(getattr(r, c)) for c in label_cols) if r.level != "all" else "all patients")
            + f"<br>n={_n(r.n_evaluable)} (n/a {_n(r.n_not_assessable)})"
            for r in rows.itertuples()
        ]
        fig = go.Figure()
        for cat in ("meaningful", "minimal", "intolerant"):
            pct = rows[f"pct_{cat}"]
            fig.add_bar(
                name=f"{cat} (95% CI)", x=labels, y=pct, marker_color=CATEGORY_COLOURS[cat],
                offsetgroup=cat, legendgroup=cat, meta={"category": cat},
                error_y=dict(type="data", symmetric=False, color="#333",
                             array=(rows[f"pct_{cat}_high"] - pct).tolist(),
                             arrayminus=(pct - rows[f"pct_{cat}_low"]).tolist()),
                customdata=list(zip(rows[f"n_{cat}"].map(_n), rows.n_evaluable.map(_n), rows[f"pct_{cat}_low"],
                                    rows[f"pct_{cat}_high"], strict=True)),
                hovertemplate="%{x}<br>" + cat + ": %{y:.1f}% (%{customdata[0]} of %{customdata[1]}; "
                              "95% CI %{customdata[2]:.1f}-%{customdata[3]:.1f}%)<extra></extra>",
            )
            _suppressed_bars(fig, labels, pct.isna(), 100, cat)
        for value in sorted(set(belief.values())):  # one label per level: 20% minimal / intolerant
            cats = [c for c in ("meaningful", "minimal", "intolerant") if belief[c] == value]
            for cat in cats:
                fig.add_hline(y=value, line_dash="dash", line_color=CATEGORY_COLOURS[cat])
            fig.add_annotation(x=1.005, xref="paper", xanchor="left", y=value, yanchor="middle", align="left",
                               showarrow=False, text=f"clinic belief<br>{value:.0f}% {'<br>'.join(cats)}",
                               font=dict(size=11))
        fig.update_layout(barmode="group")
        fig.update_xaxes(title_text="Indication: n evaluable (n/a = not assessable; * = suppressed)",
                         tickangle=0, tickfont=dict(size=11))
        fig.update_yaxes(title_text="Patients, % of evaluable (Wilson 95% interval)", range=[0, 100])
        figures.append(_titled(fig, title, run, height=640))
        fig.update_layout(margin=dict(r=110, b=150), legend=dict(y=-0.3))
    return figures


# --- trajectories ------------------------------------------------------------------------


def _primary_trajectories(con, primary: dict[str, str]) -> pd.DataFrame:
    return con.execute("""
        SELECT t.* FROM marts.measure_trajectory t
        JOIN (SELECT unnest(CAST(? AS VARCHAR[])) AS indication, unnest(CAST(? AS VARCHAR[])) AS primary_measure) p
          ON p.indication = t.indication AND p.primary_measure = t.instrument
        ORDER BY indication, category, visit_week""", [list(primary), list(primary.values())]).df()


def trajectory_parts(con, run: RunLabel, primary: dict[str, str], instruments: dict[str, dict],
                     target_week: int) -> list:
    """A table of each primary measure's median at week 0 and at the assessment target week
    by category (what the clinic's stories quote: "calprotectin 980 to 250 ug/g"), then per
    indication the median % change (left) beside the median value in its unit (right), one
    line per category with its IQR band, and a legend of its own per row. Weeks whose count is
    suppressed in the release are gaps in their line."""
    every = _primary_trajectories(con, primary)
    drawn = every[every.n_patients.notna()]
    indications = sorted(drawn.indication.unique())
    if not indications:
        return [_empty("Primary measure by visit week", run)]
    parts = [_medians_table(every, instruments, target_week)]

    def unit_of(indication: str) -> tuple[str, str]:
        info = instruments.get(primary[indication], {})
        return info.get("label", primary[indication]), info.get("unit", "")

    titles = []
    for indication in indications:
        label, unit = unit_of(indication)
        titles += [f"<b>{_label(indication)}</b>: % change of {label}", f"{label}, {unit}"]
    fig = make_subplots(rows=len(indications), cols=2, vertical_spacing=0.5 / len(indications), subplot_titles=titles)
    split = "category" if _categories(every) == CATEGORIES else "all categories together"
    _titled(fig, f"Each primary measure by visit week and {split}: median % change and median value "
                 "(bands: IQR)", run, height=330 * len(indications) + 160)
    fig.update_layout(margin=dict(t=120, l=70, r=10, b=60))
    # Both panels of a row, then that row's legend, all inside the figure (no margin pushed).
    for axis in range(1, 2 * len(indications) + 1):
        fig.layout[f"xaxis{axis if axis > 1 else ''}"].domain = (0, 0.37) if axis % 2 else (0.45, 0.80)
    for annotation, (left, right) in zip(fig.layout.annotations, [(0, 0.37), (0.45, 0.80)] * len(indications),
                                         strict=True):
        annotation.x = (left + right) / 2
    # Each (indication, category)'s rows once, every trace added in one call on its panel's axes
    # and every axis and legend set in one layout update: filtering the frame per trace and one
    # update_*axes call per axis were half the page's time, a call per trace a fifth of the rest.
    drawn_by, every_by = (dict(list(frame.groupby(["indication", "category"], sort=False)))
                          for frame in (drawn, every))
    weeks = sorted(every.visit_week.unique())
    axes, traces = {}, []
    for row, indication in enumerate(indications, start=1):
        left, right = (f"{2 * row - 1 if row > 1 else ''}", f"{2 * row}")  # the row's panels' axes
        legend = "legend" if row == 1 else f"legend{row}"
        label, unit = unit_of(indication)
        for cat in _categories(every):
            c = drawn_by.get((indication, cat))
            if c is None:
                continue
            colour, group = CATEGORY_COLOURS.get(cat, "#333333"), f"{indication}-{cat}"
            every_cat = every_by[(indication, cat)]
            start, end = (every_cat[every_cat.visit_week == w] for w in (0, target_week))
            name = f"{_category_label(cat)}: {_week_median(start)} → {_week_median(end)}"
            for panel, stem, text in ((left, "pct_change", "%{y:.1f}%"), (right, "value", "%{y:.4g} " + unit)):
                on = dict(xaxis=f"x{panel}", yaxis=f"y{panel}", legend=legend, legendgroup=group)
                traces.append(dict(type="scatter", x=list(c.visit_week) + list(c.visit_week[::-1]),
                                   y=list(c[f"{stem}_p75"]) + list(c[f"{stem}_p25"][::-1]),
                                   mode="lines", fill="toself", fillcolor=colour, opacity=0.15, line=dict(width=0),
                                   hoverinfo="skip", showlegend=False, **on))
                traces.append(dict(type="scatter", x=c.visit_week, y=c[f"{stem}_median"], mode="lines+markers",
                                   name=name, showlegend=panel == left, line=dict(color=colour),
                                   meta={"category": cat, "panel": indication}, customdata=c.n_patients,
                                   hovertemplate=f"week %{{x}}: median {text} (n %{{customdata}})<extra>{cat}</extra>",
                                   **on))
        axes[f"yaxis{left}"] = dict(title=dict(text="% of baseline"), zeroline=True, zerolinecolor="#999")
        axes[f"yaxis{right}"] = dict(title=dict(text=unit), rangemode="tozero")
        for panel in (left, right):
            axes[f"xaxis{panel}"] = dict(title=dict(text="Visit week"), tickvals=weeks)
        top = fig.layout[f"yaxis{left}"].domain[1]
        axes[legend] = dict(x=0.83, xanchor="left", y=top, yanchor="top", font=dict(size=12), orientation="v",
                            title=dict(text=f"median, week 0 → {target_week}", font=dict(size=11)),
                            bgcolor="rgba(255,255,255,0.9)")
    fig.add_traces(traces)
    fig.update_layout(axes)
    fig.update_annotations(font_size=13)
    parts.append(fig)
    return parts


def _categories(every: pd.DataFrame) -> tuple[str, ...]:
    """The categories a trajectory table has: the four, or the release's pooled one."""
    return (POOLED,) if set(every.category) == {POOLED} else CATEGORIES


def _category_label(cat: str) -> str:
    return "all categories" if cat == POOLED else _label(cat)


def _week_median(rows: pd.DataFrame) -> str:
    """One week's median for the table: its value, SUPPRESSED where the release hides its count
    (the chart leaves that week out too), or – where no patient had a value."""
    if rows.empty:
        return "–"
    if rows.n_patients.isna().all():
        return SUPPRESSED
    return _value(rows.value_median.iloc[0])


def _medians_table(every: pd.DataFrame, instruments: dict[str, dict], target_week: int) -> str:
    """Per indication and category: median value at week 0 -> at the target week, the median
    % change there and n (the stories' numbers); suppressed where the release hides them."""
    rows, directions = [], {}
    for indication, part in every.groupby("indication"):
        measure = part.instrument.iloc[0]
        info = instruments.get(measure, {})
        directions[info.get("label", measure)] = info.get("better", "lower")
        row = {"indication": _label(indication),
               "primary measure": f"{info.get('label', measure)}, {info.get('unit', '')}".rstrip(", ")}
        for cat in _categories(every):
            at = {w: part[(part.category == cat) & (part.visit_week == w)] for w in (0, target_week)}
            start, end = at[0], at[target_week]
            if start.empty and end.empty:
                row[_category_label(cat)] = "–"
                continue
            # Each week's median as the chart draws it: shown, suppressed, or none (–).
            change = (f", {end.pct_change_median.iloc[0]:+.0f}%" if not end.empty and end.n_patients.notna().all()
                      else "")
            n = f" (n {_n(end.n_patients.iloc[0])})" if not end.empty and end.n_patients.notna().all() else ""
            row[_category_label(cat)] = f"{_week_median(start)} → {_week_median(end)}{change}{n}"
        rows.append(row)
    return (f"<h2>Primary measures: median at week 0 → week {target_week} (the assessment target, day "
            f"{target_week * 7})</h2>"
            + table(pd.DataFrame(rows))
            + f"<p class='note'>{_direction_note(directions)} Each median is over the patients with a value "
              f"that week (n at week {target_week}), so week 0 and week {target_week} are not always the same "
              "patients; % change is the median of each patient's own change. – : no patient with a value that "
              "week.</p>")


def _direction_note(directions: dict[str, str]) -> str:
    """Which way is better, from the instrument registry: one sentence when all agree."""
    if len(set(directions.values())) <= 1:
        return f"{next(iter(directions.values()), 'lower').capitalize()} is better for every measure."
    return "Better is " + "; ".join(f"{better} for {label}" for label, better in directions.items()) + "."


# --- tolerability ------------------------------------------------------------------------


def tolerability_figures(con, run: RunLabel) -> list[go.Figure]:
    tol = con.execute("""
        SELECT event, dose_band, band_order, n_exposed, n_patients, pct_exposed, pct_exposed_low, pct_exposed_high
        FROM marts.tolerability
        WHERE regimen = 'ldn' AND indication = 'all'
        ORDER BY band_order, event""").df()
    events = sorted(tol.event.unique())
    bands = tol.groupby(["band_order", "dose_band"], as_index=False).n_exposed.max().sort_values("band_order")
    # The mart has a row per event and band exposed (a true 0 included): its intervals are the marts'.
    per_band = {band.dose_band: tol[tol.band_order == band.band_order].set_index("event").reindex(events)
                for band in bands.itertuples()}
    labels = [f"{_label(e)}<br>n {' · '.join(_n(per_band[b].n_patients[e]) for b in per_band)}" for e in events]
    fig = go.Figure()
    top = float(tol.pct_exposed.max()) if tol.pct_exposed.notna().any() else 100.0
    for band in bands.itertuples():
        part, group = per_band[band.dose_band], f"band{band.band_order}"
        low, high = part.pct_exposed_low, part.pct_exposed_high
        fig.add_bar(name=f"dose {band.dose_band} (n {_n(band.n_exposed)} exposed)", x=labels, y=part.pct_exposed,
                    offsetgroup=group, marker_color=band_colour(band.dose_band, band.band_order),
                    meta={"dose_band": band.dose_band},
                    error_y=dict(type="data", symmetric=False, color="#333", array=high - part.pct_exposed,
                                 arrayminus=part.pct_exposed - low),
                    customdata=list(zip(part.n_patients.map(_n), part.n_exposed.map(_n), low, high, strict=True)),
                    hovertemplate=f"dose {band.dose_band}<br>" + "%{x}: %{y:.1f}% of exposed (%{customdata[0]} of "
                                  "%{customdata[1]}; 95% CI %{customdata[2]:.1f}-%{customdata[3]:.1f}%)<extra></extra>")
        _suppressed_bars(fig, labels, part.pct_exposed.isna(), top, group)
    fig.update_layout(barmode="group", showlegend=True)
    fig.update_xaxes(title_text="Adverse event (all LDN patients); n = patients with the event on each band, "
                                "in legend order", tickfont=dict(size=11))
    fig.update_yaxes(title_text="Patients with the event, % of exposed (Wilson 95%)", rangemode="tozero")
    figs = [_titled(fig, "Adverse events by LDN dose band in effect that day", run, height=600)]

    tit = con.execute("""
        SELECT starting_dose_band, band_order, n_patients, n_sleep_event, pct_sleep_event, pct_sleep_event_low,
               pct_sleep_event_high, n_intolerant, pct_intolerant, pct_intolerant_low, pct_intolerant_high
        FROM marts.titration WHERE indication = 'all'
        ORDER BY band_order""").df()
    labels = [f"start {r.starting_dose_band}<br>n {_n(r.n_patients)} patients" for r in tit.itertuples()]
    fig = go.Figure()
    for stem, name, colour in (("sleep_event", "sleep event (insomnia, vivid dreams) in the first 28 days",
                                SLEEP_COLOUR),
                               ("intolerant", "intolerant (stopped for an adverse event)",
                                CATEGORY_COLOURS["intolerant"])):
        pct = tit[f"pct_{stem}"]
        low, high = tit[f"pct_{stem}_low"], tit[f"pct_{stem}_high"]
        fig.add_bar(name=name, x=labels, y=pct, marker_color=colour, offsetgroup=stem,
                    error_y=dict(type="data", symmetric=False, color="#333", array=high - pct, arrayminus=pct - low),
                    text=[f"{_n(k)} of {_n(n)}" if pd.notna(p) else "" for k, n, p in
                          zip(tit[f"n_{stem}"], tit.n_patients, pct, strict=True)],
                    textposition="inside", insidetextanchor="start", textfont=dict(color="white"),
                    customdata=list(zip(low, high, strict=True)),
                    hovertemplate="%{x}: %{y:.1f}% (%{text}; 95% CI %{customdata[0]:.1f}-%{customdata[1]:.1f}%)"
                                  "<extra></extra>")
        _suppressed_bars(fig, labels, pct.isna(), 100, stem)
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="LDN starting dose band (patients starting on it)")
    fig.update_yaxes(title_text="% of patients starting on the band", range=[0, 100])
    figs.append(_titled(fig, "Titration: starting dose vs early sleep events and intolerance (Wilson 95%)", run))
    return figs


# --- cohort flow -------------------------------------------------------------------------


def cohort_flow_figures(con, run: RunLabel) -> list[go.Figure]:
    flow = con.execute("SELECT * FROM marts.cohort_flow ORDER BY indication = 'all', indication").df()
    top = float(flow.enrolled.max()) if flow.enrolled.notna().any() else 1.0
    fig = go.Figure()
    for stage, colour in STAGE_COLOURS.items():
        fig.add_bar(name=_label(stage), x=flow.indication.map(_label), y=flow[stage], offsetgroup=stage,
                    marker_color=colour)
        _suppressed_bars(fig, flow.indication.map(_label), flow[stage].isna(), top, stage)
    for cat in CATEGORIES:
        fig.add_bar(name=f"categorised: {_label(cat)}", x=flow.indication.map(_label), y=flow[f"n_{cat}"],
                    marker_color=CATEGORY_COLOURS[cat], offsetgroup=cat, meta={"category": cat})
        _suppressed_bars(fig, flow.indication.map(_label), flow[f"n_{cat}"].isna(), top, cat)
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="Indication")
    fig.update_yaxes(title_text="Patients")
    return [_titled(fig, "Cohort flow: enrolled to categorised", run, height=600)]


# --- data quality ------------------------------------------------------------------------

GX_NAMES = [(r"^gx:expect_column_values_to_(not_)?", lambda m: "GX values " + ("not " if m.group(1) else "")),
            (r"^gx:expect_column_pair_values_a_to_be_greater_than_b", lambda m: "GX pair a > b"),
            (r"^gx:expect_compound_columns_to_", lambda m: "GX compound "),
            (r"^gx:expect_table_", lambda m: "GX table "),
            (r"^gx:expect_", lambda m: "GX ")]


def check_label(check: str) -> str:
    """A Great Expectations check's family (`GX values not null`), without the column it ran
    on, so the grid has one row per kind of check; other checks keep their name."""
    name = re.sub(r"\(.*\)$", "", check)
    for pattern, short in GX_NAMES:
        if re.match(pattern, name):
            words = re.sub(pattern, short, name).replace("_", " ")
            return re.sub(r"\b(to |be )", "", words).strip()
    return name


def data_quality_parts(con, run: RunLabel) -> list:
    """What to fix first (failing checks, then the first source lines from the quarantine), then
    every check as a cell of a table x check grid, then the quarantine by rule."""
    failing = pd.DataFrame([{"check": f.check, "table": f.table, "export": f.export, "failed": f.count,
                             "severity": f.severity, "where": f.where, "what it means": f.meaning}
                            for f in failing_checks(con)])
    quarantine_total = con.execute("SELECT count(*), coalesce(sum(rows_affected), 0) FROM marts.quarantine").fetchone()
    lines = con.execute("""
        SELECT CASE WHEN line_number IS NULL THEN source_file || ' (whole file)'
                    ELSE source_file || ':' || line_number END AS "where", rule, column_name AS "column", detail
        FROM marts.quarantine
        ORDER BY export_id DESC, line_number IS NOT NULL, source_file, line_number LIMIT 20""").df()
    status = (f"<p>Data quality: <span class='{'status-bad' if len(failing) else 'status-ok'}'>"
              f"{html.escape(check_status(con).sentence())}</span>. Great Expectations' own view of this run's "
              f"validations: <a href='{DATA_DOCS_LINK}'>Data Docs</a>.</p>")
    if failing.empty:
        parts = [status, "<h2>Checks failing: none</h2><p class='status-ok'>Every check passes.</p>"]
    else:
        parts = [status, f"<h2>Checks failing: {len(failing)}</h2>" + table(failing, css="wrap")]
    if lines.empty:
        parts.append("<h2>Source lines to fix: none</h2><p class='note'>Nothing is quarantined.</p>")
    else:
        parts.append(f"<h2>Source lines to fix first ({len(lines)} of {quarantine_total[0]:,} quarantine entries, "
                     f"{quarantine_total[1]:,} rows; latest export first)</h2>" + table(lines)
                     + "<p class='note'>Every entry: <code>clinic sql \"SELECT * FROM quarantine\"</code>. Line "
                       "numbers are the lines an editor shows (header = line 1).</p>")
    return [*parts, *data_quality_figures(con, run)]


def worst_export_cells(dq: pd.DataFrame) -> pd.DataFrame:
    """One cell per check label and table: the export where it did worst (highest status rank,
    then highest share failing, then most rows, then the latest export), not a rate pooled over
    exports, which would dilute one bad export among good ones. `exports`: how many it covers."""
    per_export = dq.groupby(["label", "table_name", "export_id"], as_index=False, dropna=False).agg(
        rank=("rank", "max"), rows_failed=("rows_failed", "sum"), rows_checked=("rows_checked", "sum"),
        checks=("check_name", "count"))
    per_export["pct"] = 100 * per_export.rows_failed / per_export.rows_checked.where(per_export.rows_checked > 0)
    per_export["exports"] = per_export.groupby(["label", "table_name"]).export_id.transform("size")
    worst = per_export.sort_values(["rank", "pct", "rows_failed", "export_id"], ascending=False, na_position="last")
    return worst.drop_duplicates(["label", "table_name"]).reset_index(drop=True)


def _export_words(export_id) -> str:
    """An export as the hover names it: `(all)` (checks over every export at once) in words."""
    return "all exports at once" if export_id in (None, "(all)") or pd.isna(export_id) else f"export {export_id}"


def _cell_hover(status: str, failed, checked, checks: int, export_id, exports: int) -> str:
    """A grid cell's hover: its status, and the rows failing in its worst export, named."""
    if status == "pass" and not failed and exports > 1:
        return f"pass, no row failed in any of {exports} exports" + (f" ({checks} checks)" if checks > 1 else "")
    return (f"{status}, {int(failed):,} of {int(checked):,} rows failed" + (f" ({checks} checks)" if checks > 1 else "")
            + f" in {_export_words(export_id)}" + (f" (the worst of {exports} exports)" if exports > 1 else ""))


def data_quality_figures(con, run: RunLabel) -> list[go.Figure]:
    dq = con.execute("SELECT * FROM marts.data_quality").df()
    # Great Expectations checks: named `gx:...`, or (the restructured mart) marked by implemented_by.
    gx = dq.check_name.str.startswith("gx:")
    if "implemented_by" in dq.columns:
        gx |= dq.implemented_by.eq("great_expectations")
    dq["check_name"] = dq.check_name.where(~gx | dq.check_name.str.startswith("gx:"), "gx:" + dq.check_name)
    dq["label"] = dq.check_name.map(check_label)
    dq["state"] = [("fail (" + s + ")" if st == "fail" else st) if st in ("fail", "not run") else "pass"
                   for st, s in zip(dq.status, dq.severity, strict=True)]
    rank = {name: i for i, name in enumerate(STATUS_COLOURS)}
    dq["rank"] = dq.state.map(rank)
    cells = worst_export_cells(dq)
    present = sorted(cells["rank"].unique())  # only the statuses that occur get a colour and a legend entry
    index_of = {r: i for i, r in enumerate(present)}
    names = list(STATUS_COLOURS)
    cells["z"] = cells["rank"].map(index_of)
    order = sorted(cells.label.unique(), key=lambda c: (c.startswith("GX"), c))
    grid = cells.pivot(index="label", columns="table_name", values="z").reindex(order)
    text = cells.assign(t=[f"{p:.2f}%" if f > 0 and pd.notna(p) else "" for f, p in
                           zip(cells.rows_failed, cells.pct, strict=True)]).pivot(
        index="label", columns="table_name", values="t").reindex(order).fillna("")
    hover = cells.assign(h=[_cell_hover(names[r], f, c, k, e, m) for r, f, c, k, e, m in zip(
        cells["rank"], cells.rows_failed, cells.rows_checked.fillna(0), cells.checks, cells.export_id, cells.exports,
        strict=True)]).pivot(
        index="label", columns="table_name", values="h").reindex(order).fillna("not checked")
    n = len(present)
    scale = []
    for i, r in enumerate(present):
        scale += [[i / n, STATUS_COLOURS[names[r]]], [(i + 1) / n, STATUS_COLOURS[names[r]]]]
    fig = go.Figure(go.Heatmap(
        z=grid.values, x=list(grid.columns), y=list(grid.index), text=text.values, customdata=hover.values,
        texttemplate="%{text}", zmin=-0.5, zmax=n - 0.5, colorscale=scale, xgap=2, ygap=2, showscale=False,
        hovertemplate="%{y} on %{x}: %{customdata}<extra></extra>"))
    for r in present:  # a legend with the statuses that occur, instead of a colour bar of all of them
        fig.add_scatter(x=[None], y=[None], mode="markers", name=names[r], showlegend=True,
                        marker=dict(symbol="square", size=14, color=STATUS_COLOURS[names[r]]))
    fig.update_xaxes(title_text="Table or mart", side="top", tickangle=-35, tickfont=dict(size=11))
    fig.update_yaxes(title_text="Check (label: % of rows failing, where any)", autorange="reversed",
                     tickfont=dict(size=11))
    figs = [_titled(fig, "Every check by table (Great Expectations checks grouped by kind; a cell shows the worst "
                         "export)",
                    run, height=max(560, 24 * len(grid.index) + 330))]
    figs[0].update_layout(margin=dict(t=260, l=220, r=40, b=40), title=dict(y=1 - 12 / figs[0].layout.height,
                                                                                  yanchor="top"),
                          legend=dict(orientation="h", y=-0.02, x=0, yanchor="top"),
                          xaxis=dict(showgrid=False), yaxis=dict(showgrid=False))
    counts = dq[(dq.rows_failed > 0) & ~gx].groupby(
        "check_name", as_index=False).rows_failed.sum().sort_values("rows_failed")
    # A count, not a status: one neutral colour (red or salmon would read as a failing check).
    fig = go.Figure(go.Bar(x=counts.rows_failed, y=counts.check_name, orientation="h", name="rows",
                           marker_color="#5b6f8a", text=counts.rows_failed, textposition="outside"))
    fig.update_xaxes(title_text="Rows (quarantined, dropped as duplicates or flagged)")
    fig.update_yaxes(title_text="Rule")
    figs.append(_titled(fig, "Quarantine and findings by rule (whether a check fails: the grid above)", run,
                        height=max(380, 40 * len(counts) + 220)))
    figs[1].update_layout(showlegend=False)
    return figs


# --- the dictionary ----------------------------------------------------------------------


def dictionary_parts(con) -> list[str]:
    """Every table of this database with its description and its columns' (the comments the
    run wrote from sql/**/*.yml), so the page lists exactly what this database holds. A
    release's page speaks only of what its recipient has: its DuckDB file and Parquet files."""
    tables = con.execute("SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'marts' "
                         "ORDER BY table_name").fetchall()
    columns = con.execute("SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
                          "WHERE schema_name = 'marts' ORDER BY table_name, column_index").df()
    toc = " · ".join(f"<a href='#{name}'>{name}</a>" for name, _ in tables)
    if any(name == "release_info" for name, _ in tables):
        where = ("Every table is in schema <code>marts</code> of <code>clinic_release.duckdb</code>, and in "
                 "<code>&lt;table&gt;.parquet</code> beside it (DuckDB's <code>DESCRIBE</code> and "
                 "<code>duckdb_columns()</code> show the same text)")
    else:
        where = ("Every table is in schema <code>marts</code> (<code>clinic sql</code>: <code>.schema TABLE</code> "
                 "shows the same text)")
    parts = [f"<p class='note'>{where}. Tables: {toc}</p>"]
    for name, comment in tables:
        cols = columns[columns.table_name == name].rename(columns={"column_name": "column", "data_type": "type",
                                                                   "comment": "description"})
        cols["description"] = cols.description.fillna("(not described yet)").map(prose)
        parts.append(f"<h2 id='{name}'>{name}</h2><p class='note'>{prose(comment or '(not described yet)')}"
                     f"</p>" + table(cols[["column", "type", "description"]], raw=("description",)))
    return parts


# --- shared ------------------------------------------------------------------------------


def _suppressed_bars(fig: go.Figure, x, hidden, height: float, offsetgroup: str) -> None:
    """Hatched bars labelled "suppressed" where a value is hidden in the release bundle, in the
    place its bar would be: a missing bar would read as 0. One legend entry explains them."""
    hidden = list(hidden)
    if not any(hidden):
        return
    shown_before = any(t.name == SUPPRESSED for t in fig.data)
    fig.add_bar(name=SUPPRESSED, x=[v for v, h in zip(x, hidden, strict=True) if h],
                y=[height] * sum(hidden), marker=SUPPRESSED_STYLE, offsetgroup=offsetgroup,
                legendgroup=SUPPRESSED, showlegend=not shown_before, legendrank=2000,
                text=["suppressed"] * sum(hidden),
                textposition="inside", textangle=-90, insidetextfont=dict(color="#444", size=11),
                hovertemplate="%{x}: suppressed (a count of 1-10, or one that would reveal it)<extra></extra>")


def _empty(title: str, run: RunLabel) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text="no unsuppressed data for this chart", showarrow=False)
    return _titled(fig, title, run)


def _run_label(con) -> RunLabel:
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts'"
                                        ).fetchall()}
    if "release_info" in tables:  # the release bundle's own database
        return RunLabel(*con.execute("SELECT run_id, strftime(created_at, '%Y-%m-%d %H:%M'), rules_version, "
                                     "min_cell_size, release_id FROM marts.release_info").fetchall()[0])
    return RunLabel(*con.execute("SELECT run_id, strftime(run_time, '%Y-%m-%d %H:%M'), rules_version "
                                 "FROM marts.run_info ORDER BY run_time DESC LIMIT 1").fetchall()[0])


def target_week(rules: dict) -> int:
    """The visit week nearest the assessment's target day (week 24 for day 168)."""
    day = rules["windows"]["assessment"]["target_day"]
    return min(rules["trajectory"]["visit_weeks"], key=lambda w: abs(7 * w - day))


# The marts each page draws, besides the run label, the rules and the code. A page whose marts
# are unchanged since the published set is carried over instead of drawn again
# (pipelines/publish/reuse.py); the front page (index) shows the run itself and what changed
# since the last one, so it is drawn every run. The dictionary shows the tables and columns
# sql/**/*.yml describe: code, not data.
PAGE_MARTS = {
    "outcomes": ("response_by_indication",),
    "trajectories": ("measure_trajectory",),
    "tolerability": ("tolerability", "titration"),
    "cohort_flow": ("cohort_flow",),
    "data_quality": ("data_quality", "quarantine"),
    "dictionary": (),
}


@dataclass
class CarriedPages:
    """Pages of the published set whose inputs are unchanged (slug -> that page and the run
    stamp it carries); filled in by build_dashboards: the slugs carried over, this run's stamp."""

    pages: dict[str, tuple[Path, str]]
    carried: list[str] = field(default_factory=list)
    new_stamp: str = ""


def restamp_page(source: Path, target: Path, old_stamp: str, new_stamp: str) -> bool:
    """Write `source` to `target` showing the new run: the stamp is the only thing that differs
    between two runs' pages of the same data, so the result is the page drawing it would make.
    False (nothing written) when the page does not carry the stamp it should."""
    try:
        text = source.read_text(encoding="utf-8")
    except OSError:
        return False
    if not old_stamp or old_stamp not in text:
        return False
    target.write_text(text.replace(old_stamp, new_stamp), encoding="utf-8")
    return True


class _DefaultTemplate:
    """Plotly's default template set to `name` while any build is in this block, and put back
    when the last one leaves. Every figure starts from plotly_white: set at construction,
    unvalidated, where setting it on each figure afterwards deep-copies and validates the
    template (~0.15 s a figure). The default is process-wide and the publish step builds the
    pages and the release preview's pages side by side, so it is counted, not saved per build
    (one build putting back what another set would draw the other's last pages unstyled)."""

    def __init__(self, name: str):
        self.name, self._lock, self._inside, self._before = name, threading.Lock(), 0, None

    def __enter__(self):
        import plotly.io as pio

        with self._lock:
            if self._inside == 0:
                self._before, pio.templates.default = pio.templates.default, self.name
            self._inside += 1

    def __exit__(self, *exc):
        import plotly.io as pio

        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                pio.templates.default = self._before


PLOTLY_WHITE = _DefaultTemplate("plotly_white")


def build_dashboards(snapshot: Path, out_dir: Path, rules: dict, previous: Path | None = None,
                     carry: CarriedPages | None = None) -> list[Path]:
    """Build every page of a snapshot (internal, or a release bundle's database, which has no
    data-quality mart) into `out_dir`, a folder of the run's publication set. `rules`: the
    rules file (the clinic's belief, each indication's primary measure). `previous`: the
    snapshot published before this run's, for the front page's "what changed". `carry`: pages
    to carry over from the published set instead of drawing them (their inputs unchanged)."""
    from plotly.offline import get_plotlyjs

    from pipelines.dictionary import load_dictionary

    belief = rules["clinic_belief"]
    primary = {i: spec["primary_measure"] for i, spec in rules["indications"].items()}
    dictionary = load_dictionary()
    instruments = dictionary.instruments()
    week = target_week(rules)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        with PLOTLY_WHITE, labels_from(dictionary):  # the dictionary read once for the whole build
            run = _run_label(con)
            if carry:
                carry.new_stamp = run.stamp()
            builders = {
                "index": lambda: front_page(con, run, belief, previous),
                "outcomes": lambda: outcomes_figures(con, run, belief),
                "trajectories": lambda: trajectory_parts(con, run, primary, instruments, week),
                "tolerability": lambda: tolerability_figures(con, run),
                "cohort_flow": lambda: cohort_flow_figures(con, run),
                "data_quality": lambda: data_quality_parts(con, run),
                "dictionary": lambda: dictionary_parts(con),
            }
            written = []
            for slug, title, _ in pages_for(run):
                path = out_dir / f"{slug}.html"
                published = carry.pages.get(slug) if carry else None
                if published and restamp_page(published[0], path, published[1], run.stamp()):
                    carry.carried.append(slug)
                else:
                    write_page(path, run, slug, "Clinic outcomes" if slug == "index" else title, builders[slug]())
                written.append(path)
    finally:
        con.close()
    return written

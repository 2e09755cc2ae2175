"""The dashboards and their index, built from a snapshot: the internal one (unsuppressed,
for the clinic's own team) or the release bundle's (small cells suppressed).

Pages open from disk with no network: Plotly is one local `plotly.min.js` beside the
pages (include_plotlyjs='directory'), and no chart offers a link or an upload to an online
service. Charts use only aggregate marts; patient_response and quarantine never feed a
chart. A suppressed cell is drawn as suppressed (hatched, labelled), never as 0.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

CATEGORY_COLOURS = {"meaningful": "#1b7837", "minimal": "#e08214", "intolerant": "#b2182b",
                    "not_assessable": "#878787"}
STATUS_COLOURS = {"pass": "#1b7837", "fail (info)": "#92c5de", "fail (warning)": "#f4a582",
                  "fail (fatal)": "#b2182b"}
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=13)
SUPPRESSED = "suppressed"
SUPPRESSED_STYLE = dict(color="rgba(160,160,160,0.25)", pattern=dict(shape="/", fgcolor="#6f6f6f", size=8))
# Keep "download as PNG"; no share / Chart Studio / cloud link of any kind (plotly.js 4 shows a
# "Share chart..." button that uploads the data unless told not to).
PLOT_CONFIG = {"displaylogo": False, "showSendToCloud": False, "showEditInChartStudio": False, "showLink": False,
               "modeBarButtonsToRemove": ["sendDataToCloud", "editInChartStudio"]}


@dataclass(frozen=True)
class RunLabel:
    run_id: str
    run_time: str
    rules_version: str
    min_cell_size: int | None = None  # set for the release bundle

    def subtitle(self) -> str:
        audience = (f"release bundle: counts 1-{self.min_cell_size - 1} and cells that would reveal them "
                    "are suppressed" if self.min_cell_size else "internal: unsuppressed, for the clinic's own team")
        return f"run {self.run_id[:8]} at {self.run_time} UTC · rules version {self.rules_version} · {audience}"


def _titled(fig: go.Figure, title: str, run: RunLabel, height: int = 560) -> go.Figure:
    fig.update_layout(
        title=dict(text=f"{html.escape(title)}<br><sup>{html.escape(run.subtitle())}</sup>", x=0.01),
        font=FONT, height=height, template="plotly_white", margin=dict(t=110, l=80, r=40, b=90),
        legend=dict(orientation="h", y=-0.18),
    )
    return fig


# --- pages -----------------------------------------------------------------------------


def outcomes_figures(con, run: RunLabel, belief: dict[str, float]) -> list[go.Figure]:
    rbi = con.execute("SELECT * FROM marts.response_by_indication").df()
    figures = []
    for level, label_cols, title in (
        ("indication", ["indication", "regimen"], "Response by indication and regimen"),
        ("indication_group", ["indication_group"], "Response by indication group"),
    ):
        rows = pd.concat([rbi[rbi.level == level], rbi[rbi.level == "all"]])
        labels = [
            ("<br>".join(str(getattr(r, c)).replace("_", " ") for c in label_cols)
             if r.level != "all" else "all patients")
            + f"<br>n={_n(r.n_evaluable)} (n/a {_n(r.n_not_assessable)})"
            for r in rows.itertuples()
        ]
        fig = go.Figure()
        for cat in ("meaningful", "minimal", "intolerant"):
            pct = rows[f"pct_{cat}"]
            fig.add_bar(
                name=f"{cat} (measured)", x=labels, y=pct, marker_color=CATEGORY_COLOURS[cat],
                offsetgroup=cat, legendgroup=cat,
                error_y=dict(type="data", symmetric=False,
                             array=(rows[f"pct_{cat}_high"] - pct).tolist(),
                             arrayminus=(pct - rows[f"pct_{cat}_low"]).tolist()),
                hovertemplate="%{x}<br>" + cat + ": %{y:.1f}%<extra></extra>",
            )
            _suppressed_bars(fig, labels, pct.isna(), 100, cat, cat)
        for value in sorted(set(belief.values())):  # one label per level: 20% minimal / intolerant
            cats = [c for c in ("meaningful", "minimal", "intolerant") if belief[c] == value]
            for cat in cats:
                fig.add_hline(y=value, line_dash="dash", line_color=CATEGORY_COLOURS[cat])
            fig.add_annotation(x=1, xref="paper", xanchor="right", y=value, yanchor="bottom",
                               showarrow=False, text=f"clinic belief: {value:.0f}% {' / '.join(cats)}")
        fig.update_layout(barmode="group")
        fig.update_xaxes(title_text="Indication: n evaluable (n/a = not assessable; * = suppressed)",
                         tickangle=0, tickfont=dict(size=11))
        fig.update_yaxes(title_text="Patients, % of evaluable (Wilson 95% interval)", range=[0, 100])
        figures.append(_titled(fig, title, run, height=620))
    return figures


def trajectory_figures(con, run: RunLabel, primary: dict[str, str]) -> list[go.Figure]:
    """`primary`: each indication's primary measure (from the rules file). Weeks whose count is
    suppressed in the release are gaps in their line."""
    traj = con.execute("""
        SELECT t.* FROM marts.measure_trajectory t
        JOIN (SELECT unnest(CAST(? AS VARCHAR[])) AS indication, unnest(CAST(? AS VARCHAR[])) AS primary_measure) p
          ON p.indication = t.indication AND p.primary_measure = t.instrument
        WHERE t.n_patients IS NOT NULL ORDER BY indication, category, visit_week""",
                       [list(primary), list(primary.values())]).df()
    indications = sorted(traj.indication.unique())
    if not indications:
        return [_empty("Primary measure by visit week", run)]
    fig = make_subplots(rows=len(indications), cols=1, shared_xaxes=False, vertical_spacing=0.06,
                        subplot_titles=[f"{i}: {traj[traj.indication == i].instrument.iloc[0]}"
                                        for i in indications])
    for row, indication in enumerate(indications, start=1):
        part = traj[traj.indication == indication]
        for cat, c in part.groupby("category"):
            colour = CATEGORY_COLOURS[cat]
            fig.add_scatter(x=list(c.visit_week) + list(c.visit_week[::-1]),
                            y=list(c.pct_change_p75) + list(c.pct_change_p25[::-1]),
                            fill="toself", fillcolor=colour, opacity=0.15, line=dict(width=0),
                            hoverinfo="skip", showlegend=False, row=row, col=1)
            fig.add_scatter(x=c.visit_week, y=c.pct_change_median, mode="lines+markers",
                            name=cat, legendgroup=cat, showlegend=row == 1,
                            line=dict(color=colour), row=row, col=1,
                            hovertemplate="week %{x}: median %{y:.1f}%<extra>" + cat + "</extra>")
        fig.update_yaxes(title_text="Change from baseline, %", row=row, col=1)
        fig.update_xaxes(title_text="Visit week", row=row, col=1)
    return [_titled(fig, "Median % change of each primary measure by visit week (band: IQR)",
                    run, height=300 * len(indications) + 150)]


def tolerability_figures(con, run: RunLabel) -> list[go.Figure]:
    tol = con.execute("""
        SELECT event, dose_band, band_order, n_patients, pct_exposed
        FROM marts.tolerability
        WHERE regimen = 'ldn' AND indication = 'all'
        ORDER BY band_order, event""").df()
    fig = go.Figure()
    top = float(tol.pct_exposed.max()) if tol.pct_exposed.notna().any() else 100.0
    for band_order, part in tol.groupby("band_order"):
        group = f"band{band_order}"
        fig.add_bar(name=f"dose {part.dose_band.iloc[0]}", x=part.event, y=part.pct_exposed, offsetgroup=group,
                    hovertemplate="%{x}: %{y:.1f}% of exposed<extra></extra>")
        _suppressed_bars(fig, part.event, part.pct_exposed.isna(), top, group, group)
    fig.update_layout(barmode="group", showlegend=True)
    fig.update_xaxes(title_text="Adverse event (all LDN patients)")
    fig.update_yaxes(title_text="Patients with event, % of exposed")
    figs = [_titled(fig, "Adverse events by LDN dose band", run)]

    tit = con.execute("""
        SELECT starting_dose_band, band_order, n_patients, pct_sleep_event, pct_intolerant
        FROM marts.titration WHERE indication = 'all'
        ORDER BY band_order""").df()
    labels = [f"{r.starting_dose_band}<br>n {_n(r.n_patients)}" for r in tit.itertuples()]
    fig = go.Figure()
    fig.add_bar(name="sleep event (insomnia, vivid dreams) in first 28 days", x=labels,
                y=tit.pct_sleep_event, marker_color="#5e3c99", offsetgroup="sleep")
    _suppressed_bars(fig, labels, tit.pct_sleep_event.isna(), 100, "sleep", "sleep")
    fig.add_bar(name="intolerant (stopped for an adverse event)", x=labels, y=tit.pct_intolerant,
                marker_color=CATEGORY_COLOURS["intolerant"], offsetgroup="intolerant")
    _suppressed_bars(fig, labels, tit.pct_intolerant.isna(), 100, "intolerant", "intolerant")
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="LDN starting dose band (patients)")
    fig.update_yaxes(title_text="Patients, %", range=[0, 100])
    figs.append(_titled(fig, "Titration: starting dose vs early sleep events and intolerance", run))
    return figs


def cohort_flow_figures(con, run: RunLabel) -> list[go.Figure]:
    flow = con.execute("SELECT * FROM marts.cohort_flow").df()
    stages = ["enrolled", "with_baseline", "reached_day_56", "assessed"]
    top = float(flow.enrolled.max()) if flow.enrolled.notna().any() else 1.0
    fig = go.Figure()
    for stage in stages:
        fig.add_bar(name=stage.replace("_", " "), x=flow.indication, y=flow[stage], offsetgroup=stage)
        _suppressed_bars(fig, flow.indication, flow[stage].isna(), top, stage, stage)
    for cat in ("meaningful", "minimal", "intolerant", "not_assessable"):
        fig.add_bar(name=f"categorised: {cat.replace('_', ' ')}", x=flow.indication,
                    y=flow[f"n_{cat}"], marker_color=CATEGORY_COLOURS[cat], offsetgroup=cat)
        _suppressed_bars(fig, flow.indication, flow[f"n_{cat}"].isna(), top, cat, cat)
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="Indication")
    fig.update_yaxes(title_text="Patients")
    return [_titled(fig, "Cohort flow: enrolled to categorised", run, height=600)]


def data_quality_figures(con, run: RunLabel) -> list[go.Figure]:
    dq = con.execute("""
        SELECT table_name, check_name, sum(rows_checked) AS rows_checked,
               sum(rows_failed) AS rows_failed,
               max(CASE WHEN status = 'fail' THEN 'fail (' || severity || ')' ELSE 'pass' END) AS status
        FROM marts.data_quality GROUP BY table_name, check_name""").df()
    order = {"pass": 0, "fail (info)": 1, "fail (warning)": 2, "fail (fatal)": 3}
    dq["level"] = dq.status.map(order)
    dq["pct"] = 100 * dq.rows_failed / dq.rows_checked.where(dq.rows_checked > 0)
    grid = dq.pivot(index="check_name", columns="table_name", values="level")
    text = dq.pivot(index="check_name", columns="table_name", values="pct")
    labels = text.map(lambda v: "" if pd.isna(v) else f"{v:.2f}%")
    scale = []
    for i, name in enumerate(order):
        scale += [[i / 4, STATUS_COLOURS[name]], [(i + 1) / 4, STATUS_COLOURS[name]]]
    fig = go.Figure(go.Heatmap(
        z=grid.values, x=list(grid.columns), y=list(grid.index), text=labels.values,
        texttemplate="%{text}", zmin=-0.5, zmax=3.5, colorscale=scale, xgap=2, ygap=2,
        colorbar=dict(tickvals=list(order.values()), ticktext=list(order), title="status"),
        hovertemplate="%{y} on %{x}: %{text} of rows failed<extra></extra>"))
    fig.update_xaxes(title_text="Table or mart", side="top", tickangle=-30)
    fig.update_yaxes(title_text="Check (label: % of rows failing)", autorange="reversed")
    figs = [_titled(fig, "Data quality: every check, coloured by status", run,
                    height=max(560, 28 * len(grid.index) + 220))]
    counts = dq[(dq.rows_failed > 0) & ~dq.check_name.str.startswith("gx:")].groupby(
        "check_name", as_index=False).rows_failed.sum().sort_values("rows_failed")
    fig = go.Figure(go.Bar(x=counts.rows_failed, y=counts.check_name, orientation="h",
                           marker_color="#b2182b", text=counts.rows_failed, textposition="outside"))
    fig.update_xaxes(title_text="Rows (quarantined, dropped as duplicates or flagged)")
    fig.update_yaxes(title_text="Rule")
    figs.append(_titled(fig, "Quarantine and findings by rule", run, height=480))
    return figs


def _suppressed_bars(fig: go.Figure, x, hidden, height: float, offsetgroup: str, legendgroup: str) -> None:
    """Hatched bars labelled "suppressed" where a value is hidden in the release bundle, in the
    place its bar would be: a missing bar would read as 0. One legend entry explains them."""
    hidden = list(hidden)
    if not any(hidden):
        return
    shown_before = any(t.name == SUPPRESSED for t in fig.data)
    fig.add_bar(name=SUPPRESSED, x=[v for v, h in zip(x, hidden, strict=True) if h],
                y=[height] * sum(hidden), marker=SUPPRESSED_STYLE, offsetgroup=offsetgroup,
                legendgroup=SUPPRESSED, showlegend=not shown_before, text=["suppressed"] * sum(hidden),
                textposition="inside", textangle=-90, insidetextfont=dict(color="#444", size=11),
                hovertemplate="%{x}: suppressed (a count of 1-10, or one that would reveal it)<extra></extra>")


def _empty(title: str, run: RunLabel) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text="no unsuppressed data for this chart", showarrow=False)
    return _titled(fig, title, run)


def _n(value) -> str:
    return "*" if pd.isna(value) else str(int(value))


# --- writing ---------------------------------------------------------------------------

PAGES = [
    ("outcomes", "Outcomes", "Who improves: categories by indication with Wilson intervals"),
    ("trajectories", "Trajectories", "Primary measures over time by category"),
    ("tolerability", "Tolerability", "Adverse events by dose band, and titration"),
    ("cohort_flow", "Cohort flow", "From enrolment to a category"),
    ("data_quality", "Data quality", "Every check and the quarantine"),
]


def _write_page(figures: list[go.Figure], path: Path, title: str) -> None:
    parts = []
    with warnings.catch_warnings():  # plotly.py does not list every plotly.js option it passes on
        warnings.filterwarnings("ignore", message=r"\s*Unrecognized config options")
        for i, fig in enumerate(figures):
            parts.append(fig.to_html(full_html=False, include_plotlyjs="directory" if i == 0 else False,
                                     div_id=f"chart-{i}", config=PLOT_CONFIG))
    body = "\n".join(f'<section class="chart">{p}</section>' for p in parts)
    path.write_text(
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        "</title><style>body{font-family:'DejaVu Sans',Arial,sans-serif;margin:1.5em;}"
        "nav a{margin-right:1em;}</style></head><body>"
        f"<nav><a href='index.html'>&larr; all dashboards</a></nav><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>", encoding="utf-8")


def _run_label(con) -> RunLabel:
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts'"
                                        ).fetchall()}
    if "release_info" in tables:  # the release bundle's own database
        return RunLabel(*con.execute("SELECT run_id, strftime(created_at, '%Y-%m-%d %H:%M'), rules_version, "
                                     "min_cell_size FROM marts.release_info").fetchall()[0])
    return RunLabel(*con.execute("SELECT run_id, strftime(run_time, '%Y-%m-%d %H:%M'), rules_version "
                                 "FROM marts.run_info ORDER BY run_time DESC LIMIT 1").fetchall()[0])


def build_dashboards(snapshot: Path, out_dir: Path, rules: dict) -> list[Path]:
    """Build every page of a snapshot (internal, or a release bundle's database, which has no
    data-quality mart) into `out_dir`, a folder of the run's publication set. `rules`: the
    rules file (the clinic's belief, each indication's primary measure)."""
    belief = rules["clinic_belief"]
    primary = {i: spec["primary_measure"] for i, spec in rules["indications"].items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    from plotly.offline import get_plotlyjs

    (out_dir / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        run = _run_label(con)
        builders = {
            "outcomes": lambda: outcomes_figures(con, run, belief),
            "trajectories": lambda: trajectory_figures(con, run, primary),
            "tolerability": lambda: tolerability_figures(con, run),
            "cohort_flow": lambda: cohort_flow_figures(con, run),
            "data_quality": lambda: data_quality_figures(con, run),
        }
        pages = [p for p in PAGES if not (run.min_cell_size and p[0] == "data_quality")]
        written = []
        for slug, title, _ in pages:
            path = out_dir / f"{slug}.html"
            _write_page(builders[slug](), path, title)
            written.append(path)
    finally:
        con.close()
    links = "".join(f"<li><a href='{slug}.html'>{html.escape(t)}</a>: {html.escape(d)}</li>"
                    for slug, t, d in pages)
    (out_dir / "index.html").write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Clinic outcomes"
        "</title><style>body{font-family:'DejaVu Sans',Arial,sans-serif;margin:2em;}</style>"
        f"</head><body><h1>Clinic outcomes dashboards</h1><p>{html.escape(run.subtitle())}</p>"
        f"<ul>{links}</ul></body></html>", encoding="utf-8")
    return [out_dir / "index.html", *written]

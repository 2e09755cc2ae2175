"""The HTML around the charts: one page shell with the same navigation on every page, tables,
and the run label. Pages open from disk with no network: no font, script or style is fetched."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

# Keep "download as PNG"; no share / Chart Studio / cloud link of any kind (plotly.js 4 shows a
# "Share chart..." button that uploads the data unless told not to).
# Only options plotly.py knows (it warns on others; showLink and showEditInChartStudio are gone
# from the plotly.js it ships): no warning to silence, which `warnings.catch_warnings` would do
# for the whole process while the publish step draws two sets of pages side by side.
PLOT_CONFIG = {"displaylogo": False, "showSendToCloud": False,
               "modeBarButtonsToRemove": ["sendDataToCloud", "editInChartStudio"]}

# (file stem, title, what it answers); data_quality is internal only.
PAGES = [
    ("index", "Overview", "Per indication: who improves, against the clinic's belief; the last run; what changed"),
    ("outcomes", "Outcomes", "Categories by indication and group with Wilson intervals"),
    ("trajectories", "Trajectories", "Primary measures over time by category: % change and the values"),
    ("tolerability", "Tolerability", "Adverse events by dose band, and titration, with n and intervals"),
    ("cohort_flow", "Cohort flow", "From enrolment to a category"),
    ("data_quality", "Data quality", "What to fix first, then every check"),
    ("dictionary", "Data dictionary", "Every table and column of this database: meaning, unit, sign"),
]

# The run's Great Expectations Data Docs, beside dashboards/ in the published set (internal only).
DATA_DOCS_LINK = "../data_docs/index.html"

STYLE = """
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:0 auto;padding:0 20px 40px;max-width:1240px;color:#222}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:10px 0;z-index:10}
nav a{margin-right:1.1em;color:#1f4e99;text-decoration:none;font-size:15px}
nav a.here{font-weight:bold;color:#222}
h1{font-size:26px;margin:18px 0 4px} h2{font-size:20px;margin:28px 0 6px} h3{font-size:16px;margin:18px 0 4px}
p.run{color:#555;font-size:13px;margin:0 0 10px}
p.note{color:#555;font-size:13px;max-width:1100px}
table.grid{border-collapse:collapse;font-size:13px;margin:6px 0 12px}
table.grid th,table.grid td{border-bottom:1px solid #e4e4e4;padding:4px 10px 4px 0;text-align:left;vertical-align:top}
table.grid th{font-weight:bold;border-bottom:2px solid #bbb}
table.grid.wrap td{max-width:30em;overflow-wrap:anywhere}
table.grid td.num,table.grid th.num{text-align:right}
table.grid tr.group td{font-weight:bold;background:#f6f6f6}
table.grid tr.all td{font-weight:bold;border-top:2px solid #bbb}
td.changed{background:#fff3cd}
.status-ok{color:#1b7837;font-weight:bold} .status-bad{color:#b2182b;font-weight:bold}
code{font-size:12px;background:#f4f4f4;padding:0 3px}
section.chart{margin:8px 0 24px}
table.answer td:first-child{min-width:210px}
span.share{display:inline-flex;flex-wrap:wrap;align-items:center;column-gap:6px;font-size:12px}
span.share>span{white-space:nowrap}
"""


# The dictionary's labels while pages are built (labels_from): read once per build, not per label.
_labels: ContextVar[dict[str, str] | None] = ContextVar("dictionary_labels", default=None)


@contextmanager
def labels_from(dictionary) -> Iterator[None]:
    """Label codes from `dictionary` inside this block (a build draws hundreds of labels)."""
    token = _labels.set(dictionary.labels())
    try:
        yield
    finally:
        _labels.reset(token)


def label(code) -> str:
    """A code as a clinician writes it: the dictionary's label (CRPS, Crohn's disease, LDN),
    else the code with spaces (`central_sensitisation` -> central sensitisation)."""
    labels = _labels.get()
    if labels is None:
        from pipelines.dictionary import load_dictionary

        labels = load_dictionary().labels()
    return labels.get(str(code)) or str(code).replace("_", " ")


@dataclass(frozen=True)
class RunLabel:
    run_id: str
    run_time: str
    rules_version: str
    min_cell_size: int | None = None  # set for the release bundle
    release_id: str | None = None  # the release's id in the ledger; "preview" for a run's preview

    @property
    def release(self) -> bool:
        return bool(self.min_cell_size)

    def subtitle(self) -> str:
        audience = (f"release {self.release_id or ''}: counts 1-{self.min_cell_size - 1} and cells that would reveal "
                    "them are suppressed" if self.release else "internal: unsuppressed, for the clinic's own team")
        if self.release_id == "preview":
            audience = ("PREVIEW, NOT FOR RELEASE (only clinic release makes a release): counts "
                        f"1-{self.min_cell_size - 1} and cells that would reveal them are suppressed")
        return f"{self.stamp()} · rules version {self.rules_version} · {audience}"

    def stamp(self) -> str:
        """Which run a page shows: all that differs between two runs' pages of the same data
        (dashboards/build.py rewrites it in a page it carries over unchanged)."""
        return f"run {self.run_id[:8]} at {self.run_time} UTC"


# What a release's page answers where it differs: a release may pool a table's categories (its
# grain, sql/marts/<mart>.yml); the chart's own title says which.
RELEASE_ANSWERS = {"trajectories": "Primary measures over time: % change and the values"}


def pages_for(run: RunLabel) -> list[tuple[str, str, str]]:
    return [(slug, title, RELEASE_ANSWERS.get(slug, what) if run.release else what) for slug, title, what in PAGES
            if not (run.release and slug == "data_quality")]


def nav(run: RunLabel, here: str) -> str:
    links = "".join(f"<a href='{slug}.html'{' class=here' if slug == here else ''}>{html.escape(title)}</a>"
                    for slug, title, _ in pages_for(run))
    return f"<nav>{links}</nav>"


def prose(text: str) -> str:
    """A declared description as HTML: escaped, its `code` spans (the .yml files' markup) as <code>."""
    return re.sub(r"`([^`<>]+)`", r"<code>\1</code>", html.escape(text))


def table(frame: pd.DataFrame, numeric: tuple[str, ...] = (), raw: tuple[str, ...] = (),
          row_class: list[str] | None = None, css: str = "") -> str:
    """An HTML table of a small frame; columns in `raw` hold HTML already, the rest is escaped."""
    head = "".join(f"<th{' class=num' if c in numeric else ''}>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            text = value if column in raw else html.escape("" if pd.isna(value) else str(value))
            cells.append(f"<td{' class=num' if column in numeric else ''}>{text}</td>")
        css = f" class='{row_class[i]}'" if row_class and row_class[i] else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f"<table class='grid {css}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_page(path: Path, run: RunLabel, slug: str, title: str, parts: list[go.Figure | str]) -> None:
    """One page: navigation, title, the run it shows, then its parts (charts or HTML) in order.
    Plotly is loaded from the local plotly.min.js beside the pages, once per page."""
    body, first_chart = [], True
    for i, part in enumerate(parts):
        if isinstance(part, go.Figure):
            chart = part.to_html(full_html=False, include_plotlyjs="directory" if first_chart else False,
                                 div_id=f"chart-{i}", config=PLOT_CONFIG)
            body.append(f"<section class='chart'>{chart}</section>")
            first_chart = False
        else:
            body.append(part)
    path.write_text(
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)} · clinic outcomes"
        f"</title><style>{STYLE}</style></head><body>{nav(run, slug)}<h1>{html.escape(title)}</h1>"
        f"<p class='run'>{html.escape(run.subtitle())}</p>{''.join(body)}</body></html>", encoding="utf-8")

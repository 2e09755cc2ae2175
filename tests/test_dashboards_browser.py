"""The dashboards, internal and release, in a real headless Chromium (Debian's, driven by
Playwright), from file://: they render, make no request off the machine, offer no link or
upload to an online service, give every drawn category a legend entry on its own panel, keep
fixed colours, and say what the front page and the data-quality page promise. Every page is
saved as a full-page screenshot in test-artifacts/ (1280 px wide) for a person to look at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
INTERNAL = ["index", "outcomes", "trajectories", "tolerability", "cohort_flow", "data_quality", "dictionary"]
RELEASE = ["index", "outcomes", "trajectories", "tolerability", "cohort_flow", "dictionary"]
WITHOUT_CHARTS = {"index", "dictionary"}
CLOUD_WORDS = ("share", "chart studio", "cloud", "edit in", "plotly.com", "plot.ly")

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by `make test`")]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def _folder(settings, audience: str) -> Path:
    return settings.dashboards_dir if audience == "internal" else settings.release_preview_dir / "dashboards"


# Every trace that stands for a category carries meta.category; per legend (one per panel on
# the trajectories page), the categories drawn there and the legend texts shown there (class `<legend id>text`).
LEGENDS_JS = """plots => plots.map(gd => {
    const drawn = {};
    for (const t of gd._fullData) {
        if (!t.meta || !t.meta.category || t.visible === false) continue;
        const ys = Array.from(t.y || []).filter(v => v !== null && v !== undefined && !Number.isNaN(v));
        if (ys.length) (drawn[t.legend || 'legend'] ??= new Set()).add(t.meta.category);
    }
    return Object.entries(drawn).map(([id, cats]) => {
        const g = gd.querySelector('g.' + id);
        const texts = g ? Array.from(g.querySelectorAll('.' + id + 'text')).map(e => e.textContent) : [];
        return {legend: id, categories: Array.from(cats), texts: texts};
    });
})"""


COLOURS_JS = """plots => plots.flatMap(gd => gd._fullData.filter(t => t.type === 'bar' || t.mode)
    .map(t => [t.name, (t.meta || {}).category || (t.meta || {}).dose_band || null,
               t.marker && typeof t.marker.color === 'string' ? t.marker.color : (t.line || {}).color]))"""


def _visit(browser, path: Path, shot: str) -> dict:
    """Open a page; everything it requested, its console errors, modebar buttons, links, text,
    legends and colours; then how wide it lays out when the window narrows to 1024 px."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    charts = page.locator(".js-plotly-plot")
    for i in range(charts.count()):  # the modebar appears on hover
        charts.nth(i).hover()
    found = {
        "requests": requests, "errors": errors, "charts": charts.count(),
        "drawn": page.locator(".main-svg").count(),
        "buttons": page.eval_on_selector_all(".modebar-btn", "els => els.map(e => e.getAttribute('data-title'))"),
        "links": page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"),
        "text": page.inner_text("body"),
        "legend": page.eval_on_selector_all("[class$=legendtext], [class*=legend][class$=text]",
                                            "els => els.map(e => e.textContent)"),
        "legends": page.eval_on_selector_all(".js-plotly-plot", LEGENDS_JS),
        "colours": page.eval_on_selector_all(".js-plotly-plot", COLOURS_JS),
        "width": page.evaluate("document.documentElement.scrollWidth"),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # hovering scrolled: the sticky navigation would sit mid-page
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    # Narrowed after drawing: a chart that did not follow the window would stay wide (a stricter
    # check than a page opened at 1024 px, for no second load of Plotly).
    page.set_viewport_size({"width": 1024, "height": 900})
    page.wait_for_timeout(300)  # Plotly redraws on the resize event after a short debounce
    found["width_1024"] = page.evaluate("document.documentElement.scrollWidth")
    page.close()
    return found


@pytest.fixture(scope="module")
def seen(demo_run, browser) -> dict[tuple[str, str], dict]:
    """Every page of both audiences, opened once (a page's load is most of a browser test's time)."""
    settings, _ = demo_run
    return {(audience, page): _visit(browser, _folder(settings, audience) / f"{page}.html", f"{audience}_{page}")
            for audience, pages in (("internal", INTERNAL), ("release", RELEASE)) for page in pages}


@pytest.mark.parametrize(("audience", "page"), [("internal", p) for p in INTERNAL] + [("release", p) for p in RELEASE])
def test_page_renders_offline_with_no_link_or_upload_to_an_online_service(seen, audience, page):
    seen = seen[(audience, page)]
    assert seen["requests"] and all(u.startswith("file://") for u in seen["requests"]), seen["requests"]
    assert not seen["errors"], seen["errors"]
    assert all(u.startswith("file://") for u in seen["links"]), seen["links"]
    buttons = [b.lower() for b in seen["buttons"] if b]
    assert not [b for b in buttons if any(w in b for w in CLOUD_WORDS)], buttons
    pages = INTERNAL if audience == "internal" else RELEASE
    assert {f"{p}.html" for p in pages} <= {u.rsplit("/", 1)[-1] for u in seen["links"]}  # every page, everywhere
    assert "rules version 1" in seen["text"]
    assert seen["width"] <= 1280, "wider than a 1280 px screen"
    if page in WITHOUT_CHARTS:
        return
    assert seen["charts"] and seen["drawn"] >= seen["charts"] and "download plot as a png" in buttons
    assert "rules version 1" in seen["text"]
    if audience == "release" and page in ("outcomes", "cohort_flow"):
        assert "suppressed" in seen["text"]  # drawn as suppressed, never as 0


@pytest.mark.parametrize(("audience", "page"), [(a, p) for a in ("internal", "release")
                                                for p in ("trajectories", "outcomes")])
def test_every_drawn_category_has_a_legend_entry_on_its_panel(seen, audience, page):
    panels = [panel for plot in seen[(audience, page)]["legends"] for panel in plot]
    assert panels
    for panel in panels:
        for category in panel["categories"]:
            label = category.replace("_", " ")
            assert any(text.startswith(label) for text in panel["texts"]), (category, panel)
    if page == "trajectories" and audience == "internal":
        assert len(panels) == 7  # a legend of its own for each indication's row
        assert any("not_assessable" in p["categories"] for p in panels[1:])  # lost before: only row 1 had one


def test_colours_are_fixed_per_category_and_dose_band(seen):
    from dashboards.build import CATEGORY_COLOURS, DOSE_BAND_COLOURS

    drawn = [trace for page in ("trajectories", "tolerability") for trace in seen[("internal", page)]["colours"]]
    by_key = [(key, colour) for _, key, colour in drawn if key]
    assert {key for key, _ in by_key} >= {"meaningful", "minimal", "intolerant", "not_assessable", "3-4.5 mg"}
    for key, colour in by_key:
        assert colour.lower() == {**CATEGORY_COLOURS, **DOSE_BAND_COLOURS}[key].lower(), (key, colour)


def test_front_page_answers_the_question_and_says_how_the_run_went(seen):
    internal = seen[("internal", "index")]["text"]
    assert "Does naltrexone work as the clinic believes?" in internal
    assert "belief 60%" in internal and "fibromyalgia (LDN)" in internal and "all patients" in internal
    assert "CRPS (LDN)" in internal and "Crohn's disease (LDN)" in internal
    assert "The last run" in internal and "exports applied now" in internal and "demo" in internal
    assert "checks fail (" in internal and "What to fix, and every check" in internal
    assert "first published run" in internal
    release = seen[("release", "index")]["text"]
    assert "This release" in release and "rules version 1" in release and "suppressed" in release
    assert "quarantined" not in release and "Data quality" not in release


def test_front_page_says_what_changed_since_the_previous_snapshot(demo_run, browser, tmp_path):
    """The previous snapshot as a real DuckDB file that differs from this run's: two patients
    in another category, one patient not yet published."""
    import shutil

    import duckdb

    from dashboards.build import build_dashboards

    settings, _ = demo_run
    previous = tmp_path / "previous.duckdb"
    shutil.copy(settings.snapshot.resolve(), previous)
    con = duckdb.connect(str(previous))
    moved = [r[0] for r in con.execute("SELECT patient_id FROM marts.patient_response WHERE indication = "
                                       "'fibromyalgia' AND category = 'meaningful' ORDER BY patient_id LIMIT 2").fetchall()]
    con.execute("UPDATE marts.patient_response SET category = 'minimal' WHERE list_contains(?, patient_id)", [moved])
    con.execute("DELETE FROM marts.patient_response WHERE patient_id = (SELECT max(patient_id) FROM "
                "marts.patient_response WHERE indication = 'crps')")
    con.close()
    out = tmp_path / "dashboards"
    build_dashboards(settings.snapshot, out, settings.rules(), previous=previous)
    text = _visit(browser, out / "index.html", "internal_index_changes")["text"]
    changed = text.split("What changed since the previous run")[1]
    assert "2 of 7 indications changed" in changed
    assert "minimal → meaningful: 2 patient(s)" in changed and "(new) →" in changed
    assert "42 → 44 (+2)" in changed  # fibromyalgia meaningful, before -> after


def test_data_quality_page_starts_with_what_to_fix(seen):
    seen = seen[("internal", "data_quality")]
    text = seen["text"]
    assert text.index("Checks failing: ") < text.index("Source lines to fix first") < text.index("Every check")
    assert "identifier_value" in text and "demo/adverse_events.csv:154" in text
    assert "pass" in seen["legend"] and "fail (warning)" in seen["legend"] and "fail (fatal)" not in seen["legend"]
    assert seen["width"] <= 1280  # readable at 1280 px: nothing to scroll sideways


@pytest.mark.parametrize(("audience", "page"), [("internal", p) for p in INTERNAL] + [("release", p) for p in RELEASE])
def test_no_page_scrolls_sideways_at_1024_px(seen, audience, page):
    assert seen[(audience, page)]["width_1024"] <= 1024


def test_data_docs_fit_at_1024_px(demo_run, browser):
    """GX's index (its validation table filled by bootstrap-table) and a validation page: no
    table reaches past the window's right edge (the index's table used to be cut off), and no
    cell's text runs past its cell."""
    settings, _ = demo_run
    site = Path(settings.marts_dir) / "data_docs"
    validation = sorted((site / "validations").rglob("*.html"))[0]
    for path in (site / "index.html", validation):
        page = browser.new_page(viewport={"width": 1024, "height": 800})
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        assert page.locator("table tbody tr").count() > 0, path.name
        rights = page.eval_on_selector_all("table", "ts => ts.map(t => t.getBoundingClientRect().right)")
        spilling = page.eval_on_selector_all("td", "ts => ts.filter(t => t.scrollWidth > t.clientWidth + 1)"
                                                   ".map(t => t.innerText.slice(0, 60))")
        width = page.evaluate("document.documentElement.scrollWidth")
        page.close()
        assert width <= 1024 and max(rights) <= 1024, (path.name, width, rights)
        assert spilling == [], (path.name, spilling)  # no cell's text runs into its neighbour


def test_data_docs_open_offline_with_their_tables_and_icons(demo_run, browser, seen):
    """GX's own pages, linked from the front page: the index's tables filled by bootstrap-table
    (vendored jQuery), a validation page's status icons drawn in Font Awesome, nothing fetched
    from off the machine and no file missing."""
    settings, _ = demo_run
    docs = next(u for u in seen[("internal", "index")]["links"] if u.endswith("data_docs/index.html"))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, failed, errors = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(docs)
    page.wait_for_load_state("load")
    assert page.locator("table tbody tr").count() > 3
    assert "No matching records" not in page.inner_text("body")
    validation = sorted((Path(settings.marts_dir) / "data_docs" / "validations").rglob("*.html"))[0]
    page.goto(validation.as_uri())
    page.wait_for_load_state("load")
    page.evaluate("document.fonts.ready")
    icon = page.locator(".fas").first
    assert "Font Awesome" in icon.evaluate("e => getComputedStyle(e).fontFamily")
    assert page.evaluate("document.fonts.check('900 16px \\'Font Awesome 6 Free\\'')")
    assert page.evaluate("[...document.fonts].some(f => f.family.includes('Font Awesome') && f.status === 'loaded')")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "data_docs_validation.png"))
    page.close()
    assert requests and all(u.startswith("file://") for u in requests), requests
    assert not failed and not errors, (failed, errors)

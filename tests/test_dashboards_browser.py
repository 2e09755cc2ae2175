"""The dashboards, internal and release, in a real headless Chromium (Debian's, driven by
Playwright), from file://: they render, make no request off the machine, and offer no
link or upload to an online service."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
INTERNAL = ["index", "outcomes", "trajectories", "tolerability", "cohort_flow", "data_quality"]
RELEASE = ["index", "outcomes", "trajectories", "tolerability", "cohort_flow"]
CLOUD_WORDS = ("share", "chart studio", "cloud", "edit in", "plotly.com", "plot.ly")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by `make test`")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def _visit(browser, path: Path, shot: str) -> dict:
    """Open a page; everything it requested, its console errors, modebar buttons and links."""
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
    }
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    page.close()
    return found


@pytest.mark.parametrize(("audience", "page"), [("internal", p) for p in INTERNAL] + [("release", p) for p in RELEASE])
def test_page_renders_offline_with_no_link_or_upload_to_an_online_service(demo_run, browser, audience, page):
    settings, _ = demo_run
    folder = settings.dashboards_dir if audience == "internal" else settings.release_dir / "dashboards"
    seen = _visit(browser, folder / f"{page}.html", f"{audience}_{page}")
    assert seen["requests"] and all(u.startswith("file://") for u in seen["requests"]), seen["requests"]
    assert not seen["errors"], seen["errors"]
    assert all(u.startswith("file://") for u in seen["links"]), seen["links"]
    buttons = [b.lower() for b in seen["buttons"] if b]
    assert not [b for b in buttons if any(w in b for w in CLOUD_WORDS)], buttons
    if page == "index":
        assert len(seen["links"]) >= (5 if audience == "internal" else 4)
        return
    assert seen["charts"] and seen["drawn"] >= seen["charts"] and "download plot as a png" in buttons
    assert "rules version 1" in seen["text"]
    if audience == "release" and page in ("outcomes", "cohort_flow"):
        assert "suppressed" in seen["text"]  # drawn as suppressed, never as 0

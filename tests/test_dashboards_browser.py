"""The dashboards in a real headless Chromium, from file://, with the network blocked."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PAGES = ["index", "outcomes", "trajectories", "tolerability", "cohort_flow", "data_quality"]
DATA_MARKS = ('class="point"', "js-line", 'class="hm"', "heatmaplayer")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by `make test`")


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'profile'}", "--proxy-server=127.0.0.1:9",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=8000", "--window-size=1400,1800", *args],
        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline_with_data_and_no_console_errors(demo_run, tmp_path, page):
    settings, _ = demo_run
    url = (settings.dashboards_dir / f"{page}.html").as_uri()
    dom = _chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [c for c in console if "rror" in c], console
    ARTIFACTS.mkdir(exist_ok=True)
    shot = _chromium(tmp_path, f"--screenshot={ARTIFACTS / (page + '.png')}", url)
    assert shot.returncode == 0 and (ARTIFACTS / f"{page}.png").stat().st_size > 10_000
    if page == "index":
        assert dom.stdout.count("<a href=") >= 5
        return
    charts = re.split(r'id="chart-\d+"', dom.stdout)[1:]
    assert charts, "no chart on the page"
    for i, chart in enumerate(charts):
        assert "main-svg" in chart, f"chart {i} did not render"
        assert any(mark in chart for mark in DATA_MARKS), f"chart {i} has no data points"
    assert "rules version 1" in dom.stdout and "Visit week" in dom.stdout or page != "trajectories"

"""A new user's path through the README: demo exports written into one raw folder keep their
patients apart, and a reused id whose sex or age changes is flagged, not silently merged."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.cli import print_summary
from tests.conftest import DEMO_EXPORT, query_snapshot, run_pipeline, settings_for

SITE_A = "2026-11-01T0600_site-a"  # written as the README writes it: no --id-prefix
SITE_B = "2026-11-02T0600_site-b"  # the demo's own prefix, other people: ids collide


def _demo_data(out, *extra: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "demo-data", "--patients", "60", "--seed", "1",
                           "--out", str(out), *extra], check=True, capture_output=True, text=True)
    return done.stderr


@pytest.fixture(scope="module")
def three_exports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("newcomer")
    raw = tmp / "raw"
    shutil.copytree(DEMO_EXPORT, raw / DEMO_EXPORT.name)
    told = _demo_data(raw / SITE_A)
    _demo_data(raw / SITE_B, "--id-prefix", "P")
    settings = settings_for(tmp, raw)
    result = run_pipeline(settings)
    return settings, result, told


def _ids(export) -> set[str]:
    return set(pd.read_csv(export / "patients.csv", dtype=str)["patient_id"])


def test_demo_data_gives_each_export_its_own_ids_and_says_which(three_exports, tmp_path):
    settings, result, told = three_exports
    raw = Path(settings.raw_dir)
    site_a = _ids(raw / SITE_A)
    assert site_a.isdisjoint(_ids(raw / DEMO_EXPORT.name))
    prefix = sorted(site_a)[0][:-7]
    assert prefix != "P" and f"ids {prefix}0000001" in told
    _demo_data(tmp_path / SITE_A)  # the same folder name and seed: the same ids, so re-writing is harmless
    assert _ids(tmp_path / SITE_A) == site_a
    _demo_data(tmp_path / "2026-11-03T0600_site-c")
    assert _ids(tmp_path / "2026-11-03T0600_site-c").isdisjoint(site_a)


def test_a_reused_id_with_another_sex_or_age_is_an_identity_conflict(three_exports):
    settings, result, _ = three_exports
    assert result.success
    # Independently: site B's patients against what the warehouse kept for the same ids.
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    kept = con.execute("SELECT patient_id, sex, age_years, export_id FROM core.patients").df()
    con.close()
    site_b = pd.read_csv(Path(settings.raw_dir) / SITE_B / "patients.csv", dtype={"patient_id": str})
    both = site_b.merge(kept, on="patient_id", suffixes=("_b", "_kept"))
    later = both[both.export_id != SITE_B]
    expected = int(((later.sex_b != later.sex_kept) | (later.age_years_b != later.age_years_kept)).sum())
    assert expected > 0
    rows = query_snapshot(settings, """
        SELECT export_id, severity, status, rows_failed, rows_checked, description, detail
        FROM marts.data_quality WHERE check_name = 'identity_conflict' AND rows_failed > 0""")
    assert len(rows) == 1
    export, severity, status, failed, checked, description, detail = rows[0]
    assert (export, severity, status, failed) == (DEMO_EXPORT.name, "warning", "fail", expected)
    assert checked > failed  # the patients read, not the findings
    assert "another person" in description and f"from {SITE_B}/patients.csv:" in detail
    # The later export still wins.
    assert set(later.export_id) == {DEMO_EXPORT.name}
    # Exports with their own ids pass the check.
    passing = query_snapshot(settings, f"""SELECT status FROM marts.data_quality
        WHERE check_name = 'identity_conflict' AND export_id = '{SITE_A}'""")
    assert passing == [("pass",)]

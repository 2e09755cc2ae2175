"""Every worked example of the response rules (shared spec response-rules.md), end to end:
written as an export, ingested, categorised by the real SQL and Dagster assets."""

from __future__ import annotations

import csv

import duckdb
import pytest

from tests.conftest import run_pipeline, settings_for

FIB, CROHN, MS, AUD = "fibromyalgia", "crohns_disease", "multiple_sclerosis", "alcohol_use_disorder"
# id: (indication, primary instrument, [(day, value)], discontinuation, adverse events, doses, expected)
CASES = {
    "fib_40pct": (FIB, "fiqr_total", [(-7, 60), (180, 36)], None, [], [], ("meaningful", "threshold_met")),
    "fib_25pct": (FIB, "fiqr_total", [(-7, 60), (180, 45)], None, [], [], ("minimal", "threshold_not_met")),
    "crohn_980": (CROHN, "calprotectin_ug_g", [(-3, 980), (170, 250)], None, [], [], ("meaningful", "threshold_met")),
    "crohn_400": (CROHN, "calprotectin_ug_g", [(0, 400), (160, 300)], None, [], [], ("minimal", "threshold_not_met")),
    "crohn_300": (CROHN, "calprotectin_ug_g", [(0, 300), (160, 240)], None, [], [], ("meaningful", "threshold_met")),
    "ms_50_43": (MS, "msis29_physical", [(-1, 50), (168, 43)], None, [], [], ("minimal", "threshold_not_met")),
    "ms_50_42": (MS, "msis29_physical", [(-1, 50), (168, 42)], None, [], [], ("meaningful", "threshold_met")),
    "ms_exact8": (MS, "msis29_physical", [(-1, 20.9), (168, 12.9)], None, [], [], ("meaningful", "threshold_met")),
    "fib_exact30": (FIB, "fiqr_total", [(-1, 12.0), (168, 8.4)], None, [], [], ("meaningful", "threshold_met")),
    "fib_no_assess": (FIB, "fiqr_total", [(-5, 60), (30, 40)], None, [], [], ("not_assessable", "no_assessment")),
    "fib_no_base": (FIB, "fiqr_total", [(10, 60), (168, 30)], None, [], [], ("not_assessable", "no_baseline")),
    "ldn_dreams": (FIB, "fiqr_total", [(-3, 60)], None, [(9, "vivid_dreams", "discontinued")], [(0, 4.5)],
                   ("intolerant", "stopped_for_adverse_event")),
    "lack_effect": (FIB, "fiqr_total", [(-3, 60)], (120, "lack_of_effect"), [], [],
                    ("minimal", "stopped_for_lack_of_effect")),
    "closest_168": (FIB, "fiqr_total", [(-3, 100), (60, 65), (200, 90)], None, [], [], ("minimal", "threshold_not_met")),
    "aud_12_0": (AUD, "heavy_drinking_days_30d", [(-2, 12), (168, 0)], None, [], [], ("meaningful", "threshold_met")),
    "aud_0_0": (AUD, "heavy_drinking_days_30d", [(-2, 0), (168, 0)], None, [], [], ("meaningful", "threshold_met")),
    "aud_0_2": (AUD, "heavy_drinking_days_30d", [(-2, 0), (168, 2)], None, [], [], ("minimal", "threshold_not_met")),
    "fib_zero": (FIB, "fiqr_total", [(-2, 0), (168, 0)], None, [], [], ("not_assessable", "baseline_zero")),
    "tie_later": (FIB, "fiqr_total", [(-3, 100), (160, 90), (176, 60)], None, [], [], ("meaningful", "threshold_met")),
    "late_ae": (FIB, "fiqr_total", [(-3, 60), (168, 30)], (300, "adverse_event"), [], [], ("meaningful", "threshold_met")),
    "lack_but_met": (FIB, "fiqr_total", [(-3, 60), (100, 30)], (120, "lack_of_effect"), [], [],
                     ("meaningful", "threshold_met")),
}


def _write(path, header, rows):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture(scope="module")
def case_raw_dir(tmp_path_factory):
    """A raw folder holding one export with a patient per worked example."""
    raw = tmp_path_factory.mktemp("rules") / "raw"
    export = raw / "2026-01-01_cases"
    export.mkdir(parents=True)
    patients, meas, disc, aes, doses = [], [], [], [], []
    for pid, (ind, inst, values, stop, events, dose_rows, _) in CASES.items():
        regimen = "standard_oral" if ind == AUD else "ldn"
        patients.append((f"case_{pid}", "site-a", ind, regimen, "F", 62, 2024))
        meas += [(f"case_{pid}", d, inst, v) for d, v in values]
        if stop:
            disc.append((f"case_{pid}", *stop))
        aes += [(f"case_{pid}", d, e, "moderate", a) for d, e, a in events]
        doses += [(f"case_{pid}", d, mg) for d, mg in (dose_rows or [(0, 1.5)])]
    _write(export / "patients.csv", ["patient_id", "site_id", "indication", "regimen", "sex",
                                     "age_years", "start_year"], patients)
    _write(export / "measurements.csv", ["patient_id", "study_day", "instrument", "value"], meas)
    _write(export / "discontinuations.csv", ["patient_id", "study_day", "reason"], disc)
    _write(export / "adverse_events.csv", ["patient_id", "study_day", "event", "severity", "action"], aes)
    _write(export / "doses.csv", ["patient_id", "study_day", "dose_mg"], doses)
    (export / "_READY").touch()
    return raw


@pytest.fixture(scope="module")
def categories(case_raw_dir):
    settings = settings_for(case_raw_dir.parent, case_raw_dir)
    run_pipeline(settings)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    rows = con.execute("SELECT patient_id, category, reason, rules_version FROM marts.patient_response").fetchall()
    con.close()
    return {r[0].removeprefix("case_"): r[1:] for r in rows}


@pytest.mark.parametrize("case", list(CASES))
def test_worked_example(categories, case):
    category, reason, version = categories[case]
    assert (category, reason) == CASES[case][-1]
    assert version == "1"


def test_changing_the_rules_file_changes_results_without_code(tmp_path, case_raw_dir):
    import shutil

    import yaml

    from pipelines.settings import RULES_DIR

    rules = yaml.safe_load((RULES_DIR / "response_rules.yaml").read_text())
    rules["version"] = "1-strict"
    rules["indications"]["fibromyalgia"]["relative_reduction_pct"] = 45
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    shutil.copytree(case_raw_dir, tmp_path / "raw")
    settings = settings_for(tmp_path, tmp_path / "raw")

    run_pipeline(settings.model_copy(update={"rules_file": str(tmp_path / "rules.yaml")}))
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    got = dict(con.execute("SELECT patient_id, category || '/' || rules_version "
                           "FROM marts.patient_response").fetchall())
    assert got["case_fib_40pct"] == "minimal/1-strict"   # -40% no longer meets 45%
    assert got["case_ms_50_42"] == "meaningful/1-strict"

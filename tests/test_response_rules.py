"""The response rules: every worked example (shared spec response-rules.md) on the response
SQL itself, in an in-memory DuckDB (tests/response_sql.py); the order of the decision and
of the criteria as pipelines/response/rules.py declares them; and, end to end through
`clinic run`, that an edited rules file publishes under its own version."""

from __future__ import annotations

import csv
import re
import shutil

import duckdb
import pytest
import yaml

from pipelines.response.rules import CRITERIA, DECISION_ORDER
from pipelines.settings import RULES_DIR, SQL_DIR
from tests.response_sql import categorise, cohort_flow

FIB, CROHN, MS, AUD = "fibromyalgia", "crohns_disease", "multiple_sclerosis", "alcohol_use_disorder"
# id: (indication, primary instrument, [(day, value)], discontinuation, adverse events, expected)
CASES = {
    "fib_40pct": (FIB, "fiqr_total", [(-7, 60), (180, 36)], None, [], ("meaningful", "threshold_met")),
    "fib_25pct": (FIB, "fiqr_total", [(-7, 60), (180, 45)], None, [], ("minimal", "threshold_not_met")),
    "crohn_980": (CROHN, "calprotectin_ug_g", [(-3, 980), (170, 250)], None, [], ("meaningful", "threshold_met")),
    "crohn_400": (CROHN, "calprotectin_ug_g", [(0, 400), (160, 300)], None, [], ("minimal", "threshold_not_met")),
    "crohn_300": (CROHN, "calprotectin_ug_g", [(0, 300), (160, 240)], None, [], ("meaningful", "threshold_met")),
    "ms_50_43": (MS, "msis29_physical", [(-1, 50), (168, 43)], None, [], ("minimal", "threshold_not_met")),
    "ms_50_42": (MS, "msis29_physical", [(-1, 50), (168, 42)], None, [], ("meaningful", "threshold_met")),
    "ms_exact8": (MS, "msis29_physical", [(-1, 20.9), (168, 12.9)], None, [], ("meaningful", "threshold_met")),
    "fib_exact30": (FIB, "fiqr_total", [(-1, 12.0), (168, 8.4)], None, [], ("meaningful", "threshold_met")),
    "fib_no_assess": (FIB, "fiqr_total", [(-5, 60), (30, 40)], None, [], ("not_assessable", "no_assessment")),
    "fib_no_base": (FIB, "fiqr_total", [(10, 60), (168, 30)], None, [], ("not_assessable", "no_baseline")),
    "ldn_dreams": (FIB, "fiqr_total", [(-3, 60)], None, [(9, "vivid_dreams", "discontinued")],
                   ("intolerant", "stopped_for_adverse_event")),
    "lack_effect": (FIB, "fiqr_total", [(-3, 60)], (120, "lack_of_effect"), [],
                    ("minimal", "stopped_for_lack_of_effect")),
    "closest_168": (FIB, "fiqr_total", [(-3, 100), (60, 65), (200, 90)], None, [], ("minimal", "threshold_not_met")),
    "aud_12_0": (AUD, "heavy_drinking_days_30d", [(-2, 12), (168, 0)], None, [], ("meaningful", "threshold_met")),
    "aud_0_0": (AUD, "heavy_drinking_days_30d", [(-2, 0), (168, 0)], None, [], ("meaningful", "threshold_met")),
    "aud_0_2": (AUD, "heavy_drinking_days_30d", [(-2, 0), (168, 2)], None, [], ("minimal", "threshold_not_met")),
    "fib_zero": (FIB, "fiqr_total", [(-2, 0), (168, 0)], None, [], ("not_assessable", "baseline_zero")),
    "tie_later": (FIB, "fiqr_total", [(-3, 100), (160, 90), (176, 60)], None, [], ("meaningful", "threshold_met")),
    "late_ae": (FIB, "fiqr_total", [(-3, 60), (168, 30)], (300, "adverse_event"), [], ("meaningful", "threshold_met")),
    "lack_but_met": (FIB, "fiqr_total", [(-3, 60), (100, 30)], (120, "lack_of_effect"), [],
                     ("meaningful", "threshold_met")),
}


@pytest.fixture(scope="module")
def categories():
    return categorise({pid: case[:-1] for pid, case in CASES.items()})


@pytest.mark.parametrize("case", list(CASES))
def test_worked_example(categories, case):
    row = categories[case]
    assert (row["category"], row["reason"]) == CASES[case][-1]
    assert row["rules_version"] == "1"


def test_improvement_is_the_change_signed_so_that_positive_is_better(categories):
    fib = categories["fib_40pct"]  # FIQR 60 -> 36: lower is better
    assert fib["change_pct"] == pytest.approx(-40) and fib["improvement_pct"] == pytest.approx(40)
    assert categories["aud_0_2"]["improvement_pct"] is None  # no percentage from a zero baseline


def _then_literals(sql: str, alias: str) -> list[str]:
    """The THEN and ELSE values, in order, of the CASE that ends `END AS <alias>`."""
    case = sql[:sql.index(f"END AS {alias}")].rsplit("CASE", 1)[1]
    return re.findall(r"(?:THEN|ELSE) '?([a-z_]+)'?", case)


def test_a_stop_that_decides_names_its_row():
    """decided_by_source: the row of the stop the criterion names (lines numbered in the order
    the cases list their rows, from 2), and none where the values decided."""
    rows = categorise({
        "both": (FIB, "fiqr_total", [(-3, 60)], (30, "adverse_event"), [(9, "vivid_dreams", "discontinued")]),
        "two_on_a_day": (FIB, "fiqr_total", [(-3, 60)], None, [(9, "vivid_dreams", "discontinued"),
                                                              (9, "nausea", "discontinued")]),
        "lack": (FIB, "fiqr_total", [(-3, 60)], (120, "lack_of_effect"), []),
        "met": (FIB, "fiqr_total", [(-7, 60), (180, 36)], (200, "lack_of_effect"), []),
    })
    assert {pid: (row["criterion"], row["decided_by_source"]) for pid, row in rows.items()} == {
        "both": ("discontinuation adverse_event on day 30", "cases/discontinuations.csv:3"),
        "two_on_a_day": ("adverse event nausea discontinued on day 9", "cases/adverse_events.csv:7"),
        "lack": ("discontinuation lack_of_effect on day 120", "cases/discontinuations.csv:9"),
        "met": ("relative_reduction_pct >= 30", None)}


def test_cohort_flow_counts_off_treatment_by_either_stop_before_the_assessment_window():
    """reached_assessment_window: patients still on treatment on the window's first day (day 56).
    An adverse event with action `discontinued` stops treatment as a discontinuation does (the
    response rules call both patients intolerant); a patient with both stops counts once."""
    flow = cohort_flow({
        "on_treatment": (FIB, "fiqr_total", [(-5, 60), (168, 30)], None, [(20, "nausea", "dose_reduced")]),
        "ae_stop": (FIB, "fiqr_total", [(-5, 60)], None, [(20, "nausea", "discontinued")]),
        "discontinued": (FIB, "fiqr_total", [(-5, 60)], (30, "patient_choice"), []),
        "both_stops": (FIB, "fiqr_total", [(-5, 60)], (40, "adverse_event"), [(40, "nausea", "discontinued")]),
        "stop_on_day_56": (FIB, "fiqr_total", [(-5, 60), (168, 40)], None, [(56, "nausea", "discontinued")]),
    })
    assert {k: flow[FIB][k] for k in ("enrolled", "with_baseline", "reached_assessment_window", "assessed",
                                       "n_intolerant")} == {
        "enrolled": 5, "with_baseline": 5, "reached_assessment_window": 2, "assessed": 2, "n_intolerant": 3}
    assert flow["all"]["reached_assessment_window"] == 2


def test_the_sql_decides_in_the_declared_order():
    sql = (SQL_DIR / "response" / "patient_response.sql").read_text()
    assert _then_literals(sql, "category") == [category for category, _, _ in DECISION_ORDER]
    assert _then_literals(sql, "reason") == [r for _, reasons, _ in DECISION_ORDER for r in reasons]
    named = [t for t in re.findall(r"THEN ([a-z_]+_criterion)\b", sql.split("END AS reason")[1])]
    assert named == [c.text_column for c in CRITERIA]


# --- an edited rules file publishes, end to end -----------------------------------------------


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
    for pid, (ind, inst, values, stop, events, _) in CASES.items():
        regimen = "standard_oral" if ind == AUD else "ldn"
        patients.append((f"case_{pid}", "site-a", ind, regimen, "F", 62, 2024))
        meas += [(f"case_{pid}", d, inst, v) for d, v in values]
        if stop:
            disc.append((f"case_{pid}", *stop))
        aes += [(f"case_{pid}", d, e, "moderate", a) for d, e, a in events]
        doses.append((f"case_{pid}", 0, 4.5 if pid == "ldn_dreams" else 1.5))
    doses.append(("case_fib_25pct", 30, 12))  # a dose above every band but the top one
    _write(export / "patients.csv", ["patient_id", "site_id", "indication", "regimen", "sex",
                                     "age_years", "start_year"], patients)
    _write(export / "measurements.csv", ["patient_id", "study_day", "instrument", "value"], meas)
    _write(export / "discontinuations.csv", ["patient_id", "study_day", "reason"], disc)
    _write(export / "adverse_events.csv", ["patient_id", "study_day", "event", "severity", "action"], aes)
    _write(export / "doses.csv", ["patient_id", "study_day", "dose_mg"], doses)
    (export / "_READY").touch()
    return raw


def _widen_assessment(rules):
    rules["windows"]["assessment"]["from_day"] = 28  # fib_no_assess's day-30 value now counts


def _narrow_baseline(rules):
    rules["windows"]["baseline"]["from_day"] = -4  # fib_40pct's day -7 baseline no longer counts


def _stricter_threshold(rules):
    rules["indications"]["fibromyalgia"]["relative_reduction_pct"] = 45  # -40% no longer meets it


def _one_more_dose_band(rules):
    top = rules["ldn_dose_bands"][-1]
    rules["ldn_dose_bands"][-1:] = [{**top, "label": "4.5-10 mg", "to_mg": 10},
                                    {**top, "label": ">10 mg", "from_mg": 10}]


# change: (edit, patient whose result it moves, (category, reason) under the new rules)
RULE_CHANGES = {
    "widened assessment window": (_widen_assessment, "fib_no_assess", ("meaningful", "threshold_met")),
    "narrowed baseline window": (_narrow_baseline, "fib_40pct", ("not_assessable", "no_baseline")),
    "changed threshold": (_stricter_threshold, "fib_40pct", ("minimal", "threshold_not_met")),
    "added dose band": (_one_more_dose_band, "fib_40pct", ("meaningful", "threshold_met")),
}


@pytest.mark.parametrize("change", list(RULE_CHANGES))
def test_an_edited_rules_file_publishes_under_its_version(tmp_path, monkeypatch, case_raw_dir, change):
    from pipelines.cli import main

    edit, patient, expected = RULE_CHANGES[change]
    rules = yaml.safe_load((RULES_DIR / "response_rules.yaml").read_text())
    rules["version"] = f"1-{change.replace(' ', '-')}"
    edit(rules)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    code = main(["run", "--raw", str(case_raw_dir), "--marts", str(tmp_path / "marts"),
                 "--warehouse", str(tmp_path / "warehouse.duckdb"), "--rules", str(tmp_path / "rules.yaml")])
    assert code == 0
    con = duckdb.connect(str(tmp_path / "marts" / "clinic.duckdb"), read_only=True)
    try:
        got = con.execute("SELECT category, reason FROM marts.patient_response WHERE patient_id = ?",
                          [f"case_{patient}"]).fetchone()
        assert got == expected
        versioned = [t for (t,) in con.execute("SELECT DISTINCT table_name FROM duckdb_columns() WHERE "
                                               "schema_name = 'marts' AND column_name = 'rules_version'").fetchall()]
        assert {"patient_response", "cohort_flow", "titration", "tolerability", "response_rules"} <= set(versioned)
        for table in versioned:
            versions = {v for (v,) in con.execute(f"SELECT DISTINCT rules_version FROM marts.{table}").fetchall()}
            assert versions <= {rules["version"]}, table  # every row (an empty mart has none)
        if edit is _one_more_dose_band:
            bands = [b for (b,) in con.execute("SELECT DISTINCT dose_band FROM marts.tolerability").fetchall()]
            assert ">10 mg" in bands  # case_fib_25pct's 12 mg, in the band the rules file added
    finally:
        con.close()


# --- rule values in the expectation suites --------------------------------------------------------


def test_a_suite_reads_the_windows_from_the_rules_file():
    from pipelines.quality.gx_validation import suite_document
    from pipelines.settings import EXPECTATIONS_DIR

    rules = yaml.safe_load((RULES_DIR / "response_rules.yaml").read_text())
    rules["windows"]["assessment"]["to_day"] = 300
    rules["windows"]["baseline"]["from_day"] = -14
    doc = suite_document(EXPECTATIONS_DIR / "patient_response.json", rules)
    between = {e["kwargs"]["column"]: (e["kwargs"]["min_value"], e["kwargs"]["max_value"])
               for e in doc["expectations"] if e["type"] == "expect_column_values_to_be_between"}
    assert between == {"baseline_day": (-14, 0), "assessment_day": (56, 300)}
    weeks = suite_document(EXPECTATIONS_DIR / "measure_trajectory.json", rules)["expectations"][0]["kwargs"]
    assert weeks == {"column": "visit_week", "value_set": rules["trajectory"]["visit_weeks"]}


def test_an_unknown_rules_reference_stops_the_run_before_any_work(tmp_path):
    from pipelines.config import ClinicConfig
    from pipelines.settings import EXPECTATIONS_DIR, ConfigError

    shutil.copytree(EXPECTATIONS_DIR, tmp_path / "expectations")
    suite = tmp_path / "expectations" / "patient_response.json"
    suite.write_text(suite.read_text().replace('"windows.assessment.to_day"', '"windows.assessment.max"'))
    settings = ClinicConfig.with_overrides(expectations_dir=tmp_path / "expectations", warehouse=tmp_path / "w.duckdb",
                                           marts_dir=tmp_path / "marts")
    with pytest.raises(ConfigError) as raised:
        settings.check()
    message = str(raised.value)
    assert "suite patient_response.json" in message and '"windows.assessment.max"' in message
    assert "windows.assessment has from_day, to_day, target_day" in message
    assert not (tmp_path / "w.duckdb").exists()

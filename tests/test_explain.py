"""`clinic explain PATIENT_ID` on a real published snapshot: one patient of each kind
(meaningful by each criterion, minimal, intolerant by a stop and by an adverse event, each
not-assessable reason), written as an export, run through the real pipeline once for the
module, then explained by the command line in a subprocess as an analyst would."""

from __future__ import annotations

import csv

import pytest

from tests.conftest import clinic, run_pipeline, settings_for

pytestmark = pytest.mark.slow  # the whole job, then clinic explain

EXPORT = "2026-02-01_explain"
FIB, CROHN, MS, OUD = "fibromyalgia", "crohns_disease", "multiple_sclerosis", "opioid_use_disorder"
# id: (indication, instrument, [(day, value)], discontinuation, [adverse events], [doses])
PATIENTS = {
    "X_REL": (FIB, "fiqr_total", [(-7, 60), (180, 36)], None, [], []),
    "X_ABS": (MS, "msis29_physical", [(-1, 50), (168, 42)], None, [], []),
    "X_REM": (CROHN, "calprotectin_ug_g", [(0, 300), (160, 240)], None, [], []),
    "X_ZERO": (OUD, "opioid_use_days_30d", [(-2, 10), (168, 0)], None, [], []),
    "X_MIN": (FIB, "fiqr_total", [(-7, 60), (180, 45)], None, [], []),
    "X_LACK": (FIB, "fiqr_total", [(-3, 60)], (120, "lack_of_effect"), [], []),
    "X_STOP": (FIB, "fiqr_total", [(-3, 60), (30, 50)], (30, "adverse_event"), [], []),
    "X_AE": (FIB, "fiqr_total", [(-3, 60)], None, [(9, "vivid_dreams", "discontinued")], [(0, 4.5)]),
    "X_NOBASE": (FIB, "fiqr_total", [(10, 60), (168, 30)], None, [], []),
    "X_NOASSESS": (FIB, "fiqr_total", [(-5, 60), (30, 40)], None, [], []),
    "X_ZEROBASE": (FIB, "fiqr_total", [(-2, 0), (168, 0)], None, [], []),
    "X_FIQR": (FIB, "fiqr_total", [], None, [], []),  # scored from its items (below)
}
# FIQR item answers (items 1..21) by (patient, day); a later export re-sends item 1 of day -3.
FIQR_ITEMS = {("X_FIQR", -3): [5] * 21, ("X_FIQR", 168): [2] * 21}
CORRECTION = "2026-02-02_explain-fix"


def _write(path, header, rows):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The marts folder of one real run over an export with a patient per kind, and each
    measurement's source line (`<export>/measurements.csv:<line>`) by (patient, day)."""
    tmp = tmp_path_factory.mktemp("explain")
    export = tmp / "raw" / EXPORT
    export.mkdir(parents=True)
    patients, measurements, stops, events, doses, lines = [], [], [], [], [], {}
    for pid, (indication, instrument, values, stop, aes, dose_rows) in PATIENTS.items():
        regimen = "standard_oral" if indication == OUD else "ldn"
        patients.append((pid, "site-a", indication, regimen, "F", 50, 2024))
        for day, value in values:
            measurements.append((pid, day, instrument, value))
            lines[pid, day] = f"{EXPORT}/measurements.csv:{len(measurements) + 1}"
        if stop:
            stops.append((pid, *stop))
        events += [(pid, day, event, "moderate", action) for day, event, action in aes]
        doses += [(pid, day, mg) for day, mg in (dose_rows or [(0, 1.5)])]
    _write(export / "patients.csv", ["patient_id", "site_id", "indication", "regimen", "sex", "age_years",
                                     "start_year"], patients)
    _write(export / "measurements.csv", ["patient_id", "study_day", "instrument", "value"], measurements)
    _write(export / "discontinuations.csv", ["patient_id", "study_day", "reason"], stops)
    _write(export / "adverse_events.csv", ["patient_id", "study_day", "event", "severity", "action"], events)
    _write(export / "doses.csv", ["patient_id", "study_day", "dose_mg"], doses)
    _write(export / "fiqr_items.csv", ["patient_id", "study_day", "item", "value"],
           [(pid, day, item, value) for (pid, day), values in FIQR_ITEMS.items()
            for item, value in enumerate(values, start=1)])
    (export / "_READY").touch()
    correction = tmp / "raw" / CORRECTION
    correction.mkdir()
    _write(correction / "fiqr_items.csv", ["patient_id", "study_day", "item", "value"], [("X_FIQR", -3, 1, 8)])
    (correction / "_READY").touch()
    settings = settings_for(tmp, tmp / "raw")
    assert run_pipeline(settings).success
    return settings.marts_dir, lines


# patient: what the explanation must say (each a line fragment), beside its header line.
EXPECTED = {
    "X_REL": ["Patient X_REL: meaningful (reason threshold_met)",
              "60 points on day -7, from {X_REL,-7}", "36 points on day 180, from {X_REL,180}",
              "Change           -24 points (-40.0% of baseline)",
              "relative_reduction_pct >= 30: met (a reduction of 40.0% of baseline; threshold 30%)"],
    "X_ABS": ["Patient X_ABS: meaningful (reason threshold_met)", "50 points on day -1, from {X_ABS,-1}",
              "42 points on day 168, from {X_ABS,168}", "-8 points (-16.0% of baseline)",
              "absolute_reduction >= 8: met (a reduction of 8 points; threshold 8 points)"],
    "X_REM": ["Patient X_REM: meaningful (reason threshold_met)", "300 µg/g on day 0, from {X_REM,0}",
              "240 µg/g on day 160, from {X_REM,160}", "-60 µg/g (-20.0% of baseline)",
              "remission_below 250: met (baseline 300, assessment 240, cut-off 250 µg/g)"],
    "X_ZERO": ["Patient X_ZERO: meaningful (reason threshold_met)", "10 days of 30 on day -2, from {X_ZERO,-2}",
               "0 days of 30 on day 168, from {X_ZERO,168}", "assessment_zero: met (the assessment value is 0)"],
    "X_MIN": ["Patient X_MIN: minimal (reason threshold_not_met)", "45 points on day 180, from {X_MIN,180}",
              "-15 points (-25.0% of baseline)",
              "no criterion met: relative_reduction_pct >= 30 not met (a reduction of 25.0% of baseline; "
              "threshold 30%). Minimal."],
    "X_LACK": ["Patient X_LACK: minimal (reason stopped_for_lack_of_effect)", "60 points on day -3, from {X_LACK,-3}",
               "Assessment       none",
               f"discontinuation lack_of_effect on day 120 ({EXPORT}/discontinuations.csv:2), and there is no "
               "assessment value: minimal."],
    "X_STOP": ["Patient X_STOP: intolerant (reason stopped_for_adverse_event)",
               f"Decided by       discontinuation adverse_event on day 30 ({EXPORT}/discontinuations.csv:3). A stop "
               "for an adverse event on or before day 252 makes a patient intolerant"],
    "X_AE": ["Patient X_AE: intolerant (reason stopped_for_adverse_event)",
             f"Decided by       adverse event vivid_dreams discontinued on day 9 ({EXPORT}/adverse_events.csv:2)."],
    "X_NOBASE": ["Patient X_NOBASE: not_assessable (reason no_baseline)", "Baseline         none",
                 "30 points on day 168, from {X_NOBASE,168}",
                 "no fiqr_total value in the baseline window (days -30..0): not assessable."],
    "X_NOASSESS": ["Patient X_NOASSESS: not_assessable (reason no_assessment)", "Assessment       none",
                   "no fiqr_total value in the assessment window (days 56..252): not assessable."],
    "X_ZEROBASE": ["Patient X_ZEROBASE: not_assessable (reason baseline_zero)",
                   "0 points on day -2, from {X_ZEROBASE,-2}",
                   "baseline 0: relative_reduction_pct >= 30 cannot be met"],
    # 5 x 9 / 3 + 10 + 25 = 50, and 51 once item 1 is 8: the score and its source span both exports
    "X_FIQR": ["Patient X_FIQR: meaningful (reason threshold_met)",
               f"51 points on day -3, from {EXPORT}/fiqr_items.csv + {CORRECTION}/fiqr_items.csv",
               "scored from the patient's item answers of day -3 in those 2 files",
               f"20 points on day 168, from {EXPORT}/fiqr_items.csv  (",
               "scored from the patient's item answers of day 168 in that file"],
}


@pytest.mark.parametrize("patient", list(PATIENTS))
def test_explain_says_why_with_values_days_and_source_lines(published, patient):
    marts, lines = published
    done = clinic("explain", patient, "--marts", str(marts))
    assert done.returncode == 0, done.stderr
    for fragment in EXPECTED[patient]:
        for (pid, day), source in lines.items():
            fragment = fragment.replace(f"{{{pid},{day}}}", source)
        assert fragment in done.stdout, f"{fragment!r} not in:\n{done.stdout}"
    assert "Rules            version 1: meaningful when" in done.stdout


def test_explain_prints_the_trajectory_of_the_primary_measure(published):
    marts, _ = published
    done = clinic("explain", "X_REL", "--marts", str(marts))
    trajectory = done.stdout.split("Trajectory of fiqr_total (primary measure)")[1].splitlines()
    rows = [line.split() for line in trajectory if line.strip()[:1].isdigit()]
    assert rows == [["0", "60", "+0.0%"], ["24", "36", "-40.0%"]]
    assert "(values in points; change in % of baseline, negative is improvement)" in done.stdout


def test_unknown_patient_is_a_clear_message_and_exit_1(published):
    marts, _ = published
    done = clinic("explain", "jane.doe@example.org", "--marts", str(marts))
    assert done.returncode == 1 and done.stdout == ""
    assert "no patient with the id given" in done.stderr and "12 patients" in done.stderr
    assert "jane.doe" not in done.stderr  # what was typed may be an identifier: not echoed


def test_missing_snapshot_and_help(tmp_path):
    done = clinic("explain", "X_REL", "--marts", str(tmp_path))
    assert done.returncode == 2 and "no published snapshot" in done.stderr
    helped = clinic("explain", "--help")
    assert helped.returncode == 0
    text = " ".join(helped.stdout.split("options:", 1)[1].split())
    for option in ("--marts DIR", "--all-instruments"):
        after = text.split(option, 1)[1].split(" --", 1)[0]
        assert "(default:" in after, option

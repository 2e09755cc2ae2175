"""FIQR scoring rules on a Parquet export, and a broken reconciliation stopping the run."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from tests.conftest import query_snapshot, run_pipeline, settings_for

pytestmark = pytest.mark.slow  # the whole job on FIQR and Parquet fixtures


def _items(pid: str, day: int, value: int, missing: tuple[int, ...] = ()) -> list[dict]:
    return [{"patient_id": pid, "study_day": day, "item": i, "value": value}
            for i in range(1, 22) if i not in missing]


@pytest.fixture(scope="module")
def fiqr_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fiqr")
    export = tmp / "raw" / "2026-11-01_parquet"
    export.mkdir(parents=True)
    pd.DataFrame([{"patient_id": p, "site_id": "site-a", "indication": "fibromyalgia", "regimen": "ldn",
                   "sex": "F", "age_years": 62, "start_year": 2024} for p in ("FIB01", "FIB02")]
                 ).to_parquet(export / "patients.parquet")
    items = (_items("FIB01", -7, 6, missing=(9,))        # one function item missing: prorated -> 60
             + _items("FIB01", 168, 3)                   # 30: -50%
             + _items("FIB02", -7, 6, missing=(2, 9))    # two function items missing: unscorable
             + _items("FIB02", 168, 3, missing=(15,)))   # a symptom item missing: unscorable
    pd.DataFrame(items).to_parquet(export / "fiqr_items.parquet")
    pd.DataFrame([{"patient_id": "FIB01", "study_day": -7, "instrument": "fiqr_total", "value": 55.0},
                  {"patient_id": "FIB02", "study_day": -7, "instrument": "fiqr_total", "value": 58.0},
                  {"patient_id": "FIB02", "study_day": 168, "instrument": "fiqr_total", "value": 50.0}]
                 ).to_parquet(export / "measurements.parquet")
    (export / "_READY").touch()
    settings = settings_for(tmp, tmp / "raw")
    assert run_pipeline(settings).success
    return settings


def test_one_missing_function_item_is_prorated_and_the_scored_value_wins(fiqr_run):
    row = query_snapshot(fiqr_run, "SELECT baseline_value, baseline_source, assessment_value, category "
                         "FROM marts.patient_response WHERE patient_id = 'FIB01'")[0]
    assert row == (60.0, "2026-11-01_parquet/fiqr_items.parquet", 30.0, "meaningful")


def test_unscorable_questionnaires_fall_back_to_the_delivered_total(fiqr_run):
    row = query_snapshot(fiqr_run, "SELECT baseline_value, assessment_value, baseline_source FROM "
                         "marts.patient_response WHERE patient_id = 'FIB02'")[0]
    assert row == (58.0, 50.0, "2026-11-01_parquet/measurements.parquet:2")


def test_scoring_findings_are_counted_in_data_quality(fiqr_run):
    found = dict(query_snapshot(fiqr_run, "SELECT check_name, rows_failed FROM marts.data_quality "
                                "WHERE table_name = 'fiqr_items' AND export_id = '(all)'"))
    assert found["fiqr_unscorable"] == 2
    assert found["fiqr_total_disagrees"] == 1   # FIB01 day -7: scored 60 vs delivered 55


def test_a_broken_reconciliation_fails_the_run_and_names_the_check(fiqr_run, clinic_here):
    warehouse = duckdb.connect(str(fiqr_run.warehouse))
    warehouse.execute("UPDATE ingest.applied_files SET rows_read = rows_read + 1 "
                      "WHERE table_name = 'measurements'")
    warehouse.close()
    # The exports are as published: --force, since nothing new would otherwise mean no work (the
    # warehouse was altered behind the pipeline's back, which no fingerprint of the inputs sees).
    out = clinic_here("run", "--force", "--raw", fiqr_run.raw_dir, "--marts", fiqr_run.marts_dir,
                      "--warehouse", fiqr_run.warehouse)
    assert out.returncode == 1
    assert "reconciliation.rows_reconcile" in out.stderr
    assert "measurements.parquet" in out.stderr


def test_a_rejected_parquet_file_counts_all_its_rows(tmp_path):
    export = tmp_path / "raw" / "2026-11-01_bad_parquet"
    export.mkdir(parents=True)
    pd.DataFrame({"patient_id": ["AB12", "CD34", "EF56"], "site_id": "site-a", "email": "x"}
                 ).to_parquet(export / "patients.parquet")
    (export / "_READY").touch()
    settings = settings_for(tmp_path, tmp_path / "raw")
    assert run_pipeline(settings).success
    assert query_snapshot(settings, "SELECT rule, column_name, rows_affected FROM marts.quarantine") == [
        ("identifier_column", "email", 3)]

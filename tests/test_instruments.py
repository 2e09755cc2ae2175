"""The instrument registry (rules/instruments.yaml): the one declaration of every instrument,
read by the contract, the rules, the response SQL and the dictionary; and a higher-is-better
instrument categorised in its own direction, from that one declaration."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import duckdb
import pytest
import yaml

from pipelines.ingest.contract import ContractError, load_contract, row_checks
from pipelines.response.rules import RulesError, load_rules
from pipelines.settings import REPO_ROOT, RULES_DIR
from tests.conftest import FIXTURES
from tests.response_sql import categorise

EQ5D = {"label": "EQ-5D VAS", "description": "EQ-5D visual analogue scale of self-rated health",
        "unit": "points", "min": 0, "max": 100, "better": "higher", "decimals": 0}
HIGHER_IS_BETTER_EXPORT = FIXTURES / "higher_is_better" / "2026-12-01T0600_site-a"
# patient: (category, reason) with EQ-5D VAS primary (see the fixture's README.md)
EXPECTED = {"HIB_RISE": ("meaningful", "threshold_met"), "HIB_FALL": ("minimal", "threshold_not_met"),
            "HIB_SMALL": ("minimal", "threshold_not_met"), "HIB_EXACT": ("meaningful", "threshold_met"),
            "HIB_MS_UP8": ("meaningful", "threshold_met"), "HIB_MS_DOWN8": ("minimal", "threshold_not_met"),
            "HIB_CROHN": ("meaningful", "threshold_met")}


def rules_with_eq5d(folder, **indications):
    """A copy of rules/ with EQ-5D VAS in the registry and, for each indication given, the
    rule it is given (EQ-5D VAS as its primary measure)."""
    shutil.copytree(RULES_DIR, folder)
    registry = yaml.safe_load((folder / "instruments.yaml").read_text())
    (folder / "instruments.yaml").write_text(yaml.safe_dump({**registry, "eq5d_vas": EQ5D}, sort_keys=False,
                                                            allow_unicode=True))
    rules = yaml.safe_load((folder / "response_rules.yaml").read_text())
    rules["version"] = "1-eq5d"
    for indication, rule in indications.items():
        rules["indications"][indication] = {"group": rules["indications"][indication]["group"],
                                            "primary_measure": "eq5d_vas", **rule}
    (folder / "response_rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    return folder


EQ5D_RULES = {"fibromyalgia": {"relative_reduction_pct": 30, "baseline_zero_not_assessable": True},
              "multiple_sclerosis": {"absolute_reduction": 8, "baseline_zero_not_assessable": False}}


def test_the_contract_takes_its_instruments_and_ranges_from_the_registry(tmp_path):
    contract = load_contract(rules_with_eq5d(tmp_path / "rules") / "contract.yaml")
    measurements = contract.tables["measurements"]
    instrument = next(c for c in measurements.columns if c.name == "instrument")
    registry = yaml.safe_load((tmp_path / "rules" / "instruments.yaml").read_text())
    assert list(instrument.values) == list(registry)
    assert measurements.ranges["eq5d_vas"] == (0, 100) and measurements.ranges["hbi"] == (0, 60)
    range_check = next(c for c in row_checks(contract, measurements, []) if c.rule == "out_of_range")
    assert "'eq5d_vas'" in range_check.condition and "'0-100'" in range_check.detail
    assert "fiqr_total" not in (RULES_DIR / "contract.yaml").read_text()  # no instrument restated there


BROKEN_REGISTRY = {
    "unknown direction": ("  better: lower\n", "  better: lowest\n", "fiqr_total.better", "'lower' or 'higher'"),
    "reversed range": ("  max: 60\n", "  max: -5\n", "hbi", "not below max"),
    "no unit": ("  unit: µg/g\n", "", "calprotectin_ug_g.unit", "Field required"),
    "unknown key": ("  decimals: 1\n", "  decimal: 1\n", "fiqr_total.decimal",
                    "Extra inputs are not permitted (did you mean decimals?)"),
    "unknown key far from any": ("  decimals: 1\n", "  rounding: 1\n", "fiqr_total.rounding",
                                 "Extra inputs are not permitted"),
}


@pytest.mark.parametrize("case", BROKEN_REGISTRY)
def test_a_broken_registry_names_the_key_and_its_line(tmp_path, case):
    old, new, key, words = BROKEN_REGISTRY[case]
    shutil.copytree(RULES_DIR, tmp_path / "rules")
    path = tmp_path / "rules" / "instruments.yaml"
    text = path.read_text().replace(old, new, 1)
    path.write_text(text)
    with pytest.raises(ContractError) as raised:
        load_contract(tmp_path / "rules" / "contract.yaml")
    message = str(raised.value)
    line = int(re.search(rf", line (\d+): {re.escape(key)}:", message).group(1))
    assert words in message and "nothing was run" in message
    assert ("did you mean" in message) == ("did you mean" in words)  # a guess only for a near miss
    assert key.split(".")[-1] in text.splitlines()[line - 1] or key.split(".")[0] in text.splitlines()[line - 1]


def test_clinic_run_stops_on_a_broken_registry_before_any_work(tmp_path):
    shutil.copytree(RULES_DIR, tmp_path / "rules")
    path = tmp_path / "rules" / "instruments.yaml"
    path.write_text(path.read_text().replace("  better: lower\n", "  better: down\n", 1))
    env = {**os.environ, "CLINIC_CONTRACT": str(tmp_path / "rules" / "contract.yaml"),
           "DAGSTER_HOME": str(tmp_path / "dagster"), "PYTHONPATH": str(REPO_ROOT)}
    (tmp_path / "dagster").mkdir()
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--raw", str(HIGHER_IS_BETTER_EXPORT.parent),
                           "--marts", str(tmp_path / "marts"), "--warehouse", str(tmp_path / "wh.duckdb")],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, env=env)
    assert done.returncode == 2, done.stderr
    assert "instruments.yaml, line" in done.stderr and "fiqr_total.better" in done.stderr
    assert not (tmp_path / "wh.duckdb").exists() and not (tmp_path / "marts").exists()


def test_rules_refuse_a_lower_only_criterion_for_a_higher_is_better_measure(tmp_path):
    folder = rules_with_eq5d(tmp_path / "rules", crohns_disease={
        "relative_reduction_pct": 50, "remission_below": 250, "baseline_zero_not_assessable": True})
    with pytest.raises(RulesError) as raised:
        load_rules(folder / "response_rules.yaml", load_contract(folder / "contract.yaml"))
    assert "indications.crohns_disease: remission_below assume(s) lower is better" in str(raised.value)
    assert "line " in str(raised.value)


def test_the_response_sql_counts_in_the_instrument_direction(tmp_path):
    """The category SQL alone (in-memory DuckDB), with EQ-5D VAS primary for fibromyalgia."""
    folder = rules_with_eq5d(tmp_path / "rules", **EQ5D_RULES)
    got = categorise({"rise": ("fibromyalgia", "eq5d_vas", [(-5, 50), (168, 70)], None, []),
                      "fall": ("fibromyalgia", "eq5d_vas", [(-5, 50), (168, 30)], None, []),
                      "up8": ("multiple_sclerosis", "eq5d_vas", [(-2, 50), (170, 58)], None, []),
                      "down8": ("multiple_sclerosis", "eq5d_vas", [(-2, 50), (170, 42)], None, [])},
                     folder / "response_rules.yaml", load_contract(folder / "contract.yaml"))
    assert {p: (r["category"], r["criterion"]) for p, r in got.items()} == {
        "rise": ("meaningful", "relative_reduction_pct >= 30"),
        "fall": ("minimal", "not met: relative_reduction_pct >= 30"),
        "up8": ("meaningful", "absolute_reduction >= 8"),
        "down8": ("minimal", "not met: absolute_reduction >= 8")}
    assert got["rise"]["improvement_pct"] == pytest.approx(40) == got["rise"]["change_pct"]
    assert got["fall"]["improvement_pct"] == pytest.approx(-40)


@pytest.fixture(scope="module")
def higher_is_better_run(tmp_path_factory):
    """`clinic run` on the hand-made export, with EQ-5D VAS in a copy of the registry and the
    primary measure of fibromyalgia and multiple sclerosis in a copy of the rules file."""
    from pipelines.cli import main

    tmp = tmp_path_factory.mktemp("higher_is_better")
    folder = rules_with_eq5d(tmp / "rules", **EQ5D_RULES)
    shutil.copytree(HIGHER_IS_BETTER_EXPORT, tmp / "raw" / HIGHER_IS_BETTER_EXPORT.name)
    (tmp / "dagster").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLINIC_CONTRACT", str(folder / "contract.yaml"))
        mp.setenv("DAGSTER_HOME", str(tmp / "dagster"))
        code = main(["run", "--raw", str(tmp / "raw"), "--marts", str(tmp / "marts"),
                     "--warehouse", str(tmp / "warehouse.duckdb"), "--rules", str(folder / "response_rules.yaml")])
    return code, tmp / "marts" / "clinic.duckdb"


def test_a_higher_is_better_instrument_is_categorised_right_end_to_end(higher_is_better_run):
    code, snapshot = higher_is_better_run
    assert code == 0
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT patient_id, category, reason, change_pct, improvement_pct, rules_version "
            "FROM marts.patient_response").fetchall()}
        trajectory = con.execute("SELECT instrument, pct_change, improvement_pct FROM marts.patient_trajectory "
                                 "WHERE patient_id = 'HIB_RISE' AND visit_week = 24 ORDER BY instrument").fetchall()
        comment = con.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 'patient_response' "
                              "AND column_name = 'primary_measure'").fetchone()[0]
    finally:
        con.close()
    assert {p: r[:2] for p, r in rows.items()} == EXPECTED
    assert rows["HIB_RISE"][2:] == (pytest.approx(40), pytest.approx(40), "1-eq5d")   # rose: better
    assert rows["HIB_FALL"][2:4] == (pytest.approx(-40), pytest.approx(-40))
    assert rows["HIB_CROHN"][3] == pytest.approx(100 * (980 - 250) / 980)             # fell: better
    # the secondary pain NRS fell 8 -> 4 (better, lower is better); EQ-5D VAS rose 50 -> 70 (better)
    assert trajectory == [("eq5d_vas", pytest.approx(40), pytest.approx(40)),
                          ("pain_nrs", pytest.approx(-50), pytest.approx(50))]
    assert "eq5d_vas = EQ-5D VAS" in comment and "higher is better" in comment


def test_explain_says_the_direction(higher_is_better_run, monkeypatch, capsys):
    from pipelines.cli import main

    code, snapshot = higher_is_better_run
    monkeypatch.setenv("CLINIC_CONTRACT", str(snapshot.parent.parent / "rules" / "contract.yaml"))
    assert main(["explain", "HIB_RISE", "--marts", str(snapshot.parent)]) == 0
    out = capsys.readouterr().out
    assert "Primary measure  eq5d_vas (EQ-5D VAS: EQ-5D visual analogue scale of self-rated health); " \
           "higher is better" in out
    assert "; positive is improvement (improvement +40.0%)" in out
    assert ("relative_reduction_pct >= 30: met (a rise of 40.0% of baseline, higher being better; "
            "threshold 30%)") in out

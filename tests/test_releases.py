"""Releases among releases: the ledger, refusal, and an outsider holding every release sent.

The protection unit tests run on frames (the stand-in for sql/marts/ in test_disclosure_audit);
one end-to-end test makes real releases from the demo run's published set with `clinic release`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.publish.reuse import file_sha256
from pipelines.release.bundle import KEY_COLUMNS, MANIFEST
from pipelines.release.frames import hidden_cells
from pipelines.release.protection import Refused, protect_release
from pipelines.release.relations import COUNT_COLUMNS
from tests.conftest import snapshot_cut_short
from tests.test_disclosure_audit import BANDS, EVENTS, INDICATIONS, INSTRUMENTS, WEEKS, Patient, marts_from

MIN = 11


def cohort(n: int, seed: int, start: int = 0) -> list[Patient]:
    """n patients with the clinic's rough proportions, ids from `start`."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(start, start + n):
        regimen = "ldn" if rng.random() < 0.7 else "standard_oral"
        category = rng.choice(["meaningful", "minimal", "intolerant", "not_assessable"], p=[.55, .2, .2, .05])
        bands = (list(rng.choice(list(BANDS), size=int(rng.integers(1, 3)), replace=False)) if regimen == "ldn"
                 else [regimen])
        events = [(str(rng.choice(EVENTS)), bands[0], bool(rng.random() < 0.3))] if rng.random() < 0.3 else []
        out.append(Patient(f"p{k}", str(rng.choice(INDICATIONS, p=[.5, .2, .3])), regimen, str(category),
                           True, category != "not_assessable", False, bands,
                           regimen == "ldn" and rng.random() < 0.2, events,
                           [(str(rng.choice(INSTRUMENTS)), int(w), 10.0) for w in WEEKS if rng.random() < 0.5]))
    return out


def fingerprints(patients: list[Patient]) -> pd.DataFrame:
    return pd.DataFrame({"patient": [p.patient_id for p in patients], "state": [repr(vars(p)) for p in patients]})


@dataclass(frozen=True)
class Sent:
    """A release in the ledger, as pipelines/release/ledger.py reads it back."""

    release_id: str
    true_marts: dict
    released: dict
    patients: pd.DataFrame


def release(patients: list[Patient], history: list[Sent], release_id: str) -> Sent:
    marts = marts_from(patients)
    result = protect_release(marts, MIN, history=history, patients=fingerprints(patients))
    return Sent(release_id, marts, result.frames, fingerprints(patients))


def published(sent: Sent) -> dict[tuple, int]:
    """What an outsider reads: every shown count by (mart, row key, column)."""
    out = {}
    for mart, frame in sent.released.items():
        keys = frame[list(KEY_COLUMNS[mart])].astype(object).where(frame[list(KEY_COLUMNS[mart])].notna(), None)
        for key, (_, row) in zip(keys.itertuples(index=False, name=None), frame.iterrows(), strict=True):
            for column in COUNT_COLUMNS[mart]:
                if not pd.isna(row[column]):
                    out[(mart, key, column)] = int(row[column])
    return out


@pytest.fixture(scope="module")
def first():
    base = cohort(500, seed=1)
    return base, release(base, [], "r1")


def test_a_release_after_one_then_four_new_patients_is_refused_and_says_what_it_needs(first):
    base, r1 = first
    with pytest.raises(Refused) as one:
        release(base + cohort(1, seed=2, start=500), [r1], "r2")
    assert one.value.needed == MIN - 1 and "Wait for 10 more" in one.value.reason
    with pytest.raises(Refused) as four:
        release(base + cohort(1, seed=2, start=500) + cohort(3, seed=3, start=501), [r1], "r2")
    assert four.value.needed == MIN - 4
    with pytest.raises(Refused, match="no patient was added or changed"):
        release(base, [r1], "r2")
    changed = [Patient(**{**vars(p), "category": "meaningful"}) if p.category == "minimal" else p for p in base[:20]]
    n_changed = sum(1 for p in base[:20] if p.category == "minimal")
    assert 0 < n_changed < MIN
    with pytest.raises(Refused) as moved:
        release(changed + base[20:], [r1], "r2")
    assert moved.value.needed == MIN - n_changed


def test_two_releases_pin_nothing_about_the_patients_added_between_them(first):
    base, r1 = first
    added = cohort(300, seed=4, start=500)
    r2 = release(base + added, [r1], "r2")
    before, after = published(r1), published(r2)
    # Differencing: a count shown in both releases whose difference is 1..10 pins that many of the
    # added patients in the cell (e.g. their indication x category).
    # A row r1 does not have at all counted zero there.
    rows_before = {(m, key) for m, key, _ in before}
    pinned = {k: after[k] - before.get(k, 0) for k in after
              if (k in before or (k[0], k[1]) not in rows_before) and 0 < after[k] - before.get(k, 0) < MIN}
    assert pinned == {}
    assert len(after) > 0.35 * sum(len(f) * len(COUNT_COLUMNS[m]) for m, f in r2.released.items())
    # A third release after three more patients is refused: together with either earlier one
    # it would describe a group of 3 (against r2).
    with pytest.raises(Refused):
        release(base + added + cohort(3, seed=5, start=800), [r1, r2], "r3")


def test_a_release_over_all_categories_after_one_by_category_pins_nothing_added():
    """A ledger's release made before measure_trajectory's release grain was declared (by category)
    and the next over all categories: an outsider sums the first's category cells and subtracts.
    Here every patient of one indication has one week-0 value, and of 300 added 5 have one: the week's
    count over all categories goes up by 5, which the second release must not let anyone pin
    (grain.with_pooled_rows, relation trajectory.pooled)."""
    def one_point(patients: list[Patient], which) -> list[Patient]:
        """One indication (every category large), a week-0 value for the patients `which` picks."""
        return [Patient(**{**vars(p), "indication": "fibromyalgia",
                           "points": [("fiqr_total", 0, 10.0)] if which(n) else []})
                for n, p in enumerate(patients)]

    def pooled(patients: list[Patient]) -> list[Patient]:
        return [Patient(**{**vars(p), "category": "all"}) for p in patients]

    base = one_point(cohort(500, seed=1), lambda n: True)
    r1 = release(base, [], "r1")
    added = one_point(cohort(300, seed=4, start=500), lambda n: n < 5)
    indication = "fibromyalgia"
    everyone = base + added
    marts = {**marts_from(everyone), "measure_trajectory": marts_from(pooled(everyone))["measure_trajectory"]}
    r2 = protect_release(marts, MIN, history=[r1], patients=fingerprints(everyone)).frames["measure_trajectory"]
    before = r1.released["measure_trajectory"]
    before = before[before.indication.eq(indication)]
    assert set(before.category) - {"all"} and before.n_patients.notna().all(), "r1 shows the week by category"
    after = r2[r2.indication.eq(indication)]
    assert len(after) == 1 and after.category.iloc[0] == "all"
    # Shown, it would pin the 5 (their indication and week-0 value) against r1's categories' sum.
    assert after.n_patients.isna().all()


def test_the_all_patients_shares_are_published_and_the_manifest_part_reports_utility(first):
    base, _ = first
    result = protect_release(marts_from(base), MIN)
    response = result.frames["response_by_indication"]
    everyone = response[response.level.eq("all")]
    assert everyone[["n_evaluable", "n_meaningful", "n_minimal", "n_intolerant", "pct_minimal"]].notna().all().all()
    use = json.loads(json.dumps(result.public_report))["utility"]
    assert use["all_patients_shares_published"] is True
    assert use["count_cells"] == sum(len(f) * len(COUNT_COLUMNS[m]) for m, f in result.frames.items())
    assert use["published_exact"] == use["count_cells"] - len(hidden_cells(result.frames))
    # At 500 patients suppression publishes half the counts even by category (the demo's 230 need
    # the release's grain: test_the_demo_release_publishes_half_its_counts_and_its_last_pass_is_final).
    assert use["published_share"] >= 0.5


def test_clinic_release_makes_a_ledgered_release_and_refuses_the_same_data_again(demo_run, tmp_path, capsys):
    from pipelines.cli import main
    from pipelines.release.ledger import read_ledger

    settings, _ = demo_run
    marts = tmp_path / "marts"
    shutil.copytree(settings.marts_dir, marts, symlinks=True)
    preview = json.loads((marts / "release-preview" / MANIFEST).read_text())
    assert preview["for_release"] is False and preview["bundle"].startswith("PREVIEW - NOT FOR RELEASE")
    assert not (marts / "release").exists()

    assert main(["release", "--marts", str(marts)]) == 0
    [entry] = read_ledger(marts)
    bundle = marts / "release"
    assert bundle.resolve() == (marts / entry["bundle"]).resolve()
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert manifest["for_release"] is True and manifest["release_id"] == entry["release_id"]
    assert {f["path"]: f["sha256"] for f in entry["files"]} == {
        str(p.relative_to(bundle)): file_sha256(p) for p in bundle.rglob("*") if p.is_file() and p.name != MANIFEST}
    use = manifest["disclosure_audit"]["utility"]
    assert use["all_patients_shares_published"] and use["published_share"] >= 0.5
    assert manifest["release_grain"] == {"measure_trajectory": {"pooled": {"category": "all"}}}
    # The trajectories leave at their declared grain, and the release's dictionary says so.
    import duckdb

    released = duckdb.connect(str(bundle / "clinic_release.duckdb"), read_only=True)
    try:
        assert released.execute("SELECT DISTINCT category FROM marts.measure_trajectory").fetchall() == [("all",)]
        [(comment,)] = released.execute("SELECT comment FROM duckdb_tables() WHERE table_name = "
                                        "'measure_trajectory'").fetchall()
    finally:
        released.close()
    assert "over all response categories together" in comment and "patient_trajectory" not in comment
    assert not (bundle / "protection").exists() and (Path(marts / entry["bundle"]).parent / "protection").exists()

    ledger_before = (marts / "releases" / "ledger.jsonl").read_bytes()
    folders_before = sorted(p.name for p in (marts / "releases").iterdir())
    assert main(["release", "--marts", str(marts)]) == 6
    assert "REFUSED" in capsys.readouterr().err
    assert (marts / "releases" / "ledger.jsonl").read_bytes() == ledger_before
    assert sorted(p.name for p in (marts / "releases").iterdir()) == folders_before

    # What later releases are protected against is what was sent: a changed bundle stops them,
    # whichever of its files changed (the manifest included).
    for name in ("response_by_indication.parquet", "manifest.json", "clinic_release.duckdb"):
        sent = (bundle / name).read_bytes()
        with open(bundle / name, "ab") as fh:
            fh.write(b"\0")
        assert main(["release", "--marts", str(marts)]) == 5, name
        said = capsys.readouterr().err
        assert "differs from its SHA-256 in the ledger" in said and name in said
        if name != "clinic_release.duckdb":
            (bundle / name).write_bytes(sent)
        if name == "manifest.json":  # a file added to what was sent would leave with it too
            (bundle / "extra.csv").write_text("patient_id\nP1\n")
            assert main(["release", "--marts", str(marts)]) == 5
            assert "extra.csv is missing, added or differs" in capsys.readouterr().err
            (bundle / "extra.csv").unlink()


def _attackers_relations(marts: dict) -> list:
    """The issue's narrowing attack, written apart from the declarations: relations an outsider
    justifies from the documentation, each kept where it holds (a stronger outsider than one who
    keeps only whole families)."""
    from pipelines.release.relations import Cell, Relation

    response, tolerability, titration = (marts[m] for m in ("response_by_indication", "tolerability", "titration"))
    rows = {(r.indication, r.regimen): i for i, r in response[response.level.eq("indication")].iterrows()}
    one_band, starters = [], []
    by_exposure = tolerability[tolerability.indication.ne("all")].drop_duplicates(["indication", "regimen", "dose_band"])
    for (indication, regimen), part in by_exposure.groupby(["indication", "regimen"]):
        if (indication, regimen) in rows and len(part) == 1:  # a one-band regimen: exposed = its patients
            one_band.append(Relation(((Cell("tolerability", part.index[0], "n_exposed"), 1),
                                      (Cell("response_by_indication", rows[(indication, regimen)], "n_patients"), -1)),
                                     "==", 0, "attack.one_band"))
    for indication, part in titration[titration.indication.ne("all")].groupby("indication"):
        if (indication, "ldn") in rows:  # starters over bands = the LDN patients
            starters.append(Relation((*((Cell("titration", i, "n_patients"), 1) for i in part.index),
                                      (Cell("response_by_indication", rows[(indication, "ldn")], "n_patients"), -1)),
                                     "==", 0, "attack.titration_sum"))
    from pipelines.release.relations import cell_values

    values = cell_values(marts)
    return [r for r in one_band + starters if r.holds(values)]


@pytest.fixture(scope="module")
def demo_release(demo_run):
    """The demo run's published marts at the release's grain and the release protect_release
    makes of them."""
    import duckdb

    from pipelines.release.grain import read_at_release_grain

    settings, _ = demo_run
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    try:
        marts = read_at_release_grain(con, published=True)
    finally:
        con.close()
    return marts, protect_release(marts, MIN)


def test_the_trajectories_are_released_over_all_categories_from_the_same_patients(demo_run, demo_release):
    """measure_trajectory's declared release grain (sql/marts/measure_trajectory.yml): one row per
    indication, instrument and week, category 'all', its count the sum of the clinic's rows by
    category and its median that of every patient's value (computed here apart, in DuckDB)."""
    import duckdb

    from pipelines.release.bundle import read_marts

    settings, _ = demo_run
    marts, _ = demo_release
    pooled = marts["measure_trajectory"]
    keys = ["indication", "instrument", "visit_week"]
    assert set(pooled.category) == {"all"} and not pooled.duplicated(keys).any()
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    try:
        by_category = read_marts(con)["measure_trajectory"]
        medians = con.execute("""
            SELECT p.indication, t.instrument, t.visit_week, quantile_cont(t.value, 0.5) AS value_median
            FROM marts.patient_trajectory t JOIN marts.patient_response p USING (patient_id)
            GROUP BY ALL""").df()
    finally:
        con.close()
    assert set(by_category.category) - {"all"}, "the clinic's own table keeps its split by category"
    summed = by_category.groupby(keys).n_patients.sum()
    assert pooled.set_index(keys).n_patients.sort_index().equals(summed.sort_index())
    both = pooled.merge(medians, on=keys, suffixes=("", "_apart"))
    assert len(both) == len(pooled)
    assert np.allclose(both.value_median, both.value_median_apart)


def test_the_issues_lp_narrowing_attack_fails_on_the_demo_release(demo_release):
    from pipelines.release.relations import cell_values, collect_relations
    from tests.test_disclosure_audit import disclosed

    marts, result = demo_release
    attack = _attackers_relations(marts)
    assert {r.family for r in attack} == {"attack.one_band", "attack.titration_sum"}
    values, hidden = cell_values(marts), hidden_cells(result.frames)
    small = {c for c, v in values.items() if 0 < v < MIN}
    assert small <= hidden
    assert disclosed(values, hidden, collect_relations(marts) + attack, small) == []


def test_the_demo_release_publishes_half_its_counts_and_its_last_pass_is_final(demo_release):
    """The utility figure README and docs/decisions.md quote, measured on the 230-patient demo at
    the release's grain: at least half the count cells published and every category's
    all-patients share; the greedy's complementary cells are no fewer than the integer
    program's proven lower bound (a few rounds of its cuts: a bound that passed the greedy would
    be wrong)."""
    from pipelines.release.protection import _Protector, complement_lower_bound
    from pipelines.release.relations import cell_values, collect_relations

    marts, result = demo_release
    use = result.public_report["utility"]
    assert use["all_patients_shares_published"] is True
    assert use["published_share"] >= 0.5
    assert use["by_mart"]["measure_trajectory"]["cells"] == len(marts["measure_trajectory"])
    values = cell_values(marts)
    small = [c for c, v in values.items() if 0 < v < MIN]
    bound = complement_lower_bound(marts, MIN, rounds=8)
    assert 0 < bound <= len(result.complementary)
    # The last pass re-publishes every complementary cell no small count needs; run again on its
    # result it finds none (hiding more only widens ranges: one pass is a fixed point).
    again = _Protector(values, collect_relations(marts), MIN, 0, hidden=[*small, *result.complementary])
    ids = [again.system.id[c] for c in result.complementary]
    assert again.prune(ids) == ids


def test_the_release_cadence_is_off_by_default_and_read_by_its_schedule(tmp_path, monkeypatch):
    import datetime as dt

    import dagster as dg

    from pipelines.config import ClinicConfig
    from pipelines.release.schedule import release_due, release_schedule

    assert ClinicConfig().release_cadence == "off"
    assert not any(release_due("off", d.weekday(), d.day) for d in (dt.date(2026, 12, 1) + dt.timedelta(n)
                                                                      for n in range(31)))
    assert release_due("weekly", 0, 7) and not release_due("weekly", 1, 1)
    assert release_due("monthly", 3, 1) and not release_due("monthly", 0, 2)
    monday = dt.datetime(2026, 12, 7, 7, tzinfo=dt.UTC)
    for cadence, wanted in (("off", dg.SkipReason), ("weekly", dg.RunRequest), ("monthly", dg.SkipReason)):
        context = dg.build_schedule_context(scheduled_execution_time=monday,
                                            resources={"clinic": ClinicConfig(release_cadence=cadence)})
        assert isinstance(release_schedule(context), wanted), cadence


def test_the_audit_reads_the_truth_as_the_preview_computed_it_not_as_the_protection_left_it():
    """release_preview hands the true marts to its audit in the same step (not computed twice);
    what the protection then does to its frames cannot reach the audit's copy."""
    import pandas as pd

    from pipelines.release.assets import _remember_truth, _truth

    marts = {"cohort_flow": pd.DataFrame({"stage": ["enrolled", "assessed"], "n_patients": [40, 7]})}
    _remember_truth("run-a", marts)
    marts["cohort_flow"].loc[1, "n_patients"] = None  # as a suppression would
    seen = _truth(None, "run-a")
    assert seen["cohort_flow"]["n_patients"].tolist() == [40, 7]
    seen["cohort_flow"].loc[0, "n_patients"] = 0
    assert _truth(None, "run-a")["cohort_flow"]["n_patients"].tolist() == [40, 7]


def test_a_release_from_a_snapshot_cut_short_is_said_with_what_to_do(demo_run, tmp_path, capsys):
    from pipelines.cli import main

    settings, _ = demo_run
    marts = tmp_path / "marts"
    damaged = snapshot_cut_short(settings, marts)
    assert main(["release", "--marts", str(marts), "--warehouse", str(settings.warehouse)]) == 5
    said = capsys.readouterr().err
    assert f"the published snapshot {damaged} cannot be read" in said and "clinic run --force" in said
    assert not (marts / "releases").exists() or not list((marts / "releases").glob("r0*"))


def test_a_release_the_disk_cannot_hold_leaves_nothing_and_says_what_to_do(demo_run, tmp_path, capsys,
                                                                           monkeypatch):
    """A disk that fills while the bundle is written (the failure injected where the release's pages
    are drawn): exit 5 with what to do, no folder left behind, the ledger as it was; and a ledger
    whose last line was cut short is named with its line, not parsed past."""
    import errno

    import dashboards.build
    from pipelines.cli import main
    from pipelines.release.ledger import LEDGER, ledger_dir, read_ledger

    settings, _ = demo_run
    marts = tmp_path / "marts"
    shutil.copytree(settings.marts_dir, marts, symlinks=True)
    ledger = ledger_dir(marts) / LEDGER

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dashboards.build, "build_dashboards", full_disk)
    assert main(["release", "--marts", str(marts)]) == 5
    said = capsys.readouterr().err
    assert "No space left on device" in said and "free disk space" in said and "run `clinic release` again" in said
    assert "Traceback" not in said and "the ledger is unchanged" in said
    assert not ledger.exists() and [p.name for p in ledger_dir(marts).iterdir()] == [".lock"]
    assert not (marts / "release").exists()
    monkeypatch.undo()
    assert main(["release", "--marts", str(marts)]) == 0  # the disk freed: the release is made
    before = ledger.read_bytes()
    capsys.readouterr()

    ledger.write_bytes(before + b'{"release_id": "r0002-2026')  # an append cut short
    assert main(["release", "--marts", str(marts)]) == 5
    said = capsys.readouterr().err
    assert f"the release ledger {ledger} is damaged at line 2" in said and "restore it from a backup" in said
    ledger.write_bytes(before)
    assert len(read_ledger(marts)) == 1

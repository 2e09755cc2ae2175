"""`clinic explain` with the ids people type: a leading dash, the wrong case, a closed pipe
(issues 21 and 23), through the real command line on the demo run's published snapshot."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.explain import dash_ids_as_positional
from tests.conftest import clinic, snapshot_cut_short

WORKTREE = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("argv", "parsed"), [
    (["explain", "-2-3-4"], ["explain", "--", "-2-3-4"]),
    (["explain", "--marts", "m", "-2-3-4", "--all"], ["explain", "--marts", "m", "--all", "--", "-2-3-4"]),
    (["explain", "--marts=m", "-x"], ["explain", "--marts=m", "--", "-x"]),
    (["explain", "--", "-x"], ["explain", "--", "-x"]),
    (["explain", "P0000017", "--all-instruments"], ["explain", "P0000017", "--all-instruments"]),
    (["sql", "-x"], ["sql", "-x"]),
])
def test_an_id_that_starts_with_a_dash_is_an_id(argv, parsed):
    assert dash_ids_as_positional(argv) == parsed


@pytest.mark.parametrize("typed", [["-2-3-4"], ["--", "-2-3-4"]])
def test_explain_takes_an_id_that_starts_with_a_dash(demo_run, typed):
    settings, _ = demo_run
    done = clinic("explain", "--marts", settings.marts_dir, *typed)
    assert done.returncode == 1, done.stderr  # not argparse's 2: the id was read and looked up
    assert done.stderr.startswith("clinic explain: no patient -2-3-4 in ") and "Traceback" not in done.stderr


def test_an_id_in_the_wrong_case_gets_a_hint(demo_run):
    settings, _ = demo_run
    done = clinic("explain", "p0000017", "--marts", settings.marts_dir)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == "clinic explain: no patient p0000017; did you mean P0000017?"
    assert clinic("explain", "P0000017", "--marts", settings.marts_dir).returncode == 0


def test_an_identifier_typed_as_an_id_is_not_repeated(demo_run):
    settings, _ = demo_run
    done = clinic("explain", "jane.doe@example.org", "--marts", settings.marts_dir)
    assert done.returncode == 1 and "jane" not in done.stderr and "no patient with the id given" in done.stderr


def test_a_closed_pipe_ends_quietly(demo_run):
    settings, _ = demo_run
    cmd = (f"set -o pipefail; {shlex.quote(sys.executable)} -m pipelines.cli explain P0000017 --all-instruments "
           f"--marts {shlex.quote(settings.marts_dir)} | head -1")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=WORKTREE)
    assert done.stdout.startswith("Patient P0000017: ") and done.stdout.count("\n") == 1
    assert done.stderr == "", done.stderr
    assert done.returncode == 0  # whether or not the pipe closed before the last line was written


def test_a_scored_fiqr_source_says_it_has_no_one_line_and_what_it_replaced(demo_run):
    """A baseline scored from fiqr_items has no line of its own (`<export>/fiqr_items.csv`):
    the explanation says where its value comes from instead, and only there."""
    import duckdb

    settings, _ = demo_run
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    try:
        found = dict(con.execute("""
            SELECT regexp_matches(baseline_source, ':[0-9]+$')
                   AND regexp_matches(coalesce(assessment_source, ':1'), ':[0-9]+$'), any_value(patient_id)
            FROM marts.patient_response WHERE primary_measure = 'fiqr_total' AND baseline_source IS NOT NULL
            GROUP BY 1""").fetchall())
    finally:
        con.close()
    scored, delivered = found[False], found[True]  # the demo has both kinds
    said = clinic("explain", "--marts", settings.marts_dir, scored)
    assert said.returncode == 0 and "fiqr_items.csv  (" in said.stdout
    assert "scored from the patient's item answers of day" in said.stdout
    plain = clinic("explain", "--marts", settings.marts_dir, delivered)
    assert plain.returncode == 0 and "scored from" not in plain.stdout


def test_a_snapshot_cut_short_is_said_with_what_to_do_not_a_traceback(demo_run, tmp_path):
    settings, _ = demo_run
    marts = tmp_path / "marts"
    damaged = snapshot_cut_short(settings, marts)
    said = clinic("explain", "--marts", marts, "P0000017")
    assert said.returncode == 2 and "Traceback" not in said.stderr, said.stderr
    assert said.stderr.startswith(f"clinic explain: the snapshot {damaged} cannot be read (") or \
        said.stderr.startswith(f"clinic explain: cannot open the snapshot {damaged}"), said.stderr
    assert "clinic run" in said.stderr

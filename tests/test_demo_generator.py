"""The demo generator: deterministic for a seed, and following the contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import DEMO_EXPORT


def _generate(out, hash_seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    subprocess.run([sys.executable, "-m", "pipelines.cli", "demo-data", "--patients", "230", "--seed", "42",
                    "--defects", "0.004", "--id-prefix", "P", "--out", str(out)],
                   check=True, env=env, capture_output=True)


def test_same_seed_gives_the_same_bytes_in_any_process(tmp_path):
    _generate(tmp_path / "a", "1")
    _generate(tmp_path / "b", "2")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_committed_demo_is_what_the_generator_makes(tmp_path):
    _generate(tmp_path / "demo", "0")
    for path in DEMO_EXPORT.iterdir():
        assert (tmp_path / "demo" / path.name).read_bytes() == path.read_bytes(), path.name


def _readme_demo_data_argv(out_parent) -> list[str]:
    """The README's `clinic demo-data` example as written (its optional `[...]` flags left out),
    writing into `out_parent` instead of data/raw/."""
    import shlex

    from pipelines.settings import REPO_ROOT

    line = next(x for x in (REPO_ROOT / "README.md").read_text().splitlines() if "clinic demo-data" in x)
    words = shlex.split(line.split("[", 1)[0].split("#", 1)[0])
    argv = words[words.index("demo-data"):]
    out = argv.index("--out") + 1
    argv[out] = str(out_parent / Path(argv[out]).name)
    return argv


def _volume_ratios(exports: dict[str, Path], checked: str):
    """The dataset_volume frame (sql/quality/dataset_frames.sql) of export `checked` against the
    ones before it, from the exports' own rows and patients per table (sql/quality/table_volume.sql)."""
    import duckdb

    from pipelines.ingest.contract import load_contract
    from pipelines.migrations import migrate
    from pipelines.settings import setting_value
    from pipelines.sqlfiles import quote_literal, run_sql, sql

    tables = list(load_contract(Path(setting_value("contract_file"))).tables)
    con = duckdb.connect()
    migrate(con)
    con.execute("CREATE OR REPLACE TABLE quality.exports_to_check AS SELECT unnest(?) AS export_id",
                [list(exports)])
    for table in tables:
        con.execute(f"CREATE OR REPLACE TABLE staging.{table} AS " + " UNION ALL ".join(
            f"SELECT {quote_literal(e)} AS export_id, patient_id FROM read_csv({quote_literal(str(f / (table + '.csv')))},"
            " all_varchar = true)" for e, f in exports.items()))
    con.execute("INSERT INTO quality.export_profiles "
                + " UNION ALL ".join(sql("quality", "table_volume", table_name=t) for t in tables))
    run_sql(con, "quality", "dataset_frames", export_id=quote_literal(checked))
    return con.execute("SELECT * FROM frame_dataset_volume").df()


def _outside_volume_bounds(frame) -> list[str]:
    """Tables whose volume_ratio the dataset_volume suite would flag (its bounds and row condition)."""
    import json

    from pipelines.settings import REPO_ROOT

    (check,) = json.loads((REPO_ROOT / "expectations" / "dataset_volume.json").read_text())["expectations"]
    kw = check["kwargs"]
    judged = frame.query(kw["row_condition"])
    judged = judged[judged[kw["column"]].notna()]  # GX skips nulls (an export with none before it)
    bad = judged[~judged[kw["column"]].between(kw["min_value"], kw["max_value"])]
    return sorted(bad.table_name)


def test_readme_demo_data_example_beside_the_demo_keeps_rows_per_patient_in_line(tmp_path):
    """The README's example, written beside the committed demo, trips no volume_ratio warning;
    the benchmark's diary-dense shape (what a size threshold used to give it) would."""
    from pipelines.cli import main
    from pipelines.demo.generator import generate

    argv = _readme_demo_data_argv(tmp_path)
    assert main(argv) == 0
    example = Path(argv[argv.index("--out") + 1])
    frame = _volume_ratios({DEMO_EXPORT.name: DEMO_EXPORT, example.name: example}, example.name)
    assert set(frame.table_name) >= {"measurements", "patients"}
    assert _outside_volume_bounds(frame) == [], frame.to_string()

    dense = tmp_path / "2026-11-02T0600_diary"
    generate(300, seed=1, id_prefix="D", diary_every=5).write(dense)
    frame = _volume_ratios({DEMO_EXPORT.name: DEMO_EXPORT, dense.name: dense}, dense.name)
    assert "measurements" in _outside_volume_bounds(frame), frame.to_string()

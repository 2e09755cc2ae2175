"""The demo generator: deterministic for a seed, and following the contract."""

from __future__ import annotations

import os
import subprocess
import sys

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

"""Shared fixtures: real DuckDB files, real Dagster materialisations, real exports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.cli import materialize_all
from pipelines.settings import REPO_ROOT, ClinicSettings

DEMO_EXPORT = REPO_ROOT / "data" / "raw" / "demo"
FIXTURES = Path(__file__).parent / "fixtures"


def settings_for(tmp: Path, raw: Path) -> ClinicSettings:
    return ClinicSettings.from_env(raw_dir=raw, marts_dir=tmp / "marts",
                                   warehouse=tmp / "warehouse.duckdb")


def run_pipeline(settings: ClinicSettings):
    result = materialize_all(settings)
    return result


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One real in-process materialisation of every asset on the committed demo export."""
    tmp = tmp_path_factory.mktemp("demo_run")
    raw = tmp / "raw"
    shutil.copytree(DEMO_EXPORT, raw / "demo")
    settings = settings_for(tmp, raw)
    result = run_pipeline(settings)
    return settings, result

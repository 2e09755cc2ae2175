"""The versioned response rules file (rules/response_rules.yaml) as a warehouse table.

The category SQL joins `response.rules`, so thresholds and windows are data: editing
the file changes the results without touching code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
import yaml

from pipelines.sqlfiles import write_frame

CRITERIA = ("relative_reduction_pct", "absolute_reduction", "remission_below", "assessment_zero")


@cache
def load_rules(path: Path) -> dict:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for indication, spec in doc["indications"].items():
        if not any(spec.get(c) for c in CRITERIA):
            raise ValueError(f"{path}: indication {indication} has no criterion ({', '.join(CRITERIA)})")
    return doc


def rules_frame(rules: dict) -> pd.DataFrame:
    """One row per indication, with the windows repeated so the SQL needs no constants."""
    w = rules["windows"]
    rows = []
    for indication, spec in rules["indications"].items():
        rows.append({
            "indication": indication,
            "indication_group": spec["group"],
            "primary_measure": spec["primary_measure"],
            "relative_reduction_pct": spec.get("relative_reduction_pct"),
            "absolute_reduction": spec.get("absolute_reduction"),
            "remission_below": spec.get("remission_below"),
            "assessment_zero": bool(spec.get("assessment_zero", False)),
            "baseline_zero_not_assessable": bool(spec["baseline_zero_not_assessable"]),
            "baseline_from": w["baseline"]["from_day"],
            "baseline_to": w["baseline"]["to_day"],
            "assessment_from": w["assessment"]["from_day"],
            "assessment_to": w["assessment"]["to_day"],
            "target_day": w["assessment"]["target_day"],
            "stop_counts_until_day": w["stop_counts_until_day"],
            "tolerance": float(rules["tolerance"]),
            "rules_version": str(rules["version"]),
        })
    frame = pd.DataFrame(rows)
    for col in ("relative_reduction_pct", "absolute_reduction", "remission_below"):
        frame[col] = frame[col].astype("float64")
    return frame


def write_rules_table(con, rules: dict) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS response")
    write_frame(con, "response.rules", rules_frame(rules))

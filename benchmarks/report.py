"""The README's benchmark table, from the JSON files `benchmarks.run` wrote.

    python -m benchmarks.report [benchmarks/results]

Prints Markdown: per scale, seconds and peak MiB of each contender, then the spec's targets
(performance.md) with the measured value and whether it holds. `ingest_L.json`, the output of
`python -m benchmarks.ingest_profile --scale L` in the same folder, answers the loading target.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [("floor", "floor (DuckDB reads every row, computes the categories)"),
        ("clinic_cold", "`clinic run`, cold"),
        ("clinic_nothing_new", "`clinic run` again, nothing new"),
        ("clinic_warm", "`clinic run`, warm (one 50-patient export more)"),
        ("scheduled_cold", "the scheduled path (`dagster job execute`), cold"),
        ("ui_cold", "the UI's Materialize all (`dagster asset materialize --select '*'`), cold"),
        ("peer", "pandas + GX peer"),
        ("dagster_alone", "the same job with no work (Dagster's start, definitions, event log)"),
        ("spark_cold", "`clinic run --engine spark`, cold (local mode)")]
SCALES = ("S", "M", "L")


def _cell(result: dict | None) -> str:
    return f"{result['seconds']:,.1f} s, {result['peak_mib']:,.0f} MiB" if result else "-"


def targets(res: dict, loading: dict | None = None) -> list[tuple[str, str, bool | None]]:
    """(target, measured, holds) for every target the results can answer (`loading`: what
    benchmarks.ingest_profile printed at L)."""
    def sec(scale: str, key: str) -> float | None:
        return res.get(scale, {}).get(key, {}).get("seconds")

    found = []
    cold_m, floor_m, warm_m, warm_s = sec("M", "clinic_cold"), sec("M", "floor"), sec("M", "clinic_warm"), sec(
        "S", "clinic_warm")
    if cold_m and floor_m:
        found.append(("clinic cold / floor at M <= 8", f"{cold_m / floor_m:.1f}", cold_m / floor_m <= 8))
    if sec("L", "clinic_cold") and sec("L", "floor"):
        ratio = sec("L", "clinic_cold") / sec("L", "floor")
        found.append(("clinic cold / floor at L <= 10", f"{ratio:.1f}", ratio <= 10))
    if cold_m and sec("M", "peer"):
        found.append(("peer / clinic cold at M >= 2", f"{sec('M', 'peer') / cold_m:.2f}",
                      sec("M", "peer") / cold_m >= 2))
    if warm_m and warm_s:
        found.append(("warm at M <= 1.5 x warm at S", f"{warm_m / warm_s:.2f}", warm_m / warm_s <= 1.5))
    if warm_m and cold_m:
        found.append(("warm at M <= 0.5 x cold at M", f"{warm_m / cold_m:.2f}", warm_m / cold_m <= 0.5))
    for scale in SCALES:
        if sec(scale, "scheduled_cold") and sec(scale, "clinic_cold"):
            ratio = sec(scale, "scheduled_cold") / sec(scale, "clinic_cold")
            found.append((f"scheduled path <= 1.3 x clinic run at {scale}", f"{ratio:.2f}", ratio <= 1.3))
    for scale in ("demo", *SCALES):
        if sec(scale, "clinic_nothing_new") and sec(scale, "clinic_cold"):
            ratio = sec(scale, "clinic_nothing_new") / sec(scale, "clinic_cold")
            found.append((f"nothing new <= 0.25 x a cold run at {scale}", f"{ratio:.2f}", ratio <= 0.25))
        if sec(scale, "ui_cold") and sec(scale, "clinic_cold"):
            ratio = sec(scale, "ui_cold") / sec(scale, "clinic_cold")
            found.append((f"the UI's path <= 1.3 x clinic run at {scale}", f"{ratio:.2f}", ratio <= 1.3))
    for scale in ("M", "L"):
        if peak := res.get(scale, {}).get("clinic_cold", {}).get("peak_mib"):
            found.append((f"peak memory, clinic cold at {scale} <= 2 GiB", f"{peak:,.0f} MiB", peak <= 2048))
    for small, big in (("S", "M"), ("M", "L")):
        if sec(small, "clinic_cold") and sec(big, "clinic_cold"):
            growth = sec(big, "clinic_cold") / sec(small, "clinic_cold")
            found.append((f"time growth {small} to {big} <= 12", f"{growth:.1f}", growth <= 12))
    if loading and loading.get("scale") == "L" and loading.get("table") == "measurements":
        ratio = loading["loading_seconds"] / loading["floor_read_seconds"]
        found.append(("loading measurements at L / the floor's read of them <= 4",
                      f"{ratio:.2f} (CPU {loading['loading/floor_read, cpu']:.2f})", ratio <= 4))
    return found


def budgets(res: dict) -> list[str]:
    """What the ratio targets at M leave for a run's own work, once the job with no work in it
    (Dagster alone, `dagster_alone`) is paid: each target as a bound in seconds, minus that."""
    m = res.get("M", {})
    seconds = {k: m[k]["seconds"] for k in ("floor", "peer", "dagster_alone", "clinic_cold", "clinic_warm") if k in m}
    if not {"floor", "dagster_alone"} <= seconds.keys():
        return []
    alone, cold_bound = seconds["dagster_alone"], 8 * seconds["floor"]
    lines = [f"At M a run with no work in it takes {alone:.1f} s. Within 8 x the floor a cold run has "
             f"{cold_bound:.1f} s, {cold_bound - alone:.1f} s of it for its work"]
    if "peer" in seconds:
        lines.append(f"half the peer's time is {seconds['peer'] / 2:.1f} s, {seconds['peer'] / 2 - alone:.1f} s for the work")
    lines.append(f"a warm run within half of a cold run at that bound has {cold_bound / 2:.1f} s, "
                 f"{cold_bound / 2 - alone:.1f} s for its work")
    if {"clinic_cold", "clinic_warm"} <= seconds.keys():
        lines.append(f"measured: the cold run's work {seconds['clinic_cold'] - alone:.1f} s, "
                     f"the warm run's {seconds['clinic_warm'] - alone:.1f} s")
    return ["; ".join(lines) + "."]


def report(folder: Path) -> str:
    res = {s: json.loads((folder / f"{s}.json").read_text()) for s in ("demo", *SCALES)
           if (folder / f"{s}.json").exists()}
    loading = json.loads((folder / "ingest_L.json").read_text()) if (folder / "ingest_L.json").exists() else {}
    lines = ["| contender | " + " | ".join(res) + " |", "| --- |" + " --- |" * len(res)]
    for key, label in ROWS:
        if any(key in r for r in res.values()):
            lines.append(f"| {label} | " + " | ".join(_cell(r.get(key)) for r in res.values()) + " |")
    lines += ["", "| target (performance.md) | measured | holds |", "| --- | --- | --- |"]
    lines += [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets(res, loading)]
    lines += ["", *budgets(res)] if budgets(res) else []
    for scale, r in res.items():
        if differs := r.get("spark_differs_from_duckdb"):
            lines.append(f"\nSpark vs DuckDB at {scale}: {differs['patients']:,} patients, "
                         f"{differs['only_duckdb'] + differs['only_spark']} patient_response rows differ.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"))

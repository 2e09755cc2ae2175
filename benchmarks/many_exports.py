"""Many small exports (issue 22): a cold run over N tiny exports, seconds per step. The dataset
checks should cost about what one export's do, not N times that.

    python -m benchmarks.many_exports WORK [--exports 200] [--patients 5]

Writes the exports once into WORK/raw (kept for a second timing), then one in-process cold run
(benchmarks/profile.py) into WORK/run; prints wall time and the slowest steps as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def write_exports(raw: Path, exports: int, patients: int) -> None:
    """`exports` complete export folders of `patients` patients each, named as the contract asks."""
    from pipelines.demo.generator import default_id_prefix, write_export

    for i in range(exports):
        out = raw / f"2026-{1 + i // 28 // 24 % 12:02d}-{1 + i // 24 % 28:02d}T{i % 24:02d}00_site-a"
        if not out.exists():
            write_export(out, patients, seed=i, id_prefix=default_id_prefix(out.name, i))


def main() -> None:
    from benchmarks.profile import step_seconds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--exports", type=int, default=200)
    parser.add_argument("--patients", type=int, default=5)
    args = parser.parse_args()
    raw = args.work / "raw"
    write_exports(raw, args.exports, args.patients)
    timing = step_seconds(raw, args.work / "run")
    timing["steps"] = dict(list(timing["steps"].items())[:8])
    print(json.dumps({"exports": args.exports, "patients_each": args.patients, **timing}, indent=2))


if __name__ == "__main__":
    main()

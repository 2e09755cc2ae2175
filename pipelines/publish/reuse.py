"""Rebuild a published part only when what it shows changed.

Each part of a publication folder (a dashboard page, the Data Docs, the release preview) is a
function of the run's declarations and code (the run's input fingerprint without the exports:
rules, contract, checks, suites, SQL, code, settings such as the minimum cell size) and of the
data it shows. A run stores, per part, the digest of those inputs and the SHA-256 of every file
the part wrote (`parts_fingerprint.json`, in the folder, so it moves with the set). The next
run computes the same digest; where it equals the published set's and the published files
still match their SHA-256, the part is carried over (hard links) instead of built again, and
the step says which run it was reused from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from pipelines.publish.snapshot import CURRENT

PARTS_FILE = "parts_fingerprint.json"


def digest_of(*values: object) -> str:
    """One digest of JSON-able values (what a part is built from)."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def static_inputs(con) -> str | None:
    """The digest of this run's inputs except the exports (rules, contract, checks, suites,
    SQL, code, settings), from the run plan; None when the run has no fingerprint (then
    nothing is reused)."""
    row = con.execute("SELECT input_fingerprint FROM ingest.run_plan").fetchone()
    if not row or not row[0]:
        return None
    parts = json.loads(row[0]).get("parts") or {}
    return digest_of({name: value for name, value in parts.items() if name != "exports"}) if parts else None


def mart_files_digest(folder: Path, marts: tuple[str, ...] | list[str]) -> str | None:
    """The content of published marts, by their Parquet files in a set being built; None when
    one is not there (then the part is built)."""
    files = [Path(folder) / f"{mart}.parquet" for mart in marts]
    if not all(f.is_file() for f in files):
        return None
    return digest_of({f.name: file_sha256(f) for f in files})


def frames_digest(frames: dict) -> str:
    """The content of pandas frames (columns, types, values), for parts built from queries."""
    import pandas as pd

    return digest_of({name: [list(map(str, frame.columns)), list(map(str, frame.dtypes)),
                             hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()]
                      for name, frame in sorted(frames.items())})


def previous_set(marts_dir: Path) -> Path | None:
    """The folder `current` points to (the set published before this run), if any."""
    current = Path(marts_dir) / CURRENT
    return current.resolve() if current.is_dir() else None


@dataclass(frozen=True)
class ReusablePart:
    """A part of the published set whose inputs are this run's: where it is and what it holds."""

    folder: Path  # the published set
    run_id: str  # the run that published it
    files: dict[str, str]  # path in the set -> SHA-256
    extra: dict  # what the run stored beside it (a page's run stamp, a step's metadata)

    def carry_into(self, folder: Path) -> list[Path]:
        """Hard-link the part's files into a set being built (a copy across file systems); the
        paths written. Links cost nothing to write or to sync before the switch (a copy's
        fsync took a second); nothing writes into a set's files once built, and a file
        edited in place afterwards no longer matches its SHA-256, so it is not reused again."""
        written = []
        for relative in self.files:
            target = Path(folder) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.folder / relative, target)
            except OSError:
                shutil.copy2(self.folder / relative, target)
            written.append(target)
        return written


def _stored(folder: Path) -> dict:
    try:
        record = json.loads((Path(folder) / PARTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) and isinstance(record.get("parts"), dict) else {}


def reusable(previous: Path | None, part: str, inputs: str | None) -> ReusablePart | None:
    """The published set's `part`, if it was built from the same inputs and its files are
    still as written (a file edited or lost since means building it again)."""
    if previous is None or inputs is None:
        return None
    record = _stored(previous)
    entry = record.get("parts", {}).get(part)
    if not isinstance(entry, dict) or entry.get("inputs") != inputs or not entry.get("files"):
        return None
    files = entry["files"]
    for relative, sha in files.items():
        path = previous / relative
        if Path(relative).is_absolute() or ".." in Path(relative).parts or not path.is_file() \
                or file_sha256(path) != sha:
            return None
    extra = {k: v for k, v in entry.items() if k not in ("inputs", "files")}
    return ReusablePart(previous, str(record.get("run_id", "")), dict(files), extra)


_RECORDING = threading.Lock()


def record_part(folder: Path, run_id: str, part: str, inputs: str | None, files: list[Path], **extra) -> None:
    """Store what `part` of a set being built was built from and the files it wrote (a part
    with no inputs digest is not recorded: it is built every run)."""
    if inputs is None:
        return
    folder = Path(folder)
    entry = {"inputs": inputs, **extra, "files": {str(f.relative_to(folder)): file_sha256(f) for f in sorted(files)}}
    with _RECORDING:  # the publish step's members record side by side (pipelines/definitions.py, THREADS)
        record = _stored(folder) or {"run_id": run_id, "parts": {}}
        record["parts"][part] = entry
        (folder / PARTS_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str), encoding="utf-8")


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


def reused_message(what: str, run_id: str) -> str:
    return f"{what} unchanged: reused from run {run_id[:8]}"

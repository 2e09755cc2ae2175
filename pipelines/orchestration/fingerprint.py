"""Whether a run has anything to do: a fingerprint of everything a published set depends on.

A published set is a function of the exports it applied, the declarations (rules, contract,
check catalogue, expectation suites), the SQL, the code and a few settings. Each part is
hashed (file contents; for exports, each file's name, size and modification time, the same
identity the ingest ledger keeps), and the run that publishes stores the result beside its
set (`<marts>/current/run_fingerprint.json`). A later run whose fingerprint is the same
has nothing to do: `clinic run` says so and stops within seconds, the schedule skips its tick.

Deliberately free of Dagster, pandas and the rest: the decision is taken before anything
heavy is imported (Dagster's import alone costs a second or more).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.ingest.exports import ready_folders
from pipelines.settings import RELEASE_LEDGER, REPO_ROOT, sql_dir

FINGERPRINT_FILE = "run_fingerprint.json"
CODE_DIRS = (REPO_ROOT / "pipelines", REPO_ROOT / "dashboards")
CODE_FILES = (REPO_ROOT / "requirements.lock",)  # the pinned libraries the code runs on
SKIPPED_DIRS = {"__pycache__", ".pytest_cache"}
# Settings that change what a run publishes. Paths are not among them: the files they name
# are hashed by content, the exports by identity (a copied raw folder is the same input), and
# a warehouse that is gone means work; the memory cap changes only how fast.
OUTPUT_SETTINGS = ("engine", "spark_remote", "min_cell_size", "gx_max_rows")


@dataclass(frozen=True)
class Fingerprint:
    """One digest per part (so a run can say what changed), and the digest of them all."""

    parts: dict[str, str]
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", _hash_text(json.dumps(self.parts, sort_keys=True)))

    def changed_since(self, stored: dict) -> list[str]:
        """The parts that differ from a stored fingerprint (all of them when it has none)."""
        before = stored.get("parts", {})
        return [name for name, digest in self.parts.items() if before.get(name) != digest]


def _hash_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _files_under(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return [folder] if folder.is_file() else []
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        # Regular files only: reading a FIFO would wait for a writer for ever.
        found += [Path(root) / f for f in sorted(files)
                  if not f.endswith((".pyc", ".pyo")) and os.path.isfile(os.path.join(root, f))]
    return found


def contents_digest(paths: list[Path]) -> str:
    """A digest of the files' names (relative to their argument) and contents."""
    digest = hashlib.sha256()
    for top in paths:
        for path in _files_under(Path(top)):
            digest.update(str(path.relative_to(top) if path != Path(top) else path.name).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def exports_digest(raw_dir: Path) -> str:
    """The complete exports' identity: every entry's name, size and modification time, and the
    names of complete folders that are not applied (their name does not fit), which a run
    reports. Reads no file: a stat per entry."""
    digest = hashlib.sha256()
    for export, fits in ready_folders(Path(raw_dir)):
        digest.update(export.name.encode(errors="surrogateescape") + (b"\0" if fits else b"\0unfit\0"))
        if not fits:
            continue
        for entry in sorted(export.iterdir(), key=lambda p: p.name):
            stat = entry.stat()
            kind = "d" if entry.is_dir() else "f"
            digest.update(f"{entry.name}\0{kind}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def input_fingerprint(values: dict[str, object]) -> Fingerprint:
    """The fingerprint of a deployment's inputs now; `values` maps setting names
    (pipelines/settings.py) to their values, as ClinicConfig or the command line has them."""
    from pipelines.ingest.contract import contract_files  # loaded by the settings check already
    settings = {name: str(values[name]) for name in OUTPUT_SETTINGS}
    return Fingerprint(parts={
        "exports": exports_digest(Path(str(values["raw_dir"]))),
        "rules": contents_digest([Path(str(values["rules_file"]))]),
        "contract": contents_digest(contract_files(Path(str(values["contract_file"])))),
        "checks": contents_digest([Path(str(values["checks_file"]))]),
        "expectations": contents_digest([Path(str(values["expectations_dir"]))]),
        "sql": contents_digest([Path(str(values.get("sql_dir") or sql_dir()))]),
        "code": contents_digest([*CODE_DIRS, *CODE_FILES]),
        "settings": _hash_text(json.dumps(settings, sort_keys=True)),
        # The releases sent: the run's release preview is protected together with every one of them.
        "ledger": contents_digest([Path(str(values["marts_dir"])) / RELEASE_LEDGER]),
    })


def write_fingerprint(folder: Path, run_id: str, fingerprint: dict) -> Path:
    """Store a run's fingerprint in the set it is about to publish (so it moves with it)."""
    path = Path(folder) / FINGERPRINT_FILE
    path.write_text(json.dumps({"run_id": run_id, **fingerprint}, indent=2, sort_keys=True), encoding="utf-8")
    return path


def published_fingerprint(marts_dir: Path) -> dict | None:
    """What the published set was built from, or None (nothing published, an older set
    without a fingerprint, or a file that cannot be read: then the run does the work)."""
    path = Path(marts_dir) / "current" / FINGERPRINT_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) and isinstance(stored.get("parts"), dict) else None


@dataclass(frozen=True)
class Decision:
    """Whether a run has work to do, and why (for the message and the run record)."""

    fingerprint: Fingerprint
    previous: dict | None  # the published set's fingerprint record
    warehouse: str | None = None  # why the warehouse means work whatever the inputs, if it does

    @property
    def nothing_new(self) -> bool:
        return (self.previous is not None and self.previous.get("digest") == self.fingerprint.digest
                and self.warehouse is None)

    @property
    def previous_run(self) -> str:
        return str((self.previous or {}).get("run_id", ""))

    @property
    def changed(self) -> list[str]:
        return self.fingerprint.changed_since(self.previous or {}) + ([self.warehouse] if self.warehouse else [])


def warehouse_since(warehouse: Path, published_run: str) -> str | None:
    """Why the warehouse means work although the inputs are those of the published set: it is
    gone (the next run rebuilds it), or its last run is not the one that published (a run that
    failed or was killed may have applied an export that has gone from the raw folder since,
    which only a run finds and says). None when the published run is its last."""
    from pipelines.ingest.load import last_logged_run  # duckdb: loaded by the settings check already

    if not warehouse.exists():
        return "the warehouse is gone"
    last = last_logged_run(warehouse)
    if last is None or last[0] != published_run:
        return ("the warehouse's last run " + (f"{last[0][:8]} ({last[1]})" if last else "cannot be read")
                + " is not the one that published")
    return None


def decide(values: dict[str, object]) -> Decision:
    """Compare the inputs now with what the published set was built from, and the warehouse with
    the run that published it."""
    fingerprint = input_fingerprint(values)
    previous = published_fingerprint(Path(str(values["marts_dir"])))
    if previous is None or previous.get("digest") != fingerprint.digest:
        return Decision(fingerprint, previous)  # work whatever the warehouse holds
    return Decision(fingerprint, previous, warehouse_since(Path(str(values["warehouse"])), str(previous.get("run_id"))))

"""Releasing is an act: `clinic release` makes the next release and appends it to the ledger.

Why a ledger: an outsider may hold every release ever sent, so a new one is protected together
with all of them (pipelines/release/protection.py), and that needs what each earlier release
showed and the true counts behind it. Layout under the marts folder:

- `releases/ledger.jsonl`: one JSON line per release (id, time, run, rules version, threshold,
  method, utility, SHA-256 of every file). The ledger is the truth: a release folder without
  its line (a release killed half-way) is not a release and is removed by the next one.
- `releases/<id>/bundle/`: what may leave the clinic (the DuckDB file, Parquet files,
  dashboards, manifest.json).
- `releases/<id>/protection/`: clinic-only, never sent: the unsuppressed counts of the five
  marts and a fingerprint per patient (a hash of the id and of what the release counts), which
  the protection of later releases reads.
- `release` (the stable path): a symlink to the newest bundle, switched in one rename.

A run of the pipeline builds only a preview (`release-preview/`, marked not for release).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.publish.reuse import file_sha256, files_under
from pipelines.release.bundle import (
    MANIFEST,
    RELEASE_DB,
    RELEASE_MARTS,
    read_marts,
    write_manifest,
    write_release_database,
)
from pipelines.release.protection import Refused, protect_release
from pipelines.settings import RELEASE_LEDGER
from pipelines.sqlfiles import sql

RELEASES, LEDGER = RELEASE_LEDGER.parent.name, RELEASE_LEDGER.name
BUNDLE, PROTECTION, PATIENTS = "bundle", "protection", "patients"
CADENCES = ("off", "weekly", "monthly")


@dataclass(frozen=True)
class EarlierRelease:
    """What the protection of a later release needs from one in the ledger."""

    release_id: str
    true_marts: dict[str, pd.DataFrame]  # unsuppressed counts, rows in read_marts order
    released: dict[str, pd.DataFrame]  # as sent (hidden counts NULL)
    patients: pd.DataFrame  # patient, state


@dataclass(frozen=True)
class Release:
    release_id: str
    folder: Path
    entry: dict


def ledger_dir(marts_dir: Path) -> Path:
    return Path(marts_dir) / RELEASES


def read_ledger(marts_dir: Path) -> list[dict]:
    """The ledger's entries, oldest first; a line that is not an entry is a ValueError naming the
    file and the line (the ledger is the record of what left the clinic: never guessed at)."""
    path = ledger_dir(marts_dir) / LEDGER
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as error:
            raise ValueError(f"the release ledger {path} is damaged at line {number} ({error}): restore it from a "
                             "backup, or compare it with the releases' manifests under that folder; no release is "
                             "made from a ledger that cannot be read") from None
        entries.append(entry)
    return entries


def _append_to_ledger(path: Path, entry: dict) -> None:
    """The ledger with `entry` added, written whole beside it and moved into place: a full disk or
    a kill leaves the old ledger or the new one, never a line cut short."""
    tmp = path.with_name(f".{path.name}.tmp")
    old = path.read_bytes() if path.exists() else b""
    try:
        with open(tmp, "wb") as fh:
            fh.write(old + (b"" if not old or old.endswith(b"\n") else b"\n") + json.dumps(entry).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone once moved; what a failed write left


def _read_folder(folder: Path, names: Iterable[str]) -> dict[str, pd.DataFrame]:
    return {n: pd.read_parquet(folder / f"{n}.parquet") for n in names}


def earlier_releases(marts_dir: Path) -> list[EarlierRelease]:
    """Every release in the ledger, oldest first, with its true and released counts."""
    out = []
    for entry in read_ledger(marts_dir):
        folder = ledger_dir(marts_dir) / entry["release_id"]
        # Every file that was sent, the manifest included, as the ledger recorded it: later releases
        # are protected against what was sent, and the manifest says what that was.
        recorded = {f["path"]: f["sha256"] for f in entry["files"]}
        if RELEASE_DB not in recorded:
            raise ValueError(f"release {entry['release_id']}: the ledger lists no {RELEASE_DB}")
        if entry.get("manifest_sha256"):
            recorded[MANIFEST] = entry["manifest_sha256"]
        differ = [path for path, sha in recorded.items()
                  if not (folder / BUNDLE / path).is_file() or file_sha256(folder / BUNDLE / path) != sha]
        # A file added to the bundle would leave with it (`cp -rL`) without being in what was recorded.
        differ += sorted(path for path in (str(p.relative_to(folder / BUNDLE)) for p in files_under(folder / BUNDLE))
                         if path not in recorded and path != MANIFEST)
        if differ:
            raise ValueError(f"release {entry['release_id']}: {', '.join(str(folder / BUNDLE / p) for p in differ)} "
                             "is missing, added or differs from its SHA-256 in the ledger; later releases are "
                             "protected against what was sent, so restore it from a copy of that release before "
                             "making another")
        out.append(EarlierRelease(entry["release_id"], _read_folder(folder / PROTECTION, RELEASE_MARTS),
                                  _released(folder / BUNDLE),
                                  pd.read_parquet(folder / PROTECTION / f"{PATIENTS}.parquet")))
    return out


def _released(bundle: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(bundle / RELEASE_DB), read_only=True)
    try:
        return read_marts(con)
    finally:
        con.close()


def read_published(snapshot: Path) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, dict]:
    """The published internal set: the five marts at the release's grain, the patients'
    fingerprints, and the run."""
    if not Path(snapshot).exists():
        raise FileNotFoundError(f"no published set at {snapshot}: run `clinic run` first")
    from pipelines.release.grain import read_at_release_grain

    try:
        con = duckdb.connect(str(snapshot), read_only=True)
        try:
            marts = read_at_release_grain(con, published=True)
            patients = fingerprints(con, "marts.patient_trajectory")
            run_id, rules_version = con.execute(
                "SELECT run_id, rules_version FROM marts.run_info WHERE status = 'published' "
                "ORDER BY run_time DESC LIMIT 1").fetchone()
        finally:
            con.close()
    except duckdb.Error as error:  # a file cut short, a bad block: nothing to release from
        raise ValueError(f"the published snapshot {snapshot} cannot be read ({str(error).splitlines()[0]}): "
                         "`clinic run --force` publishes it again") from None
    return marts, patients, {"run_id": run_id, "rules_version": str(rules_version)}


def fingerprints(con, trajectory: str) -> pd.DataFrame:
    """Each patient's fingerprint (sql/release/patient_fingerprints.sql)."""
    return con.execute(sql("release", "patient_fingerprints", trajectory=trajectory)).df()


def changed_patients(before: pd.DataFrame, now: pd.DataFrame) -> int:
    """Patients added, removed or changed (in what the release counts) between two states."""
    merged = before.merge(now, on="patient", how="outer", suffixes=("_before", "_now"), indicator=True)
    return int((merged["_merge"] != "both").sum() + (merged["state_before"] != merged["state_now"])
               [merged["_merge"] == "both"].sum())


def write_bundle(folder: Path, frames: Mapping[str, pd.DataFrame], info: dict, public: dict, rules: dict,
                 preview: bool) -> None:
    """The bundle's database, Parquet files, dashboards and manifest in `folder` (which is new)."""
    from dashboards.build import build_dashboards

    con = duckdb.connect()
    try:
        write_release_database(con, folder, dict(frames), info)
    finally:
        con.close()
    build_dashboards(folder / RELEASE_DB, folder / "dashboards", rules)
    write_manifest(folder, {**info, "created_at": info["created_at"].isoformat(timespec="seconds") + "Z"},
                   public, preview=preview)


def _lock(marts_dir: Path):
    ledger_dir(marts_dir).mkdir(parents=True, exist_ok=True)
    handle = open(ledger_dir(marts_dir) / ".lock", "w")  # noqa: SIM115 - held until released
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise Refused("another `clinic release` is writing the ledger; wait for it and try again",
                      needed=0) from None
    return handle


def _clean(marts_dir: Path, ledger: list[dict]) -> None:
    """Remove folders of releases that never reached the ledger (killed half-way)."""
    known = {e["release_id"] for e in ledger}
    for folder in ledger_dir(marts_dir).iterdir():
        if folder.is_dir() and folder.name not in known:
            shutil.rmtree(folder, ignore_errors=True)


def _in_ledger(marts_dir: Path, release_id: str) -> bool:
    try:
        return any(e.get("release_id") == release_id for e in read_ledger(marts_dir))
    except (OSError, ValueError):
        return False


def make_release(clinic, now: dt.datetime | None = None) -> Release:
    """The next release from the published internal set, protected together with every release
    in the ledger, written and appended to the ledger; raises Refused (nothing written, ledger
    unchanged) when it cannot be made safe, and ConfigError (before reading anything) when the
    minimum cell size is below the spec's floor."""
    from pipelines.config import SPEC_MIN_CELL_SIZE, ConfigError, below_release_floor
    from pipelines.publish.snapshot import _link

    below = below_release_floor(clinic.min_cell_size)
    if below:
        raise ConfigError(f"{below}: set CLINIC_MIN_CELL_SIZE={SPEC_MIN_CELL_SIZE} or more (or unset it) and "
                          "run `clinic release` again; nothing was written")
    marts_dir = Path(clinic.marts_dir)
    marts, patients, run = read_published(clinic.snapshot)
    lock = _lock(marts_dir)
    building = final = None
    try:
        ledger = read_ledger(marts_dir)
        _clean(marts_dir, ledger)
        history = earlier_releases(marts_dir)
        result = protect_release(marts, clinic.min_cell_size, history=history, patients=patients)
        now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        release_id = f"r{len(ledger) + 1:04d}-{now.strftime('%Y%m%dT%H%M%SZ')}"
        info = {"release_id": release_id, "run_id": run["run_id"], "created_at": now,
                "rules_version": run["rules_version"], "min_cell_size": clinic.min_cell_size}
        building = ledger_dir(marts_dir) / f".building-{release_id}"
        shutil.rmtree(building, ignore_errors=True)
        write_bundle(building / BUNDLE, result.frames, info, result.public_report, clinic.rules(), preview=False)
        (building / PROTECTION).mkdir()
        for name, frame in marts.items():
            frame.to_parquet(building / PROTECTION / f"{name}.parquet", index=False)
        patients.to_parquet(building / PROTECTION / f"{PATIENTS}.parquet", index=False)
        final = ledger_dir(marts_dir) / release_id
        os.replace(building, final)
        manifest = json.loads((final / BUNDLE / MANIFEST).read_text(encoding="utf-8"))
        entry = {"release_id": release_id, "created_at": manifest["created_at"], "run_id": run["run_id"],
                 "rules_version": run["rules_version"], "min_cell_size": clinic.min_cell_size,
                 "method": result.public_report["method"], "utility": result.public_report["utility"],
                 "patients": len(patients), "changed_since_previous": result.report.get("changed_patients"),
                 "earlier": [e["release_id"] for e in ledger],
                 "bundle": f"{RELEASES}/{release_id}/{BUNDLE}",
                 "manifest_sha256": file_sha256(final / BUNDLE / MANIFEST), "files": manifest["files"]}
        _append_to_ledger(ledger_dir(marts_dir) / LEDGER, entry)
        _link(marts_dir / "release", f"{RELEASES}/{release_id}/{BUNDLE}")
        return Release(release_id, final / BUNDLE, entry)
    except BaseException:  # a full disk, a read-only folder, Ctrl-C: nothing half-written stays
        for folder in (building, final):
            if folder is not None and folder.exists() and not _in_ledger(marts_dir, folder.name):
                shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        lock.close()

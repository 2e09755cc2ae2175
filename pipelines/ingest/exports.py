"""Finding complete exports under data/raw/ and the table files inside them.

An export's name is data from outside: it is applied only when it fits the contract's export
name grammar (rules/contract.yaml `exports`), so every name the pipeline prints, stores or draws
is made of letters, digits, - and _. A folder whose name does not fit is reported without it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pipelines.ingest.contract import SAFE_EXPORT_NAME, load_contract
from pipelines.settings import setting_value

READY_MARKER = "_READY"
FILE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class ExportFile:
    export_id: str
    table: str
    path: Path

    @property
    def source_file(self) -> str:
        """How quarantine and provenance name the file: `<export_id>/<file name>`."""
        return f"{self.export_id}/{self.path.name}"

    @property
    def fingerprint(self) -> str:
        stat = self.path.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"


def _contract(contract):
    """The contract given, else the deployment's (CLINIC_CONTRACT)."""
    return contract if contract is not None else load_contract(Path(setting_value("contract_file")))


def _ready_folders(raw_dir: Path) -> list[Path]:
    """Every folder holding `_READY`, in the byte order of its name (the apply order)."""
    if not raw_dir.is_dir():
        return []
    folders = [p for p in raw_dir.iterdir() if p.is_dir() and (p / READY_MARKER).is_file()]
    return sorted(folders, key=lambda p: os.fsencode(p.name))


def complete_exports(raw_dir: Path, contract=None) -> list[Path]:
    """Export folders holding `_READY` whose name fits the export name grammar, in the byte
    order of their names (the apply order)."""
    contract = _contract(contract)
    return [p for p in _ready_folders(Path(raw_dir)) if contract.export_names.why_unfit(p.name, contract) is None]


def ready_folders(raw_dir: Path, contract=None) -> list[tuple[Path, bool]]:
    """Every folder holding `_READY`, in the apply order, and whether its name fits (an unfit
    one is not applied, but reported: a new one is news)."""
    contract = _contract(contract)
    return [(p, contract.export_names.why_unfit(p.name, contract) is None) for p in _ready_folders(Path(raw_dir))]


def unfit_exports(raw_dir: Path, contract=None) -> list[str]:
    """One sentence per complete folder whose name does not fit: why, and where it sorts among
    the exports that fit, so the operator can find it; never the name itself."""
    contract = _contract(contract)
    found, previous = [], None
    for p in _ready_folders(Path(raw_dir)):
        why = contract.export_names.why_unfit(p.name, contract)
        if why is None:
            previous = p.name
            continue
        where = f"after {previous}" if previous else "before every export that fits"
        found.append(f"an export folder named with {len(p.name)} characters, sorting {where}, was not applied: "
                     f"{why}. Rename it (its name is not shown)")
    return found


def column_label(name: str, position: int) -> str:
    """An extra column's name as it may be stored and printed (it passed the identifier checks):
    itself when made of letters, digits, `-`, `_`, `.` and spaces, starting with a letter or
    digit; else its position, so no formula or control character travels on."""
    if name and all(SAFE_EXPORT_NAME.match(part) for part in name.replace(".", " ").split(" ") if part) \
            and name[0].isalnum():
        return name
    return f"(column {position}, its name not shown)"


def shown_name(name: str, contract) -> str:
    """A file or folder name as it may be printed and stored: itself when made of safe characters
    and not like an identifier, else a description that does not repeat it."""
    label = contract.identifier_label(name)
    if label:
        return f"an entry whose name looks like {label} (not shown)"
    stem = name[:-1] if name.endswith("/") else name
    if all(SAFE_EXPORT_NAME.match(part) for part in stem.split(".")):
        return repr(name)
    return f"an entry named with {len(stem)} characters, some unsafe to show (not shown)"


def not_regular(path: Path) -> str | None:
    """What an entry is when it is not a regular file (a link is not followed: a folder, a
    FIFO that would block the reader, a device, a link to anywhere), or None. Only regular
    files are read; the rest are findings."""
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    kinds = [(stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")]
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def export_files(export_dir: Path, tables: list[str]) -> list[ExportFile]:
    """The table files of one export, by table then name (`measurements.csv` before `.parquet`):
    regular files only."""
    found = []
    for path in sorted(export_dir.iterdir(), key=lambda p: p.name):
        if path.suffix.lower() in FILE_SUFFIXES and path.stem.lower() in tables and not_regular(path) is None:
            found.append(ExportFile(export_dir.name, path.stem.lower(), path))
    return found


def unknown_entries(export_dir: Path, tables: list[str]) -> list[str]:
    """What an export holds besides `_READY` and the contract's table files (a notes.csv,
    a doses.txt, a subfolder): reported, never read."""
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in export_dir.iterdir()
        if p.name != READY_MARKER
        and not (not_regular(p) is None and p.suffix.lower() in FILE_SUFFIXES and p.stem.lower() in tables)
    )


def export_findings(export_dir: Path, contract) -> list[tuple[str, str, str]]:
    """(check, table, detail) for the tables an export lacks (exports are deltas: info) and
    the entries it holds that are not tables. A name that looks like an identifier is not
    repeated."""
    tables = list(contract.tables)
    present = {f.table for f in export_files(export_dir, tables)}
    found = [("missing_table", t, f"the export has no {t} file") for t in tables if t not in present]
    for name in unknown_entries(export_dir, tables):
        kind = not_regular(export_dir / name.rstrip("/"))
        what = f"is {kind}, not a regular file," if kind else "is not a table of the contract and"
        found.append(("unknown_file", "(export)", f"{shown_name(name, contract)} {what} was not read"))
    return found

"""Finding complete exports under data/raw/ and the table files inside them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def complete_exports(raw_dir: Path) -> list[Path]:
    """Export folders holding `_READY`, in the byte order of their names (the apply order)."""
    if not raw_dir.is_dir():
        return []
    folders = [p for p in raw_dir.iterdir() if p.is_dir() and (p / READY_MARKER).is_file()]
    return sorted(folders, key=lambda p: p.name.encode("utf-8"))


def export_files(export_dir: Path, tables: list[str]) -> list[ExportFile]:
    """The table files of one export, by table then name (`measurements.csv` before `.parquet`)."""
    found = []
    for path in sorted(export_dir.iterdir(), key=lambda p: p.name):
        if path.suffix.lower() in FILE_SUFFIXES and path.stem.lower() in tables:
            found.append(ExportFile(export_dir.name, path.stem.lower(), path))
    return found


def unknown_files(export_dir: Path, tables: list[str]) -> list[str]:
    """Files in an export that are not a table of the contract (reported, not loaded)."""
    return sorted(
        p.name
        for p in export_dir.iterdir()
        if p.is_file() and p.name != READY_MARKER
        and not (p.suffix.lower() in FILE_SUFFIXES and p.stem.lower() in tables)
    )

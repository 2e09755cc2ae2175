"""The warehouse's schemas and bookkeeping tables, built by numbered migrations.

`sql/migrations/NNN_<what>.sql` run once each, in number order, each in a transaction with its
row in `main.warehouse_migrations` (version, name, applied_at). One owner per schema: the
migrations own the schemas and the ingest, quality and response bookkeeping tables; the contract
owns `core.<table>` (pipelines/ingest/load.py); the SQL models own what they build (staging
views, response and marts tables). A change to a bookkeeping table is a new numbered file, never
an edit of one applied before.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.settings import ConfigError, sql_dir

MIGRATIONS = "migrations"  # the folder under sql/
VERSION_TABLE = "main.warehouse_migrations"


def migration_files(root: Path | None = None) -> list[tuple[int, str, Path]]:
    """(version, name, path) of every migration, in order; a badly named or doubled one is refused."""
    found = []
    for path in sorted(((root or sql_dir()) / MIGRATIONS).glob("*.sql")):
        number, _, name = path.stem.partition("_")
        if not number.isdigit() or not name:
            raise ConfigError(f"sql/{MIGRATIONS}/{path.name}: name a migration NNN_what.sql (e.g. 005_add_column.sql)")
        found.append((int(number), name, path))
    versions = [v for v, _, _ in found]
    if doubled := sorted({v for v in versions if versions.count(v) > 1}):
        raise ConfigError(f"sql/{MIGRATIONS}: version {doubled[0]} is used twice; give each migration its own number")
    return sorted(found)


def migrate(con) -> list[str]:
    """Apply the migrations the warehouse has not had; returns their file names."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER, name VARCHAR, applied_at TIMESTAMP)")
    done = {v for (v,) in con.execute(f"SELECT version FROM {VERSION_TABLE}").fetchall()}
    applied = []
    for version, name, path in migration_files():
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(path.read_text(encoding="utf-8"))
            con.execute(f"INSERT INTO {VERSION_TABLE} VALUES (?, ?, now())", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(path.name)
    return applied

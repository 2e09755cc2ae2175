"""The data dictionary: what every published table and column means, declared once.

Each table is described in a YAML file beside the SQL that makes it (`sql/marts/cohort_flow.yml`
beside `cohort_flow.sql`; the release bundle's own table and columns in
`sql/release/release_bundle.yml`). A file maps table names to an entry:

    cohort_flow:
      description: what one row is, and what the table is for
      published_in: [snapshot, release]     # default [snapshot]
      warehouse_relation: marts.cohort_flow  # default marts.<name>: where the pipeline builds it
      columns:
        indication: a plain description        # or, with structure:
        enrolled: {description: ..., unit: patients, values: {code: meaning, ...}}
        instrument: {description: ..., values_from: instruments}  # codes from rules/instruments.yaml

The same entry is the model's manifest (`built_by`, `runs_on`, `expectations`, ...: read by
pipelines/manifest.py, which builds the model's asset, publishing and checks from it).
An entry with `adds_columns_to: [tables]` describes columns another step adds to those tables
in one audience (the release bundle's `suppressed`), with an optional `table_note` appended to
their table comment there. The run writes the dictionary as `COMMENT ON TABLE/COLUMN` into the
published snapshot and the release database (so `.schema` in `clinic sql` and `duckdb_columns()`
show it), into the Dagster column schemas (pipelines/metadata.py) and into the dashboards'
`dictionary.html`, which reads the comments back from the database it documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from pipelines.declared import load_yaml
from pipelines.settings import setting_value, sql_dir
from pipelines.sqlfiles import quote_ident, quote_literal

AUDIENCES = ("snapshot", "release")
ENTRY_KEYS = {"description", "published_in", "warehouse_relation", "columns", "adds_columns_to", "table_note"}
# What the model manifest (pipelines/manifest.py) reads from the same entry.
MODEL_KEYS = {"built_by", "runs_on", "why", "expectations", "publish_order", "also_writes",
              "release"}  # release: the structure the release protection reads (pipelines/release/relations.py)


class DictionaryError(ValueError):
    """A dictionary file cannot be read as one; the message names the file and the key."""


# A released mart's declared structure, read by pipelines/release/relations.py (not a description).


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    unit: str | None = None
    values: dict[str, dict] = field(default_factory=dict)  # code -> {"description": ..., and e.g. unit}

    def comment(self) -> str:
        """The column's comment as a database shows it: description, unit, codes."""
        text = self.description.strip()
        if self.unit:
            text += f" Unit: {self.unit}."
        if self.values:
            text += " Values: " + "; ".join(f"{code} = {_value_text(spec)}" for code, spec in self.values.items()) + "."
        return text


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    source: Path
    columns: dict[str, Column]
    published_in: tuple[str, ...] = ("snapshot",)
    warehouse_relation: str = ""
    adds_columns_to: tuple[str, ...] = ()
    table_note: str | None = None
    model: dict = field(default_factory=dict, compare=False)  # the MODEL_KEYS given, for the manifest


@dataclass(frozen=True)
class Coverage:
    """How a database's tables and the dictionary line up."""

    undocumented: list[str]  # table or table.column in the database with no description
    absent: list[str]  # table or table.column described for this database but not in it

    @property
    def complete(self) -> bool:
        return not self.undocumented and not self.absent


@dataclass(frozen=True)
class Dictionary:
    tables: dict[str, Table]
    extensions: list[Table]

    def columns_of(self, table: str, audience: str) -> dict[str, Column]:
        """A table's columns in one audience: its own, and what other steps add there."""
        spec = self.tables.get(table)
        columns = dict(spec.columns) if spec else {}
        for extension in self.extensions:
            if table in extension.adds_columns_to and audience in extension.published_in:
                columns.update(extension.columns)
        return columns

    def table_comment(self, table: str, audience: str) -> str | None:
        spec = self.tables.get(table)
        if spec is None:
            return None
        notes = [e.table_note.strip() for e in self.extensions
                 if table in e.adds_columns_to and audience in e.published_in and e.table_note]
        return " ".join([spec.description.strip(), *notes])

    def published(self, audience: str) -> list[str]:
        return [name for name, t in self.tables.items() if audience in t.published_in]

    def for_relation(self, relation: str) -> Table | None:
        """The entry of a warehouse relation (`marts.patient_response`, `response.trajectory_points`)."""
        return next((t for t in self.tables.values() if t.warehouse_relation == relation), None)

    def labels(self) -> dict[str, str]:
        """How pages write a code (`crps` -> CRPS, `crohns_disease` -> Crohn's disease, `ldn` ->
        LDN): the `label` of patient_response's indication and regimen values, declared once."""
        columns = self.tables["patient_response"].columns
        return {code: spec["label"] for name in ("indication", "regimen")
                for code, spec in columns[name].values.items() if spec.get("label")}

    def instruments(self) -> dict[str, dict]:
        """Every instrument with its label, unit, description and direction (`better`), from the
        instrument registry (rules/instruments.yaml, named by the contract)."""
        return {name: {"label": i.label, "unit": i.unit, "description": i.description, "better": i.better}
                for name, i in _registry().items()}


def _registry() -> dict:
    from pipelines.ingest.contract import load_contract

    return load_contract(Path(setting_value("contract_file"))).instruments


def _instrument_values() -> dict[str, dict]:
    """The codes of a column declared `values_from: instruments`, each with its label, unit,
    range and direction, as the registry declares them."""
    return {name: {"description": (f"{i.label}" + (f" ({i.description})" if i.description != i.label else "")
                                   + f", {i.minimum:g}-{i.maximum:g} {i.unit}, {i.direction}"),
                   "label": i.label, "unit": i.unit, "better": i.better} for name, i in _registry().items()}


def _value_text(spec: dict) -> str:
    unit = spec.get("unit")
    return spec["description"] + (f" ({unit})" if unit and unit not in spec["description"] else "")


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DictionaryError(f"{where}: needs a description (a non-empty text)")
    return " ".join(value.split())


def _column(name: str, spec, where: str) -> Column:
    if isinstance(spec, str):
        return Column(name, _text(spec, where))
    if not isinstance(spec, dict):
        raise DictionaryError(f"{where}: a description, or a mapping with description, unit, values")
    values = {}
    if spec.get("values_from") not in (None, "instruments"):
        raise DictionaryError(f"{where}.values_from: only `instruments` (the instrument registry)")
    declared = _instrument_values() if spec.get("values_from") == "instruments" else spec.get("values")
    for code, meaning in (declared or {}).items():
        meaning = meaning if isinstance(meaning, dict) else {"description": meaning}
        values[str(code)] = {**meaning, "description": _text(meaning.get("description"), f"{where}.values.{code}")}
    return Column(name, _text(spec.get("description"), where), spec.get("unit"), values)


def _columns(spec, where: str) -> dict[str, Column]:
    """Columns as a mapping (name: description or spec) or as a list of {name, description, ...}."""
    if isinstance(spec, list):
        spec = {c.get("name"): {k: v for k, v in c.items() if k != "name"} for c in spec if isinstance(c, dict)}
    if not isinstance(spec, dict) or not spec:
        raise DictionaryError(f"{where}: needs columns")
    return {str(name): _column(str(name), s, f"{where}.{name}") for name, s in spec.items()}


def _entries(doc, path: Path) -> dict[str, dict]:
    """A file's entries: a mapping of table names, or one table's entry on its own (named by
    `name` or `table`, else by the file)."""
    if not isinstance(doc, dict):
        raise DictionaryError(f"{path}: a dictionary file maps table names to their description")
    if "columns" in doc:
        name = doc.get("name") or doc.get("table") or path.stem
        return {str(name): {k: v for k, v in doc.items() if k not in ("name", "table")}}
    return {str(k): v for k, v in doc.items()}


def _table(name: str, spec, path: Path) -> Table:
    where = f"{path.parent.name}/{path.name}: {name}"
    if not isinstance(spec, dict):
        raise DictionaryError(f"{where}: needs description and columns")
    unknown = set(spec) - ENTRY_KEYS - MODEL_KEYS
    if unknown:
        known = ", ".join(sorted(ENTRY_KEYS | MODEL_KEYS))
        raise DictionaryError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {known})")
    published_in = tuple(spec["published_in"] if spec.get("published_in") is not None else ("snapshot",))
    if set(published_in) - set(AUDIENCES):
        raise DictionaryError(f"{where}.published_in: each of {', '.join(AUDIENCES)}")
    adds_to = tuple(spec.get("adds_columns_to") or ())
    description = spec.get("description") or (f"columns added to {', '.join(adds_to)}" if adds_to else None)
    return Table(name=name, description=_text(description, f"{where}.description"), source=path,
                 columns=_columns(spec.get("columns"), f"{where}.columns"), published_in=published_in,
                 warehouse_relation=spec.get("warehouse_relation") or f"marts.{name}",
                 adds_columns_to=adds_to, table_note=spec.get("table_note"),
                 model={k: v for k, v in spec.items() if k in MODEL_KEYS})


def dictionary_files(root: Path | None = None) -> list[Path]:
    """The model .yml files under `root` (this run's SQL folder); `_files.yml` lists a stage's
    SQL files that are not models and is no dictionary."""
    return sorted(p for p in (root or sql_dir()).rglob("*.yml") if not p.name.startswith("_"))


def load_dictionary(root: Path | None = None) -> Dictionary:
    """Every dictionary file under `root` (this run's SQL folder), checked: an entry needs a
    description and columns, a table is described once. A file that appears later (the
    data-quality mart's sql/quality/data_quality.yml) is read on the next load."""
    files = dictionary_files(root)
    # The contract names the instrument registry that `values_from: instruments` columns read.
    return _load(tuple((p, p.stat().st_mtime_ns) for p in files), str(setting_value("contract_file")))


@cache
def _load(files: tuple[tuple[Path, int], ...], contract_file: str = "") -> Dictionary:
    tables: dict[str, Table] = {}
    extensions: list[Table] = []
    for path, _ in files:
        try:
            doc = load_yaml(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise DictionaryError(f"{path}: not YAML ({str(error).splitlines()[0]})") from None
        for name, spec in _entries(doc, path).items():
            table = _table(name, spec, path)
            if table.adds_columns_to:
                extensions.append(table)
            elif name in tables:
                raise DictionaryError(f"{path}: {name} is described in {tables[name].source} already")
            else:
                tables[name] = table
    return Dictionary(tables, extensions)


# --- writing the dictionary into a database ----------------------------------------------


def coverage(con, database: str, audience: str, dictionary: Dictionary | None = None) -> Coverage:
    """What `database`.marts holds that the dictionary does not describe, and the reverse."""
    dictionary = dictionary or load_dictionary()
    present: dict[str, list[str]] = {}
    for table, column in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'marts' "
            "ORDER BY table_name, column_index", [database]).fetchall():
        present.setdefault(table, []).append(column)
    undocumented, absent = [], []
    for table, columns in present.items():
        if table not in dictionary.tables:
            undocumented.append(table)
            continue
        described = dictionary.columns_of(table, audience)
        undocumented += [f"{table}.{c}" for c in columns if c not in described]
        absent += [f"{table}.{c}" for c in described if c not in columns]
    absent += [t for t in dictionary.published(audience) if t not in present]
    return Coverage(undocumented, absent)


def write_comments(con, database: str, audience: str, dictionary: Dictionary | None = None) -> Coverage:
    """COMMENT ON TABLE / COLUMN for every table of `database`.marts that the dictionary
    describes; what it does not describe is left uncommented and returned."""
    dictionary = dictionary or load_dictionary()
    tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ? "
                                        "AND schema_name = 'marts'", [database]).fetchall()]
    for table in tables:
        comment = dictionary.table_comment(table, audience)
        if comment is None:
            continue
        relation = f"{quote_ident(database)}.marts.{quote_ident(table)}"
        con.execute(f"COMMENT ON TABLE {relation} IS {quote_literal(comment)}")
        columns = dictionary.columns_of(table, audience)
        for (name,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = ? "
                                   "AND schema_name = 'marts' AND table_name = ?", [database, table]).fetchall():
            if name in columns:
                con.execute(f"COMMENT ON COLUMN {relation}.{quote_ident(name)} IS "
                            f"{quote_literal(columns[name].comment())}")
    return coverage(con, database, audience, dictionary)


def column_descriptions(relation: str) -> dict[str, str]:
    """Column comments of a warehouse relation, for Dagster's column schema (empty when the
    relation is not published). The dictionary is read fresh when a file changed."""
    table = load_dictionary().for_relation(relation)
    return {name: c.comment() for name, c in table.columns.items()} if table else {}

"""The model manifest: what each SQL model is, read from the `.yml` beside its `.sql`.

A model is `sql/<stage>/<name>.sql` with `sql/<stage>/<name>.yml`: its data dictionary entry
(description, columns) and what the pipeline does with it:

    titration:
      description: ...
      published_in: [snapshot, release]   # clinic.duckdb + <name>.parquet; the release bundle ([]: internal)
      warehouse_relation: marts.titration  # default marts.<name>
      runs_on: engine                      # engine (DuckDB or Spark) | warehouse (always DuckDB), with `why`
      expectations: titration              # expectations/<suite>.json, validated by mart_expectations
      built_by: patient_response           # a Python asset builds it (default: the .sql, as asset <name>)
      columns: ...

`expectations` may be a mapping: `{suite, rows: recomputed, sample_key}` for a per-patient
mart (GX validates the patients this run recomputed, hash-sampled on `sample_key` above
gx_max_rows) or `{suite, as_check: true}` (a read-only blocking check after data quality).
The SQL files of a stage that are not models are listed in `sql/<stage>/_files.yml`.
Dependencies are never written: the tables a model's SQL reads (sqlglot) are mapped to the
asset that produces each one. A `.sql` neither a model nor listed, or a `.yml` without its
`.sql` (unless `built_by` a Python asset), stops the run before any work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import sqlglot
import yaml
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pipelines.declared import load_yaml
from pipelines.dictionary import DictionaryError, load_dictionary
from pipelines.settings import ConfigError, sql_dir

FILE_LIST = "_files.yml"
NOT_MODELS = ("migrations",)  # sql/migrations/NNN_*.sql: the warehouse's migrations (pipelines/migrations.py)
ENGINE_STAGES = ("staging", "response", "marts")  # what a run may hand to the engine, in run order
RUNS_ON = ("engine", "warehouse")
# The contract tables' layers, named by table: core.<t> is loaded_<t>'s, staging.<t> staged_<t>'s.
CONTRACT_LAYERS = {"core": "loaded_", "staging": "staged_"}
RECOMPUTED = "recomputed"
NAME = re.compile(r"[a-z_][a-z0-9_]*")  # what a model, relation part or column may be called


class ManifestError(ConfigError):
    """The SQL folder and its .yml files do not line up; the message names the file and what to do."""


@dataclass(frozen=True)
class SqlFile:
    """A SQL file that is not a model (sql/<stage>/_files.yml)."""

    stage: str
    name: str
    runs_on: str
    why: str = ""
    before_each_model: bool = False  # run before each model of its stage (shared macros)
    asset: str | None = None  # the asset that runs it, for the tables it writes


@dataclass(frozen=True)
class Model:
    name: str  # the published name (the dictionary entry)
    stage: str
    sql_name: str | None  # the .sql file's name; None when a Python asset builds it from no SQL
    relation: str
    asset: str  # the asset that builds it
    generated: bool  # the asset is made from the .sql by pipelines/marts/assets.py
    description: str
    runs_on: str
    why: str
    published_in: tuple[str, ...]
    suite: str | None
    suite_as_check: bool
    gx_rows: str | None
    sample_key: str | None
    publish_order: str | None
    also_writes: tuple[str, ...]
    reads: tuple[str, ...]  # the relations its SQL reads (not those it writes itself)

    def gx_condition(self) -> str | None:
        """For a per-patient suite: the SQL condition on the rows this run recomputed."""
        if self.gx_rows != RECOMPUTED:
            return None
        return (f"patient_id IN (SELECT patient_id FROM response.refreshed_patients "
                f"WHERE table_name = '{self.relation}')")


@dataclass(frozen=True)
class Manifest:
    root: Path
    models: dict[str, Model]
    files: dict[tuple[str, str], SqlFile]
    producers: dict[str, str]  # relation -> the asset that writes it

    def producer(self, relation: str) -> str | None:
        """The asset that writes a warehouse relation (a model, what a listed file or a model's
        `also_writes` writes, or a contract table's layer)."""
        return self.producers.get(relation) or _layer_producer(relation)

    def deps(self, model: Model) -> list[str]:
        """The assets a model's asset depends on: the producers of the tables its SQL reads."""
        deps = []
        for relation in model.reads:
            asset = self.producer(relation)
            if asset is None:
                raise ManifestError(f"{model.stage}/{model.sql_name}.sql reads {relation}, which no asset "
                                    f"produces: a model's .yml, a {FILE_LIST} `asset:` or also_writes names it")
            if asset != model.asset and asset not in deps:
                deps.append(asset)
        return sorted(deps)

    def generated(self) -> list[Model]:
        """The models whose asset is made from the .sql itself."""
        return [m for m in self.models.values() if m.generated]

    def published(self, audience: str) -> list[Model]:
        return [m for m in self.models.values() if audience in m.published_in]

    def suites(self, as_check: bool = False) -> list[Model]:
        """Models validated by a GX suite: by mart_expectations, or (as_check) as an asset check."""
        return [m for m in self.models.values() if m.suite and m.suite_as_check == as_check]

    def engine_files(self) -> list[tuple[str, str]]:
        """(stage, name) of every file the engine runs, stage by stage in run order."""
        return [(stage, name) for stage, name, runs_on, _ in self._file_plan() if runs_on == "engine"]

    def warehouse_files(self) -> dict[tuple[str, str], str]:
        """(stage, name) -> why, for every file of an engine stage that always runs in the warehouse."""
        return {(stage, name): why for stage, name, runs_on, why in self._file_plan() if runs_on == "warehouse"}

    def before_each_model(self, stage: str) -> list[str]:
        return [f.name for f in self.files.values() if f.stage == stage and f.before_each_model]

    def _file_plan(self):
        for stage in ENGINE_STAGES:
            for f in self.files.values():
                if f.stage == stage:
                    yield stage, f.name, f.runs_on, f.why
            for m in self.models.values():
                if m.stage == stage and m.sql_name:
                    yield stage, m.sql_name, m.runs_on, m.why


def _producers(root: Path, models: dict[str, Model], files: dict[tuple[str, str], SqlFile]) -> dict[str, str]:
    producers = {}
    for f in files.values():
        if f.asset:
            for relation in _sql_relations(root / f.stage / f"{f.name}.sql")[1]:
                producers[relation] = f.asset
    for m in models.values():
        for relation in (m.relation, *m.also_writes):
            producers[relation] = m.asset
    return producers


def _layer_producer(relation: str) -> str | None:
    schema, _, table = relation.partition(".")
    return f"{CONTRACT_LAYERS[schema]}{table}" if schema in CONTRACT_LAYERS and table else None


def _sql_relations(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(reads, writes) of a .sql file: schema-qualified tables it reads and those it creates,
    inserts into or deletes from (its own temporary names and CTEs left out)."""
    text = re.sub(r"\$\{?(\w+)\}?", r"placeholder_\1", path.read_text(encoding="utf-8"))
    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except SqlglotError as error:
        raise ManifestError(f"{path}: sqlglot cannot read it ({str(error).splitlines()[0]}); fix the SQL") from None
    reads, writes, local = set(), set(), set()
    for statement in statements:
        local |= {c.alias_or_name for c in statement.find_all(exp.CTE)}
        if isinstance(statement, (exp.Create, exp.Insert, exp.Delete, exp.Update)):
            target = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
            if isinstance(target, exp.Table):
                (writes if target.db else local).add(_qualified(target))
        reads |= {_qualified(t) for t in statement.find_all(exp.Table) if t.db}
    return tuple(sorted(reads - writes - local)), tuple(sorted(writes))


def _qualified(table: exp.Table) -> str:
    return f"{table.db}.{table.name}" if table.db else table.name


def load_manifest(root: Path | None = None) -> Manifest:
    """The manifest of a SQL folder (this run's, $CLINIC_SQL_DIR, by default), read again when
    a file under it changes."""
    root = Path(root or sql_dir())
    stamps = tuple((p, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
                   if p.suffix in (".sql", ".yml") and p.parent.name not in NOT_MODELS)
    return _load(root, stamps)


@cache
def _load(root: Path, stamps: tuple[tuple[Path, int], ...]) -> Manifest:
    try:
        dictionary = load_dictionary(root)
    except DictionaryError as error:
        raise ManifestError(str(error)) from None
    files = _file_lists(root)
    models: dict[str, Model] = {}
    yml_with_sql = set()
    for table in dictionary.tables.values():
        models[table.name] = model = _model(root, table)
        if model.sql_name:
            yml_with_sql.add((model.stage, model.sql_name))
    for path, _ in stamps:
        stage, name = path.parent.name, path.stem
        where = path.relative_to(root)
        if path.suffix == ".sql" and (stage, name) not in yml_with_sql and (stage, name) not in files:
            raise ManifestError(
                f"sql/{where} has no {name}.yml beside it: a model needs its .yml (copy one, e.g. "
                f"sql/marts/titration.yml, and describe it), and a file that is not a model is listed in "
                f"sql/{stage}/{FILE_LIST}. Nothing was run.")
        if (stage, name) in files and (stage, name) in yml_with_sql:
            raise ManifestError(f"sql/{where}: {name} is a model (it has a .yml) and listed in "
                                f"sql/{stage}/{FILE_LIST}; keep one")
    for stage, name in files:
        if not (root / stage / f"{name}.sql").exists():
            raise ManifestError(f"sql/{stage}/{FILE_LIST} lists {name}, but sql/{stage}/{name}.sql does not "
                                "exist: remove the entry or add the file")
    return Manifest(root, models, files, _producers(root, models, files))


def _model(root: Path, table) -> Model:
    spec, path = table.model, table.source
    stage, where = path.parent.name, f"sql/{path.parent.name}/{path.name}: {table.name}"
    sql_file = path.with_suffix(".sql")
    built_by = spec.get("built_by")
    if not sql_file.exists() and not built_by:
        raise ManifestError(f"{where} has no {sql_file.name} beside it: add the SQL that builds it, or name the "
                            "Python asset that does (`built_by:`), or remove the .yml. Nothing was run.")
    runs_on = spec.get("runs_on", "warehouse" if stage not in ENGINE_STAGES else None)
    if sql_file.exists() and runs_on not in RUNS_ON:
        raise ManifestError(f"{where}: runs_on must be one of {', '.join(RUNS_ON)} (engine: the business SQL "
                            "DuckDB or Spark runs; warehouse: always DuckDB, say why)")
    suite = spec.get("expectations")
    suite = {"suite": suite} if isinstance(suite, str) else (suite or {})
    unknown = set(suite) - {"suite", "rows", "sample_key", "as_check"}
    if unknown or (suite and not suite.get("suite")) or suite.get("rows", RECOMPUTED) != RECOMPUTED:
        raise ManifestError(f"{where}.expectations: a suite name, or {{suite, rows: recomputed, sample_key, "
                            "as_check}")
    relation, order = table.warehouse_relation, spec.get("publish_order")
    names = [table.name, *relation.split("."), *(c.strip() for c in (order or "").split(",") if order)]
    if relation.count(".") != 1 or not all(NAME.fullmatch(n) for n in names):
        raise ManifestError(f"{where}: the name, warehouse_relation (schema.table) and publish_order (columns, "
                            "comma-separated) are lower-case names of letters, digits and _")
    reads = _sql_relations(sql_file)[0] if sql_file.exists() else ()
    return Model(
        name=table.name, stage=stage, sql_name=path.stem if sql_file.exists() else None,
        relation=table.warehouse_relation, asset=built_by or table.name, generated=not built_by,
        description=table.description, runs_on=runs_on or "warehouse", why=spec.get("why", ""),
        published_in=table.published_in, suite=suite.get("suite"), suite_as_check=bool(suite.get("as_check")),
        gx_rows=suite.get("rows"), sample_key=suite.get("sample_key"), publish_order=spec.get("publish_order"),
        also_writes=tuple(spec.get("also_writes") or ()), reads=reads)


def _file_lists(root: Path) -> dict[tuple[str, str], SqlFile]:
    files = {}
    for path in sorted(root.glob(f"*/{FILE_LIST}")):
        stage = path.parent.name
        try:
            doc = load_yaml(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ManifestError(f"{path}: not YAML ({str(error).splitlines()[0]})") from None
        for name, spec in doc.items():
            spec = spec or {}
            runs_on = spec.get("runs_on", "warehouse")
            if runs_on not in RUNS_ON or set(spec) - {"runs_on", "why", "purpose", "before_each_model", "asset"}:
                raise ManifestError(f"sql/{stage}/{FILE_LIST}: {name}: keys purpose, runs_on "
                                    f"({', '.join(RUNS_ON)}), why, before_each_model, asset")
            files[(stage, str(name))] = SqlFile(stage, str(name), runs_on, spec.get("why", ""),
                                                bool(spec.get("before_each_model")), spec.get("asset"))
    return files

"""Great Expectations suites from expectations/*.json, run on pandas frames.

The run calls them through `pipelines.quality.gx_worker` (a process of its own); the
functions here are what that worker does, and what tests call directly.

GX 1.x with an ephemeral context and its pandas datasource (its SQL datasource does
not work on DuckDB). Each expectation becomes one data-quality check: `mostly` gives its
threshold, GX severity (critical, warning, info) its severity (critical -> fatal).

A suite holds no copy of a response rule: where an expectation depends on one (a window, the
visit weeks) it says `{"$rules": "windows.assessment.to_day"}`, replaced by that value of the
run's rules file when the suite is loaded; a reference the rules file does not have stops the
run before any work (pipelines/config.py), naming the suite and the reference.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SEVERITY = {"critical": "fatal", "warning": "warning", "info": "info"}


@dataclass(frozen=True)
class ExpectationOutcome:
    table_name: str
    check_name: str
    description: str
    rows_checked: int
    rows_failed: int
    threshold_pct: float
    severity: str
    success: bool
    detail: str = ""  # what failed, by the suite's meta.names_rows_by column (e.g. the instruments)


@cache
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def suite_path(expectations_dir: Path, name: str) -> Path:
    return Path(expectations_dir) / f"{name}.json"


RULES_REFERENCE = "$rules"


class SuiteError(ValueError):
    """A suite cannot be used; the message names the suite and what to fix."""


def _rule_value(rules: dict, reference: str, where: str):
    node = rules
    for i, key in enumerate(reference.split(".")):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            have = ", ".join(map(str, node)) if isinstance(node, dict) else f"{len(node)} items" \
                if isinstance(node, list) else "a value"
            at = ".".join(reference.split(".")[:i]) or "the rules file"
            raise SuiteError(f"{where}: {{\"{RULES_REFERENCE}\": \"{reference}\"}} names no value of the rules file "
                             f"({at} has {have}); write the dotted path of a key of rules/response_rules.yaml, "
                             "e.g. windows.assessment.to_day")
    return node


def resolve_rule_references(doc, rules: dict | None, where: str):
    """`doc` with every {"$rules": "dotted.path"} replaced by that value of `rules`."""
    if isinstance(doc, dict):
        if set(doc) == {RULES_REFERENCE}:
            if rules is None:
                raise SuiteError(f"{where}: refers to the rules file ({doc[RULES_REFERENCE]}), but no rules "
                                 "file was given to load it with")
            return _rule_value(rules, str(doc[RULES_REFERENCE]), where)
        return {k: resolve_rule_references(v, rules, where) for k, v in doc.items()}
    if isinstance(doc, list):
        return [resolve_rule_references(v, rules, where) for v in doc]
    return doc


def suite_document(path: Path, rules: dict | None = None) -> dict:
    """A suite file as a dict, its rule references replaced by the rules' values."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return resolve_rule_references(doc, rules, f"suite {Path(path).name}")


def suite_files(expectations_dir: Path) -> list[Path]:
    """The suites of an expectations folder: its regular `*.json` files, in name order (a FIFO
    would block the read for ever; check_rule_references refuses one before any work)."""
    return sorted(p for p in Path(expectations_dir).glob("*.json") if p.is_file())


def check_rule_references(expectations_dir: Path, rules: dict) -> None:
    """Every suite's rule references resolve against `rules` (SuiteError names the first that
    does not): run before any work, so an unknown reference never fails a run half-way."""
    if other := sorted(set(Path(expectations_dir).glob("*.json")) - set(suite_files(expectations_dir))):
        raise SuiteError(f"{other[0]} is not a regular file; remove it from the expectations folder")
    for path in suite_files(expectations_dir):
        try:
            suite_document(path, rules)
        except (UnicodeDecodeError, json.JSONDecodeError) as problem:
            raise SuiteError(f"{path} is not a JSON suite in UTF-8 ({problem}); fix or remove it") from None


def _rules_doc(rules_file: Path | None) -> dict | None:
    from pipelines.declared import load_yaml

    return load_yaml(Path(rules_file).read_text(encoding="utf-8")) if rules_file else None


def load_suite(path: Path, rules_file: Path | None = None):
    import great_expectations as gx

    return gx.ExpectationSuite(**suite_document(path, _rules_doc(rules_file)))


def expectation_columns(kwargs: dict) -> list[str]:
    """The columns an expectation's kwargs name: `column`, `column_list`, `column_A` and
    `column_B`, in that order (an expectation has one kind)."""
    return [c for c in (kwargs.get("column"), *(kwargs.get("column_list") or []), kwargs.get("column_A"),
                        kwargs.get("column_B")) if c]


def gx_check_name(expectation_type: str, kwargs: dict) -> str:
    """How a GX expectation is named in data quality: `gx:<type>(<columns>)` (the catalogue
    declares it by this name, the validation reports it by this name)."""
    target = ",".join(expectation_columns(kwargs))
    return f"gx:{expectation_type}" + (f"({target})" if target else "")


# Expectations that read the table's columns as such (their names, their count): a sample
# narrowed to the columns the suite names would fail them.
READS_EVERY_COLUMN = ("expect_table_column",)


def columns_read(suite_file: Path, also: tuple[str, ...] = ()) -> list[str] | None:
    """The columns a suite's expectations read: named in their kwargs (`expectation_columns`),
    every word of their row conditions (a word that is no column selects nothing), its
    `names_rows_by`, and `also`; None when one reads every column, or the suite cannot be read
    (its sample is sent whole). The sample handed to GX then holds only these: at 10^6 patients
    the mart expectations took 1.17 s instead of 1.61 s (docs/decisions.md)."""
    try:
        doc = json.loads(Path(suite_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # sent whole: the worker names what is wrong with the suite
        return None
    names = set(also) | {(doc.get("meta") or {}).get("names_rows_by")} - {None}
    for expectation in doc.get("expectations", []):
        if str(expectation.get("type", "")).startswith(READS_EVERY_COLUMN):
            return None
        kwargs = expectation.get("kwargs", {})
        names |= {c for c in expectation_columns(kwargs) if isinstance(c, str)}
        names |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(kwargs.get("row_condition") or "")))
    return sorted(names) or None


_validations: dict[tuple, object] = {}


def reset() -> None:
    """Forget every validation so far: a new context (its results store and Data Docs site
    empty) and new validation definitions bound to it, for a new run in this process."""
    _validations.clear()
    _context.cache_clear()


def docs_name(table_name: str) -> str:
    """A table's name where the Data Docs make a folder of it: GX turns a dot into a folder
    without counting it in its relative links (a page's favicon then missed by one level), and
    a colon cannot be in a Windows folder name. `marts.quarantine` is `quarantine (marts)`."""
    schema, _, table = table_name.rpartition(".")
    return f"{table} ({schema})" if schema else table_name


def _validation(suite_file: Path, table_name: str, rules_file: Path | None = None):
    """One GX ValidationDefinition per suite, rules file and table, made once per process: its
    runs are kept in the context's results store, which build_data_docs renders."""
    import great_expectations as gx

    path = Path(suite_file).resolve()
    rules = Path(rules_file).resolve() if rules_file else None
    key = (str(path), path.stat().st_mtime, table_name, str(rules), rules.stat().st_mtime if rules else 0)
    if key not in _validations:
        context = _context()
        name = f"{path.stem} @ {docs_name(table_name)}" + (f" #{len(_validations)}" if any(
            (k[0], k[3]) != (key[0], key[3]) and k[2] == table_name and Path(k[0]).stem == path.stem for k in _validations) else "")
        try:
            source = context.data_sources.get("clinic")
        except (KeyError, ValueError):
            source = context.data_sources.add_pandas("clinic")
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("whole")
        suite = load_suite(path, rules)
        suite.name = name
        context.suites.add_or_update(suite)
        _validations[key] = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=context.suites.get(name)))
    return _validations[key]


def validate_frame(frame: pd.DataFrame, suite_file: Path, table_name: str,
                   rules_file: Path | None = None, run_id=None) -> list[ExpectationOutcome]:
    """Validate a frame against one suite (its rule references read from `rules_file`); one
    outcome per expectation. `run_id` (GX's RunIdentifier) names the run in the Data Docs."""
    validation = _validation(suite_file, table_name, rules_file)
    suite = validation.suite
    names_rows_by = (suite.meta or {}).get("names_rows_by")
    # BASIC: counts without value tallies (~30% faster); a suite whose rows are named (one row
    # per instrument) asks for the names of the failing rows, so a failure says which.
    result_format = "BASIC" if not names_rows_by else {
        "result_format": "SUMMARY", "unexpected_index_column_names": [names_rows_by]}
    result = validation.run(batch_parameters={"dataframe": frame}, result_format=result_format, run_id=run_id)
    outcomes = []
    for expectation, r in zip(suite.expectations, result.results, strict=True):
        stats = r.result or {}
        named = sorted({str(row[names_rows_by]) for row in stats.get("partial_unexpected_index_list") or []
                        if isinstance(row, dict) and names_rows_by in row}) if names_rows_by else []
        checked = int(stats.get("element_count", len(frame)) or 0)
        failed = int(stats.get("unexpected_count", 0) or 0)
        if not r.success and failed == 0:
            failed = max(checked, 1)  # a table-level expectation failed as a whole
        outcomes.append(_outcome(expectation, table_name, checked, failed, bool(r.success), named))
    return outcomes


def _outcome(expectation, table_name: str, checked: int, failed: int, success: bool,
             named: list[str]) -> ExpectationOutcome:
    mostly = float(getattr(expectation, "mostly", 1.0) or 1.0)
    severity = getattr(expectation, "severity", None)
    return ExpectationOutcome(
        table_name=table_name,
        check_name=gx_check_name(expectation.expectation_type, expectation.configuration.kwargs),
        description=expectation.description or expectation.expectation_type.replace("_", " "),
        rows_checked=checked,
        rows_failed=failed,
        threshold_pct=round(100 * (1 - mostly), 6),
        severity=SEVERITY.get(str(getattr(severity, "value", severity) or "critical"), "fatal"),
        success=success,
        detail=", ".join(named),
    )


def _domain(frame: pd.DataFrame, kwargs: dict) -> pd.DataFrame:
    """The rows an expectation judges: its row_condition applied by GX's own pandas engine, so a
    group's count is what GX would count validating that group alone."""
    from great_expectations.execution_engine import PandasExecutionEngine

    if not kwargs.get("row_condition"):
        return frame
    return PandasExecutionEngine()._apply_row_condition_filter(frame, kwargs["row_condition"], kwargs)


def validate_groups(frame: pd.DataFrame, suite_file: Path, table_name: str, group_by: list[str],
                    groups: list[tuple], rules_file: Path | None = None, run_id=None
                    ) -> list[list[ExpectationOutcome]]:
    """One validation of a frame holding many groups of rows (say one per export, `group_by`
    naming the columns that tell them apart), split into the outcomes each group gets validated
    alone: one list per group of `groups`, in that order (a group without rows has its
    expectations with nothing checked). Why: a GX validation costs ~0.1 s however small its frame,
    so 1,000 small exports validated one by one cost 1,000 of them. Column expectations are
    split by their failing rows (GX names them by the group columns); a group's rows counted
    after the expectation's row_condition, as GX counts them. The table_name of each outcome is
    the group's own when `table_name` is one of the group columns. `run_id` as validate_frame's."""
    validation = _validation(suite_file, table_name, rules_file)
    suite = validation.suite
    names_rows_by = (suite.meta or {}).get("names_rows_by")
    index = list(dict.fromkeys([*group_by, *([names_rows_by] if names_rows_by else [])]))
    result = validation.run(batch_parameters={"dataframe": frame}, run_id=run_id, result_format={
        "result_format": "COMPLETE", "unexpected_index_column_names": index})
    keys = [tuple(g) for g in groups]
    per_group: list[list[ExpectationOutcome]] = [[] for _ in keys]
    position = {k: i for i, k in enumerate(keys)}

    def counts(rows: pd.DataFrame) -> dict[tuple, int]:
        if not len(rows):
            return {}
        return {k if isinstance(k, tuple) else (k,): int(n)
                for k, n in rows.groupby(group_by, dropna=False).size().items()}

    for expectation, r in zip(suite.expectations, result.results, strict=True):
        kwargs = expectation.configuration.kwargs
        column = kwargs.get("column")
        domain = _domain(frame, kwargs)
        sizes = counts(domain)
        nonnull = counts(domain[domain[column].notna()]) if column in domain else sizes
        failing: dict[tuple, list[dict]] = {}
        for row in (r.result or {}).get("unexpected_index_list") or []:
            failing.setdefault(tuple(row[c] for c in group_by), []).append(row)
        mostly = float(getattr(expectation, "mostly", 1.0) or 1.0)
        whole_failed = not r.success and not failing  # a table-level expectation failed as a whole
        for key in keys:
            size, considered = sizes.get(key, 0), nonnull.get(key, 0)
            rows = failing.get(key, [])
            failed = max(size, 1) if whole_failed else len(rows)
            success = not whole_failed and (not rows or considered == 0 or (considered - len(rows)) / considered >= mostly)
            named = sorted({str(row[names_rows_by]) for row in rows if names_rows_by in row}) if names_rows_by else []
            own_table = key[group_by.index("table_name")] if "table_name" in group_by else table_name
            per_group[position[key]].append(_outcome(expectation, own_table, size, failed, success, named))
    return per_group


def build_data_docs(folder: Path) -> Path:
    """Render this process's validation results as Great Expectations' own Data Docs site in
    `folder` (then made to work offline: see pipelines/quality/data_docs.py)."""
    context = _context()
    sites = context.get_config().data_docs_sites or {}
    if "clinic" not in sites:
        context.add_data_docs_site(site_name="clinic", site_config={
            "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)}})
    context.build_data_docs(site_names=["clinic"])
    return Path(folder) / "index.html"

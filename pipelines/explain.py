"""`clinic explain PATIENT_ID`: why one patient is in its category, in plain words.

Everything comes from the published snapshot, opened as `clinic sql` opens it (read-only and
locked down, so it works while a run writes the warehouse): the patient's row of
marts.patient_response (values, days, source rows, criterion), the rule it was judged by
(marts.response_rules, same rules version), and its trajectory (marts.patient_trajectory).
Instrument labels, units and directions come from the instrument registry (rules/instruments.yaml,
through the data dictionary); the criteria and the order in which categories are decided come
from pipelines/response/rules.py, which declares them once. Nothing is printed that the
snapshot does not hold: the id is a pseudonym, sources are `export/file:line`, never a row's
content.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import IO

from pipelines.response.rules import CRITERIA, DECISION_ORDER
from pipelines.settings import add_marts_option, setting_value
from pipelines.sqlfiles import has_table

EXIT_OK, EXIT_UNKNOWN_PATIENT, EXIT_NO_SNAPSHOT = 0, 1, 2
CATEGORY_ORDER = ", ".join(words for _, _, words in DECISION_ORDER) + ": the first that applies decides"


def _num(value) -> str:
    """A measured value as delivered: no float noise, no needless decimals."""
    if value is None:
        return "-"
    text = f"{float(value):.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _pct(value) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def _with_unit(value, unit: str) -> str:
    return f"{_num(value)} {unit}".rstrip()


def _rows(con, sql: str, params: list) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def decision_sentence(p: dict, rule: dict | None, unit: str, better: str = "lower") -> str:
    """What decided the category, from the patient's row and its rule, in words."""
    reason, criterion = p["reason"], p["criterion"]
    measure, base, assess = p["primary_measure"], p["baseline_value"], p["assessment_value"]
    # the stop's row (a snapshot published before the column existed has none)
    stop = criterion + (f" ({p['decided_by_source']})" if p.get("decided_by_source") else "")
    if reason == "stopped_for_adverse_event":
        until = f" on or before day {rule['stop_counts_until_day']}" if rule else ""
        return f"{stop}. A stop for an adverse event{until} makes a patient intolerant, whatever the measure did."
    if reason == "stopped_for_lack_of_effect":
        met = "the assessment does not meet the rule" if assess is not None else "there is no assessment value"
        return f"{stop}, and {met}: minimal."
    if reason in ("no_baseline", "no_assessment") and rule:
        window = "baseline" if reason == "no_baseline" else "assessment"
        return (f"no {measure} value in the {window} window (days {rule[f'{window}_from']}..{rule[f'{window}_to']}): "
                "not assessable.")
    if reason == "baseline_zero":
        return f"{criterion}: a reduction from a zero baseline cannot be judged, so not assessable."
    if rule is None or base is None or assess is None:
        return f"{criterion}."
    numbers = {c.text_column: _in_numbers(c.text_column, base, assess, p["change_pct"], rule, unit, better)
               for c in CRITERIA if rule.get(c.text_column)}
    if reason == "threshold_met":
        decided = next((name for name in numbers if rule[name] == criterion), None)
        return f"{criterion}: met ({numbers[decided]})." if decided else f"{criterion}: met."
    return ("no criterion met: " + "; ".join(f"{rule[name]} not met ({text})" for name, text in numbers.items())
            + ". Minimal.")


def _moved(change: float, text: str, better: str) -> str:
    """A change in words, saying which way is better where it is not the usual (lower)."""
    if not change:
        return "no change"
    words = f"a reduction of {text}" if change < 0 else f"a rise of {text}"
    return words if better == "lower" else f"{words}, higher being better"


def _in_numbers(criterion: str, base, assess, change_pct, rule: dict, unit: str, better: str = "lower") -> str:
    """The patient's numbers for one criterion of the rule (thresholds count as an improvement
    in the instrument's direction)."""
    if criterion == "relative_criterion":
        threshold = f"threshold {_num(rule['relative_reduction_pct'])}%"
        if change_pct is None:
            return f"no percentage from a zero baseline; {threshold}"
        return f"{_moved(change_pct, f'{abs(change_pct):.1f}% of baseline', better)}; {threshold}"
    if criterion == "absolute_criterion":
        change = assess - base
        moved = _moved(change, _with_unit(abs(change), unit), better)
        return f"{moved}; threshold {_with_unit(rule['absolute_reduction'], unit)}"
    if criterion == "remission_criterion":
        return f"baseline {_num(base)}, assessment {_num(assess)}, cut-off {_with_unit(rule['remission_below'], unit)}"
    return f"the assessment value is {_num(assess)}"


def explain(con, patient_id: str, instruments: dict[str, dict], all_instruments: bool = False) -> list[str] | None:
    """The explanation's lines, or None when the snapshot has no such patient."""
    found = _rows(con, "SELECT * FROM marts.patient_response WHERE patient_id = ?", [patient_id])
    if not found:
        return None
    p = found[0]
    measure = p["primary_measure"]
    info = instruments.get(measure, {"label": measure, "unit": "", "description": measure, "better": "lower"})
    unit, better = info["unit"], info.get("better", "lower")
    rule = None
    if has_table(con, "marts", "response_rules"):
        rules = _rows(con, "SELECT * FROM marts.response_rules WHERE indication = ? AND rules_version = ?",
                      [p["indication"], p["rules_version"]])
        rule = rules[0] if rules else None
    lines = [f"Patient {p['patient_id']}: {p['category']} (reason {p['reason']})",
             f"  Indication       {p['indication']} (group {p['indication_group']}), regimen {p['regimen']}, "
             f"site {p['site_id']}",
             f"  Rules            version {p['rules_version']}"
             + (f": meaningful when {rule['rule_text']}" if rule else " (the rule itself is not in this snapshot)"),
             f"  Primary measure  {measure} ({info['label']}: {info['description']}); {better} is better"]
    baseline_window = (f"latest value in days {rule['baseline_from']}..{rule['baseline_to']}" if rule else "")
    assessment_window = (f"value in days {rule['assessment_from']}..{rule['assessment_to']} closest to day "
                         f"{rule['target_day']}" if rule else "")
    for label, value, day, source, window in (
            ("Baseline", p["baseline_value"], p["baseline_day"], p["baseline_source"], baseline_window),
            ("Assessment", p["assessment_value"], p["assessment_day"], p["assessment_source"], assessment_window)):
        if value is None:
            lines.append(f"  {label:<16} none" + (f" ({window})" if window else ""))
        else:
            lines.append(f"  {label:<16} {_with_unit(value, unit)} on day {day}, from {source}"
                         + (f"  ({window})" if window else ""))
            if not re.search(r":\d+$", source):  # a scored FIQR has no one line: its item rows of that day
                files = "that file" if " + " not in source else f"those {source.count(' + ') + 1} files"
                lines.append(f"  {'':<16} scored from the patient's item answers of day {day} in {files} "
                             "(they replace a fiqr_total delivered for the same day)")
    if p["change_abs"] is not None:
        lines.append(f"  Change           {'+' if p['change_abs'] > 0 else ''}{_with_unit(p['change_abs'], unit)}"
                     + (f" ({_pct(p['change_pct'])} of baseline)" if p["change_pct"] is not None else "")
                     + f"; {'negative' if better == 'lower' else 'positive'} is improvement"
                     + (f" (improvement {_pct(p['improvement_pct'])})" if p.get("improvement_pct") is not None else ""))
    lines.append(f"  Decided by       {decision_sentence(p, rule, unit, better)}")
    lines.append(f"  Order            {CATEGORY_ORDER}")
    lines += _trajectory(con, p, instruments, all_instruments)
    return lines


def _trajectory(con, p: dict, instruments: dict[str, dict], all_instruments: bool) -> list[str]:
    """The patient's values by visit week (marts.patient_trajectory), the primary measure first,
    led by the baseline value the category used."""
    patient_id, primary = p["patient_id"], p["primary_measure"]
    if not has_table(con, "marts", "patient_trajectory"):
        return ["", "Trajectory: not in this snapshot (published from the next run on)."]
    points = _rows(con, "SELECT instrument, visit_week, value, pct_change FROM marts.patient_trajectory "
                        "WHERE patient_id = ? AND (instrument = ? OR ?) "
                        "ORDER BY instrument <> ?, instrument, visit_week",
                   [patient_id, primary, all_instruments, primary])
    lines = []
    for instrument in dict.fromkeys(pt["instrument"] for pt in points) or [primary]:
        unit = instruments.get(instrument, {}).get("unit", "")
        better = instruments.get(instrument, {}).get("better", "lower")
        role = "primary measure" if instrument == primary else "secondary, not used to categorise"
        lines += ["", f"Trajectory of {instrument} ({role}): the value nearest each visit week"]
        rows = [pt for pt in points if pt["instrument"] == instrument]
        if not rows:
            lines.append("  no value near any visit week")
            continue
        lines.append(f"  {'week':>4}  {'value':>10}  change from baseline")
        if instrument == primary and p["baseline_value"] is not None:
            lines.append(f"  {'base':>4}  {_num(p['baseline_value']):>10}  (the baseline, day {p['baseline_day']})")
        lines += [f"  {pt['visit_week']:>4}  {_num(pt['value']):>10}  {_pct(pt['pct_change'])}" for pt in rows]
        if unit:
            lines.append(f"  (values in {unit}; change in % of baseline, "
                         f"{'negative' if better == 'lower' else 'positive'} is improvement)")
    return lines


DESCRIPTION = ("Say why one patient is in its response category: indication, rules version and rule, the "
               "primary measure's baseline and assessment values with their study days and source rows "
               "(export/file:line), the change, the criterion met or missed (or the stop or adverse event "
               "that decided, or why not assessable), then the patient's trajectory. Reads the published "
               "snapshot read-only, like `clinic sql`.")


# explain's options and whether each takes a value: anything else that starts with a dash is an id.
OPTIONS = {"-h": False, "--help": False, "--marts": True, "--all-instruments": False}
SHOWN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)


def dash_ids_as_positional(argv: list[str]) -> list[str]:
    """`clinic explain -2-3-4` as `clinic explain -- -2-3-4`: argparse reads an argument that starts
    with a dash as an option unless it is a plain negative number."""
    if not argv or argv[0] != "explain" or "--" in argv:
        return argv
    kept, ids, takes_value = [argv[0]], [], False
    for arg in argv[1:]:
        name = arg.split("=", 1)[0]
        known = name in OPTIONS or (name.startswith("--") and any(o.startswith(name) for o in OPTIONS))
        if takes_value or not arg.startswith("-") or known or len(arg) == 1:
            kept.append(arg)
            takes_value = not takes_value and OPTIONS.get(arg, False)
        else:
            ids.append(arg)
    return kept + (["--", *ids] if ids else [])


def add_parser(subparsers) -> argparse.ArgumentParser:
    """The `clinic explain` subcommand's parser, its func set."""
    parser = subparsers.add_parser("explain", help="why one patient is in its category, in plain words",
                                   description=DESCRIPTION,
                                   epilog=f"exit codes: {EXIT_OK} explained, {EXIT_UNKNOWN_PATIENT} no such patient "
                                          f"in the snapshot, {EXIT_NO_SNAPSHOT} no usable snapshot")
    parser.add_argument("patient_id", metavar="PATIENT_ID",
                        help="the patient's pseudonym, as in marts.patient_response.patient_id (required)")
    add_marts_option(parser)
    parser.add_argument("--all-instruments", action="store_true",
                        help="print the trajectory of every instrument of the patient, not only the primary "
                             "measure (default: the primary measure only)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    from pipelines.dictionary import load_dictionary
    from pipelines.sql_shell import SnapshotError, open_snapshot

    out, err = out or sys.stdout, err or sys.stderr
    snapshot = Path(setting_value("marts_dir", args.marts)) / "clinic.duckdb"
    try:
        con = open_snapshot(snapshot)
    except SnapshotError as error:
        print(f"clinic explain: {error}", file=err)
        return EXIT_NO_SNAPSHOT
    import duckdb

    try:
        wanted = args.patient_id.strip()
        lines = explain(con, wanted, load_dictionary().instruments(), args.all_instruments)
        if lines is None:
            print(f"clinic explain: {not_found(con, wanted, snapshot)}", file=err)
            return EXIT_UNKNOWN_PATIENT
    except duckdb.Error as error:  # opened, but a block it reads is gone (a file cut short, a bad disk)
        print(f"clinic explain: the snapshot {snapshot} cannot be read ({str(error).splitlines()[0]}): "
              "`clinic run --force` publishes it again", file=err)
        return EXIT_NO_SNAPSHOT
    finally:
        con.close()
    try:
        print("\n".join(lines), file=out)
        out.flush()
    except BrokenPipeError:  # `clinic explain X | head -1`: the reader has what it asked for
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK  # the same exit whether or not the pipe closed before the last line
    return EXIT_OK


def not_found(con, wanted: str, snapshot: Path) -> str:
    """Why no patient, with the ids that differ only in case (pseudonyms are matched exactly). What
    was typed is repeated only when it is plainly an id (it might be a name or an address)."""
    from pipelines.ingest.contract import load_contract

    contract = load_contract(Path(setting_value("contract_file")))
    shown = SHOWN_ID.fullmatch(wanted) and not contract.identifier_label(wanted)
    similar = [r[0] for r in con.execute(
        "SELECT patient_id FROM marts.patient_response WHERE lower(patient_id) = lower(?) ORDER BY 1 LIMIT 3",
        [wanted]).fetchall()]
    if similar:
        return f"no patient {wanted if shown else 'with the id given'}; did you mean {' or '.join(similar)}?"
    patients = con.execute("SELECT count(*) FROM marts.patient_response").fetchone()[0]
    return (f"no patient {wanted if shown else 'with the id given'} in {snapshot} ({patients} patients). Ids "
            "are the pseudonyms of marts.patient_response.patient_id, matched exactly, e.g. "
            "`clinic sql \"SELECT patient_id, indication, category FROM patient_response LIMIT 5\"`.")

"""The versioned response rules file (rules/response_rules.yaml): checked, then a table.

The category SQL joins `response.rules`, so thresholds and windows are data: editing the
file changes the results without touching code. Because a quiet mistake in it changes
categories (a missing indication drops its patients, a reversed window or a misspelt
measure finds no values), the file is checked against a schema and the contract before any
work: every indication of the contract has a rule, every measure and event named exists
in the contract, thresholds are in range and windows ordered. A violation names the key
and its line in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipelines.declared import load_checked
from pipelines.ingest.contract import Contract
from pipelines.instruments import instruments_frame
from pipelines.sqlfiles import write_frame

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Criterion:
    """One criterion of meaningful improvement: its key in the rules file, the response.rules
    column holding it in the rules file's words (what patient_response.criterion names), those
    words (`{value}`: the threshold), and whether it holds for a higher-is-better measure."""

    key: str
    text_column: str
    words: str
    either_direction: bool


# The criteria, declared once, in the order patient_response.sql names the one that decided
# when several hold; the rule meets when ANY does. `clinic explain` reads them from here.
CRITERIA = (
    Criterion("relative_reduction_pct", "relative_criterion", "relative_reduction_pct >= {value}", True),
    Criterion("absolute_reduction", "absolute_criterion", "absolute_reduction >= {value}", True),
    Criterion("remission_below", "remission_criterion", "remission_below {value}", False),
    Criterion("assessment_zero", "zero_criterion", "assessment_zero", False),
)
# The categories as patient_response.sql's CASE tries them, first match wins: (category,
# reason codes, in words). `clinic explain` prints it; tests/test_response_rules.py checks the
# SQL against it.
DECISION_ORDER = (
    ("intolerant", ("stopped_for_adverse_event",), "intolerant (stopped for an adverse event)"),
    ("minimal", ("stopped_for_lack_of_effect",), "minimal (stopped for lack of effect)"),
    ("not_assessable", ("no_baseline", "no_assessment", "baseline_zero"), "not assessable"),
    ("meaningful", ("threshold_met",), "meaningful"),
    ("minimal", ("threshold_not_met",), "minimal"),
)


class RulesError(ValueError):
    """The rules file cannot be used; the message names each key and its line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _enum(contract: Contract, table: str, column: str) -> tuple[str, ...]:
    return next(c.values for c in contract.tables[table].columns if c.name == column)


class Window(_Strict):
    from_day: int
    to_day: int

    @model_validator(mode="after")
    def _ordered(self):
        if self.from_day > self.to_day:
            raise ValueError(f"from_day {self.from_day} is after to_day {self.to_day}")
        return self


class AssessmentWindow(Window):
    target_day: int

    @model_validator(mode="after")
    def _target_inside(self):
        if not self.from_day <= self.target_day <= self.to_day:
            raise ValueError(f"target_day {self.target_day} is outside {self.from_day}..{self.to_day}")
        return self


class Windows(_Strict):
    baseline: Window
    assessment: AssessmentWindow
    stop_counts_until_day: int

    @model_validator(mode="after")
    def _baseline_first(self):
        if self.baseline.to_day >= self.assessment.from_day:
            raise ValueError("the baseline window must end before the assessment window starts")
        return self


Percent = Annotated[float, Field(gt=0, le=100)]
Positive = Annotated[float, Field(gt=0)]


class IndicationRule(_Strict):
    group: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    primary_measure: str
    relative_reduction_pct: Percent | None = None
    absolute_reduction: Positive | None = None
    remission_below: Positive | None = None
    assessment_zero: bool = False
    baseline_zero_not_assessable: bool

    @field_validator("primary_measure")
    @classmethod
    def _known_measure(cls, value: str, info: ValidationInfo) -> str:
        known = _enum(info.context["contract"], "measurements", "instrument")
        if value not in known:
            raise ValueError(f"{value!r} is not an instrument of the contract ({', '.join(known)})")
        return value

    @model_validator(mode="after")
    def _has_criterion(self, info: ValidationInfo):
        if not any(getattr(self, c.key) for c in CRITERIA):
            raise ValueError("no criterion for meaningful improvement (one of "
                             f"{', '.join(c.key for c in CRITERIA)})")
        instrument = info.context["contract"].instruments.get(self.primary_measure)
        if instrument is not None and instrument.better == "higher":
            one_way = [c.key for c in CRITERIA if not c.either_direction and getattr(self, c.key)]
            if one_way:
                raise ValueError(f"{', '.join(one_way)} assume(s) lower is better, but {self.primary_measure} is "
                                 "declared `better: higher` in the instrument registry; use "
                                 "relative_reduction_pct or absolute_reduction (an improvement in its direction)")
        return self


class Trajectory(_Strict):
    visit_weeks: list[Annotated[int, Field(ge=0)]]
    window_days: Annotated[int, Field(gt=0)]

    @field_validator("visit_weeks")
    @classmethod
    def _increasing(cls, weeks: list[int]) -> list[int]:
        if not weeks or any(b <= a for a, b in zip(weeks, weeks[1:], strict=False)):
            raise ValueError("visit weeks must be a non-empty, strictly increasing list")
        return weeks


class DoseBand(_Strict):
    label: Annotated[str, Field(min_length=1)]
    from_mg: Annotated[float, Field(ge=0)]
    to_mg: Positive
    to_inclusive: bool

    @model_validator(mode="after")
    def _ordered(self):
        if self.from_mg >= self.to_mg:
            raise ValueError(f"from_mg {self.from_mg} is not below to_mg {self.to_mg}")
        return self


class EarlySleepEvents(_Strict):
    events: list[str]
    within_days: Annotated[int, Field(gt=0)]

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str], info: ValidationInfo) -> list[str]:
        known = _enum(info.context["contract"], "adverse_events", "event")
        unknown = [e for e in events if e not in known]
        if unknown or not events:
            raise ValueError(f"events must be adverse events of the contract; unknown: {', '.join(unknown)}")
        return events


class ClinicBelief(_Strict):
    meaningful: Annotated[float, Field(ge=0, le=100)]
    minimal: Annotated[float, Field(ge=0, le=100)]
    intolerant: Annotated[float, Field(ge=0, le=100)]

    @model_validator(mode="after")
    def _shares(self):
        """Shares of the same evaluable patients: together at most all of them (60/30/20 is a typo)."""
        total = self.meaningful + self.minimal + self.intolerant
        if total > 100 + 1e-9:
            raise ValueError(f"the shares add up to {total:.10g}%, more than the evaluable patients (100%)")
        return self


class Rules(_Strict):
    """The whole rules file."""

    version: Annotated[str, Field(min_length=1)]
    tolerance: Annotated[float, Field(ge=0, lt=1)]
    windows: Windows
    indications: dict[str, IndicationRule]
    trajectory: Trajectory
    ldn_dose_bands: list[DoseBand]
    early_sleep_events: EarlySleepEvents
    clinic_belief: ClinicBelief

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value):
        return str(value) if isinstance(value, int | float) else value

    @field_validator("indications")
    @classmethod
    def _every_indication(cls, rules: dict, info: ValidationInfo) -> dict:
        known = _enum(info.context["contract"], "patients", "indication")
        missing = [i for i in known if i not in rules]
        unknown = [i for i in rules if i not in known]
        if missing or unknown:
            raise ValueError("every indication of the contract needs one rule"
                             + (f"; missing: {', '.join(missing)}" if missing else "")
                             + (f"; not in the contract: {', '.join(unknown)}" if unknown else ""))
        return rules

    @field_validator("ldn_dose_bands")
    @classmethod
    def _contiguous(cls, bands: list[DoseBand]) -> list[DoseBand]:
        if not bands:
            raise ValueError("at least one dose band")
        for a, b in zip(bands, bands[1:], strict=False):
            if a.to_mg != b.from_mg:
                raise ValueError(f"band {b.label!r} must start where {a.label!r} ends ({a.to_mg} mg)")
        return bands


def rules_content(rules: dict) -> str:
    """A digest of what the rules say, their version and the file's comments and layout aside:
    two files equal under it categorise alike."""
    import hashlib
    import json

    said = {k: v for k, v in rules.items() if k != "version"}
    return hashlib.sha256(json.dumps(said, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_rules(path: Path, contract: Contract) -> dict:
    """The rules file as a dict, after checking it; RulesError names every violation."""
    doc = load_checked(path, Rules, RulesError, "rules file", context={"contract": contract})
    doc["version"] = str(doc["version"])
    return doc


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def criteria_text(spec: dict) -> dict[str, str | None]:
    """Each criterion of an indication's rule in the rules file's words (what
    patient_response.criterion names), and the whole rule."""
    text = {c.text_column: (c.words.format(value=_number(spec[c.key])) if spec.get(c.key) not in (None, False)
                            else None) for c in CRITERIA}
    return {**text, "rule_text": " or ".join(t for t in text.values() if t)}


def rules_frame(rules: dict) -> pd.DataFrame:
    """One row per indication, with the windows repeated so the SQL needs no constants."""
    import pandas as pd  # loaded by the step that writes the table, not with the definitions

    w = rules["windows"]
    rows = []
    for indication, spec in rules["indications"].items():
        rows.append({
            **criteria_text(spec),
            "indication": indication,
            "indication_group": spec["group"],
            "primary_measure": spec["primary_measure"],
            "relative_reduction_pct": spec.get("relative_reduction_pct"),
            "absolute_reduction": spec.get("absolute_reduction"),
            "remission_below": spec.get("remission_below"),
            "assessment_zero": bool(spec.get("assessment_zero", False)),
            "baseline_zero_not_assessable": bool(spec["baseline_zero_not_assessable"]),
            "baseline_from": w["baseline"]["from_day"],
            "baseline_to": w["baseline"]["to_day"],
            "assessment_from": w["assessment"]["from_day"],
            "assessment_to": w["assessment"]["to_day"],
            "target_day": w["assessment"]["target_day"],
            "stop_counts_until_day": w["stop_counts_until_day"],
            "tolerance": float(rules["tolerance"]),
            "rules_version": str(rules["version"]),
        })
    frame = pd.DataFrame(rows)
    for col in ("relative_reduction_pct", "absolute_reduction", "remission_below"):
        frame[col] = frame[col].astype("float64")
    return frame


def write_rules_table(con, rules: dict, contract: Contract) -> None:
    """response.rules, and response.instruments (each instrument's direction) it is read with."""
    write_frame(con, "response.rules", rules_frame(rules))
    write_frame(con, "response.instruments", instruments_frame(contract.instruments))

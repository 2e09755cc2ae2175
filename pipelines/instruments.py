"""The instrument registry (rules/instruments.yaml): every instrument declared once.

What an instrument is (its label and unit as a clinician writes them, its valid range, which
direction is better, how many decimals it is recorded with) is read from here by the
contract (the enum of measurements.instrument and each value's range), the response rules
(a primary measure must be an instrument; a criterion reads the direction), the data
dictionary, the dashboards, `clinic explain`, the demo generator and the benchmark floor.
The contract names the registry file (`instruments:`, a path beside it), so a copied
contract and registry travel together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.declared import load_checked

if TYPE_CHECKING:
    import pandas as pd

NAME = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"  # a contract name (pipelines/ingest/contract.py)


class InstrumentsError(ValueError):
    """The registry cannot be used; the message names each key and its line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstrumentSpec(_Strict):
    label: Annotated[str, Field(min_length=1)]
    unit: Annotated[str, Field(min_length=1)]
    min: float
    max: float
    better: Literal["lower", "higher"]
    description: Annotated[str, Field(min_length=1)] | None = None
    decimals: Annotated[int, Field(ge=0, le=6)] | None = None
    minimal_important_difference: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _range(self):
        if self.min >= self.max:
            raise ValueError(f"min {self.min:g} is not below max {self.max:g}")
        return self


class Registry(_Strict):
    instruments: Annotated[dict[Annotated[str, Field(pattern=NAME)], InstrumentSpec], Field(min_length=1)]


@dataclass(frozen=True)
class Instrument:
    name: str
    label: str
    unit: str
    minimum: float
    maximum: float
    better: str  # "lower" or "higher"
    description: str
    decimals: int | None = None
    minimal_important_difference: float | None = None

    @property
    def improvement_sign(self) -> int:
        """What a change is multiplied by so that positive means better."""
        return 1 if self.better == "higher" else -1

    @property
    def direction(self) -> str:
        return f"{self.better} is better"


def load_instruments(path: Path) -> dict[str, Instrument]:
    """The registry, checked; InstrumentsError names every violation with its line."""
    doc = load_checked(path, Registry, InstrumentsError, "instrument registry", wrap="instruments")
    return {name: Instrument(name=name, label=spec["label"], unit=spec["unit"], minimum=float(spec["min"]),
                             maximum=float(spec["max"]), better=spec["better"],
                             description=spec.get("description") or spec["label"],
                             decimals=spec.get("decimals"),
                             minimal_important_difference=spec.get("minimal_important_difference"))
            for name, spec in doc.items()}


def instruments_frame(instruments: dict[str, Instrument]) -> pd.DataFrame:
    """The registry as the warehouse table response.instruments, which the response SQL joins
    for each instrument's direction (improvement_sign)."""
    import pandas as pd  # loaded by the step that writes the table, not with the definitions

    return pd.DataFrame([{"instrument": i.name, "label": i.label, "unit": i.unit, "min_value": i.minimum,
                          "max_value": i.maximum, "better": i.better, "improvement_sign": i.improvement_sign}
                         for i in instruments.values()])

"""A synthetic clinic export that follows the contract, deterministic for a seed.

Vectorised with numpy so scale M (100,000 patients, ~10^7 measurement rows) takes
seconds. Outcomes are drawn to reproduce the clinic's experience: among evaluable LDN
patients about 60% meaningful, 20% minimal, 20% intolerant, autoimmune and
central-sensitisation indications better than mechanical pain; starting LDN at 4.5 mg
brings more sleep events. An export carries clinic visits only (about 9 measurement rows per
patient, as the committed demo does), so a generated export written beside the demo is shaped
like it; `diary_every=5` adds a diary value every 5 days (about 91 rows per patient), which the
benchmark asks for to reach the spec's scale table (10^5 patients, ~10^7 measurements).

What is declared elsewhere is read from there: each indication's primary measure (and which
ones count abstinence) from the rules file, each instrument's range, decimals and direction
from the instrument registry (a higher-is-better instrument rises as patients improve). What
stays here is the simulation: how patients are drawn.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

LDN_MIX = {"fibromyalgia": 0.30, "multiple_sclerosis": 0.14, "crohns_disease": 0.14, "crps": 0.11,
           "mechanical_pain": 0.16}
ADDICTION_SHARE = 0.13  # of all patients: alcohol and opioid use disorder on standard dose
P_MEANINGFUL_IF_TOLERANT = {"fibromyalgia": 0.78, "multiple_sclerosis": 0.82, "crohns_disease": 0.84,
                            "crps": 0.76, "mechanical_pain": 0.30, "alcohol_use_disorder": 0.55,
                            "opioid_use_disorder": 0.50}
SECONDARY = {"fibromyalgia": "pain_nrs", "crohns_disease": "hbi", "multiple_sclerosis": "mfis_total"}
# baseline mean, sd, lower, upper (an instrument not listed: drawn around the middle of its range)
BASELINE = {"fiqr_total": (62, 12, 25, 95), "pain_nrs": (7, 1.3, 3, 10),
            "msis29_physical": (52, 14, 15, 95), "calprotectin_ug_g": (750, 350, 150, 3000),
            "hbi": (9, 3, 2, 25), "mfis_total": (48, 12, 10, 84),
            "heavy_drinking_days_30d": (14, 5, 4, 30), "opioid_use_days_30d": (16, 6, 4, 30)}
VISIT_WEEKS = np.array([0, 4, 8, 12, 24, 36, 52])
AE_RATES = {"nausea": 0.10, "headache": 0.07, "dizziness": 0.04, "fatigue": 0.03, "anxiety": 0.02,
            "diarrhea": 0.02}


@dataclass
class DemoExport:
    tables: dict[str, pd.DataFrame]

    def write(self, out: Path, ready: bool = True, append: bool = False) -> dict[str, int]:
        """Each table as `<name>.csv` (appended without a header with `append`), then `_READY`."""
        out.mkdir(parents=True, exist_ok=True)
        counts = {}
        for name, frame in self.tables.items():
            options = pacsv.WriteOptions(quoting_style="needed", include_header=not append)
            with open(out / f"{name}.csv", "ab" if append else "wb") as fh:
                pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), fh, options)
            counts[name] = len(frame)
        if ready:
            (out / "_READY").touch()
        return counts


@dataclass(frozen=True)
class Declared:
    """What the generator reads from the rules file and the instrument registry."""

    primary: dict[str, str]  # indication -> primary measure
    abstinence: frozenset[str]  # measures whose rule counts an assessment of 0 (assessment_zero)
    instruments: dict  # name -> pipelines.instruments.Instrument


@cache
def declared() -> Declared:
    from pipelines.ingest.contract import load_contract
    from pipelines.response.rules import load_rules
    from pipelines.settings import setting_value

    contract = load_contract(Path(setting_value("contract_file")))
    rules = load_rules(Path(setting_value("rules_file")), contract)
    return Declared(primary={i: s["primary_measure"] for i, s in rules["indications"].items()},
                    abstinence=frozenset(s["primary_measure"] for s in rules["indications"].values()
                                         if s.get("assessment_zero")),
                    instruments=contract.instruments)


def _baseline(instrument) -> tuple[float, float, float, float]:
    if instrument.name in BASELINE:
        return BASELINE[instrument.name]
    span = instrument.maximum - instrument.minimum
    return (instrument.minimum + span / 2, span / 8, instrument.minimum + span / 10, instrument.maximum - span / 10)


def _choice(rng, options: dict[str, float], n: int) -> np.ndarray:
    keys = list(options)
    p = np.array([options[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def default_id_prefix(export_name: str, seed: int) -> str:
    """A pseudonym prefix of its own for each export folder name and seed, so two demo
    exports written into one raw folder never reuse each other's patient ids (which the
    pipeline would merge as one person, and flag as identity_conflict). Deterministic, so
    writing the same export twice gives the same ids."""
    digest = hashlib.sha256(f"{export_name}\0{seed}".encode()).hexdigest()
    return f"P{digest[:6].upper()}-"


CHUNK_PATIENTS = 200_000  # patients generated (and held in memory) at a time by write_export


def write_export(out: Path, patients: int, seed: int = 42, defects: float = 0.0, id_prefix: str = "P",
                 diary_every: int = 0, progress=lambda _: None) -> dict[str, int]:
    """Generate and write an export of any size a chunk of patients at a time, so scale L
    (10^6 patients, ~10^8 measurement rows) needs the memory of one chunk. Up to one chunk it
    is exactly `generate(...).write(out)`; beyond, chunk k has its own seed and id prefix."""
    if patients <= CHUNK_PATIENTS:
        return generate(patients, seed=seed, defects=defects, id_prefix=id_prefix,
                        diary_every=diary_every).write(out)
    totals: dict[str, int] = {}
    chunks = -(-patients // CHUNK_PATIENTS)
    for k in range(chunks):
        n = min(CHUNK_PATIENTS, patients - k * CHUNK_PATIENTS)
        part = generate(n, seed=seed * 1000 + k, defects=defects, id_prefix=f"{id_prefix}{k:02d}",
                        diary_every=diary_every)
        for name, count in part.write(out, ready=False, append=k > 0).items():
            totals[name] = totals.get(name, 0) + count
        progress(f"chunk {k + 1}/{chunks}: {(k * CHUNK_PATIENTS) + n:,} patients written")
    (out / "_READY").touch()
    return totals


DIARY_LAST_DAY = 362  # diary entries run over the first year


def diary_days(every: int) -> np.ndarray:
    """The study days of diary entries every `every` days (none for 0): day every+2 to day 362."""
    return np.arange(every + 2, DIARY_LAST_DAY + 1, every) if every > 0 else np.array([], dtype=int)


def generate(patients: int, seed: int = 42, defects: float = 0.0, id_prefix: str = "P",
             diary_every: int = 0) -> DemoExport:
    """One export of `patients` patients; clinic visits only unless `diary_every` (days) adds a
    patient diary, which multiplies measurement rows per patient about tenfold."""
    rng = np.random.default_rng(seed)
    n = patients
    decl = declared()
    ids = np.array([f"{id_prefix}{i:07d}" for i in range(1, n + 1)], dtype=object)
    addiction = rng.random(n) < ADDICTION_SHARE
    indication = _choice(rng, LDN_MIX, n)
    aud = rng.random(n) < 0.6
    indication[addiction] = np.where(aud[addiction], "alcohol_use_disorder", "opioid_use_disorder")
    regimen = np.where(addiction, np.where(rng.random(n) < 0.55, "standard_oral", "xr_injectable"), "ldn")
    age = np.clip(rng.normal(48, 14, n).round(), 18, 96).astype(int)
    age = np.where(age >= 90, 90, age)
    pats = pd.DataFrame({
        "patient_id": ids,
        "site_id": _choice(rng, {"site-a": 0.5, "site-b": 0.3, "site-c": 0.2}, n),
        "indication": indication, "regimen": regimen,
        "sex": _choice(rng, {"F": 0.68, "M": 0.29, "X": 0.01, "U": 0.02}, n),
        "age_years": age, "start_year": rng.integers(2019, 2027, n),
    })

    # Starting dose and outcome.
    ldn = regimen == "ldn"
    full_start = ldn & (rng.random(n) < 0.2)
    p_intolerant = np.where(full_start, 0.40, np.where(ldn, 0.15, 0.12))
    intolerant = rng.random(n) < p_intolerant
    p_good = np.array([P_MEANINGFUL_IF_TOLERANT[i] for i in indication])
    meaningful = ~intolerant & (rng.random(n) < p_good)
    lack_of_effect_stop = ~intolerant & ~meaningful & (rng.random(n) < 0.35)
    lost = ~intolerant & ~lack_of_effect_stop & (rng.random(n) < 0.05)
    stop_day = np.where(intolerant, rng.integers(4, 120, n),
                        np.where(lack_of_effect_stop, rng.integers(100, 200, n),
                                 np.where(lost, rng.integers(20, 50, n), 10_000)))

    # Doses.
    dose_rows = [pd.DataFrame({"patient_id": ids[ldn & ~full_start], "study_day": 0, "dose_mg": 1.5,
                               "formulation": "capsule"})]
    for day, mg in ((14, 3.0), (28, 4.5)):
        sel = ldn & ~full_start & (stop_day > day)
        dose_rows.append(pd.DataFrame({"patient_id": ids[sel], "study_day": day, "dose_mg": mg,
                                       "formulation": "capsule"}))
    dose_rows.append(pd.DataFrame({"patient_id": ids[full_start], "study_day": 0, "dose_mg": 4.5,
                                   "formulation": "capsule"}))
    oral = regimen == "standard_oral"
    dose_rows.append(pd.DataFrame({"patient_id": ids[oral], "study_day": 0, "dose_mg": 50.0,
                                   "formulation": "tablet"}))
    for k in range(9):
        sel = (regimen == "xr_injectable") & (stop_day > 28 * k)
        dose_rows.append(pd.DataFrame({"patient_id": ids[sel], "study_day": 28 * k, "dose_mg": 380.0,
                                       "formulation": "injection"}))
    doses = pd.concat(dose_rows, ignore_index=True)

    # Measurements: clinic visits (plus a diary if asked), primary and secondary measures.
    visit_days = np.concatenate([VISIT_WEEKS * 7, diary_days(diary_every)])
    meas = []
    relative_change = np.where(meaningful, rng.uniform(-0.75, -0.38, n),
                               rng.uniform(-0.22, 0.1, n))
    for role, mapping in (("primary", decl.primary), ("secondary", SECONDARY)):
        instrument = np.array([mapping.get(i) for i in indication], dtype=object)
        has = instrument != None  # noqa: E711 - object array comparison
        for inst in sorted(set(instrument[has])):  # sorted: set order varies between processes
            sel = np.flatnonzero(instrument == inst)
            spec = decl.instruments[inst]
            mean, sd, lo, hi = _baseline(spec)
            base = np.clip(rng.normal(mean, sd, len(sel)), lo, hi)
            change = relative_change[sel] if role == "primary" else relative_change[sel] * 0.6
            if inst in decl.abstinence:
                change = np.where(meaningful[sel], -1.0, change)  # abstinence
            if spec.better == "higher":
                change = -change  # improving patients rise
            jitter = rng.integers(-3, 4, (len(sel), len(visit_days)))
            days = visit_days[None, :] + jitter
            days[:, 0] = -rng.integers(1, 21, len(sel))  # baseline in the window before day 0
            progress = np.clip(days / 168.0, 0, 1)
            values = base[:, None] * (1 + change[:, None] * progress)
            values *= rng.normal(1, 0.04, values.shape)
            values = np.clip(values, spec.minimum, min(hi * 1.3, spec.maximum))
            values = np.round(values, 1 if spec.decimals is None else spec.decimals)
            keep = days <= stop_day[sel][:, None]
            keep[:, 0] = True
            rows, cols = np.nonzero(keep)
            meas.append(pd.DataFrame({"patient_id": ids[sel][rows], "study_day": days[rows, cols],
                                      "instrument": inst, "value": values[rows, cols]}))
    measurements = pd.concat(meas, ignore_index=True).drop_duplicates(
        ["patient_id", "study_day", "instrument"])  # a diary day can fall on a visit day

    # FIQR items at the clinic visits of fibromyalgia patients (a third of them).
    fiqr = measurements[(measurements.instrument == "fiqr_total")
                        & measurements.study_day.isin(set(range(-21, 1)) | set(range(165, 172)))]
    fiqr = fiqr[fiqr.patient_id.str[-1].isin(list("012"))]
    item_vals = np.clip(np.round(fiqr.value.to_numpy()[:, None] / 10 + rng.normal(0, 0.8, (len(fiqr), 21))),
                        0, 10).astype(int)
    items = pd.DataFrame({
        "patient_id": np.repeat(fiqr.patient_id.to_numpy(), 21),
        "study_day": np.repeat(fiqr.study_day.to_numpy(), 21),
        "item": np.tile(np.arange(1, 22), len(fiqr)), "value": item_vals.ravel()})
    # The delivered fiqr_total on those days is the scored questionnaire, as a clinic system would.
    scored = (item_vals[:, :9].sum(1) / 3 + item_vals[:, 9:11].sum(1) + item_vals[:, 11:].sum(1) / 2)
    measurements.loc[fiqr.index, "value"] = np.round(scored, 1)

    # Adverse events and discontinuations.
    ae = []
    for event, rate in AE_RATES.items():
        sel = rng.random(n) < rate
        ae.append(pd.DataFrame({"patient_id": ids[sel], "study_day": rng.integers(1, 90, sel.sum()),
                                "event": event, "severity": _choice(rng, {"mild": .7, "moderate": .25,
                                                                          "severe": .05}, sel.sum()),
                                "action": "none"}))
    sleep = ldn & (rng.random(n) < np.where(full_start, 0.45, 0.10))
    ae.append(pd.DataFrame({"patient_id": ids[sleep], "study_day": rng.integers(0, 27, sleep.sum()),
                            "event": _choice(rng, {"vivid_dreams": .6, "insomnia": .4}, sleep.sum()),
                            "severity": "mild", "action": "none"}))
    inj = (regimen == "xr_injectable") & (rng.random(n) < 0.15)
    ae.append(pd.DataFrame({"patient_id": ids[inj], "study_day": rng.integers(0, 60, inj.sum()),
                            "event": "injection_site_reaction", "severity": "mild", "action": "none"}))
    cause = _choice(rng, {"vivid_dreams": .25, "insomnia": .2, "nausea": .25, "headache": .15,
                          "dizziness": .15}, n)
    cause = np.where(full_start & (rng.random(n) < 0.6), "vivid_dreams", cause)
    ae.append(pd.DataFrame({"patient_id": ids[intolerant], "study_day": stop_day[intolerant] - 1,
                            "event": cause[intolerant], "severity": "moderate",
                            "action": "discontinued"}))
    adverse = pd.concat(ae, ignore_index=True).drop_duplicates(["patient_id", "study_day", "event"],
                                                               keep="last")
    stopped = intolerant | lack_of_effect_stop | lost
    reason = np.where(intolerant, "adverse_event", np.where(lack_of_effect_stop, "lack_of_effect",
                                                            "lost_to_follow_up"))
    disc = pd.DataFrame({"patient_id": ids[stopped], "study_day": stop_day[stopped],
                         "reason": reason[stopped]})

    tables = {"patients": pats, "doses": doses, "measurements": measurements,
              "fiqr_items": items, "adverse_events": adverse, "discontinuations": disc}
    tables = {k: v.sort_values([c for c in ("patient_id", "study_day") if c in v]).reset_index(drop=True)
              for k, v in tables.items()}
    if defects > 0:
        tables = sprinkle_defects(tables, defects, rng)
    return DemoExport(tables)


def sprinkle_defects(tables: dict[str, pd.DataFrame], rate: float, rng) -> dict[str, pd.DataFrame]:
    """Realistic export faults at about `rate` of rows: typos, blanks, out-of-range values,
    orphans, repeated lines, identifiers pasted into cells. Values become text."""
    out = {}
    for name, frame in tables.items():
        frame = frame.astype(str).where(frame.notna(), "")
        k = max(1, int(len(frame) * rate))
        rows = rng.choice(len(frame), size=min(k, len(frame)), replace=False)
        kinds = rng.integers(0, 7, len(rows))
        cols = list(frame.columns)
        for r, kind in zip(rows, kinds, strict=True):
            col = cols[int(rng.integers(1, len(cols)))] if len(cols) > 1 else cols[0]
            if kind == 0:
                frame.iat[r, cols.index(col)] = ""
            elif kind == 1:
                frame.iat[r, cols.index(col)] = "9999"
            elif kind == 2:
                frame.iat[r, cols.index(col)] = "n/a"
            elif kind == 3 and name != "patients":
                frame.iat[r, 0] = "ZZ" + str(frame.iat[r, 0])  # orphan
            elif kind == 4:
                frame.iat[r, cols.index(col)] = "555-867-5309 ext"  # free text, not a number
            elif kind == 5:
                frame.iat[r, cols.index(col)] = "2024-03-05"  # a calendar date
            else:
                frame = pd.concat([frame, frame.iloc[[r]]], ignore_index=True)  # repeated line
        out[name] = frame
    return out

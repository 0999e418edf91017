"""A synthetic registry cohort, reproducible from a seed, for the tests, the demo and the README.

The generator is a plain simulation with hazards chosen to look like a liver ablation series
(not fitted to any data): tumours of median 22 mm; the minimal margin falls with size; a
negative margin is a technical failure that is re-ablated; local tumour progression has a
hazard that rises as the margin shrinks, with size and next to vessels; deaths and distant
recurrences are exponential. Follow-up imaging is at 1, 3, 6, 9, 12 months and then every 6
months until death or the data cut-off.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from ioplan.registry._csv import write_tables

__all__ = ["DEMO_CUTOFF", "check_demo", "demo_rows", "write_demo_cohort"]

#: Data cut-off of the synthetic cohort.
DEMO_CUTOFF = dt.date(2025, 6, 30)
_START = dt.date(2021, 1, 1)
_IMAGING_MONTHS = (1, 3, 6, 9, 12, 18, 24, 30, 36, 42, 48, 54)
_APPLICATORS = {
    "MWA": ("Emprint", {"power_w": 100, "time_s": 600}),
    "RFA": ("cooled-rf-3cm", {"power_w": 200, "time_s": 720}),
    "cryo": ("IceRod x3", {"freeze_s": [600, 600], "thaw_s": 480}),
}


def _day(months: float) -> dt.timedelta:
    return dt.timedelta(days=round(months * 30.4375))


def check_demo(seed: int, n_patients: int) -> None:
    """Refuse a seed or a number of patients the demo cannot use (before any work)."""
    from ioplan.errors import InputError

    if not 1 <= n_patients <= 100_000:
        raise InputError(f"--patients {n_patients}: give 1 to 100000")
    if seed < 0:
        raise InputError(f"--seed {seed}: give a seed of 0 or more")


def demo_rows(seed: int = 7, n_patients: int = 60) -> dict[str, list[dict]]:
    """Rows of every registry file for a synthetic cohort (same seed, same cohort)."""
    check_demo(seed, n_patients)
    rng = np.random.default_rng(seed)
    t: dict[str, list[dict]] = {
        k: []
        for k in (
            "patients.csv",
            "lesions.csv",
            "procedures.csv",
            "treated_lesions.csv",
            "followups.csv",
            "lesion_responses.csv",
            "complications.csv",
            "deaths.csv",
        )
    }
    for i in range(1, n_patients + 1):
        pk = f"P{i:04d}"
        hcc = rng.random() < 0.6
        start = _START + _day(rng.uniform(0, 36))
        death_rate = 0.012 if hcc else 0.018  # per month
        death_m = rng.exponential(1 / death_rate)
        end_m = (DEMO_CUTOFF - start).days / 30.4375
        dies = death_m < end_m
        horizon = death_m if dies else end_m
        n_les = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
        modality = str(rng.choice(["MWA", "RFA", "cryo"], p=[0.5, 0.35, 0.15]))
        app, settings = _APPLICATORS[modality]
        proc = f"{pk}-A1"
        t["procedures.csv"].append(
            {
                "procedure_key": proc,
                "patient_key": pk,
                "date": start,
                "modality": modality,
                "guidance": str(rng.choice(["CT", "US", "MR"], p=[0.6, 0.3, 0.1])),
                "applicators": app,
                "settings": json.dumps(settings, sort_keys=True),
            }
        )
        if rng.random() < 0.15:
            t["complications.csv"].append(
                {
                    "complication_key": f"{proc}-C1",
                    "procedure_key": proc,
                    "date": start + dt.timedelta(days=int(rng.integers(0, 10))),
                    "cirse_grade": int(rng.choice([1, 2, 3, 4], p=[0.5, 0.3, 0.15, 0.05])),
                    "description": "synthetic",
                }
            )
        lesions = []
        for j in range(1, n_les + 1):
            lk = f"{pk}-L{j}"
            size = float(np.clip(rng.lognormal(np.log(22), 0.35), 8, 50))
            vessel = float(np.round(rng.exponential(10.0), 1))
            margin = float(np.round(rng.normal(4.0 - 0.08 * (size - 20), 2.5), 1)) + 0.0  # no -0.0
            t["lesions.csv"].append(
                {
                    "lesion_key": lk,
                    "patient_key": pk,
                    "organ": "liver",
                    "segment": str(rng.integers(2, 9)),
                    "size_mm": round(size, 1),
                    "histology": "HCC" if hcc else "CRC metastasis",
                    "vessel_distance_mm": vessel,
                }
            )
            success = margin >= 0
            t["treated_lesions.csv"].append(
                {
                    "procedure_key": proc,
                    "lesion_key": lk,
                    "technical_success": success,
                    "minimal_margin_mm": margin,
                }
            )
            lesions.append((lk, size, vessel, margin, success))
        lost_m = rng.exponential(120.0)  # loss to follow-up
        # Residual tumour is re-ablated at 1.5 months (80 % complete the second time).
        retreat = [les for les in lesions if not les[4]]
        redo_m = 1.5
        complete_from = {les[0]: (0.0 if les[4] else None) for les in lesions}
        if retreat and redo_m < min(horizon, lost_m):
            proc2 = f"{pk}-A2"
            t["procedures.csv"].append(
                {
                    "procedure_key": proc2,
                    "patient_key": pk,
                    "date": start + _day(redo_m),
                    "modality": modality,
                    "guidance": "CT",
                    "applicators": app,
                    "settings": json.dumps(settings, sort_keys=True),
                }
            )
            for les in retreat:
                ok = rng.random() < 0.8
                t["treated_lesions.csv"].append(
                    {
                        "procedure_key": proc2,
                        "lesion_key": les[0],
                        "technical_success": ok,
                        "minimal_margin_mm": round(abs(les[3]) + 1.0, 1) if ok else les[3],
                    }
                )
                complete_from[les[0]] = redo_m if ok else None
        # Local progression: hazard rises as the margin shrinks, with size, near vessels.
        ltp_m = {}
        for lk, size, vessel, margin, _ in lesions:
            rate = 0.006 * np.exp(-0.3 * (margin - 5.0)) * np.exp(0.03 * (size - 20))
            rate *= 1.8 if vessel < 5 else 1.0
            ltp_m[lk] = rng.exponential(1 / rate)
        distant_m = rng.exponential(1 / 0.025)
        for k, m in enumerate(_IMAGING_MONTHS, start=1):
            if m >= horizon or m >= lost_m:
                break
            fk = f"{pk}-F{k}"
            distant_now = distant_m < m
            t["followups.csv"].append(
                {
                    "followup_key": fk,
                    "patient_key": pk,
                    "date": start + _day(m),
                    "imaging": "MR" if hcc else "CT",
                    "intrahepatic_distant_recurrence": distant_now,
                    "extrahepatic_disease": bool(rng.random() < 0.01 * m),
                }
            )
            for lk, *_ in lesions:
                cf = complete_from[lk]
                complete = cf is not None and cf < m
                ltp = complete and ltp_m[lk] + (cf or 0.0) < m and m > 1
                resp = "PD" if ltp else ("CR" if complete else "SD")
                t["lesion_responses.csv"].append(
                    {
                        "followup_key": fk,
                        "lesion_key": lk,
                        "criteria": "mRECIST" if hcc else "RECIST1.1",
                        "response": resp,
                        "complete_ablation": complete and not ltp,
                        "ltp": ltp,
                    }
                )
        last_contact = start + _day(min(horizon, lost_m))
        if dies and death_m < lost_m:
            t["deaths.csv"].append(
                {
                    "patient_key": pk,
                    "date": start + _day(death_m),
                    "cause": "disease progression" if rng.random() < 0.6 else "other",
                }
            )
            last_contact = None
        t["patients.csv"].append(
            {
                "patient_key": pk,
                "sex": str(rng.choice(["M", "F"], p=[0.7, 0.3])),
                "birth_year": int(rng.integers(1935, 1975)),
                "diagnosis": "HCC" if hcc else "CRLM",
                "last_contact_on": last_contact,
            }
        )
    return t


def write_demo_cohort(folder: Path, seed: int = 7, n_patients: int = 60, overwrite: bool = False):
    """Write the synthetic cohort as registry CSV files; returns the paths."""
    return write_tables(demo_rows(seed, n_patients), Path(folder), overwrite=overwrite)

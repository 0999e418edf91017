"""Outcome analysis of the registry in the standard terms of image-guided ablation.

Definitions follow Ahmed et al., "Image-guided tumor ablation: standardization of terminology
and reporting criteria - a 10-year update", Radiology 2014;273:241-260 (and J Vasc Interv
Radiol 2014;25:1691-1705):

- technical success: the tumour was treated per protocol and covered completely, as seen at
  the end of the procedure (``treated_lesions.technical_success`` of the lesion's first
  ablation);
- primary technique efficacy: complete ablation (``complete_ablation``) at the first follow-up
  imaging that assessed it, before any repeat ablation of that lesion; secondary (assisted)
  technique efficacy: complete ablation after one or more repeat ablations for residual tumour;
- local tumour progression (LTP): tumour at the edge of the ablation zone after at least one
  follow-up documented complete ablation; lesions never documented complete are not at risk;
- per tumour and per patient: a patient counts as a success when every one of their
  evaluable lesions does.

Times run from the first ablation of the lesion (LTP, LTP-free survival) or the first
therapeutic procedure of the patient (overall survival, distant intrahepatic recurrence), in
months of 30.4375 days. Rates at a time are Aalen-Johansen cumulative incidences with death
as a competing event; survival is Kaplan-Meier with log(-log) 95 % intervals (lifelines); the
per-tumour Cox model of LTP (cause-specific hazard) has cluster-robust (sandwich) errors with
the patient as cluster. Proportions have Wilson score intervals (Wilson 1927).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ioplan.registry._models import (
    ABLATIVE,
    Complication,
    Death,
    FollowUp,
    Lesion,
    LesionResponse,
    Patient,
    Procedure,
    TreatedLesion,
)

__all__ = [
    "DAYS_PER_MONTH",
    "NON_THERAPEUTIC",
    "Cohort",
    "OutcomeReport",
    "aalen_johansen_at",
    "analyse",
    "check_times",
    "kaplan_meier_at",
    "lesion_table",
    "load_cohort",
    "parse_months",
    "patient_table",
    "wilson_interval",
]

#: Mean Gregorian month (365.25 / 12 days).
DAYS_PER_MONTH = 30.4375
#: Procedures that do not start the clock of overall survival.
NON_THERAPEUTIC = ("biopsy", "drainage")
#: Two-sided 95 % normal quantile.
Z95 = 1.959963984540054
#: Major complications: CIRSE grade 3 or more (Filippiadis et al., Cardiovasc Intervent Radiol
#: 2017;40:1141-1146, "The CIRSE classification system for complications").
MAJOR_CIRSE_GRADE = 3
#: Perivascular tumour: a vessel of >= 3 mm within 5 mm (used as the Cox covariate
#: vessel_proximity; e.g. Lu et al., J Vasc Interv Radiol 2003;14:1267-1274).
PERIVASCULAR_MM = 5.0
#: Tie-break between an event of interest and a competing event on the same day (months):
#: putting the competing event just after gives the exact Aalen-Johansen increment, since the
#: increment at t uses S(t-) and the survival after both events is unchanged.
_TIE_EPS = 1e-6


@dataclass(frozen=True)
class Cohort:
    """The registry's rows as data frames (one per table, keyed by text keys)."""

    patients: pd.DataFrame
    lesions: pd.DataFrame
    procedures: pd.DataFrame
    treated: pd.DataFrame
    followups: pd.DataFrame
    responses: pd.DataFrame
    complications: pd.DataFrame


def load_cohort(session: Session) -> Cohort:
    """Read the whole registry into a :class:`Cohort`."""

    def frame(stmt, cols):
        return pd.DataFrame(session.execute(stmt).all(), columns=cols)

    pats = frame(
        sa.select(Patient.patient_key, Patient.last_contact_on, Death.date).outerjoin(Death),
        ["patient_key", "last_contact_on", "death_on"],
    )
    lesions = frame(
        sa.select(
            Lesion.lesion_key,
            Patient.patient_key,
            Lesion.organ,
            Lesion.size_mm,
            Lesion.vessel_distance_mm,
        ).join(Patient),
        ["lesion_key", "patient_key", "organ", "size_mm", "vessel_distance_mm"],
    )
    procs = frame(
        sa.select(
            Procedure.procedure_key, Patient.patient_key, Procedure.date, Procedure.modality
        ).join(Patient),
        ["procedure_key", "patient_key", "date", "modality"],
    )
    treated = frame(
        sa.select(
            Lesion.lesion_key,
            Procedure.procedure_key,
            Procedure.date,
            Procedure.modality,
            TreatedLesion.technical_success,
            TreatedLesion.minimal_margin_mm,
        )
        .join(Lesion, TreatedLesion.lesion_id == Lesion.id)
        .join(Procedure, TreatedLesion.procedure_id == Procedure.id),
        ["lesion_key", "procedure_key", "date", "modality", "technical_success", "margin_mm"],
    )
    fus = frame(
        sa.select(
            FollowUp.followup_key,
            Patient.patient_key,
            FollowUp.date,
            FollowUp.intrahepatic_distant_recurrence,
            FollowUp.extrahepatic_disease,
        ).join(Patient),
        ["followup_key", "patient_key", "date", "distant", "extrahepatic"],
    )
    resp = frame(
        sa.select(
            Lesion.lesion_key,
            FollowUp.date,
            LesionResponse.complete_ablation,
            LesionResponse.ltp,
            LesionResponse.response,
        )
        .join(Lesion, LesionResponse.lesion_id == Lesion.id)
        .join(FollowUp, LesionResponse.followup_id == FollowUp.id),
        ["lesion_key", "date", "complete_ablation", "ltp", "response"],
    )
    comps = frame(
        sa.select(Procedure.procedure_key, Complication.cirse_grade).join(Procedure),
        ["procedure_key", "cirse_grade"],
    )
    return Cohort(pats, lesions, procs, treated, fus, resp, comps)


def _months(a: dt.date, b: dt.date) -> float:
    return (b - a).days / DAYS_PER_MONTH


def lesion_table(cohort: Cohort) -> pd.DataFrame:
    """One row per ablated lesion: success, efficacy, LTP time and status, covariates.

    ``ltp_event`` is 1 (LTP), 2 (death first, competing) or 0 (censored at the last imaging);
    ``ltp_months`` is NaN for lesions never documented completely ablated (not at risk).
    """
    abl = cohort.treated[cohort.treated["modality"].isin(ABLATIVE)]
    pats = cohort.patients.set_index("patient_key")
    last_img = cohort.followups.groupby("patient_key")["date"].max()
    resp_by = {k: g.sort_values("date") for k, g in cohort.responses.groupby("lesion_key")}
    les = cohort.lesions.set_index("lesion_key")
    rows = []
    for key, g in abl.groupby("lesion_key"):
        g = g.sort_values("date")
        first = g.iloc[0]
        t0 = first["date"]
        repeat_dates = list(g["date"].iloc[1:])
        pat = les.loc[key, "patient_key"]
        r = resp_by.get(key, pd.DataFrame(columns=cohort.responses.columns))
        r = r[r["date"] > t0]
        assessed = r[r["complete_ablation"].notna()]
        primary = secondary = None
        if len(assessed):
            first_a = assessed.iloc[0]
            if repeat_dates and repeat_dates[0] < first_a["date"]:
                primary = False  # re-ablated before the first assessment: for residual tumour
            else:
                primary = bool(first_a["complete_ablation"])
            secondary = bool(primary)
            if not primary and repeat_dates:
                last_tx = repeat_dates[-1]
                after = assessed[assessed["date"] > last_tx]
                secondary = bool(len(after) and after.iloc[0]["complete_ablation"])
        complete = assessed[assessed["complete_ablation"].astype(bool)]
        death_on = pats.loc[pat, "death_on"]
        ltp_months, ltp_event = math.nan, 0
        if len(complete):
            documented = complete.iloc[0]["date"]
            ltp_rows = r[(r["ltp"].astype(bool)) & (r["date"] > documented)]
            if len(ltp_rows):
                ltp_months, ltp_event = _months(t0, ltp_rows.iloc[0]["date"]), 1
            elif death_on is not None and not pd.isna(death_on):
                ltp_months, ltp_event = _months(t0, death_on), 2
            else:
                ltp_months = _months(t0, last_img.get(pat, t0))
        dist = les.loc[key, "vessel_distance_mm"]
        rows.append(
            {
                "lesion_key": key,
                "patient_key": pat,
                "treated_on": t0,
                "modality": first["modality"],
                "technical_success": first["technical_success"],
                "margin_mm": first["margin_mm"],
                "size_mm": float(les.loc[key, "size_mm"]),
                "vessel_distance_mm": dist,
                "vessel_proximity": None if pd.isna(dist) else float(dist < PERIVASCULAR_MM),
                "repeat_ablations": len(repeat_dates),
                "primary_efficacy": primary,
                "secondary_efficacy": secondary,
                "ltp_months": ltp_months,
                "ltp_event": ltp_event,
            }
        )
    return pd.DataFrame(rows)


def patient_table(cohort: Cohort) -> pd.DataFrame:
    """One row per treated patient: overall survival and distant intrahepatic recurrence."""
    ther = cohort.procedures[~cohort.procedures["modality"].isin(NON_THERAPEUTIC)]
    start = ther.groupby("patient_key")["date"].min()
    last_proc = cohort.procedures.groupby("patient_key")["date"].max()
    fus = cohort.followups
    last_img = fus.groupby("patient_key")["date"].max()
    first_distant = fus[fus["distant"].astype(bool)].groupby("patient_key")["date"].min()
    rows = []
    for p in cohort.patients.itertuples():
        if p.patient_key not in start.index:
            continue
        t0 = start[p.patient_key]
        dead = p.death_on is not None and not pd.isna(p.death_on)
        contact = [
            d
            for d in (p.last_contact_on, last_img.get(p.patient_key), last_proc.get(p.patient_key))
            if d is not None and not pd.isna(d)
        ]
        last = p.death_on if dead else max(contact)
        if p.patient_key in first_distant.index:
            d_months, d_event = _months(t0, first_distant[p.patient_key]), 1
        elif dead:
            d_months, d_event = _months(t0, p.death_on), 2
        else:
            d_months, d_event = _months(t0, last_img.get(p.patient_key, t0)), 0
        rows.append(
            {
                "patient_key": p.patient_key,
                "started_on": t0,
                "os_months": _months(t0, last),
                "death": int(dead),
                "distant_months": d_months,
                "distant_event": d_event,
            }
        )
    return pd.DataFrame(rows)


def wilson_interval(successes: int, n: int) -> dict:
    """Proportion with its Wilson score 95 % interval (Wilson, JASA 1927;22:209-212).

    Examples
    --------
    >>> r = wilson_interval(8, 10)
    >>> round(r["estimate"], 3), round(r["ci_low"], 3), round(r["ci_high"], 3)
    (0.8, 0.49, 0.943)
    """
    if n == 0:
        return {"estimate": None, "ci_low": None, "ci_high": None, "successes": 0, "n": 0}
    p = successes / n
    z2 = Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return {
        "estimate": p,
        "ci_low": max(0.0, centre - half),
        "ci_high": min(1.0, centre + half),
        "successes": int(successes),
        "n": int(n),
    }


def _no_event_bound(at_risk: int) -> float:
    """Upper 95 % bound of a rate with no event among ``at_risk`` (Wilson, as above).

    Without an event the Kaplan-Meier and Aalen-Johansen intervals have zero width (100.0 -
    100.0 % from one patient); the binomial bound of 0 events in the patients still
    followed is used instead, so that one patient gives 20.7-100 % as a proportion does.
    """
    return wilson_interval(0, at_risk)["ci_high"] if at_risk > 0 else 1.0


def _at(frame: pd.DataFrame, t: float) -> pd.Series:
    """Row of a step function (indexed by time) in force at time t."""
    idx = frame.index.searchsorted(t, side="right") - 1
    return frame.iloc[max(idx, 0)]


def kaplan_meier_at(months: np.ndarray, events: np.ndarray, times: list[float]):
    """Kaplan-Meier fit and its value, 95 % interval and number at risk at each time.

    Beyond the longest follow-up the estimate is not defined and is given as None.
    """
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(months, events)
    ci = kmf.confidence_interval_survival_function_
    out = {}
    for t in times:
        at_risk = int(np.sum(months >= t))
        if t > months.max():
            out[_label(t)] = {"estimate": None, "ci_low": None, "ci_high": None, "at_risk": 0}
            continue
        row = _at(ci, t)
        est, lo, hi = float(_at(kmf.survival_function_, t).iloc[0]), float(row.iloc[0]), float(
            row.iloc[1]
        )
        if est == 1.0 and lo >= 1.0:  # no event yet: the interval would have zero width
            lo = 1.0 - _no_event_bound(at_risk)
        out[_label(t)] = {"estimate": est, "ci_low": lo, "ci_high": hi, "at_risk": at_risk}
    return kmf, out


def _break_ties(months: np.ndarray, events: np.ndarray) -> np.ndarray:
    """Competing events on the same day as an event of interest moved just after it."""
    m = months.astype(float).copy()
    interest = set(m[events == 1])
    for i in np.flatnonzero(events == 2):
        if m[i] in interest:
            m[i] += _TIE_EPS
    return m


def aalen_johansen_at(months: np.ndarray, events: np.ndarray, times: list[float]):
    """Cumulative incidence of event 1 with event 2 competing (Aalen-Johansen, lifelines).

    Returns the fitter (None when no event of interest) and, per time, the estimate, its
    95 % interval (lifelines' delta method on log(-log F), Collett 2015 p. 411) and the
    number at risk.
    """
    from lifelines import AalenJohansenFitter

    months = _break_ties(np.asarray(months, float), np.asarray(events, int))
    out = {}
    if not np.any(events == 1):
        for t in times:
            alive = int(np.sum(months >= t))
            out[_label(t)] = {"estimate": 0.0, "ci_low": 0.0, "ci_high": _no_event_bound(alive),
                              "at_risk": alive}  # fmt: skip
        return None, out
    with warnings.catch_warnings():
        # lifelines divides by zero where everyone left is an event (the interval there is
        # undefined); such rows are skipped below.
        warnings.simplefilter("ignore", RuntimeWarning)
        ajf = AalenJohansenFitter(calculate_variance=True).fit(months, events, event_of_interest=1)
    cif = ajf.cumulative_density_
    ci = ajf.confidence_interval_.replace([np.inf, -np.inf], np.nan)
    for t in times:
        at_risk = int(np.sum(months >= t))
        if t > months.max():
            out[_label(t)] = {"estimate": None, "ci_low": None, "ci_high": None, "at_risk": 0}
            continue
        est = float(_at(cif, t).iloc[0])
        valid = ci[(ci.index <= t)].dropna()
        if est == 0.0:  # no event by t: the binomial bound of none among those followed
            lo, hi = 0.0, _no_event_bound(at_risk)
        elif valid.empty:
            lo = hi = est
        else:
            pair = valid.iloc[-1].to_numpy(float)  # lifelines names the bounds the other way
            lo, hi = float(pair.min()), float(pair.max())
        out[_label(t)] = {"estimate": est, "ci_low": lo, "ci_high": hi, "at_risk": at_risk}
    return ajf, out


def _label(t: float) -> str:
    return f"{t:g}"


def _cox(lesions: pd.DataFrame) -> dict:
    """Cox model of LTP per tumour, cluster-robust by patient; a reason when it cannot be fit."""
    from lifelines import CoxPHFitter

    at_risk = lesions[lesions["ltp_months"].notna()].copy()
    cols = ["margin_mm", "size_mm", "vessel_proximity"]
    data = at_risk[["patient_key", "ltp_months", "ltp_event", *cols, "modality"]].dropna()
    dropped = len(at_risk) - len(data)
    data = data.assign(ltp=(data["ltp_event"] == 1).astype(int), size_10mm=data["size_mm"] / 10)
    modalities = data["modality"].value_counts()
    reference = modalities.index[0] if len(modalities) else None
    dummies = [f"modality_{m}" for m in modalities.index[1:] if modalities[m] >= 3]
    for m in dummies:
        data[m] = (data["modality"] == m.removeprefix("modality_")).astype(float)
    covariates = ["margin_mm", "size_10mm", "vessel_proximity", *dummies]
    events = int(data["ltp"].sum())
    base = {
        "n": len(data),
        "events": events,
        "excluded_missing": int(dropped),
        "clusters": int(data["patient_key"].nunique()),
        "reference_modality": reference,
        "hazard": "cause-specific hazard of LTP (death and last imaging censor)",
    }
    if events < 5 or len(data) < 10:
        return {**base, "fitted": False, "reason": f"too few LTP events ({events}) to fit"}
    fit_frame = data[["ltp_months", "ltp", "patient_key", *covariates]]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence advice is judged from the result
            cph = CoxPHFitter().fit(
                fit_frame, "ltp_months", "ltp", cluster_col="patient_key", robust=True
            )
    except Exception as exc:  # lifelines raises ConvergenceError and linear-algebra errors
        return {**base, "fitted": False, "reason": f"Cox fit failed: {exc}".splitlines()[0]}
    s = cph.summary
    terms = {}
    for name in covariates:
        terms[name] = {
            "hazard_ratio": float(s.loc[name, "exp(coef)"]),
            "ci_low": float(s.loc[name, "exp(coef) lower 95%"]),
            "ci_high": float(s.loc[name, "exp(coef) upper 95%"]),
            "p": float(s.loc[name, "p"]),
            "robust_se": float(s.loc[name, "se(coef)"]),
        }
    units = {
        "margin_mm": "per mm of minimal margin",
        "size_10mm": "per 10 mm of diameter",
        "vessel_proximity": f"vessel >= 3 mm within {PERIVASCULAR_MM:g} mm (yes vs no)",
    }
    return {
        **base,
        "fitted": True,
        "terms": terms,
        "units": units,
        "concordance": float(cph.concordance_index_),
    }


@dataclass(frozen=True)
class OutcomeReport:
    """Outcome figures of a cohort (``to_dict`` is the JSON of ``ioplan registry report``)."""

    summary: dict
    lesions: pd.DataFrame = field(repr=False)
    patients: pd.DataFrame = field(repr=False)
    fits: dict = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return self.summary


def check_times(at_months) -> list[float]:
    """Times of report (months), checked: finite, above 0, at most 240."""
    times = [float(t) for t in at_months]
    if not times or any(not math.isfinite(t) or t <= 0 or t > 240 for t in times):
        from ioplan.errors import InputError

        shown = ",".join(f"{t:g}" for t in times) or "(none)"
        raise InputError(f"--at-months {shown}: give times in months above 0, at most 240")
    return times


def parse_months(text: str) -> tuple[float, ...]:
    """Times of report from text such as ``"3,6,12"`` (months), checked as :func:`check_times`.

    Examples
    --------
    >>> parse_months("3, 6,12")
    (3.0, 6.0, 12.0)
    """
    from ioplan.errors import InputError

    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(
            f"--at-months {text!r}: give months separated by commas, e.g. 3,6,12"
        ) from None
    return tuple(check_times(values))


def analyse(cohort: Cohort, at_months: tuple[float, ...] = (3, 6, 12)) -> OutcomeReport:
    """Every outcome of the cohort at the given times (months)."""
    times = check_times(at_months)
    les = lesion_table(cohort)
    pts = patient_table(cohort)
    notes: list[str] = []
    out: dict = {
        "patients": int(cohort.patients["patient_key"].nunique()),
        "lesions": len(cohort.lesions),
        "procedures": len(cohort.procedures),
        "ablated_lesions": len(les),
        "treated_patients": len(pts),
        "at_months": times,
        "units": {"time": "months (30.4375 days)", "rates": "fractions 0-1"},
    }
    if les.empty:
        notes.append("no ablated lesion: technical success, efficacy and LTP are not computed")
        les = pd.DataFrame(
            columns=[
                "lesion_key",
                "patient_key",
                "technical_success",
                "primary_efficacy",
                "secondary_efficacy",
                "ltp_months",
                "ltp_event",
                "modality",
            ]
        )

    def rates(column: str) -> dict:
        known = les[les[column].notna()]
        per_tumor = wilson_interval(int(known[column].astype(bool).sum()), len(known))
        by_pat = known.groupby("patient_key")[column].agg(lambda s: bool(s.astype(bool).all()))
        per_patient = wilson_interval(int(by_pat.sum()), len(by_pat))
        return {"per_patient": per_patient, "per_tumor": per_tumor}

    out["technical_success"] = rates("technical_success")
    unknown_ts = int(les["technical_success"].isna().sum())
    if unknown_ts:
        notes.append(f"{unknown_ts} ablated lesion(s) without technical success recorded: left out")
    out["technique_efficacy"] = {
        "primary": rates("primary_efficacy"),
        "secondary": rates("secondary_efficacy"),
    }
    fits: dict = {}
    at_risk = les[les["ltp_months"].notna()]
    out["ltp_at_risk"] = len(at_risk)
    if len(les) - len(at_risk):
        notes.append(
            f"{len(les) - len(at_risk)} lesion(s) never documented completely ablated "
            "are not at risk of LTP (Ahmed 2014)"
        )
    if len(at_risk):
        m = at_risk["ltp_months"].to_numpy(float)
        e = at_risk["ltp_event"].to_numpy(int)
        fits["ltp_cif"], out["ltp_rate"] = aalen_johansen_at(m, e, times)
        fits["ltp_free"], out["ltp_free_survival"] = kaplan_meier_at(m, (e > 0).astype(int), times)
        out["ltp_events"] = int(np.sum(e == 1))
    else:
        out["ltp_rate"], out["ltp_free_survival"], out["ltp_events"] = {}, {}, 0
    if len(pts):
        m = pts["os_months"].to_numpy(float)
        d = pts["death"].to_numpy(int)
        fits["os"], out["survival"] = kaplan_meier_at(m, d, times)
        out["deaths"] = int(d.sum())
        med = fits["os"].median_survival_time_
        out["median_survival_months"] = None if not math.isfinite(med) else float(med)
        dm = pts["distant_months"].to_numpy(float)
        de = pts["distant_event"].to_numpy(int)
        fits["distant_cif"], out["distant_recurrence_rate"] = aalen_johansen_at(dm, de, times)
        out["median_follow_up_months"] = _reverse_km_median(m, d)
    else:
        out["survival"], out["distant_recurrence_rate"], out["deaths"] = {}, {}, 0
    grades = cohort.complications.groupby("procedure_key")["cirse_grade"].max()
    n_proc = len(cohort.procedures)
    out["complications"] = {
        "by_cirse_grade": {
            str(g): int((cohort.complications["cirse_grade"] == g).sum()) for g in range(1, 7)
        },
        "major_per_procedure": wilson_interval(int((grades >= MAJOR_CIRSE_GRADE).sum()), n_proc),
        "major_definition": f"CIRSE grade >= {MAJOR_CIRSE_GRADE} (Filippiadis 2017)",
    }
    out["cox_ltp"] = _cox(les) if len(at_risk) else {"fitted": False, "reason": "no lesion at risk"}
    out["by_modality"] = {
        str(mod): {
            "lesions": len(g),
            "technical_success": wilson_interval(
                int(g["technical_success"].dropna().astype(bool).sum()),
                int(g["technical_success"].notna().sum()),
            ),
            "ltp_events": int((g["ltp_event"] == 1).sum()),
        }
        for mod, g in les.groupby("modality")
    }
    out["definitions"] = {
        "source": "Ahmed et al., Radiology 2014;273:241-260 (standardization of terminology)",
        "survival": "Kaplan-Meier, log(-log) 95 % CI (lifelines)",
        "rates": "Aalen-Johansen cumulative incidence, death competing (lifelines)",
        "proportions": "Wilson score 95 % interval",
    }
    out["notes"] = notes
    return OutcomeReport(out, les, pts, fits)


def _reverse_km_median(months: np.ndarray, deaths: np.ndarray) -> float | None:
    """Median follow-up by the reverse Kaplan-Meier method (Schemper & Smith 1996)."""
    from lifelines import KaplanMeierFitter

    med = KaplanMeierFitter().fit(months, 1 - deaths).median_survival_time_
    return None if not math.isfinite(med) else float(med)

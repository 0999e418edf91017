"""The outcome report of the registry: report.json, report.html and its figures.

Figures: Kaplan-Meier overall and LTP-free survival with 95 % bands and the numbers at risk
under the axis (``survival.png``); cumulative incidence of LTP and of distant intrahepatic
recurrence with death competing (``incidence.png``); hazard ratios of the Cox model
(``cox.png``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ioplan.errors import InputError, OutputExistsError
from ioplan.registry._outcomes import OutcomeReport
from ioplan.report import bullet_list, escape, figure, page, save_figure, table, write_page

__all__ = ["REPORT_FILES", "check_report_folder", "write_report"]

#: Files ``ioplan registry report --out DIR`` writes.
REPORT_FILES = ("report.json", "report.html", "survival.png", "incidence.png", "cox.png")


def _pct(r: dict | None) -> str:
    if not r or r.get("estimate") is None:
        return "n/a"
    return f"{100 * r['estimate']:.1f} % ({100 * r['ci_low']:.1f}-{100 * r['ci_high']:.1f})"


def _frac(r: dict) -> str:
    return f"{r['successes']}/{r['n']}" if r.get("n") else "0/0"


def _survival_figure(report: OutcomeReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lifelines.plotting import add_at_risk_counts

    fits = report.fits
    fig, ax = plt.subplots(figsize=(8, 5.2))
    shown = []
    for key, label, colour in (
        ("os", "overall survival", "C0"),
        ("ltp_free", "LTP-free survival (per tumour)", "C1"),
    ):
        if key in fits:
            fits[key]._label = label
            fits[key].plot_survival_function(ax=ax, ci_show=True, color=colour)
            shown.append(fits[key])
    ax.set_xlabel("months")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1.02)
    ax.set_title("Kaplan-Meier estimates with 95 % bands")
    if shown:
        add_at_risk_counts(*shown, ax=ax, rows_to_show=["At risk"])
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _incidence_figure(report: OutcomeReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, label, colour in (
        ("ltp_cif", "local tumour progression (per tumour)", "C3"),
        ("distant_cif", "distant intrahepatic recurrence (per patient)", "C2"),
    ):
        ajf = report.fits.get(key)
        if ajf is None:
            continue
        cif = ajf.cumulative_density_
        ci = ajf.confidence_interval_.reindex(cif.index).ffill().fillna(0.0)
        x = cif.index.to_numpy(float)
        ax.step(x, cif.iloc[:, 0].to_numpy(float), where="post", color=colour, label=label)
        lo, hi = np.sort(ci.to_numpy(float), axis=1).T
        ax.fill_between(x, lo, hi, step="post", color=colour, alpha=0.2)
    ax.set_xlabel("months")
    ax.set_ylabel("cumulative incidence")
    ax.set_ylim(0, 1)
    ax.set_title("Cumulative incidence, death as competing event (Aalen-Johansen, 95 % CI)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _cox_figure(report: OutcomeReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cox = report.summary.get("cox_ltp", {})
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if cox.get("fitted"):
        names = list(cox["terms"])
        hr = np.array([cox["terms"][n]["hazard_ratio"] for n in names])
        lo = np.array([cox["terms"][n]["ci_low"] for n in names])
        hi = np.array([cox["terms"][n]["ci_high"] for n in names])
        y = np.arange(len(names))[::-1]
        ax.errorbar(hr, y, xerr=[hr - lo, hi - hr], fmt="o", color="k", capsize=3)
        ax.axvline(1.0, color="grey", ls="--")
        ax.set_xscale("log")
        ax.set_yticks(y, names)
        ax.set_xlabel("hazard ratio of LTP (95 % CI, cluster-robust)")
    else:
        ax.text(0.5, 0.5, f"Cox model not fitted: {cox.get('reason', '')}", ha="center")
        ax.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def check_report_folder(folder: Path, overwrite: bool = False) -> None:
    """Refuse a report folder that is a file, or holds a report, unless ``overwrite``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder} is a file: give a folder for the report")
    clash = [folder / f for f in REPORT_FILES if (folder / f).exists()]
    if clash and not overwrite:
        raise OutputExistsError(f"{clash[0]} exists; pass --overwrite to replace the report")


def write_report(report: OutcomeReport, folder: Path, overwrite: bool = False) -> Path:
    """Write report.json, report.html and the figures into ``folder``; returns the HTML path."""
    folder = Path(folder)
    check_report_folder(folder, overwrite)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write the report into {folder}: {exc.strerror}") from None
    s = report.summary
    (folder / "report.json").write_text(json.dumps(s, indent=2) + "\n")
    _survival_figure(report, folder / "survival.png")
    _incidence_figure(report, folder / "incidence.png")
    _cox_figure(report, folder / "cox.png")

    les = report.lesions
    size = les["size_mm"].astype(float) if len(les) else np.array([np.nan])
    q1, med, q3 = np.nanpercentile(size, [25, 50, 75]) if len(les) else (np.nan,) * 3
    cohort = table(
        ["cohort", "value"],
        [
            ["patients (treated)", f"{s['patients']} ({s['treated_patients']})"],
            ["lesions (ablated)", f"{s['lesions']} ({s['ablated_lesions']})"],
            ["procedures", s["procedures"]],
            ["tumour diameter, median (IQR), mm", f"{med:.1f} ({q1:.1f}-{q3:.1f})"],
            ["deaths", s.get("deaths", 0)],
            ["median follow-up (reverse KM), months", _num(s.get("median_follow_up_months"))],
            ["median overall survival, months", _num(s.get("median_survival_months"))],
        ],
    )
    ts, te = s["technical_success"], s["technique_efficacy"]
    rates = table(
        ["outcome", "per patient", "n", "per tumour", "n"],
        [
            [
                "technical success",
                _pct(ts["per_patient"]),
                _frac(ts["per_patient"]),
                _pct(ts["per_tumor"]),
                _frac(ts["per_tumor"]),
            ],
            [
                "primary technique efficacy",
                _pct(te["primary"]["per_patient"]),
                _frac(te["primary"]["per_patient"]),
                _pct(te["primary"]["per_tumor"]),
                _frac(te["primary"]["per_tumor"]),
            ],
            [
                "secondary technique efficacy",
                _pct(te["secondary"]["per_patient"]),
                _frac(te["secondary"]["per_patient"]),
                _pct(te["secondary"]["per_tumor"]),
                _frac(te["secondary"]["per_tumor"]),
            ],
        ],
    )
    times = [f"{t:g}" for t in s["at_months"]]
    timed = table(
        ["estimate (95 % CI), at risk", *[f"{t} months" for t in times]],
        [
            [
                label,
                *[f"{_pct(s[key].get(t))}, {s[key].get(t, {}).get('at_risk', 0)}" for t in times],
            ]
            for key, label in (
                ("survival", "overall survival"),
                ("ltp_free_survival", "LTP-free survival (per tumour)"),
                ("ltp_rate", "LTP cumulative incidence (per tumour)"),
                ("distant_recurrence_rate", "distant intrahepatic recurrence (per patient)"),
            )
            if s.get(key)
        ],
    )
    cox = s["cox_ltp"]
    if cox.get("fitted"):
        cox_html = table(
            ["covariate", "hazard ratio (95 % CI)", "p", "unit"],
            [
                [
                    n,
                    f"{t['hazard_ratio']:.2f} ({t['ci_low']:.2f}-{t['ci_high']:.2f})",
                    f"{t['p']:.3f}",
                    cox["units"].get(n, f"vs {cox['reference_modality']}"),
                ]
                for n, t in cox["terms"].items()
            ],
        ) + (
            f"<p>{cox['n']} tumours, {cox['events']} LTP events, {cox['clusters']} patients "
            f"(clusters); concordance {cox['concordance']:.2f}.</p>"
        )
    else:
        cox_html = f"<p>Not fitted: {escape(cox.get('reason', ''))}</p>"
    comp = s["complications"]
    comp_html = (
        table(
            ["CIRSE grade", *comp["by_cirse_grade"]],
            [["complications", *comp["by_cirse_grade"].values()]],
        )
        + f"<p>Major ({escape(comp['major_definition'])}): "
        + f"{_pct(comp['major_per_procedure'])} of procedures.</p>"
    )
    body = f"""<p>Terms and definitions: {escape(s["definitions"]["source"])}. Rates are
Aalen-Johansen cumulative incidences with death as a competing event; survival is
Kaplan-Meier; proportions have Wilson 95 % intervals. Times in months from the first
ablation (per tumour) or the first therapeutic procedure (per patient).</p>
<h2>Cohort</h2>{cohort}
<h2>Technical success and technique efficacy</h2>{rates}
<h2>Outcomes at {", ".join(times)} months</h2>{timed}
{figure("survival.png", "Kaplan-Meier curves")}
{figure("incidence.png", "cumulative incidence")}
<h2>Cox model of local tumour progression (per tumour, cluster-robust by patient)</h2>{cox_html}
{figure("cox.png", "hazard ratios")}
<h2>Complications</h2>{comp_html}
<h2>Notes</h2>{bullet_list(s["notes"])}"""
    return write_page(folder / "report.html", page("Registry outcomes", body))


def _num(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f}"

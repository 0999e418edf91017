"""Writing a plan: plan.json, label maps, Slicer markups and the HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage

from ioplan.anatomy import Case
from ioplan.imaging import (
    Volume,
    atomic_output_folder,
    axial_volume,
    write_markups_lines,
    write_nifti,
)
from ioplan.planning._metrics import goal_verdict, tumour_mask
from ioplan.planning._plan import GOAL_MARGIN_COVERAGE_PERCENT, Plan
from ioplan.report import (
    CT_WINDOW_HU,
    bullet_list,
    escape,
    figure,
    key_value_table,
    page,
    save_figure,
    table,
    write_page,
)

__all__ = ["PLAN_FOLDER_ENTRIES", "display_volumes", "write_plan", "write_plan_files"]


def _host_ml(plan) -> float:
    """Normal parenchyma of the tumour's organ ablated (mL; an older plan: the liver's)."""
    return plan.ablated_liver_ml if plan.ablated_host_ml is None else plan.ablated_host_ml


def display_volumes(case: Case, plan: Plan, mask: np.ndarray, shell: np.ndarray):
    """The arrays the slice figure shows, in the radiological orientation, and their grid.

    Whatever the case file's orientation (RAS NIfTI, flipped or permuted axes), the arrays
    come back with array order ``(z, y, x)`` along increasing L, P, S (:func:`axial_volume`),
    so that ``a[k]`` is an axial slice with the patient's right on the image left.
    """
    g0 = case.labels.grid

    def view(a, *, labels: bool = True, fill: float = 0.0) -> Volume:
        return axial_volume(Volume(np.asarray(a), g0), labels=labels, fill=fill)

    fill = -1024.0 if case.modality == "CT" else 0.0  # air outside: -1024 HU, MR: no signal
    img = view(np.asarray(case.image.array, float), labels=False, fill=fill)
    if plan.modality == "cryo":  # the ice ball's edge
        hot = np.asarray(plan.tmin.array) <= 0.0
    else:
        hot = np.asarray(plan.tmax.array) >= 60.0
    out = {
        "image": img.array,
        "tumour": view(mask).array,
        "shell": view(shell).array,
        "zone": view(np.asarray(plan.zone.array) > 0).array,
        "isotherm": view(hot).array,
    }
    return img.grid, {k: np.asarray(v) for k, v in out.items()}


def display_window(image: np.ndarray, modality: str) -> tuple[float, float]:
    """Grey-level window of the slice figures.

    CT: soft tissue (W400/L40 HU); MR: 1st-99th percentile of the non-zero signal (MR
    intensities have no absolute scale).
    """
    if modality == "CT":
        return CT_WINDOW_HU
    signal = image[image > 0]
    if signal.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(signal, [1.0, 99.0])
    return (float(lo), float(max(hi, lo + 1e-6)))


def _slices(case: Case, plan: Plan, mask: np.ndarray, shell: np.ndarray, folder: Path):
    g, arrays = display_volumes(case, plan, mask, shell)
    img, mask, shell, z, hot = (arrays[k] for k in ("image", "tumour", "shell", "zone", "isotherm"))
    window = display_window(img, case.modality)
    if plan.modality == "cryo":
        zone_name, iso_name = "-40 degC", "ice ball edge (0 degC)"
    else:
        zone_name, iso_name = "Omega >= 1", "60 degC isotherm"
    c = np.clip(np.rint(g.lps_to_index(plan.target_mm)).astype(int), 0, np.asarray(g.shape) - 1)
    sp = g.spacing_mm
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    views = (
        ("axial", 0, lambda a: a[c[0]], (1, 2)),
        ("coronal", 1, lambda a: a[:, c[1]][::-1], (0, 2)),
        ("sagittal", 2, lambda a: a[:, :, c[2]][::-1], (0, 1)),
    )
    paths = [
        (g.lps_to_index(np.asarray(a["entry_mm"])), g.lps_to_index(np.asarray(a["tip_mm"])))
        for a in plan.applicators
    ]
    for ax, (name, _axis, take, (r_ax, c_ax)) in zip(axes, views, strict=True):
        aspect = sp[r_ax] / sp[c_ax]
        ax.imshow(take(img), cmap="gray", vmin=window[0], vmax=window[1],
                  aspect=aspect)  # fmt: skip
        for m, colour, style in (
            (mask, "lime", "solid"),
            (shell, "yellow", "dashed"),
            (z, "red", "solid"),
            (hot, "orange", "dotted"),
        ):
            sl = take(m.astype(float))
            if sl.any():
                ax.contour(sl, levels=[0.5], colors=colour, linewidths=1.2, linestyles=style)
        n_rows = take(img).shape[0]
        flip = name != "axial"
        for e_idx, t_idx in paths:
            pr = [p[r_ax] for p in (e_idx, t_idx)]
            pc = [p[c_ax] for p in (e_idx, t_idx)]
            if flip:
                pr = [n_rows - 1 - v for v in pr]
            ax.plot(pc, pr, color="cyan", lw=1.5)
            ax.plot(pc[1], pr[1], "o", color="cyan", ms=3)
        ax.set_title(f"{name} through the tumour centre", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.legend(
        handles=[
            plt.Line2D([], [], color="lime", label="tumour"),
            plt.Line2D([], [], color="yellow", ls="--", label=f"margin {plan.margin_mm:g} mm"),
            plt.Line2D([], [], color="red", label=f"predicted zone ({zone_name})"),
            plt.Line2D([], [], color="orange", ls=":", label=iso_name),
            plt.Line2D([], [], color="cyan", label="applicators (paths projected)"),
        ],
        loc="lower center",
        ncol=5,
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, folder / "slices.png", dpi=100)


def _picture_3d(case: Case, plan: Plan, mask: np.ndarray, folder: Path) -> None:
    from skimage import measure

    g = case.labels.grid
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="3d")
    for m, colour, alpha in ((mask, "green", 0.6), (np.asarray(plan.zone.array) > 0, "red", 0.15)):
        if m.sum() < 8:
            continue
        # meshed on the axial array, so that the picture does not depend on how the case's
        # array is stored (flipped or permuted copies draw the same triangles)
        ax_vol = axial_volume(Volume(m.astype(np.float32), g))
        verts, faces, _, _ = measure.marching_cubes(np.asarray(ax_vol.array), 0.5)
        pts = ax_vol.grid.index_to_lps(verts)
        ax.plot_trisurf(
            pts[:, 0], pts[:, 1], faces, pts[:, 2], color=colour, alpha=alpha, linewidth=0
        )
    for a in plan.applicators:
        e, t = np.asarray(a["entry_mm"]), np.asarray(a["tip_mm"])
        ax.plot([e[0], t[0]], [e[1], t[1]], [e[2], t[2]], color="blue", lw=2)
    ax.set_xlabel("x (mm, L)")
    ax.set_ylabel("y (mm, P)")
    ax.set_zlabel("z (mm, S)")
    ax.set_title("tumour (green), zone (red), applicator (blue)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, folder / "view3d.png", dpi=90)


#: What :func:`write_plan` writes into a plan folder (an older plan folder holds only these).
PLAN_FOLDER_ENTRIES = frozenset(
    {
        "plan.json",
        "zone.nii.gz",
        "margin_shell.nii.gz",
        "tmax.nii.gz",
        "tmin.nii.gz",
        "trajectories.mrk.json",
        "report.html",
        "dicom",
        "figures",
    }
)


def write_plan(
    plan: Plan,
    case: Case,
    folder: str | Path,
    *,
    overwrite: bool = False,
    extra: dict | None = None,
) -> Path:
    """Write the plan files into ``folder``, whole or not at all; return the report's path.

    ``plan.json`` (with ``extra`` keys added), the label maps, ``trajectories.mrk.json``,
    ``report.html``, ``figures/`` and ``dicom/plan_seg.dcm`` (DICOM-SEG: tumour, margin
    shell, zone) with ``dicom/ct/``, then the completion record. The files are written
    into a temporary sibling folder renamed into place at the end: an interruption
    leaves ``folder`` as it was. ``overwrite`` replaces an earlier plan folder whole
    (none of its files remain); a folder holding anything else is refused.
    """
    with atomic_output_folder(
        folder, command="plan", names=PLAN_FOLDER_ENTRIES, overwrite=overwrite
    ) as tmp:
        write_plan_files(plan, case, tmp, extra=extra)
    return Path(folder) / "report.html"


def write_plan_files(plan: Plan, case: Case, out: Path, *, extra: dict | None = None) -> dict:
    """Write the plan files into the new folder ``out``, ``plan.json`` last; return its document."""
    out.mkdir(parents=True, exist_ok=True)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    doc = plan.to_dict() | dict(extra or {})
    if plan.zone is not None and plan.zone.grid != case.labels.grid:
        from ioplan.planning._plan import _isotropic

        case = _isotropic(case, plan.simulation["spacing_mm"])  # as the planner did
    g = case.labels.grid
    mask, _ = tumour_mask(case, plan.tumour_index, plan.organ)
    dist = ndimage.distance_transform_edt(~mask, sampling=g.spacing_mm)
    shell = (dist <= plan.margin_mm) & ~mask
    write_nifti(plan.zone, out / "zone.nii.gz", overwrite=True)
    write_nifti(Volume(shell.astype(np.uint8), g), out / "margin_shell.nii.gz", overwrite=True)
    write_nifti(plan.tmax, out / "tmax.nii.gz", overwrite=True)
    if plan.tmin is not None:
        write_nifti(plan.tmin, out / "tmin.nii.gz", overwrite=True)
    write_markups_lines(
        [(a["id"], a["entry_mm"], a["tip_mm"]) for a in plan.applicators],
        out / "trajectories.mrk.json",
    )
    from ioplan.planning._dicomseg import write_plan_dicom_seg

    write_plan_dicom_seg(case, [mask, shell, np.asarray(plan.zone.array) > 0], out / "dicom")
    _slices(case, plan, mask, dist <= plan.margin_mm, figs)
    _picture_3d(case, plan, mask, figs)
    from ioplan.planning._select import select_treatment

    sel = select_treatment(case, plan.organ)
    _report(plan, doc, out, sel)
    (out / "plan.json").write_text(json.dumps(doc, indent=2) + "\n")  # last: the plan is whole
    return doc


def _organ_section(plan: Plan) -> str:
    """The organ's rules and findings (lung, kidney, bone; nothing for the liver)."""
    rec = plan.organ_rules or {}
    if plan.organ == "liver" or not rec:
        return ""
    rows = []
    if "pleural_crossings" in rec:
        risk = rec["pneumothorax_risk"]
        rows += [
            ("pleural crossings (most on one path)", rec["pleural_crossings"]),
            ("pleural punctures (all needles)", rec.get("pleural_punctures", "-")),
            ("aerated lung traversed", f"{rec['lung_path_mm']:.0f} mm"),
            ("pneumothorax risk", f"{100 * risk['probability']:.0f} % "
             f"({'; '.join(risk['factors']) or 'no risk factor'})"),
            ("pneumothorax model", f"{risk['model']}; {risk['source']}"),
        ]  # fmt: skip
    if "bowel_distance_mm" in rec:
        rows.append(("bowel from tumour or zone", _fmt(rec["bowel_distance_mm"], ".1f", " mm")))
    if "cryo" in rec:
        c = rec["cryo"]
        rows += [
            ("freeze cycles", c["freeze_cycles"]),
            ("ice edge beyond the tumour", f"{c['ice_margin_mm']:.1f} mm "
             f"(at least {c['ice_margin_required_mm']:g} mm)"),
            ("tumour within -20 / -40 degC", f"{c['tumour_within_20c_percent']:.0f} / "
             f"{c['tumour_within_40c_percent']:.0f} %"),
            ("cryo rule met", "yes" if c["ok"] else "no"),
            ("cryo sources", c["source"]),
        ]  # fmt: skip
    for name, lim in (rec.get("temperature_limits") or {}).items():
        rows.append((f"{name}: predicted min / max (limits)",
                     f"{lim['min_temperature_c']:.1f} / {lim['max_temperature_c']:.1f} degC "
                     f"({lim['min_limit_c']:g} / {lim['max_limit_c']:g} degC)"
                     + (" EXCEEDED" if lim["limit_exceeded"] else "")))  # fmt: skip
    return f"<h2>Organ: {escape(plan.organ)}</h2>" + key_value_table(rows)


def _setting(a: dict) -> str:
    """An applicator's power and time, or its protocol."""
    if a.get("protocol"):
        return f"protocol {a['protocol']}"
    return f"{a['power_w']:g} W, {a['duration_s']:g} s"


def _size(a: dict) -> str:
    """The planner's predicted zone for one applicator (length x width, mm)."""
    if a.get("predicted_length_mm") is None:
        return "-"
    return f"{a['predicted_length_mm']:.1f} x {a['predicted_width_mm']:.1f}"


def _chart_size(a: dict) -> str:
    """The manufacturer's chart at the applicator's setting, if it has one and covers it."""
    chart = a.get("chart")
    if not chart:
        return "-"
    z = chart.get("zone")
    if z is None:
        return f"outside the chart ({chart.get('range', '?')})"
    how = " (interpolated)" if z["interpolated"] else ""
    return f"{z['length_mm']:.1f} x {z['width_mm']:.1f}{how}"


def _fmt(x, fmt: str = ".1f", unit: str = "") -> str:
    """``x`` formatted, ``-`` when unknown."""
    if x is None:
        return "-"
    return f"{format(x, fmt)}{unit}"


def _robust_rows(plan: Plan) -> tuple[list[tuple[str, str]], str]:
    """The robustness estimate: key/value rows and its model sentence."""
    rob = plan.robustness or {}
    if plan.robust_coverage is None:
        why = "not estimated (the plan misses its goal)" if not plan.goal_met else "not estimated"
        return [("robust coverage", why)], ""
    ci = rob.get("ci95") or (None, None)
    interval = "-" if None in ci else f"{ci[0]:.2f}-{ci[1]:.2f}"
    mm, deg = rob.get("placement_error_mm"), rob.get("angle_error_deg")
    error = "-" if mm is None or deg is None else f"{mm:g} mm tip, {deg:g} deg angle"
    rows = [
        ("probability the plan still covers", f"{plan.robust_coverage:.2f}"),
        ("95 % interval", interval),
        ("placement error (root mean square)", error),
        ("samples", _fmt(rob.get("samples"), "d")),
        ("mean tumour + margin coverage",
         _fmt(rob.get("mean_target_coverage_percent"), ".1f", " %")),
        ("5th percentile of tumour + margin coverage",
         _fmt(rob.get("p5_target_coverage_percent"), ".1f", " %")),
    ]  # fmt: skip
    return rows, str(rob.get("model") or "")


def _report(plan: Plan, doc: dict, out: Path, sel) -> None:
    kind, short = goal_verdict(plan.covered, plan.coverage_percent,
                               plan.margin_coverage_percent, plan.at_risk, plan.protect_mm,
                               GOAL_MARGIN_COVERAGE_PERCENT)  # fmt: skip
    verdict = {
        "covers": "<span class='good'>covers the tumour and its margin</span>",
        "misses the target": "<span class='bad'>does NOT cover the tumour and its margin</span>",
        "misses the goal": "covers the tumour and its margin <span class='bad'>but does NOT "
        "meet its goal</span>",
    }[kind]
    if short:
        verdict += " (" + escape("; ".join(short)) + ")"
    if plan.covered and not plan.minimal_margin_mm >= plan.margin_mm:
        verdict += (
            f" (at least {GOAL_MARGIN_COVERAGE_PERCENT:g} % of it; <span class='bad'>the "
            f"minimal margin, {plan.minimal_margin_mm:.1f} mm, is below {plan.margin_mm:g} "
            "mm: no technical success by the minimal-margin rule</span>)"
        )
    rob = plan.robustness or {}
    if plan.robust_coverage is None:
        robust = "not estimated"
    else:
        ci = rob.get("ci95") or (None, None)
        robust = f"{plan.robust_coverage:.2f}"
        if None not in ci:
            robust += f" (95 % interval {ci[0]:.2f}-{ci[1]:.2f})"
        mm, deg = rob.get("placement_error_mm"), rob.get("angle_error_deg")
        if mm is not None and deg is not None:
            robust += (
                f", the probability that the plan still covers when each needle's tip is off "
                f"by {mm:g} mm and its angle by {deg:g} deg (root mean square)"
            )
    summary = key_value_table(
        (
            ("verdict", "goal met" if plan.goal_met else "goal NOT met"),
            ("applicators", f"{len(plan.applicators)}"),
            ("delivery", plan.delivery),
            ("tumour", f"{plan.tumour_diameter_mm:.0f} mm, {plan.histology}"),
            ("tumour coverage", f"{plan.coverage_percent:.1f} %"),
            ("tumour + margin coverage", f"{plan.margin_coverage_percent:.1f} %"),
            ("minimal margin (surface, sub-voxel)", f"{plan.minimal_margin_mm:.1f} mm"),
            ("robust coverage", robust),
            (f"normal {plan.organ} ablated", f"{_host_ml(plan):.1f} mL"),
            ("zone volume", f"{plan.zone_volume_ml:.1f} mL"),
            ("feasible paths", f"{plan.accepted_trajectories}"),
            ("candidates considered", f"{plan.candidates_considered}"),
            ("runtime", f"{plan.runtime_s:.1f} s"),
        )
    )
    applicators = table(
        ["#", "applicator", "path", "power / time", "entry (LPS mm)", "tip (LPS mm)",
         "insertion depth (mm)", "zone shift (mm)", "predicted zone L x W (mm)",
         "manufacturer chart L x W (mm, ex vivo)", "why"],
        [
            [i + 1, a["id"], _fmt(a.get("trajectory_id"), "d"), _setting(a), a["entry_mm"],
             a["tip_mm"], _fmt(a.get("insertion_depth_mm"), "g"),
             _fmt(a.get("zone_shift_mm"), "g"), _size(a), _chart_size(a),
             (a.get("covers") or {}).get("why", "-")]
            for i, a in enumerate(plan.applicators)
        ],
    )  # fmt: skip
    cand = plan.candidates or {}
    shifts = cand.get("zone_shifts_mm")
    found = bullet_list(
        [
            f"{plan.candidates_considered} candidates considered: "
            f"{_fmt(cand.get('aim_points'), 'd')} aim points x {_fmt(cand.get('paths'), 'd')} "
            f"safe paths (of {_fmt(cand.get('paths_examined'), 'd')} examined) x tip shifts "
            f"{', '.join(f'{v:g}' for v in shifts) if shifts else '-'} mm x "
            f"{_fmt(cand.get('settings'), 'd')} settings; "
            f"{_fmt(cand.get('predicted_safe'), 'd')} predicted safe",
            f"at most {_fmt(cand.get('max_applicators'), 'd')} applicators, "
            f"{_fmt(cand.get('target_points'), 'd')} target points "
            f"({_fmt(cand.get('heat_sink_prior_points'), 'd')} with the heat-sink prior)",
        ]
        + ([f"optimiser: {plan.optimiser['method']}"] if plan.optimiser.get("method") else [])
    )
    peri = plan.perivascular or {}
    if peri:
        from ioplan.planning._perivascular import describe

        perivascular = f"<p>{escape(describe(peri))}</p>" + key_value_table(
            (
                (f"tumour surface within {_fmt(peri.get('within_mm'), 'g')} mm of a large vessel",
                 f"{_fmt(peri.get('surface_area_mm2'), '.0f', ' mm2')} "
                 f"({_fmt(peri.get('surface_percent'), '.1f', ' %')})"),
                ("minimal distance to a large vessel",
                 _fmt(peri.get("minimal_distance_mm"), ".1f", " mm")),
                ("tissue between tumour and vessel ablated",
                 _fmt(peri.get("tissue_between_ablated_percent"), ".1f", " %")),
                ("perivascular surface covered",
                 _fmt(peri.get("surface_covered_percent"), ".1f", " %")),
                ("perivascular minimal margin",
                 _fmt(peri.get("perivascular_minimal_margin_mm"), ".1f", " mm")),
            )
        )  # fmt: skip
    else:
        perivascular = "<p>not measured</p>"
    rob_rows, rob_model = _robust_rows(plan)
    robustness = key_value_table(rob_rows) + (
        f"<p>Error model: {escape(rob_model)}</p>" if rob_model else ""
    )
    risk_keys = ("structure", "closest_distance_mm", "max_temperature_c", "min_temperature_c",
                 "lethal_damage", "within_protect_distance")  # fmt: skip
    risk = table(
        ["structure", "closest distance to zone (mm)", "max temperature (degC)",
         "min temperature (degC)", "lethal damage", "within protect distance"],
        [[r[k] for k in risk_keys] for r in plan.at_risk],
    )  # fmt: skip

    def _num(x, fmt=".1f"):
        return "-" if x is None else format(x, fmt)

    runs = plan.verification_runs or tuple(plan.simulation.get("tried", ()))
    tried = table(
        ["round", "applicators", "paths", "power (W)", "time (s)", "tumour %", "tumour + margin %",
         "minimal margin (mm)", "goal met", "what changed before"],
        [
            [t_["round"], t_["applicators"],
             ", ".join(str(i) for i in t_.get("trajectory_ids", ())) or "-",
             ", ".join(f"{p:g}" for p in t_["power_w"]),
             ", ".join(f"{d:g}" for d in t_["duration_s"]),
             _num(t_["tumour_voxels_covered_percent"]), _num(t_["margin_coverage_percent"]),
             _num(t_["minimal_margin_mm"]), "yes" if t_["goal_met"] else "no", t_["change"]]
            for t_ in runs
        ],
    )  # fmt: skip
    rejected = table(
        ["entry (LPS mm)", "length (mm)", "reasons"],
        [[r["entry_mm"], f"{r['length_mm']:.0f}", "; ".join(r["reasons"])]
         for r in plan.rejected_trajectories[:40]],
    )  # fmt: skip
    reasons = "".join(
        f"<li>{escape(r['reason'])} <small>[{escape(r['source'])}]</small></li>"
        for r in sel.reasons
    )
    body = f"""<p>The plan {verdict}. Coverage, margin and risk below come from a full simulation on
this anatomy (Pennes bioheat, perfusion, heat sink of vessels &ge; 3 mm;
{escape(plan.simulation["spacing_mm"])} mm voxels); a calibrated zone surrogate only screened
the settings. A research tool whose zone model has a mean error of about 3 mm against
manufacturer charts.</p>
{summary}
<h2>Applicators</h2>{applicators}
<h2>Treatment selection</h2>
<p><b>{escape(sel.recommendation)}</b> ({escape(sel.disclaimer)})</p>
<ul>{reasons}</ul>
<h2>Suggestions</h2>{bullet_list(plan.suggestions + plan.notes)}
{_organ_section(plan)}
<h2>Slices</h2>
{figure("figures/slices.png", "slices through the tumour", width="100%",
        caption="Radiological convention: patient right on the image left, anterior up.")}
<h2>3D</h2>{figure("figures/view3d.png", "tumour, zone and applicators in 3D")}
<h2>How the plan was found</h2>{found}
<h3>Verification runs</h3>{tried}
<h2>Next to large vessels</h2>{perivascular}
<h2>Robustness to placement error</h2>{robustness}
<h2>Structures at risk</h2>{risk}
<h2>Rejected trajectories (first 40 of {len(plan.rejected_trajectories)})</h2>{rejected}
<p>Files: plan.json, zone.nii.gz, margin_shell.nii.gz, tmax.nii.gz, tmin.nii.gz,
trajectories.mrk.json, dicom/plan_seg.dcm (DICOM-SEG: tumour, margin shell, zone) with its
anonymous CT in dicom/ct (all open in 3D Slicer). Seed {plan.seed}.</p>"""  # fmt: skip
    footer = f"Plan by ioplan {plan.software_version}."
    write_page(out / "report.html", page(f"Ablation plan ({plan.modality})", body, footer=footer))

"""Writing a plan: plan.json, label maps, Slicer markups and the HTML report."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage

from ioplan.anatomy import Case
from ioplan.imaging import Volume, write_markups_lines, write_nifti
from ioplan.planning._atomic import atomic_output_folder
from ioplan.planning._metrics import tumour_mask
from ioplan.planning._plan import Plan

__all__ = ["PLAN_FOLDER_ENTRIES", "write_plan", "write_plan_files"]

# Soft-tissue window (width 400, level 40 HU), as in the case overview.
_WINDOW = (-160.0, 240.0)


def _slices(case: Case, plan: Plan, mask: np.ndarray, shell: np.ndarray, folder: Path):
    g = case.labels.grid
    img = np.asarray(case.image.array, float)
    z = np.asarray(plan.zone.array) > 0
    if plan.modality == "cryo":  # the ice ball's edge
        hot = np.asarray(plan.tmin.array) <= 0.0
        zone_name, iso_name = "-40 degC", "ice ball edge (0 degC)"
    else:
        hot = np.asarray(plan.tmax.array) >= 60.0
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
        ax.imshow(take(img), cmap="gray", vmin=_WINDOW[0], vmax=_WINDOW[1], aspect=aspect)
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
    fig.savefig(folder / "slices.png", dpi=100)
    plt.close(fig)


def _picture_3d(case: Case, plan: Plan, mask: np.ndarray, folder: Path) -> None:
    from skimage import measure

    g = case.labels.grid
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="3d")
    for m, colour, alpha in ((mask, "green", 0.6), (np.asarray(plan.zone.array) > 0, "red", 0.15)):
        if m.sum() < 8:
            continue
        verts, faces, _, _ = measure.marching_cubes(m.astype(np.float32), 0.5)
        pts = g.index_to_lps(verts)
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
    fig.savefig(folder / "view3d.png", dpi=90)
    plt.close(fig)


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
    mask, _ = tumour_mask(case, plan.tumour_index)
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

    sel = select_treatment(case)
    _report(plan, doc, out, sel)
    (out / "plan.json").write_text(json.dumps(doc, indent=2) + "\n")  # last: the plan is whole
    return doc


def _report(plan: Plan, doc: dict, out: Path, sel) -> None:
    a = plan.applicators[0]
    verdict = (
        "<b style='color:green'>covers the tumour and its margin</b>"
        if plan.covered
        else "<b style='color:#b00'>does NOT cover the tumour and its margin</b>"
    )
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in (
            ("applicator", a["id"]),
            ("power / time", f"{a['power_w']:g} W, {a['duration_s']:g} s"),
            ("entry (LPS mm)", a["entry_mm"]),
            ("tip (LPS mm)", a["tip_mm"]),
            ("insertion depth", f"{a['insertion_depth_mm']} mm"),
            ("tumour", f"{plan.tumour_diameter_mm:.0f} mm, {plan.histology}"),
            ("tumour coverage", f"{plan.coverage_percent:.1f} %"),
            ("tumour + margin coverage", f"{plan.margin_coverage_percent:.1f} %"),
            ("minimal margin (surface, sub-voxel)", f"{plan.minimal_margin_mm:.1f} mm"),
            ("goal met", "yes" if plan.goal_met else "no"),
            ("normal liver ablated", f"{plan.ablated_liver_ml:.1f} mL"),
            ("zone volume", f"{plan.zone_volume_ml:.1f} mL"),
            ("feasible paths", f"{plan.accepted_trajectories}"),
            ("runtime", f"{plan.runtime_s:.1f} s"),
        )
    )
    risk = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(r[k]))}</td>"
            for k in (
                "structure",
                "closest_distance_mm",
                "max_temperature_c",
                "min_temperature_c",
                "lethal_damage",
                "within_protect_distance",
            )
        )
        + "</tr>"
        for r in plan.at_risk
    )
    tried = "".join(
        f"<tr><td>{t['applicators']}</td><td>{t['power_w']:g} W</td><td>{t['duration_s']:g} s</td>"
        f"<td>{t['coverage_percent']:.1f}</td><td>{t['margin_coverage_percent']:.1f}</td>"
        f"<td>{t['minimal_margin_mm']:.1f}</td></tr>"
        for t in plan.simulation["tried"]
    )
    rej = "".join(
        f"<tr><td>{html.escape(str(r['entry_mm']))}</td><td>{r['length_mm']:.0f}</td>"
        f"<td>{html.escape('; '.join(r['reasons']))}</td></tr>"
        for r in plan.rejected_trajectories[:40]
    )
    sugg = "".join(f"<li>{html.escape(s)}</li>" for s in plan.suggestions + plan.notes)
    sel_html = "".join(
        f"<li>{html.escape(r['reason'])} <small>[{html.escape(r['source'])}]</small></li>"
        for r in sel.reasons
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ioplan plan</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}
table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:2px 6px}}</style></head><body>
<h1>Ablation plan ({html.escape(plan.modality)})</h1>
<p>The plan {verdict}. Coverage, margin and risk below come from a full simulation on this
anatomy (Pennes bioheat, perfusion, heat sink of vessels &ge; 3 mm; {plan.simulation["spacing_mm"]}
mm voxels); a calibrated zone surrogate only screened the settings. Not for clinical use:
a research tool whose zone model has a mean error of about 3 mm against manufacturer charts.</p>
<table>{rows}</table>
<h2>Treatment selection</h2>
<p><b>{html.escape(sel.recommendation)}</b> ({html.escape(sel.disclaimer)})</p>
<ul>{sel_html}</ul>
<h2>Suggestions</h2><ul>{sugg or "<li>none</li>"}</ul>
<h2>Slices</h2><img src="figures/slices.png" width="100%">
<h2>3D</h2><img src="figures/view3d.png">
<h2>Structures at risk</h2>
<table><tr><th>structure</th><th>closest distance to zone (mm)</th><th>max temperature (degC)</th>
<th>min temperature (degC)</th><th>lethal damage</th><th>within protect distance</th></tr>
{risk}</table>
<h2>Settings simulated</h2>
<table><tr><th>applicators</th><th>power</th><th>time</th><th>tumour %</th>
<th>tumour + margin %</th>
<th>minimal margin (mm)</th></tr>{tried}</table>
<h2>Rejected trajectories (first 40 of {len(plan.rejected_trajectories)})</h2>
<table><tr><th>entry (LPS mm)</th><th>length (mm)</th><th>reasons</th></tr>{rej}</table>
<p>Files: plan.json, zone.nii.gz, margin_shell.nii.gz, tmax.nii.gz, tmin.nii.gz,
trajectories.mrk.json,
dicom/plan_seg.dcm (DICOM-SEG: tumour, margin shell, zone) with its anonymous CT in dicom/ct
(all open in 3D Slicer). ioplan {html.escape(plan.software_version)}, seed {plan.seed}.</p>
</body></html>
"""
    (out / "report.html").write_text(page)

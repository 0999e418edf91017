"""HTML report of a zone validation: predicted vs published plot and one picture per row."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

from ioplan.report._figures import save_figure
from ioplan.report._html import escape, figure, page, table, write_page

__all__ = ["write_validation_report"]


def _scatter(preds, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    devices = sorted({p.row.device for p in preds})
    markers = dict(zip(devices, "osD^v<>ph*", strict=False))
    for dev in devices:
        sel = [p for p in preds if p.row.device == dev]
        m = markers.get(dev, "o")
        ax.scatter(
            [p.row.length_mm for p in sel],
            [p.predicted_length_mm for p in sel],
            marker=m,
            facecolors="none",
            edgecolors="C0",
            label=f"{dev} length",
        )
        ax.scatter(
            [p.row.width_mm for p in sel],
            [p.predicted_width_mm for p in sel],
            marker=m,
            color="C3",
            label=f"{dev} width",
        )
    vals = [v for p in preds for v in (p.row.length_mm, p.row.width_mm, *p.errors_mm)]
    hi = max(max(vals), max(p.predicted_length_mm for p in preds)) * 1.1
    lo = 0.0
    xs = np.array([lo, hi])
    ax.plot(xs, xs, "k-", lw=0.8, label="identity")
    ax.fill_between(xs, xs - 2, xs + 2, color="0.85", label="+-2 mm (goal, mean)")
    ax.plot(xs, xs + 4, "k:", lw=0.6)
    ax.plot(xs, xs - 4, "k:", lw=0.6, label="+-4 mm (goal, max)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published (mm)")
    ax.set_ylabel("predicted (mm)")
    ax.set_aspect("equal")
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _time_course(preds, path: Path) -> bool:
    """Length and width against time per device and power: chart (markers), model (lines).

    Only settings with two or more times are drawn; False when there is none.
    """
    groups: dict[str, dict[float, list]] = {}
    for p in preds:
        groups.setdefault(p.row.device, {}).setdefault(p.row.power_w, []).append(p)
    groups = {
        dev: {pw: sorted(ps, key=lambda q: q.row.duration_s) for pw, ps in byp.items()
              if len(ps) >= 2}
        for dev, byp in groups.items()
    }  # fmt: skip
    groups = {dev: byp for dev, byp in groups.items() if byp}
    if not groups:
        return False
    devices = sorted(groups)
    fig, axes = plt.subplots(2, len(devices), figsize=(3.2 * len(devices), 5.6), squeeze=False)
    for j, dev in enumerate(devices):
        for k, (pw, ps) in enumerate(sorted(groups[dev].items())):
            t_min = [q.row.duration_s / 60.0 for q in ps]
            for i, (what, chart, model) in enumerate((
                ("length", [q.row.length_mm for q in ps], [q.predicted_length_mm for q in ps]),
                ("width", [q.row.width_mm for q in ps], [q.predicted_width_mm for q in ps]),
            )):  # fmt: skip
                ax = axes[i, j]
                ax.plot(t_min, model, "-", color=f"C{k}", lw=1.2, label=f"{pw:g} W model")
                ax.plot(t_min, chart, "o", color=f"C{k}", ms=4, mfc="none",
                        label=f"{pw:g} W chart")  # fmt: skip
                ax.set_ylabel(f"{what} (mm)", fontsize=7)
        axes[0, j].set_title(dev, fontsize=8)
        axes[1, j].set_xlabel("time (min)", fontsize=7)
        axes[0, j].legend(fontsize=5, loc="upper left")
        for ax in axes[:, j]:
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return True


def _row_picture(p, path: Path) -> None:
    """The zone field on the plane through the axis, zone edge, and the chart ellipse."""
    fig, ax = plt.subplots(figsize=(3.2, 3.6))
    x0, x1, z0, z1 = p.section_extent_mm
    sec = p.section
    ax.imshow(
        np.clip(sec, -6, 6),
        extent=(x0, x1, z0, z1),
        origin="lower",
        cmap="RdBu_r",
        vmin=-6,
        vmax=6,
        interpolation="nearest",
    )
    zs = np.linspace(z0, z1, sec.shape[0])
    xs = np.linspace(x0, x1, sec.shape[1])
    ax.contour(xs, zs, sec, levels=[0.0], colors="k", linewidths=1.0)
    r = p.row
    # the applicator comes from +z (direction (0, 0, -1)), tip at the origin: the chart
    # centre lies centre_offset_mm behind the tip, i.e. at +offset along z
    off = r.centre_offset_mm if r.centre_offset_mm is not None else p.predicted_centre_offset_mm
    ax.add_patch(
        Ellipse((0.0, off), r.width_mm, r.length_mm, fill=False, ec="lime", lw=1.5, ls="--")
    )
    ax.plot([0, 0], [0, z1], color="0.3", lw=2)
    half = 0.75 * max(r.length_mm, r.width_mm, p.predicted_length_mm, p.predicted_width_mm)
    ax.set_xlim(-half, half)
    ax.set_ylim(off - half, off + half)
    ax.set_xlabel("mm")
    ax.set_title(
        f"{r.device} {r.power_w:g} W {r.duration_s:g} s\n"
        f"chart {r.length_mm:g} x {r.width_mm:g}, model "
        f"{p.predicted_length_mm:.1f} x {p.predicted_width_mm:.1f} mm",
        fontsize=7,
    )
    ax.tick_params(labelsize=6)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def write_validation_report(
    folder: str | Path, preds: Sequence[Any], summary: dict[str, Any], *, title: str
) -> Path:
    """Write ``index.html``, ``validation.json`` and ``figures/`` into ``folder``."""
    out = Path(folder)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    _scatter(preds, figs / "predicted_vs_published.png")
    course = _time_course(preds, figs / "time_course.png")
    rows = []
    for i, p in enumerate(preds):
        name = f"row_{i + 1:03d}.png"
        if p.section is not None:
            _row_picture(p, figs / name)
        el, ew = p.errors_mm
        r = p.row
        picture = (
            f'<img src="figures/{name}" width="200" alt="zone {i + 1}">'
            if p.section is not None
            else ""
        )
        rows.append(
            (r.device, f"{r.power_w:g}", f"{r.duration_s:g}", f"{r.length_mm:g}",
             f"{p.predicted_length_mm:.1f}", f"{el:+.1f}", f"{r.width_mm:g}",
             f"{p.predicted_width_mm:.1f}", f"{ew:+.1f}",
             f"{100 * p.energy_absorbed_j / (r.power_w * r.duration_s):.0f}",
             f"{p.max_temperature_c:.0f}", picture)
        )  # fmt: skip
    (out / "validation.json").write_text(json.dumps(summary, indent=2) + "\n")
    s = summary
    course_html = (
        figure(
            "figures/time_course.png",
            "zone length and width against time, chart and model",
            caption="Length and width against time for each device and power: chart (circles) "
            "and model (lines).",
        )
        if course
        else ""
    )
    from ioplan.validation import scaling_rows

    laws = scaling_rows(s.get("size_scaling", {}))
    scaling_html = (
        "<p>Growth with power and time: each size fitted as c P^a t^b (least squares on ln "
        "size), published and predicted. A zone that grows by conduction at a steady power "
        "has b of about 0.3-0.5; a smaller b is a plateau. Scatter: the largest departure of "
        "the published sizes from their own power law (three parameters per size and "
        "device).</p>\n"
        + table(["device", "size", "published", "predicted", "published scatter (mm)"], laws)
        if laws
        else ""
    )
    body = f"""<p>Mean absolute error (length and width together):
<b>{s["mean_abs_error_mm"]} mm</b>; largest: <b>{s["max_abs_error_mm"]} mm</b>;
length mean error {s["length_mean_error_mm"]} mm, width mean error
{s["width_mean_error_mm"]} mm ({s["n_rows"]} rows, {s["spacing_mm"]} mm voxels;
{escape(s["conditions"])}; zone size: {escape(s["measure"])}).</p>
{figure("figures/predicted_vs_published.png", "predicted against published zone sizes")}
{course_html}
<p>Pictures: ln Omega on the plane through the antenna (red: Omega &gt; 1), the simulated
zone edge (black) and the published chart ellipse (green, dashed), centred at the chart's
offset behind the tip.</p>
<p>Absorbed: the energy the tissue absorbed by the row's time, as a share (%) of the
generator's power times time; Tmax: the highest tissue temperature reached by then (degC).
The default (lumped) model reaches the charts' late-time sizes by its fitted detuning, which
holds the tissue below 100 degC (validation/maxwell.md, "How the lumped default reaches the
charts").</p>
{scaling_html}
{table(["device", "W", "s", "length", "predicted", "error", "width", "predicted", "error",
        "absorbed %", "Tmax degC", "zone"], rows, html_columns=[11])}"""  # fmt: skip
    return write_page(out / "index.html", page(title, body))

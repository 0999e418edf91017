"""HTML overview of a case: labelled slices, label volumes, tumours."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from ioplan.anatomy import LABEL_INFO, Case, Label, label_statistics
from ioplan.imaging import axial_volume
from ioplan.report._figures import CT_WINDOW_HU, save_figure
from ioplan.report._html import escape, figure, page, table, write_page

__all__ = ["save_overview_figure", "write_case_overview"]

# Labels drawn in colour; wall layers (skin, fat, muscle) stay grey so that
# the organs stand out.
_OVERLAY_SKIP = {Label.BACKGROUND, Label.SKIN, Label.FAT, Label.MUSCLE}


def _label_cmap() -> ListedColormap:
    colours = ["#000000"] * 256
    for lbl, info in LABEL_INFO.items():
        colours[int(lbl)] = info.colour
    return ListedColormap(colours)


def _focus_index(case: Case) -> tuple[int, int, int]:
    """Voxel index of the first tumour's centre, else the tumour centroid, else the middle."""
    g = case.image.grid
    if case.tumors and "centre_mm" in case.tumors[0]:
        idx = np.rint(g.lps_to_index(case.tumors[0]["centre_mm"])).astype(int)
        if np.all((idx >= 0) & (idx < np.asarray(g.shape))):
            return tuple(int(i) for i in idx)
    tum = np.argwhere(case.labels.array == Label.TUMOR)
    if len(tum):
        return tuple(int(i) for i in np.rint(tum.mean(axis=0)))
    return tuple(n // 2 for n in g.shape)


def _show(ax, image: np.ndarray, labels: np.ndarray, aspect: float, overlay: bool, title: str):
    ax.imshow(
        image,
        cmap="gray",
        vmin=CT_WINDOW_HU[0],
        vmax=CT_WINDOW_HU[1],
        aspect=aspect,
        interpolation="nearest",
    )
    if overlay:
        shown = np.isin(labels, [int(x) for x in _OVERLAY_SKIP], invert=True)
        ax.imshow(
            np.ma.masked_where(~shown, labels),
            cmap=_label_cmap(),
            vmin=0,
            vmax=255,
            alpha=0.45,
            aspect=aspect,
            interpolation="nearest",
        )
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _axis_aligned(case: Case) -> Case:
    """The case with an identity direction (slices in patient axes, radiological view)."""
    image = axial_volume(case.image, fill=-1024.0)
    labels = axial_volume(case.labels, labels=True)
    return Case(image, labels, name=case.name, modality=case.modality, tumors=case.tumors)


def save_overview_figure(case: Case, path: str | Path) -> Path:
    """A PNG with axial, coronal and sagittal slices through the first tumour, with labels.

    Axial slices are shown in the radiological convention (patient right on
    the image left, anterior up); coronal and sagittal with superior up.
    """
    path = Path(path)
    case = _axis_aligned(case)
    img, lab = case.image.array, case.labels.array
    sz, sy, sx = case.image.grid.spacing_mm
    k, j, i = _focus_index(case)
    nz = img.shape[0]
    levels = sorted({k, int(0.8 * (nz - 1)), int(0.45 * (nz - 1)), int(0.2 * (nz - 1))})
    views = [(f"axial, slice {z}", img[z], lab[z], sy / sx) for z in levels]
    views.append((f"coronal, row {j}", img[::-1, j, :], lab[::-1, j, :], sz / sx))
    views.append((f"sagittal, column {i}", img[::-1, :, i], lab[::-1, :, i], sz / sy))
    fig, axes = plt.subplots(2, len(views), figsize=(3.2 * len(views), 6.8))
    for col, (title, im, lb, aspect) in enumerate(views):
        _show(axes[0, col], im, lb, aspect, False, title)
        _show(axes[1, col], im, lb, aspect, True, title + " + labels")
    present = set(np.unique(lab).tolist())
    handles = [
        Patch(color=LABEL_INFO[lbl].colour, label=lbl.name.lower())
        for lbl in Label
        if int(lbl) in present and lbl not in _OVERLAY_SKIP
    ]
    fig.legend(
        handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=8, frameon=False
    )
    fig.suptitle(f"{case.name}: CT (W400/L40) and labels", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    return save_figure(fig, path, dpi=90)


def _default_source(case: Case) -> str:
    return "phantom" if case.source.get("kind") == "phantom" else "labels"


def write_case_overview(case: Case, folder: str | Path) -> Path:
    """Write ``folder/index.html`` and ``folder/figures/overview.png``; return the HTML path."""
    folder = Path(folder)
    save_overview_figure(case, folder / "figures" / "overview.png")
    g = case.image.grid
    stats = label_statistics(case)
    rows = [
        (
            f"<span class='sw' style='background:{LABEL_INFO[Label(s.value)].colour}'></span>"
            + escape(s.label),
            s.value,
            f"{s.volume_ml:.1f}",
            "yes" if LABEL_INFO[Label(s.value)].critical else "",
            (case.structures or {}).get(s.label, {}).get("source", _default_source(case)),
            LABEL_INFO[Label(s.value)].description,
        )
        for s in stats
    ]
    extra = [(c.name, c.value, c.role, c.source, ", ".join(c.classes)) for c in case.extra_classes]
    tumours = [
        [t.get(key, "") for key in ("centre_mm", "diameter_mm", "irregularity", "histology")]
        for t in case.tumors
    ]
    body = f"""<p>Modality {escape(case.modality)}; grid {g.shape[2]} x {g.shape[1]} x {g.shape[0]}
voxels (x, y, z) at {g.spacing_mm[2]:g} x {g.spacing_mm[1]:g} x {g.spacing_mm[0]:g} mm; origin (LPS)
{", ".join(f"{v:.1f}" for v in g.origin_mm)} mm.</p>
{figure("figures/overview.png", "labelled slices")}
<h2>Labels</h2>
{table(["label", "value", "volume (mL)", "critical", "from", "meaning"], rows, html_columns=[0])}
<p>"from": labels (the segmentation given), auto (found from the image,
<code>ioplan import-case --auto-labels</code>), phantom (synthetic).</p>
{
        "<h2>Other classes (kept under their own names)</h2>"
        + table(["name", "value", "role", "from", "source classes"], extra)
        if extra
        else ""
    }
<h2>Tumours</h2>
{table(["centre (LPS mm)", "diameter (mm)", "irregularity", "histology"], tumours)}
<p>Axial slices in the radiological convention (patient right on the image left, anterior
up).</p>"""
    page_text = page(f"Case {case.name}", body, footer="Synthetic data or de-identified images.")
    return write_page(folder / "index.html", page_text)

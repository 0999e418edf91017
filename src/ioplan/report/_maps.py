"""Pictures of result maps: a coverage-probability map, vascular territories with their tree.

Both are drawn as coronal slices in the radiological convention (the patient's right on
the image left, superior up) after :func:`ioplan.imaging.axial_volume`, with axes in LPS
millimetres, so that what is drawn can be read against the NIfTI maps written beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ioplan.imaging import Volume, axial_volume
from ioplan.report._figures import save_figure

__all__ = ["save_probability_figure", "save_territory_figure"]


def _coronal(vol: Volume, y_mm: float, *, labels: bool) -> tuple[np.ndarray, list[float]]:
    """The coronal slice of ``vol`` nearest ``y_mm`` as ``(z, x)`` and its imshow extent."""
    ax = axial_volume(vol, labels=labels)
    a = np.asarray(ax.array)
    g = ax.grid
    nz, ny, nx = a.shape
    ys = g.index_to_lps(np.array([[0, j, 0] for j in range(ny)], float))[:, 1]
    j = int(np.argmin(np.abs(ys - y_mm)))
    lo = g.index_to_lps(np.array([[0, j, 0]], float))[0]
    hi = g.index_to_lps(np.array([[nz - 1, j, nx - 1]], float))[0]
    return a[:, j, :], [lo[0], hi[0], lo[2], hi[2]]


def _zoom(ax, mask: np.ndarray, ext: list[float], pad_mm: float = 15.0) -> None:
    """Limit the axes to the box of ``mask`` (a slice shown with extent ``ext``) plus a pad."""
    if not mask.any():
        return
    nz, nx = mask.shape
    dx = (ext[1] - ext[0]) / max(nx - 1, 1)
    dz = (ext[3] - ext[2]) / max(nz - 1, 1)
    ii, jj = np.nonzero(mask)
    ax.set_xlim(ext[0] + jj.min() * dx - pad_mm, ext[0] + jj.max() * dx + pad_mm)
    ax.set_ylim(ext[2] + ii.min() * dz - pad_mm, ext[2] + ii.max() * dz + pad_mm)


def _title(ax, text: str) -> None:
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(text, 64)), fontsize=9)


def _weighted_y_mm(vol: Volume, weight: np.ndarray) -> float:
    idx = np.argwhere(weight)
    if idx.size == 0:
        idx = np.argwhere(np.ones(weight.shape, bool))
    pts = vol.grid.index_to_lps(idx.astype(float))
    w = np.asarray(weight, float)[tuple(idx.T)] if weight.dtype != bool else None
    return float(np.average(pts[:, 1], weights=w if w is not None and w.sum() > 0 else None))


def save_probability_figure(prob: Volume, path: str | Path, *, title: str,
                            target: np.ndarray | None = None) -> Path:  # fmt: skip
    """Coverage probability (0-1) on the coronal slice through its weighted centre.

    Contours at 0.5 and 0.95; ``target`` (a mask on ``prob``'s grid, e.g. the tumour plus
    its margin) outlined in white.
    """
    import matplotlib.pyplot as plt

    p = np.asarray(prob.array, float)
    y = _weighted_y_mm(prob, p)
    sl, ext = _coronal(prob, y, labels=False)
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    im = ax.imshow(sl, origin="lower", extent=ext, vmin=0.0, vmax=1.0, cmap="viridis")
    if sl.max() > 0.5:
        ax.contour(sl, levels=[0.5, 0.95], colors=["orange", "red"], extent=ext,
                   linewidths=1.0)  # fmt: skip
    if target is not None and np.any(target):
        t, _ = _coronal(prob.with_array(np.asarray(target, np.uint8)), y, labels=True)
        if t.any():
            ax.contour(t, levels=[0.5], colors="white", extent=ext, linewidths=1.0)
    _zoom(ax, sl > 0.01, ext)
    _title(ax, f"{title}; coronal slice y = {y:.0f} mm; contours p = 0.5 (orange), 0.95 (red)")
    ax.set_xlabel("x (mm, patient's left ->)")
    ax.set_ylabel("z (mm, superior ^)")
    fig.colorbar(im, ax=ax, label="probability of ablation")
    fig.tight_layout()
    return save_figure(fig, path)


def save_territory_figure(territories: Volume, path: str | Path, *,
                          segments_mm: Sequence[tuple[Sequence[float], Sequence[float]]],
                          tip_mm: Sequence[float] | None, chosen_labels: Sequence[int] = (),
                          tumour: np.ndarray | None = None,
                          title: str = "") -> Path:  # fmt: skip
    """Territory labels on the coronal slice through the catheter tip, the tree projected.

    ``segments_mm``: the tree's segments ``(start, end)`` in LPS mm, drawn projected onto the
    coronal plane; ``chosen_labels``: the territory labels of the chosen position, outlined
    in red; ``tumour`` (a mask on the territories' grid) outlined in white.
    """
    import matplotlib.pyplot as plt

    lab = np.asarray(territories.array)
    y = float(tip_mm[1]) if tip_mm is not None else _weighted_y_mm(territories, lab > 0)
    sl, ext = _coronal(territories, y, labels=True)
    fig, ax = plt.subplots(figsize=(6.0, 5.4))
    shown = np.ma.masked_equal(sl.astype(float), 0.0)
    ax.imshow(shown, origin="lower", extent=ext, cmap="tab20", interpolation="nearest")
    if len(chosen_labels):
        ch = np.isin(sl, list(chosen_labels))
        if ch.any():
            ax.contour(ch.astype(float), levels=[0.5], colors="red", extent=ext,
                       linewidths=1.2)  # fmt: skip
    if tumour is not None and np.any(tumour):
        t, _ = _coronal(territories.with_array(np.asarray(tumour, np.uint8)), y, labels=True)
        if t.any():
            ax.contour(t.astype(float), levels=[0.5], colors="white", extent=ext,
                       linewidths=1.0)  # fmt: skip
    for a, b in segments_mm:
        ax.plot([a[0], b[0]], [a[2], b[2]], color="black", lw=0.7, alpha=0.8)
    if tip_mm is not None:
        ax.plot([tip_mm[0]], [tip_mm[2]], marker="*", color="red", markersize=14,
                markeredgecolor="white", label="catheter tip")  # fmt: skip
        ax.legend(loc="lower right", fontsize=8)
    _zoom(ax, sl > 0, ext)
    _title(
        ax,
        f"{title}; coronal slice y = {y:.0f} mm: territories (colours), the chosen "
        "one (red), tumour (white), the tree projected (black)",
    )
    ax.set_xlabel("x (mm, patient's left ->)")
    ax.set_ylabel("z (mm, superior ^)")
    fig.tight_layout()
    return save_figure(fig, path)

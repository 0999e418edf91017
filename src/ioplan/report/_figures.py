"""Figure pieces shared by the reports: CT window, radiological orientation, saving.

Every slice ioplan draws is shown in the radiological convention whatever the file's
orientation: axial slices with the patient's right on the image left and anterior up,
coronal and sagittal slices with superior up. :func:`axial_volume` brings any volume to
the array order ``(z, y, x)`` with LPS-increasing axes (exactly, by flips and axis
permutations, when the grid is a signed permutation of the patient axes, as NIfTI's RAS
files are; by resampling when it is oblique), after which ``array[k]`` is an axial slice
ready for ``imshow``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ioplan.imaging import Grid, Volume, resample

__all__ = ["CT_WINDOW_HU", "axial_volume", "save_figure", "signed_permutation"]

#: Soft-tissue window for abdominal CT, width 400 HU and level 40 HU: the "abdomen"
#: preset of CT consoles (e.g. Hoang et al., "CT window settings", AJR 2010;194:W497,
#: doi:10.2214/AJR.09.3436, lists W400/L40-50 for soft tissue).
CT_WINDOW_HU = (40.0 - 200.0, 40.0 + 200.0)

_TOL = 1e-4  # direction cosines within this of 0 or +-1 count as axis-aligned


def signed_permutation(grid: Grid) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]] | None:
    """How the array axes map onto the patient axes, when they do exactly.

    Returns ``(lps_axis, flipped)``: array axis ``j`` runs along LPS axis
    ``lps_axis[j]`` (0 = x/L, 1 = y/P, 2 = z/S), towards decreasing LPS when
    ``flipped[j]``. None for an oblique grid.

    Examples
    --------
    >>> g = Grid((2, 3, 4), (1, 1, 1), (0, 0, 0), ((0, 0, -1), (0, -1, 0), (1, 0, 0)))
    >>> signed_permutation(g)  # RAS-like: x and y run the other way
    ((2, 1, 0), (False, True, True))
    """
    d = grid.direction_matrix
    axes, flips = [], []
    for j in range(3):
        col = d[:, j]
        a = int(np.argmax(np.abs(col)))
        if abs(abs(col[a]) - 1.0) > _TOL or np.abs(np.delete(col, a)).max() > _TOL:
            return None
        axes.append(a)
        flips.append(bool(col[a] < 0))
    if sorted(axes) != [0, 1, 2]:
        return None
    return tuple(axes), tuple(flips)  # type: ignore[return-value]


def axial_volume(volume: Volume, *, labels: bool = False, fill: float = 0.0) -> Volume:
    """``volume`` with identity direction: array ``(z, y, x)`` along increasing L, P, S.

    Exact (a view with flips and a transpose) for signed-permutation grids; an oblique
    grid is resampled onto an axis-aligned grid at its finest spacing (isotropic, at
    most ~20 M voxels), nearest neighbour when ``labels`` else linear, ``fill`` outside.
    """
    grid = volume.grid
    sp = signed_permutation(grid)
    if sp is not None:
        axes, flips = sp
        arr = np.asarray(volume.array)
        for j in range(3):
            if flips[j]:
                arr = np.flip(arr, axis=j)
        # new array axis (2 - lps axis) takes old axis j
        order = [axes.index(a) for a in (2, 1, 0)]
        arr = np.transpose(arr, order)
        corner = [0 if not flips[j] else grid.shape[j] - 1 for j in range(3)]
        origin = grid.index_to_lps(np.asarray(corner, float))
        spacing = tuple(grid.spacing_mm[j] for j in order)
        return Volume(arr, Grid(arr.shape, spacing, tuple(float(v) for v in origin)))
    corners = np.array(
        [[a, b, c] for a in (0, grid.shape[0] - 1) for b in (0, grid.shape[1] - 1)
         for c in (0, grid.shape[2] - 1)],
        float,
    )  # fmt: skip
    lps = grid.index_to_lps(corners)
    lo, hi = lps.min(axis=0), lps.max(axis=0)
    spacing = max(min(grid.spacing_mm), float(np.prod(hi - lo + 1.0) / 20e6) ** (1 / 3))
    shape = tuple(int(np.floor((hi[k] - lo[k]) / spacing)) + 1 for k in (2, 1, 0))
    target = Grid(shape, (spacing,) * 3, tuple(float(v) for v in lo))
    return resample(
        volume, target, interpolation="nearest" if labels else "linear", default_value=fill
    )


def save_figure(fig, path: str | Path, *, dpi: int = 100) -> Path:
    """Save a matplotlib figure (creating the folder) and close it; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

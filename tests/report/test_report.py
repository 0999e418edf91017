"""The HTML overview and its figure, for axis-aligned and oblique cases."""

from __future__ import annotations

import numpy as np
import pytest

from ioplan.anatomy import Case, Label
from ioplan.imaging import Grid, Volume
from ioplan.report import save_overview_figure, write_case_overview
from ioplan.report._overview import _axis_aligned


def test_overview_page_lists_labels_and_figure(tmp_path, small_case):
    page = write_case_overview(small_case, tmp_path)
    html = page.read_text()
    assert '<img src="figures/overview.png"' in html
    for name in ("liver", "tumor", "portal_vein", "ivc"):
        assert f"{name}</td>" in html
    assert (tmp_path / "figures" / "overview.png").stat().st_size > 10_000


def test_oblique_case_is_shown_in_patient_axes(tmp_path):
    """An oblique grid is resampled to LPS axes first; a sphere keeps its volume."""
    c, s_ = np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30))
    rot = ((c, -s_, 0.0), (s_, c, 0.0), (0.0, 0.0, 1.0))  # columns: z, y, x axes in LPS
    g = Grid((30, 30, 30), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), rot)
    pts = g.voxel_centres_lps()
    centre = g.index_to_lps((14.5, 14.5, 14.5))
    sphere = np.linalg.norm(pts - centre, axis=-1) <= 10.0
    labels = np.where(sphere, Label.TUMOR, Label.LIVER).astype(np.uint8)
    image = np.where(sphere, 50, 100).astype(np.int16)
    case = Case(Volume(image, g), Volume(labels, g), name="oblique")
    aligned = _axis_aligned(case)
    assert aligned.image.grid.is_axis_aligned()
    n_before = int(sphere.sum())
    n_after = int((aligned.labels.array == Label.TUMOR).sum())
    # same 1 mm voxels; nearest-neighbour resampling of a 10 mm sphere keeps its
    # voxel count within a few percent (surface voxels move in or out)
    assert n_after == pytest.approx(n_before, rel=0.05)
    png = save_overview_figure(case, tmp_path / "o.png")
    assert png.read_bytes()[:4] == b"\x89PNG"

"""Isotherm contours on the plan page: the label map against an analytic field, the route."""

from __future__ import annotations

import io

import numpy as np
import pytest

from ioplan.imaging import read_image
from ioplan.web._cases import ISOTHERMS_HEAT_C, isotherm_contours


def _sphere_field(n=41, h=1.0):
    """T = 37 + 40 (1 - r / 20 mm) on an n^3 grid: T >= 50 degC for r <= 13 mm, >= 60 for 8.5."""
    ax = (np.arange(n) - n // 2) * h
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    r = np.sqrt(x * x + y * y + z * z)
    return 37.0 + 40.0 * (1.0 - r / 20.0), r


def test_contours_lie_on_the_analytic_isotherm_radii():
    t, r = _sphere_field()
    lab = isotherm_contours(t, ISOTHERMS_HEAT_C, cold=False)
    for k, level in enumerate(ISOTHERMS_HEAT_C, start=1):
        radius = 20.0 * (1.0 - (level - 37.0) / 40.0)  # analytic isotherm radius (mm)
        on = r[lab == k]
        assert on.size > 0
        # contour voxels reached the level (r <= radius) and touch one that did not: within
        # one voxel diagonal (sqrt 3 h) inside the true surface
        assert on.max() <= radius + 1e-9
        assert on.min() >= radius - np.sqrt(3.0) - 1e-9
    # a surface, not a solid: far fewer voxels than the ball it bounds (4 pi r^2 vs 4/3 pi r^3)
    assert (lab == 1).sum() < 0.5 * (t >= ISOTHERMS_HEAT_C[0]).sum()


def test_cold_contours_use_minimum_temperature():
    t, r = _sphere_field()
    cold = 37.0 - (t - 37.0) * 3.0  # 37 at r = 20, down to -83 degC at the centre
    lab = isotherm_contours(cold, (0.0, -20.0, -40.0), cold=True)
    for k, level in enumerate((0.0, -20.0, -40.0), start=1):
        on = r[lab == k]
        assert on.size > 0 and np.all(cold[lab == k] <= level)


def test_no_level_reached_gives_no_contour_and_nan_is_not_reached():
    t = np.full((5, 5, 5), 37.0)
    t[2, 2, 2] = np.nan
    assert not isotherm_contours(t, ISOTHERMS_HEAT_C, cold=False).any()


def test_the_plan_route_serves_contours_of_the_plans_tmax(client, cases_dir):
    r = client.get("/api/cases/demo/plan/volumes/isotherms.nii.gz")
    assert r.status_code == 200, r.text
    path = cases_dir.parent / "isotherms-served.nii.gz"
    path.write_bytes(io.BytesIO(r.content).getvalue())
    served = read_image(path)
    tmax = read_image(cases_dir / "demo" / "plan" / "tmax.nii.gz")
    assert served.grid == tmax.grid
    lab = np.asarray(served.array)
    t = np.asarray(tmax.array)
    # every contour voxel of level k reached it; the 60 degC contour exists in a plan whose
    # zone (Omega >= 1) is non-empty, since coagulation needs well over 50 degC for minutes
    for k, level in enumerate(ISOTHERMS_HEAT_C, start=1):
        assert (lab == k).any()
        assert np.all(t[lab == k] >= level)


@pytest.mark.parametrize("path", ["/cases/demo/plan"])
def test_the_plan_page_carries_the_isotherm_legend(client, path):
    html = client.get(path).text
    assert 'id="isotherm-legend"' in html and "50 degC" in html and "60 degC" in html

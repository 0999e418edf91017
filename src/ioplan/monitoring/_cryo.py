"""Cryoablation on MR: the ice ball, its growth, and the lethal isotherms inside it.

Frozen tissue gives no MR signal: the ice ball is the signal void (magnitude below a
fraction of the baseline's) connected to the probes. Its edge is the 0 degC isotherm.
The -20 and -40 degC isotherms cannot be seen; they are estimated with the engine: a
simulation of one probe (the calibrated catalogue probe) gives, as the ice grows, how far
inside the 0 degC edge each isotherm lies. For the observed ice ball, the depth of the
edge at the probes (its inscribed radius there) picks the matching moment of the
simulation, so the simulated 0 degC edge matches the observed one, and the isotherms are
the voxels deeper inside the ice than that moment's distances.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.errors import InputError
from ioplan.imaging import Grid

__all__ = ["IceBall", "isotherm_depths", "measure_ice"]

#: Magnitude below this fraction of the baseline's counts as signal void (ice). Frozen
#: tissue has T2* of microseconds and gives essentially no signal at clinical echo times.
VOID_FRACTION = 0.3


@lru_cache(maxsize=4)
def isotherm_depths(applicator_id: str = "cryo-2.4mm", spacing_mm: float = 2.0,
                    perfusion_per_s: float | None = None):  # fmt: skip
    """Engine table: (ice radius, depth of -20 degC, depth of -40 degC) in mm, over a freeze.

    One probe in perfused liver (the tissue table's perfusion, or ``perfusion_per_s`` in
    1/s: 0 for a gel phantom), 15 min freeze; in the plane through the middle of the freeze
    zone, each isotherm's equivalent radius sqrt(area / pi).
    """
    from ioplan.devices import applicator
    from ioplan.physics import CryoProtocol, SimulationConfig, simulate

    app = applicator(applicator_id)
    if app.modality != "cryo":
        raise InputError(f"{applicator_id} is not a cryoprobe")
    times = tuple(float(t) for t in range(60, 901, 60))
    res = simulate(
        SimulationConfig(
            applicator=app, protocol=CryoProtocol.parse("freeze:900"), tissue="liver",
            spacing_mm=spacing_mm, lethal_temperature_c=-40.0, snapshot_times_s=times,
            perfusion_per_s=perfusion_per_s,
        )
    )  # fmt: skip
    g = res.grid
    d = np.asarray(res.settings["direction"])
    # the mid-plane of the freeze zone, across the probe (the block's probe runs along an axis)
    axis = int(np.argmax(np.abs(d)))
    mid_mm = -(app.tip_offset_mm + 0.5 * app.freeze_zone_length_mm) * np.sign(d[axis])
    centre_idx = g.lps_to_index([0.0, 0.0, 0.0])
    lps_axis = [2, 1, 0][axis]  # LPS component -> array axis of an axial grid
    k = round(float(centre_idx[lps_axis]) + mid_mm / g.spacing_mm[lps_axis])
    area_vox = float(np.prod([s for a, s in enumerate(g.spacing_mm) if a != lps_axis]))
    rows = []
    for t in times:
        tmin = -40.0 - res.snapshot_fields[f"{t:g}"]
        plane = np.take(tmin, k, axis=lps_axis)
        radii = [float(np.sqrt((plane <= iso).sum() * area_vox / np.pi)) for iso in (0, -20, -40)]
        rows.append((radii[0], radii[0] - radii[1], radii[0] - radii[2]))
    return tuple(rows)


@dataclass
class IceBall:
    """The ice ball on one frame (mm, mL, mL/min)."""

    mask: np.ndarray
    volume_ml: float
    equivalent_diameter_mm: float
    edge_depth_at_probes_mm: float
    growth_ml_per_min: float | None
    core_20: np.ndarray
    core_40: np.ndarray
    depth_20_mm: float
    depth_40_mm: float
    minus40_volume_ml: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "volume_ml": round(self.volume_ml, 3),
            "equivalent_diameter_mm": round(self.equivalent_diameter_mm, 2),
            "edge_depth_at_probes_mm": round(self.edge_depth_at_probes_mm, 2),
            "growth_ml_per_min": None
            if self.growth_ml_per_min is None
            else round(self.growth_ml_per_min, 3),
            "minus20_depth_mm": round(self.depth_20_mm, 2),
            "minus40_depth_mm": round(self.depth_40_mm, 2),
            "minus40_volume_ml": round(self.minus40_volume_ml, 3),
        }


def measure_ice(
    magnitude: np.ndarray, baseline_magnitude: np.ndarray, grid: Grid, probes_index: np.ndarray,
    *, previous: IceBall | None = None, dt_s: float | None = None,
    applicator_id: str = "cryo-2.4mm",
) -> IceBall:  # fmt: skip
    """Segment the ice ball (signal void connected to the probes) and estimate isotherms."""
    mag = np.asarray(magnitude, float)
    base = np.asarray(baseline_magnitude, float)
    if mag.shape != base.shape or mag.shape != tuple(grid.shape):
        raise InputError("magnitude, baseline and grid shapes differ")
    probes = np.atleast_2d(np.asarray(probes_index, int))
    if probes.shape[1] != 3 or np.any(probes < 0) or np.any(probes >= np.asarray(mag.shape)):
        raise InputError("probe positions must be voxel indices inside the image")
    signal = base > 0.2 * float(np.percentile(base, 99))
    void = (mag < VOID_FRACTION * base) & signal
    # the ice is the void that touches a probe: its voxel or one beside it (the probe's
    # own voxel may keep some signal, or be void at baseline already). No void there, no
    # ice: a heating series or a probe not yet freezing has none
    near = np.zeros(void.shape, bool)
    near[tuple(probes.T)] = True
    near = ndimage.binary_dilation(near, structure=np.ones((3, 3, 3), bool))
    lab, _ = ndimage.label(void)
    keep = np.unique(lab[near])
    ice = np.isin(lab, keep[keep > 0])
    if ice.any():
        # a probe with ice at or beside it lies in the ice itself
        for i, j, k in probes:
            if ice[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2, max(k - 1, 0):k + 2].any():
                ice[i, j, k] = True
        ice = ndimage.binary_fill_holes(ice)
    vox_ml = grid.voxel_volume_ml
    vol = float(ice.sum()) * vox_ml
    if vol == 0.0:
        empty = np.zeros(ice.shape, bool)
        growth = None
        if previous is not None and dt_s and dt_s > 0:
            growth = -previous.volume_ml / (dt_s / 60.0)
        return IceBall(mask=ice, volume_ml=0.0, equivalent_diameter_mm=0.0,
                       edge_depth_at_probes_mm=0.0, growth_ml_per_min=growth, core_20=empty,
                       core_40=empty, depth_20_mm=0.0, depth_40_mm=0.0,
                       minus40_volume_ml=0.0)  # fmt: skip
    inside = ndimage.distance_transform_edt(ice, sampling=grid.spacing_mm)
    r0 = float(np.mean(inside[tuple(probes.T)]))
    table = np.array(isotherm_depths(applicator_id, 2.0))
    # one row per distinct ice radius (the 2 mm simulation grows in steps), depths averaged
    r_u, inv = np.unique(table[:, 0], return_inverse=True)
    cnt = np.bincount(inv)
    d20 = float(np.interp(r0, r_u, np.bincount(inv, table[:, 1]) / cnt))
    d40 = float(np.interp(r0, r_u, np.bincount(inv, table[:, 2]) / cnt))
    growth = None
    if previous is not None and dt_s and dt_s > 0:
        growth = (vol - previous.volume_ml) / (dt_s / 60.0)
    core20 = ice & (inside > d20) if d20 < r0 else np.zeros_like(ice)
    core40 = ice & (inside > d40) if d40 < r0 else np.zeros_like(ice)
    return IceBall(
        mask=ice,
        volume_ml=vol,
        equivalent_diameter_mm=2.0 * (3.0 * vol * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0),
        edge_depth_at_probes_mm=r0,
        growth_ml_per_min=growth,
        core_20=core20,
        core_40=core40,
        depth_20_mm=d20,
        depth_40_mm=d40,
        minus40_volume_ml=float(core40.sum()) * vox_ml,
    )

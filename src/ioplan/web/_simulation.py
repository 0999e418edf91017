"""Simulations for the web: request models, the interactive preview and the verified job.

Both call :func:`ioplan.physics.simulate`, the same engine as ``ioplan simulate``, and
return its ``to_dict()`` document (the keys of ``ioplan simulate --json``). The preview
runs each applicator alone on a coarse grid (4 mm by default: about 1-3 s on two busy
cores) and joins the zones on one grid for the viewer, with the needles drawn in; the job
runs one simulation of every placement together at the spacing asked for.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ioplan.errors import InputError

__all__ = [
    "PlanRequest",
    "PreviewRequest",
    "Setting",
    "SimulateRequest",
    "check_simulation",
    "preview_zone",
    "run_simulation",
]

Point = tuple[float, float, float]


class Needle(BaseModel):
    """One applicator's position: its tip and entry point (LPS mm), or tip and direction."""

    model_config = ConfigDict(extra="forbid")
    tip_mm: Point
    entry_mm: Point | None = None
    direction: Point | None = Field(
        default=None, description="Insertion direction (towards the tip); default entry -> tip."
    )

    def placement(self):
        """The engine's :class:`ioplan.physics.Placement`."""
        from ioplan.physics import Placement

        if self.direction is not None:
            d = self.direction
        elif self.entry_mm is not None:
            d = tuple(float(v) for v in np.subtract(self.tip_mm, self.entry_mm, dtype=float))
            if not any(d):
                raise InputError("entry_mm equals tip_mm: the needle needs an entry point "
                                 "away from its tip (or a direction)")  # fmt: skip
        else:
            d = (0.0, 0.0, -1.0)
        return Placement(tuple(self.tip_mm), tuple(d))

    def entry(self, length_mm: float = 80.0) -> np.ndarray:
        """The entry point, or a point ``length_mm`` back along the direction."""
        if self.entry_mm is not None:
            return np.asarray(self.entry_mm, float)
        pl = self.placement()
        return np.asarray(pl.tip_mm) - length_mm * np.asarray(pl.direction)


class Setting(BaseModel):
    """One applicator model and its energy, at one or more positions (all on together)."""

    model_config = ConfigDict(extra="forbid")
    applicator: str = Field(description="Applicator id (`ioplan applicators`).")
    power_w: float | None = Field(default=None, description="W, (0, 300]; MW and RF.")
    duration_s: float | None = Field(default=None, description="s, (0, 3600]; MW and RF.")
    protocol: str | None = Field(default=None, description="Cryo, e.g. freeze:600,thaw:300,...")
    needles: list[Needle] = Field(min_length=1, max_length=8)


class SimulateRequest(Setting):
    """A verified simulation (a job): the setting on the case at ``spacing_mm``."""

    spacing_mm: float = Field(default=2.0, description="Voxel size, 1-5 mm.")
    cooldown_s: float = Field(
        default=0.0,
        description="s, [0, 3600]; MW and RF: time with the power off after the heating; the "
        "zone is measured at its end (the zone at power off is a snapshot).",
    )


class PlanRequest(BaseModel):
    """An inverse plan (a job), as ``ioplan plan CASE --out CASE/plan``."""

    model_config = ConfigDict(extra="forbid")
    modality: str = Field(default="mwa", description="mwa, rfa or cryo.")
    applicator: str | None = Field(default=None, description="Default: one per modality.")
    margin_mm: float | None = Field(default=None, description="Ablative margin (mm).")
    tumor: int = Field(default=0, ge=0, description="Which tumour of the case (0: the first).")
    spacing_mm: float = Field(default=2.0, description="Simulation voxel size, 1-4 mm.")
    max_applicators: int | None = Field(default=None, ge=1, le=8)
    robust_samples: int = Field(default=200, ge=10, le=100000)
    time_budget_s: float | None = Field(default=None, ge=0, le=3600)
    overwrite: bool = Field(default=False, description="Replace the case's earlier plan.")

    def config(self):
        """The planner's :class:`ioplan.planning.PlanConfig` (checked)."""
        from ioplan.planning import SPACING_RANGE_MM, PlanConfig, check_in_range

        check_in_range(self.spacing_mm, *SPACING_RANGE_MM, "spacing_mm")
        cfg = PlanConfig(
            modality=self.modality,
            applicator_id=self.applicator,
            margin_mm=self.margin_mm,
            tumour_index=self.tumor,
            spacing_mm=self.spacing_mm,
            max_applicators=self.max_applicators,
            robust_samples=self.robust_samples,
            time_budget_s=self.time_budget_s,
        )
        cfg.applicator()
        return cfg


class PreviewRequest(BaseModel):
    """The interactive preview: each setting simulated alone on a coarse grid."""

    model_config = ConfigDict(extra="forbid")
    settings: list[Setting] = Field(min_length=1, max_length=8)
    spacing_mm: float = Field(default=4.0, description="Voxel size, 2-5 mm.")
    method: str = Field(
        default="engine",
        description="engine (the bioheat engine, seconds) or chart (an ellipsoid from the "
        "manufacturer's zone chart, interpolated in power and time: instant, no tissue).",
    )


def _config(case, s: Setting, spacing_mm: float, margin_mm: float):
    from ioplan.devices import applicator
    from ioplan.physics import CryoProtocol, SimulationConfig

    return SimulationConfig(
        applicator(s.applicator),
        power_w=s.power_w,
        duration_s=s.duration_s,
        cooldown_s=getattr(s, "cooldown_s", 0.0),
        protocol=CryoProtocol.parse(s.protocol) if s.protocol else None,
        case=case,
        tissue=None,
        placements=tuple(n.placement() for n in s.needles),
        spacing_mm=spacing_mm,
        margin_mm=margin_mm,
    )


def _check_spacing(value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise InputError(f"spacing_mm must be {lo:g}-{hi:g} mm, got {value}")


def check_simulation(case, req: SimulateRequest) -> None:
    """Refuse what the engine would refuse (applicator, power, time, spacing) before queuing."""
    _check_spacing(req.spacing_mm, 1.0, 5.0)
    _config(case, req, req.spacing_mm, 40.0)


def run_simulation(case, req: SimulateRequest, progress=None) -> tuple[dict[str, Any], Any]:
    """One full simulation of ``req`` on ``case``; returns its document and its result.

    ``progress(fraction, message)`` is called as the simulated time advances.
    """
    from ioplan.physics import simulate

    _check_spacing(req.spacing_mm, 1.0, 5.0)
    cfg = _config(case, req, req.spacing_mm, 40.0)
    total = cfg.total_duration_s

    def on_time(t_s: float) -> None:
        if progress is not None:
            progress(t_s / total if total > 0 else 1.0, f"simulating {t_s:.0f}/{total:.0f} s")

    result = simulate(cfg, progress=on_time)
    return result.to_dict(), result


def chart_zone(applicator_id: str, power_w: float, duration_s: float) -> dict[str, Any]:
    """Length, width and centre offset (mm) of the manufacturer's zone at a setting.

    Inside the chart: :func:`ioplan.devices.chart_zone` (linear in power, in ln time).
    Outside it, so that dragging a setting past the chart still shows an ellipsoid: the
    nearest row (powers and times scaled by the chart's largest), marked
    ``outside_chart``.
    """
    from ioplan.devices import applicator
    from ioplan.devices import chart_zone as read_chart

    app = applicator(applicator_id)
    rows = app.chart_rows()
    if not rows:
        raise InputError(f"{applicator_id} has no zone chart: use method engine")
    keys = ("length_mm", "width_mm", "centre_offset_mm")
    z = read_chart(app, power_w, duration_s)
    if z is not None:
        return {k: getattr(z, k) for k in keys} | {
            "interpolated": z.interpolated, "outside_chart": False,
        }  # fmt: skip
    pts = np.asarray([(r["power_w"], r["duration_s"]) for r in rows], float)
    scale = pts.max(axis=0)
    near = rows[int(np.argmin(np.linalg.norm(pts / scale - np.array([power_w, duration_s]) / scale,
                                             axis=1)))]  # fmt: skip
    return {k: float(near[k]) for k in keys} | {"interpolated": False, "outside_chart": True}


def _chart_zones(req: PreviewRequest) -> list[dict[str, Any]]:
    docs = []
    for s in req.settings:
        if s.protocol is not None:
            raise InputError(f"{s.applicator}: a cryoprobe has no manufacturer's chart here; "
                             "preview it with method engine")  # fmt: skip
        if s.power_w is None or s.duration_s is None:
            raise InputError(f"{s.applicator}: the chart preview needs power_w and duration_s")
        # the engine's ranges (Setting's field descriptions), checked here too: the chart
        # path runs no engine (1e308 W used to end in an internal error)
        for name, v, hi, unit in (("power_w", s.power_w, 300.0, "W"),
                                  ("duration_s", s.duration_s, 3600.0, "s")):  # fmt: skip
            if not (math.isfinite(v) and 0.0 < v <= hi):
                raise InputError(f"{name} must be in (0, {hi:g}] {unit}, got {v:g}")
        z = chart_zone(s.applicator, s.power_w, s.duration_s)
        docs.append({"applicator": s.applicator, "power_w": s.power_w,
                     "duration_s": s.duration_s, "zone": z})  # fmt: skip
    return docs


def _ellipsoid(grid, tip, direction, z) -> np.ndarray:
    """Voxels of ``grid`` inside the chart's ellipsoid around the needle."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    centre = np.asarray(tip, float) - z["centre_offset_mm"] * d
    a, b = 0.5 * z["length_mm"], 0.5 * z["width_mm"]
    idx = np.indices(grid.shape).reshape(3, -1).T.astype(float)
    rel = grid.index_to_lps(idx) - centre
    along = rel @ d
    across2 = np.einsum("ij,ij->i", rel, rel) - along**2
    return ((along / a) ** 2 + across2 / b**2 <= 1.0).reshape(grid.shape)


def preview_zone(case, req: PreviewRequest, out: Path, *, cache=None) -> dict[str, Any]:
    """Simulate each setting alone on a coarse grid; write the joined zone to ``out``.

    The NIfTI at ``out`` holds 1 where a zone is and 2 along each needle (entry to tip),
    on an axis-aligned grid of ``spacing_mm`` around them all. ``cache`` (a dict, optional)
    keeps each setting's result by its JSON: dragging one needle re-simulates that one
    only. Returns ``{"results": [the simulate document of each setting], "zone_volume_ml":
    ..., "spacing_mm": ...}``.
    """
    from ioplan.imaging import Grid, Volume, write_nifti
    from ioplan.physics import simulate

    _check_spacing(req.spacing_mm, 2.0, 5.0)
    if req.method not in ("engine", "chart"):
        raise InputError(f"method must be engine or chart, got {req.method!r}")
    sp = float(req.spacing_mm)
    if req.method == "chart":
        return _chart_preview(req, out, sp)
    from ioplan.devices import applicator
    from ioplan.physics import cryo_resolved_spacing_mm

    results = []
    for s in req.settings:
        # a cryoprobe is simulated on voxels fine enough to resolve it (on the coarse
        # preview grid its lethal zone vanished: 4 mm, 1.5 mm probe); its zone is drawn
        # on the preview grid as the others'
        app = applicator(s.applicator)
        cryo = app.modality == "cryo"
        sim_sp = min(sp, cryo_resolved_spacing_mm(app.diameter_mm)) if cryo else sp
        key = (id(case), sim_sp, s.model_dump_json())
        result = cache.get(key) if cache is not None else None
        if result is None:
            result = simulate(_config(case, s, sim_sp, 15.0))
            if cache is not None:
                cache[key] = result
        results.append(result)
    lines = [(n.entry(), np.asarray(n.tip_mm, float)) for s in req.settings for n in s.needles]
    # a grid around every zone and every needle
    points = [p for line in lines for p in line]
    for r in results:
        points.extend(r.grid.bounds_lps())
    lo = np.min(points, axis=0) - sp
    hi = np.max(points, axis=0) + sp
    # on the first zone's voxel lattice, so that its voxels move over whole (not half) voxels
    anchor = np.asarray(results[0].grid.origin_mm, float)
    lo = anchor - np.ceil((anchor - lo) / sp) * sp
    shape_xyz = np.ceil((hi - lo) / sp).astype(int) + 1
    grid = Grid(tuple(int(v) for v in shape_xyz[::-1]), (sp, sp, sp), tuple(float(v) for v in lo))
    from ioplan.web._cases import rasterise_lines

    zone = np.zeros(grid.shape, bool)
    for r in results:
        idx = np.argwhere(np.asarray(r.zone_mask) > 0)
        if idx.size:
            pos = grid.lps_to_index(r.grid.index_to_lps(idx.astype(float)))
            ij = np.floor(pos + 0.5).astype(int)  # nearest voxel (no round-half-to-even)
            ok = np.all((ij >= 0) & (ij < np.asarray(grid.shape)), axis=1)
            ij = ij[ok]
            zone[ij[:, 0], ij[:, 1], ij[:, 2]] = True
    mask = zone.astype(np.uint8)
    mask[rasterise_lines(grid, lines) > 0] = 2  # the needles drawn over the zone
    write_nifti(Volume(mask, grid), out, overwrite=True)
    return {
        "method": "engine",
        "spacing_mm": sp,
        # the joined zone on the preview grid (zones that overlap are counted once)
        "zone_volume_ml": round(float(zone.sum()) * sp**3 / 1000.0, 3),
        "results": [r.to_dict() for r in results],
    }


def _chart_preview(req: PreviewRequest, out: Path, sp: float) -> dict[str, Any]:
    """The chart's ellipsoids around the needles, on a grid of ``sp`` (no engine run)."""
    from ioplan.imaging import Grid, Volume, write_nifti
    from ioplan.web._cases import rasterise_lines

    docs = _chart_zones(req)
    needles = [(n, doc["zone"]) for s, doc in zip(req.settings, docs, strict=True)
               for n in s.needles]  # fmt: skip
    lines = [(n.entry(), np.asarray(n.tip_mm, float)) for n, _ in needles]
    reach = max(max(z["length_mm"], z["width_mm"]) + z["centre_offset_mm"] for _, z in needles)
    points = np.asarray([p for line in lines for p in line])
    lo = points.min(axis=0) - reach - sp
    hi = points.max(axis=0) + reach + sp
    shape_xyz = np.ceil((hi - lo) / sp).astype(int) + 1
    grid = Grid(tuple(int(v) for v in shape_xyz[::-1]), (sp, sp, sp), tuple(float(v) for v in lo))
    zone = np.zeros(grid.shape, bool)
    for n, z in needles:
        pl = n.placement()
        zone |= _ellipsoid(grid, pl.tip_mm, pl.direction, z)
    mask = zone.astype(np.uint8)
    mask[rasterise_lines(grid, lines) > 0] = 2
    write_nifti(Volume(mask, grid), out, overwrite=True)
    return {
        "method": "chart",
        "spacing_mm": sp,
        "zone_volume_ml": round(float(zone.sum()) * sp**3 / 1000.0, 3),
        "results": docs,
    }

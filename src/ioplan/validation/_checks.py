"""Published figures beyond the microwave charts: cryo isotherms, RF vs perfusion, heat sink.

Each check simulates the published set-up, measures the same quantity, and
compares it with the published value and its tolerance (the issue's goals).
Sources are in shared/validation/README.md and named in each check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from ioplan.devices import Applicator, applicator
from ioplan.errors import InputError
from ioplan.validation._zones import ex_vivo_start_c

__all__ = [
    "CHECKS",
    "CheckResult",
    "calibrate_cryo_cooling_power",
    "cryo_lethal_diameter_mm",
    "ringe_radius_bound_mm",
    "run_checks",
]

#: Littrup et al., JVIR 2009;20:1343 (PMC2762356): agar phantom at 39 degC, 15 min freeze,
#: lethal ice = below -30 degC; mean lethal diameters at 2 cm probe spacing (2.4 mm probes).
LITTRUP_LETHAL_C = -30.0
LITTRUP_BASELINE_C = 39.0
LITTRUP_FREEZE_S = 900.0
LITTRUP_DIAMETER_MM = {1: 12.0, 2: 33.0, 3: 41.0, 4: 49.0}
LITTRUP_SPACING_MM = 20.0
#: 1.7 mm probes: lethal diameters 84 % of the 2.4 mm probes' (same paper).
LITTRUP_SMALL_PROBE_RATIO = 0.84
#: Littrup 2009 (abstract): lethal ice made 13, 46, 51 and 56 % of the ice ball's surface
#: area for 1-4 probes, 39 degC phantom, 15 min. The areas are the circles of the measured
#: diameters, (d_lethal / d_ice)^2: the same abstract gives the 1.7 mm probes' lethal
#: "surface areas and diameters" as 71 % and 84 % of the 2.4 mm probes', and 0.84^2 = 0.71
#: (isotherms were located by thermocouples 0.5-1.5 cm from the probes, not segmented on a
#: section). Until session 38 the check counted voxels on the widest section instead; that
#: count is kept in each row's details (``section_voxel_share``).
LITTRUP_LETHAL_AREA_FRACTION = {1: 0.13, 2: 0.46, 3: 0.51, 4: 0.56}
#: The phantom: water-agar gel, which freezes as water does (agar 1-2 % by mass), not as
#: liver (whose -8 to -1 degC mushy zone and 250 kJ/kg latent heat the engine's tissue
#: table holds). Water and ice Ih, SI units, 1000 kg/m^3 for every phase (a voxel keeps
#: its mass). Sources: CRC Handbook of Chemistry and Physics (thermal conductivity and
#: specific heat of water and ice Ih; latent heat of fusion 333.6 kJ/kg); that water-agar
#: gel conducts as water and ice do from room temperature to -60 degC: Campagnoli &
#: Giaretto, Int J Heat Technol 2020;38(3):583, DOI 10.18280/ijht.380302 (abstract seen,
#: its figures not). Textbook values, not checked against a stored copy this session.
AGAR_GEL_PROPERTIES = {
    "k_w_m_k": 0.60,  # water at 20-40 degC: 0.60-0.63 W/m/K
    "c_vol_j_m3_k": 4.18e6,  # water: 4180 J/kg/K x 1000 kg/m^3
    # ice Ih: 2.2 W/m/K at 0 degC, 2.4 at -20, 2.6 at -40: the -20 degC value, the middle
    # of the 0 to -40 degC band the checks measure (the engine takes one frozen value)
    "k_frozen_w_m_k": 2.4,
    "c_vol_frozen_j_m3_k": 1.95e6,  # ice: 2050 J/kg/K at 0 degC, 1950 at -20 degC
    "k_mushy_w_m_k": 1.5,  # about the mean of water and ice over the freezing interval
    "c_vol_mushy_j_m3_k": 3.07e6,  # mean of water and ice
    "latent_j_m3": 3.29e8,  # 333.6 kJ/kg x 0.985 (agar 1-2 % by mass) x 1000 kg/m^3
    # water freezes at 0 degC and 1-2 % agar hardly lowers it; the enthalpy method needs a
    # finite interval: 1 K below 0 degC
    "solidus_c": -1.0,
    "liquidus_c": 0.0,
    "perfusion_w_m3_k": 0.0,
}
#: Sprenkle et al., J Endourol 2010;24(9):1503 (gelatin at 25 degC, argon): firing several
#: probes at once did not change each probe's final temperature or cooling rate
#: (p > 0.7). Every probe of an array therefore keeps the single probe's temperature.
#: PMC4850244: the -40 degC isotherm lies about 1 cm inside the 0 degC ice edge.
ISO40_INSIDE_EDGE_MM = 10.0
#: Huang et al., Acad Radiol 2012;19(8): SAD (cm) = -0.044 x + 3.925, x in mL/min/100 g. Why the
#: model's slope at power off is shallower (figures of sessions 31-39, before damage at body
#: temperature stopped counting in session 40: widths now about 1 mm smaller; issue 19; 2 mm,
#: 200 W, 12 min, the RF electrode and its cooled shaft as cut-cell cylinders since commit
#: edf2a26): -0.242 (staircase before: -0.228, 1 mm -0.213). Zone
#: width at 0 / 10 / 30 / 50 / 100 / 200 mL/min/100 g: 54.9 / 49.4 / 43.2 / 39.7 / 34.1 / 28.4 mm
#: with the same energy (19.6-20.9 kJ): the Pennes effect is concave in the flow (local slope -0.55
#: at 0-10, -0.11 at 50-100), as expected when the perfusion length sqrt(k / (w rho_b c_b)) (8.7 mm
#: at 10, 3.9 mm at 50) is set against the 12-min diffusion length sqrt(alpha t) (about 10 mm).
#: Huang's 17.6 mm drop from 10 to 50 takes the model's Pennes flow from 10 to about 140. Not the
#: zone size: a 4-min run matches Huang at 10 (width 33.1 mm, 25.5 ml against 34.9 mm, 26.0 ml) and
#: gives -0.117 (28.4 mm, 18.4 ml at 50 against 17.3 mm, 3.8 ml). Not the generator (target-
#: temperature control -0.224, no 100 V limit -0.232), nor the criterion (the 50 and 60 degC
#: isotherms: -0.19 and -0.11), nor the grid, nor a perfusate at room temperature (block and
#: perfusate at 20 degC, session 38: widths 31.6 / 26.1 / 22.8 mm, -0.22); no perfusion stop in
#: coagulated tissue: -0.274 (staircase, a kernel edit, not kept). Nor the generator's power (2 mm,
#: flows 10 and 50 only): 40 W cap -0.242 (14 pulses, 19 kJ), a constant 25 W with no roll-off
#: -0.272 (48.1 / 37.2 mm, 18 kJ); a constant 12 W (8.6 kJ) matches Huang at 10 (35.4 mm against
#: 34.9) and still gives -0.249 (25.5 mm at 50 against 17.3); the unit conversion x / 100 * 1.079 /
#: 60 (1/s) is Huang's mL/min/100 g per mL of liver. Pennes' sink (blood leaves each voxel at its
#: temperature) is already the most heat a given flow of 37 degC blood can take from the voxels it
#: perfuses; even 2.5 times the nominal flow gives only -0.30 (12 W) and -0.32 (200 W), and the
#: model's dependence stays concave where Huang's is linear. Session 56, on the current model
#: (cut-cell electrode, sub-voxel perfusion share), perfusion never stopping (a kernel edit, not
#: kept; Huang's blood was heparinised, so clotting did not stop it, and Schutt & Haemmerich, Med
#: Phys 2008;35(8):3462, found the perfusion model among the largest effects on RF zone size):
#: 44.3 / 31.6 mm at 10 / 50 (stop at Omega = 1: 47.4 / 37.2 mm), slope -0.32, the generator
#: then delivering 21.7 / 26.3 kJ (19.7 / 20.4). Untested hypotheses: the flow was not
#: uniform (the perfused parts of the liver took more than the mean per 100 g), and heat also left
#: by convection in the portal branches near the electrode, which a homogeneous Pennes sink does not
#: carry.
HUANG_SLOPE_MM_PER_UNIT = -0.44
HUANG_FLOWS = (10.0, 30.0, 50.0)
HUANG_HEATING_S = 720.0
#: Session 40: Huang's zones were dissected after the ablation, and a perfused liver at 37
#: degC cools slowly (at 10 mL/min/100 g the perfusion time constant is 9 min), so the
#: check also measures the zone after the power is off, with the perfusion on, until the
#: tissue is back near 37 degC. 2 mm, slope after 0 / 5 / 15 / 30 / 60 min off: -0.248 /
#: -0.331 / -0.416 / -0.465 / -0.495 (the hottest voxel at 30 min: 38.8 / 37.1 / 37.0
#: degC at 10 / 30 / 50); the same zones by thermal dose (CEM43 >= 240 min) instead of
#: Arrhenius: -0.19 / -0.22 / -0.23 / -0.23 / -0.23. The difference is the damage model at
#: 40-55 degC (liver Arrhenius: Omega = 1 in 4.7 min at 45 degC; CEM43: 60 min), not a
#: fitted parameter: see the check's caveat.
HUANG_COOLDOWN_S = 1800.0
LIVER_DENSITY_G_ML = 1.079  # IT'IS (shared/validation/README.md section 5)


@dataclass(frozen=True)
class CheckResult:
    """One published figure: what was measured, the reference, and whether the goal is met."""

    name: str
    measured: float
    reference: float
    unit: str
    goal: str
    met: bool
    source: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record."""
        return {
            "name": self.name,
            "measured": round(self.measured, 3),
            "reference": self.reference,
            "unit": self.unit,
            "goal": self.goal,
            "met": self.met,
            "source": self.source,
            "details": self.details,
        }


def _cryo_run(
    app: Applicator,
    n: int,
    spacing_mm: float,
    iso: tuple[float, ...],
    cooling_power_w: float | None = None,
):
    """Littrup's set-up: ``n`` probes 2 cm apart in 39 degC agar gel, 15 min freeze.

    ``cooling_power_w``: per probe; None: the device's calibrated value, inf: none (the
    probe held at its temperature).
    """
    from ioplan.physics import CryoProtocol, SimulationConfig, simulate

    cfg = SimulationConfig(
        applicator=app,
        protocol=CryoProtocol.parse(f"freeze:{LITTRUP_FREEZE_S:g}"),
        tissue="liver",
        perfusion_per_s=0.0,
        spacing_mm=spacing_mm,
        array=n,
        spacing_between_mm=LITTRUP_SPACING_MM,
        lethal_temperature_c=LITTRUP_LETHAL_C,
        initial_temperature_c=LITTRUP_BASELINE_C,
        tissue_properties=tuple(AGAR_GEL_PROPERTIES.items()),
        cryo_cooling_power_w=cooling_power_w,
    )
    res = simulate(cfg)
    out = {}
    for t in iso:
        out[t] = _iso_width(res, t) if n == 1 else _iso_extent(res, t)
    return res, out


def _iso_extent(res, level_c: float) -> float:
    """Largest extent (mm) across the axis of the region that reached ``level_c``.

    For probe arrays the region is not round: this is its largest diameter over 36
    directions in the planes across the probes (voxel edges included, so +-1 voxel).
    """
    from ioplan.physics import zone_metrics

    centre = res.grid.index_to_lps((np.asarray(res.grid.shape) - 1) / 2.0)
    return zone_metrics(
        res.state.tmin_c <= level_c, res.grid, tuple(centre), tuple(res.settings["direction"])
    ).width_mm


def _iso_width(res, level_c: float) -> float:
    """Sub-voxel width of the region that reached ``level_c`` (block axis along z)."""
    from ioplan.physics import axial_zone

    field = (level_c - res.state.tmin_c).astype(np.float32)
    centre = res.grid.index_to_lps((np.asarray(res.grid.shape) - 1) / 2.0)
    tip = (float(centre[0]), float(centre[1]), float(res.settings["tips_mm"][0][2]))
    # arrays are centred on the axis through the block centre; measure across it
    z = axial_zone(field, res.grid, tip, tuple(res.settings["direction"]), 0.0)
    return z.width_mm


def cryo_lethal_diameter_mm(
    app: Applicator,
    *,
    n: int = 1,
    spacing_mm: float = 1.0,
    cooling_power_w: float | None = None,
) -> float:
    """Diameter (mm) of the -30 degC region after Littrup's 15 min freeze at 39 degC.

    ``cooling_power_w`` per probe (W); None: the device's calibrated value; inf: none.
    """
    _, w = _cryo_run(app, n, spacing_mm, (LITTRUP_LETHAL_C,), cooling_power_w)
    return w[LITTRUP_LETHAL_C]


def calibrate_cryo_cooling_power(
    app: Applicator,
    target_diameter_mm: float,
    *,
    spacing_mm: float = 2.0,
    log: Callable[[str], None] | None = None,
) -> tuple[float, float]:
    """Cooling power per probe (W) giving ``target_diameter_mm`` of lethal ice; and it.

    The probe's temperature floor stays ``app.probe_temperature_c``; a bracketing root
    search between 5 and 60 W (the lethal diameter grows with the cooling power).
    """
    from scipy.optimize import brentq

    if app.modality != "cryo":
        raise InputError(f"{app.id} is not a cryoprobe")

    seen: dict[float, float] = {}

    def miss(q: float) -> float:
        if q not in seen:
            seen[q] = cryo_lethal_diameter_mm(app, spacing_mm=spacing_mm, cooling_power_w=q)
            if log is not None:
                log(f"cooling power {q:.2f} W: lethal diameter {seen[q]:.2f} mm")
        return seen[q] - target_diameter_mm

    # 5-60 W brackets the published diameters (measured, 2.4 mm probe, 2 mm voxels: no
    # lethal ice at 5 W, 11.6 mm at 23.5 W, 24.5 mm at 148 W where it sits at its floor)
    lo, hi = 5.0, 60.0
    f_lo, f_hi = miss(lo), miss(hi)
    if f_lo > 0:
        return lo, f_lo + target_diameter_mm
    if f_hi < 0:
        return hi, f_hi + target_diameter_mm
    q = float(brentq(miss, lo, hi, xtol=0.05))
    return q, miss(q) + target_diameter_mm


def _area_fraction(res, lethal_c: float, edge_c: float = 0.0) -> float:
    """Lethal / ice-ball voxels on the cross-section where the ice ball is widest.

    The slice across the (block's z) axis with the most voxels at or below ``edge_c``. Not
    Littrup's measure (circles of the diameters, :data:`LITTRUP_LETHAL_AREA_FRACTION`):
    reported beside it, since for two probes the lethal region's waist between them makes
    the two differ (0.31 against 0.46 at 2 mm).
    """
    tmin = res.state.tmin_c
    ice = (tmin <= edge_c).sum(axis=(1, 2))
    k = int(np.argmax(ice))
    return float((tmin[k] <= lethal_c).sum()) / float(max(ice[k], 1))


def _check_cryo(spacing_mm: float, log) -> list[CheckResult]:
    app = applicator("cryo-2.4mm")
    out = []
    src = "Littrup et al., JVIR 2009;20:1343 (PMC2762356), agar at 39 degC, 15 min freeze"
    singles = {}
    for n in (1, 2, 3, 4):
        res, w = _cryo_run(app, n, spacing_mm, (LITTRUP_LETHAL_C, 0.0, -20.0, -40.0))
        d = w[LITTRUP_LETHAL_C]
        ref = LITTRUP_DIAMETER_MM[n]
        # Littrup's area share: circles of the lethal and ice-ball (0 degC) diameters
        frac = (d / w[0.0]) ** 2 if w[0.0] > 0 else 0.0
        if log is not None:
            log(
                f"cryo {n} probe(s): -30 degC diameter {d:.1f} mm (published {ref:g}); "
                f"lethal / ice-ball area {frac:.2f} (published {LITTRUP_LETHAL_AREA_FRACTION[n]})"
            )
        # issue 19: arrays within 5 mm; the single probe is the fitted figure
        tol = 2.0 if n == 1 else 5.0
        goal = f"within {tol:g} mm" + (
            " (cooling power fitted to it)" if n == 1 else " (predicted)"
        )
        details = {f"iso{t:g}_width_mm": round(w[t], 2) for t in (0.0, -20.0, -40.0)}
        details["cryo_cooling_power_w"] = res.settings.get("cryo_cooling_power_w")
        out.append(
            CheckResult(
                name=f"cryo-2.4mm x{n}: lethal (-30 degC) diameter at 15 min",
                measured=d,
                reference=ref,
                unit="mm",
                goal=goal,
                met=abs(d - ref) <= tol,
                source=src,
                details=details,
            )
        )
        # isotherm spacing: the lethal share of the ice ball's cross-section
        out.append(
            CheckResult(
                name=f"cryo-2.4mm x{n}: lethal (-30 degC) share of the ice ball's area",
                measured=frac,
                reference=LITTRUP_LETHAL_AREA_FRACTION[n],
                unit="area fraction",
                goal="within 0.10 (predicted; (d_lethal / d_ice)^2, as the paper's areas)",
                met=abs(frac - LITTRUP_LETHAL_AREA_FRACTION[n]) <= 0.10,
                source=src + " (abstract: 13, 46, 51, 56 % of the surface area)",
                details={
                    "lethal_diameter_mm": round(d, 2),
                    "ice_ball_diameter_mm": round(w[0.0], 2),
                    # lethal / ice voxels on the widest section (the reading until session 38)
                    "section_voxel_share": round(_area_fraction(res, LITTRUP_LETHAL_C), 3),
                },
            )
        )
        singles[n] = w
    # the -40 degC isotherm relative to the 0 degC edge (single probe, radius difference)
    gap = 0.5 * (singles[1][0.0] - singles[1][-40.0])
    out.append(
        CheckResult(
            name="cryo-2.4mm: -40 degC isotherm inside the 0 degC edge",
            measured=gap,
            reference=ISO40_INSIDE_EDGE_MM,
            unit="mm",
            goal="about 1 cm (within 3 mm)",
            met=abs(gap - ISO40_INSIDE_EDGE_MM) <= 3.0,
            source="PMC4850244 (17 G and 10 G needles in body-temperature gel)",
            details={},
        )
    )
    # synergy: the lethal area of 4 probes vs 4 separate single-probe areas
    a1 = np.pi * (0.5 * singles[1][LITTRUP_LETHAL_C]) ** 2
    a4 = np.pi * (0.5 * singles[4][LITTRUP_LETHAL_C]) ** 2
    out.append(
        CheckResult(
            name="cryo-2.4mm x4: lethal cross-section / 4 single-probe cross-sections",
            measured=a4 / (4 * a1) if a1 > 0 else float("inf"),
            reference=(49.0 / 12.0) ** 2 / 4,
            unit="ratio",
            goal="> 1 (synergy: much larger than the union)",
            met=a1 > 0 and a4 / (4 * a1) > 1.0,
            source=src,
            details={},
        )
    )
    return out


def _check_rf(spacing_mm: float, log) -> list[CheckResult]:
    from ioplan.physics import (
        CEM43_NECROSIS_MIN,
        SimulationConfig,
        simulate,
        zone_metrics,
    )

    app = applicator("cooled-rf-3cm")
    sads, cooled, cem_cooled, energies, pulses, t_end = [], [], [], [], [], []
    for x in HUANG_FLOWS:
        w = x / 100.0 * LIVER_DENSITY_G_ML / 60.0  # mL/min/100 g -> 1/s
        res = simulate(
            SimulationConfig(
                applicator=app,
                power_w=200.0,
                duration_s=HUANG_HEATING_S,
                cooldown_s=HUANG_COOLDOWN_S,
                tissue="liver",
                perfusion_per_s=w,
                spacing_mm=spacing_mm,
            )
        )
        sads.append(res.snapshots[f"{HUANG_HEATING_S:g}"].width_mm)  # at power off
        cooled.append(res.zone.width_mm)
        tip, d = tuple(res.settings["tips_mm"][0]), tuple(res.settings["direction"])
        cem = zone_metrics(res.state.cem43_min >= CEM43_NECROSIS_MIN, res.grid, tip, d)
        cem_cooled.append(cem.width_mm)
        energies.append(res.settings.get("rf_energy_delivered_j", float("nan")))
        pulses.append(res.settings.get("rf_pulses", 0))
        t_end.append(float(np.max(res.state.temperature_c)))
        if log is not None:
            log(
                f"RF cooled 3 cm, perfusion {x:g} mL/min/100 g: short axis {sads[-1]:.1f} mm "
                f"at power off, {cooled[-1]:.1f} mm after {HUANG_COOLDOWN_S / 60:g} min off, "
                f"{energies[-1] / 1e3:.1f} kJ, {pulses[-1]} pulses"
            )
    slope = float(np.polyfit(HUANG_FLOWS, sads, 1)[0])
    slope_cooled = float(np.polyfit(HUANG_FLOWS, cooled, 1)[0])
    slope_cem = float(np.polyfit(HUANG_FLOWS, cem_cooled, 1)[0])
    source = (
        "Huang et al., Acad Radiol 2012;19(8) (PMID 22591722): in vitro bovine livers "
        "perfused through the portal vein with autologous blood at 37 degC, 10-50 "
        "mL/min/100 g, 480 kHz, 3.0 cm internally cooled electrode, 57 ablations, "
        "short axis of the dissected zone: SAD = -0.044 x + 3.925 cm (r = 0.836)"
    )
    details = {
        "flows_ml_min_100g": list(HUANG_FLOWS),
        "short_axis_mm": [round(s, 2) for s in sads],
        "published_short_axis_mm": [round(10 * (-0.044 * x + 3.925), 2) for x in HUANG_FLOWS],
        "energy_delivered_j": [round(e, 1) for e in energies],
        "pulses": pulses,
        "settings": (
            "200 W impedance-controlled, 12 min (the Cool-tip's usual protocol: an "
            "assumption, the abstract gives only 480 kHz and the 3.0 cm cooled "
            "electrode), block and blood at 37 degC"
        ),
        "generator": app.generator or "ideal",
    }
    cooled_details = {
        **details,
        "short_axis_mm": [round(s, 2) for s in cooled],
        "short_axis_at_power_off_mm": [round(s, 2) for s in sads],
        "cooldown_s": HUANG_COOLDOWN_S,
        "max_temperature_at_end_c": [round(t, 2) for t in t_end],
        "cem43_short_axis_mm": [round(s, 2) for s in cem_cooled],
        "cem43_slope": round(slope_cem, 4),
        "caveat": (
            "the growth after power off comes from tissue held at 40-55 degC for minutes "
            "at low flow; there the liver Arrhenius constants accrue damage about 10 times "
            "faster than the thermal dose (CEM43 >= 240 min), whose zone gives the "
            "cem43_slope instead"
        ),
    }

    def row(suffix: str, measured: float, when: str, det: dict) -> CheckResult:
        ok = abs(measured - HUANG_SLOPE_MM_PER_UNIT) <= 0.25 * abs(HUANG_SLOPE_MM_PER_UNIT)
        return CheckResult(
            name="cooled-rf-3cm: short-axis diameter vs perfusion (slope)" + suffix,
            measured=measured,
            reference=HUANG_SLOPE_MM_PER_UNIT,
            unit="mm per mL/min/100 g",
            goal=f"within 25 % ({when})",
            met=ok,
            source=source,
            details=det,
        )

    after = f", zone after {HUANG_COOLDOWN_S / 60:g} min with the power off"
    return [
        row("", slope, "zone at power off", details),
        row(
            after,
            slope_cooled,
            "perfusion on while the tissue cools, as before dissection",
            cooled_details,
        ),
    ]


def _first_exit(values: np.ndarray, level: float) -> float:
    """Distance (samples from 0) where the zone that starts nearest index 0 first ends.

    Unlike the outermost crossing, this stops at a vessel even if heat reaches past it.
    """
    inside = np.flatnonzero(values >= level)
    if inside.size == 0:
        return 0.0
    i0 = int(inside[0])
    outside = np.flatnonzero(values[i0:] < level)
    if outside.size == 0:
        return float(values.size - 1)
    j = i0 + int(outside[0])
    a, b = float(values[j - 1]), float(values[j])
    return (j - 1) + (a - level) / (a - b) if a != b else float(j - 1)


def _side_radii(res, level: float = 0.0) -> tuple[float, float]:
    """Largest zone radius towards +x (the vessel side) and towards -x, over all slices."""
    f = np.log(np.maximum(res.state.omega, 1e-30))
    g = res.grid
    c = np.rint(g.lps_to_index(tuple(res.settings["tips_mm"][0]))).astype(int)
    plus = minus = 0.0
    for s in range(f.shape[0]):
        row = f[s, c[1], :]
        plus = max(plus, _first_exit(row[c[2] :], level) * g.spacing_mm[2])
        minus = max(minus, _first_exit(row[c[2] :: -1], level) * g.spacing_mm[2])
    return plus, minus


#: Ex vivo radius ratios (perfused / non-perfused 5 mm glass tube, 700 mL/min, radius
#: toward the tube) at 10 and 15 mm: Ringe KI et al., Experimental evaluation of the heat
#: sink effect in hepatic microwave ablation, PLoS One 2015;10(7):e0134301 (abstract:
#: "radius was reduced to 37.2% and 80.1% at 10 and 15mm"; no significant deformation
#: beyond 15 mm). The issue's goal: within 0.15 of these ratios; < 10 % reduction at 20 mm.
#:
#: The generator setting is fitted (session 39). Ringe's abstract, the stored source, gives no
#: power or time, and the 20 mm figure depends on them: with Emprint 100 W 5 min, the set-up
#: used until session 38, the cut at 20 mm is 12 % (2 mm; 12.8 % at 1 mm), because the
#: no-vessel radius, 15.8 mm, leaves 1.7 mm to the wall of a tube at 20 mm. Ringe's own
#: figures rule that set-up out: the radius toward a perfused tube ends before its wall
#: (12.5 mm at 15 mm), so 0.801 R <= 12.5 mm and R <= 15.6 mm. The check therefore fits the
#: one unknown, the power at 5 min within the Emprint's range, by least squares to the two
#: published ratios (:func:`fit_heat_sink_power_w`), and the 20 mm row is a prediction.
#: Before (session 38), at fixed powers (2 mm, ratios at 10 / 15 mm, cut at 20 mm): 45 W
#: 0.459 / 0.775 / 6.2 %, 60 W 0.426 / 0.741 / 8.3 %, 80 W 0.400 / 0.709 / 10.7 %, 100 W
#: 0.384 / 0.689 / 12.2 %: the model's ratio rises less from 10 to 15 mm than Ringe's
#: (0.372 -> 0.801), so no power meets both ratios exactly. What was ruled out as the cause
#: of the 12 % (validation/convergence.md, "Heat sink"): the grid, the staircase tube (a
#: cut-cell tube prototype: 12.2 %), the measurement (the widest slice's radius gives the
#: same), the wall coefficient (8-13 % between Go-Smart's 230 W/m^2/K and an isothermal
#: wall; Hausen's developing-flow 2470 W/m^2/K is used) and a 0.8 mm glass wall (Duran, 1.2
#: W/m/K, an assumption for Ringe's tubes: 9.9 %). Ringe divide by the radius toward a
#: non-perfused tube, the check by the zone without a tube: a still-water tube taking no
#: microwave power (prototype, the 100 W set-up) gives 0.400 / 0.750 / 10.2 %; water absorbs at 2.45
#: GHz, so the paper's reference lies between the two.
RINGE_2015_RADIUS_RATIO = {10.0: 0.372, 15.0: 0.801}
HEAT_SINK_RATIO_TOLERANCE = 0.15
RINGE_TUBE_DIAMETER_MM = 5.0


def ringe_radius_bound_mm(distance_mm: float = 15.0) -> float:
    """Largest no-vessel radius (mm) that Ringe's published ratio at ``distance_mm`` allows.

    The zone's radius toward a perfused tube ends at the latest at the tube's wall
    (``distance - diameter / 2``; the wall is held near the perfusate's temperature), and
    it is the published ratio times the radius toward a non-perfused tube.
    """
    wall = distance_mm - 0.5 * RINGE_TUBE_DIAMETER_MM
    return wall / RINGE_2015_RADIUS_RATIO[distance_mm]


#: Duration of the heat-sink set-up (s); the power is fitted (:func:`fit_heat_sink_power_w`)
HEAT_SINK_DURATION_S = 300.0


class _HeatSinkRuns:
    """Emprint runs of the heat-sink set-up, kept by (power, tube distance) (None: no tube)."""

    def __init__(self, spacing_mm: float):
        self.spacing_mm = spacing_mm
        self.app = applicator("covidien-emprint")
        self.radii: dict[tuple[float, float | None], float] = {}

    def radius_mm(self, power_w: float, distance_mm: float | None) -> float:
        """Zone radius toward the tube's side (mm); the ex vivo block at its start temperature."""
        from ioplan.physics import SimulationConfig, VesselSpec, simulate

        key = (round(float(power_w), 6), distance_mm)
        if key not in self.radii:
            vessels = (
                ()
                if distance_mm is None
                else (
                    VesselSpec(
                        diameter_mm=RINGE_TUBE_DIAMETER_MM,
                        distance_mm=distance_mm,
                        flow_ml_min=700.0,
                    ),
                )
            )
            cfg = SimulationConfig(
                applicator=self.app,
                power_w=float(power_w),
                duration_s=HEAT_SINK_DURATION_S,
                tissue="liver",
                perfusion_per_s=0.0,
                spacing_mm=self.spacing_mm,
                initial_temperature_c=ex_vivo_start_c(),
                vessels=vessels,
            )
            self.radii[key] = _side_radii(simulate(cfg))[0]
        return self.radii[key]

    def ratio(self, power_w: float, distance_mm: float) -> float:
        """Radius toward a perfused tube over the radius without one."""
        r_ref = self.radius_mm(power_w, None)
        return self.radius_mm(power_w, distance_mm) / r_ref if r_ref > 0 else 1.0

    def misfit(self, power_w: float) -> float:
        """Sum of squared differences from Ringe's published ratios (10 and 15 mm)."""
        return sum(
            (self.ratio(power_w, d) - ref) ** 2 for d, ref in RINGE_2015_RADIUS_RATIO.items()
        )


def fit_heat_sink_power_w(spacing_mm: float, runs: _HeatSinkRuns | None = None) -> float:
    """The Emprint power (W, 5 min, within the device's range) that best gives Ringe's ratios.

    Ringe et al. 2015 do not state their generator setting in the stored abstract; it is the
    set-up's one unknown, fitted by least squares to the radius ratios at 10 and 15 mm
    (bounded scalar search, 0.5 W tolerance), so that the 20 mm figure is a prediction.
    """
    from scipy.optimize import minimize_scalar

    runs = runs if runs is not None else _HeatSinkRuns(spacing_mm)
    lo, hi = runs.app.power_range_w
    fit = minimize_scalar(runs.misfit, bounds=(lo, hi), method="bounded",
                          options={"xatol": 0.5})  # fmt: skip
    # the bounded search never evaluates the bounds themselves: a fit at the edge of the
    # range would otherwise stop short of it
    best = min((float(fit.x), lo, hi), key=runs.misfit)
    return best


def _check_heat_sink(spacing_mm: float, log) -> list[CheckResult]:
    out = []
    # ex vivo set-up: block and perfused tube at the ex vivo start temperature; Emprint for
    # 5 min at the power fitted to Ringe's two published ratios (the paper's generator
    # setting is not in its abstract, the stored source)
    runs = _HeatSinkRuns(spacing_mm)
    power = fit_heat_sink_power_w(spacing_mm, runs)
    r_ref = runs.radius_mm(power, None)
    if log is not None:
        log(f"heat sink: Emprint power fitted to Ringe's 10 and 15 mm ratios: {power:.1f} W")
    # the no-vessel radius that Ringe's 15 mm ratio allows (reported in every row)
    bound = ringe_radius_bound_mm(15.0)
    for dist in (10.0, 15.0, 20.0):
        r_ves = runs.radius_mm(power, dist)
        ratio = r_ves / r_ref if r_ref > 0 else 1.0
        cut = 1.0 - ratio
        if log is not None:
            log(f"heat sink, 5 mm vessel at {dist:g} mm: radius {r_ref:.1f} -> {r_ves:.1f} mm")
        published = RINGE_2015_RADIUS_RATIO.get(dist)
        if published is not None:
            want = (
                f"radius ratio within {HEAT_SINK_RATIO_TOLERANCE:g} of {published:g} "
                f"(reduction {100 * (1 - published):.1f} +- {100 * HEAT_SINK_RATIO_TOLERANCE:g} %; "
                "the power is fitted to both published ratios)"
            )
            met = abs(ratio - published) <= HEAT_SINK_RATIO_TOLERANCE
            reference = 100.0 * (1.0 - published)
            source = "Ringe et al., PLoS One 2015;10(7):e0134301 (ex vivo porcine, 5 mm tube)"
        else:
            want = "little effect (< 10 %; predicted: the power is fitted at 10 and 15 mm)"
            met = cut < 0.10
            reference = float("nan")
            source = (
                "Ringe et al., PLoS One 2015;10(7):e0134301: no significant deformation beyond "
                "15 mm; shared/validation/README.md section 4"
            )
        out.append(
            CheckResult(
                name=f"heat sink: 5 mm vessel, 700 mL/min, at {dist:g} mm (Emprint 5 min)",
                measured=100.0 * cut,
                reference=reference,
                unit="% radius reduction on the vessel side",
                goal=want,
                met=bool(met),
                source=source,
                details={
                    "radius_no_vessel_mm": round(r_ref, 2),
                    "radius_vessel_mm": round(r_ves, 2),
                    "radius_ratio": round(ratio, 3),
                    "published_radius_ratio": published,
                    # unablated tissue left between the zone and the tube's wall
                    "rim_at_wall_mm": round(dist - 0.5 * RINGE_TUBE_DIAMETER_MM - r_ves, 2),
                    # the set-up's own check: Ringe's no-vessel radius is at most this
                    "radius_no_vessel_bound_mm": round(bound, 2),
                    "radius_no_vessel_within_bound": bool(r_ref <= bound),
                    # the generator setting, fitted to the 10 and 15 mm ratios
                    "power_w": round(power, 2),
                    "duration_s": HEAT_SINK_DURATION_S,
                    "fit_sum_squares": round(runs.misfit(power), 5),
                },
            )
        )
    return out


#: RF near a vessel: the heat sink is stronger for RF than for microwaves, whose ex vivo
#: ratios Ringe et al. 2015 measured (RINGE_2015_RADIUS_RATIO): perfused porcine liver,
#: "a significant heat-sink-effect for RFA, but not MWA near vessels" (infrared
#: thermography of surgical RFA/MWA, PMC5778864); in vivo, heat sink at veins > 3 mm
#: (Lu et al., AJR 2002;178:47; shared/validation/README.md section 4). The RF check:
#: the radius toward a 5 mm vessel (700 mL/min) is cut at least as much as Ringe's MW
#: ratio allows (ratio <= MW ratio + the 0.15 tolerance) at 10 and 15 mm, and less the
#: farther the vessel.
RF_VESSEL_DISTANCES_MM = (10.0, 15.0, 20.0)


def _check_rf_vessel(spacing_mm: float, log) -> list[CheckResult]:
    from ioplan.physics import SimulationConfig, VesselSpec, simulate

    app = applicator("cooled-rf-3cm")
    base = dict(
        applicator=app,
        power_w=200.0,
        duration_s=720.0,
        tissue="liver",
        perfusion_per_s=0.0,
        spacing_mm=spacing_mm,
        initial_temperature_c=ex_vivo_start_c(),
    )
    r_ref = _side_radii(simulate(SimulationConfig(**base)))[0]
    ratios = []
    for dist in RF_VESSEL_DISTANCES_MM:
        ves = simulate(
            SimulationConfig(
                **base,
                vessels=(VesselSpec(diameter_mm=5.0, distance_mm=dist, flow_ml_min=700.0),),
            )
        )
        r = _side_radii(ves)[0]
        ratios.append(r / r_ref if r_ref > 0 else 1.0)
        if log is not None:
            log(f"RF heat sink, 5 mm vessel at {dist:g} mm: radius {r_ref:.1f} -> {r:.1f} mm")
    out = []
    monotone = all(a <= b + 0.02 for a, b in pairwise(ratios))
    for dist, ratio in zip(RF_VESSEL_DISTANCES_MM, ratios, strict=True):
        mw = RINGE_2015_RADIUS_RATIO.get(dist)
        if mw is not None:
            goal = (
                f"ratio <= {mw + HEAT_SINK_RATIO_TOLERANCE:.3f} (MW's {mw:g} + "
                f"{HEAT_SINK_RATIO_TOLERANCE:g}: RF's heat sink at least as strong), and "
                "rising with distance"
            )
            met = ratio <= mw + HEAT_SINK_RATIO_TOLERANCE and monotone
        else:
            goal = "rising with distance (no published RF figure at this distance)"
            met = monotone
        out.append(
            CheckResult(
                name=f"RF heat sink: 5 mm vessel, 700 mL/min, at {dist:g} mm (cooled 3 cm, 12 min)",
                measured=ratio,
                reference=mw if mw is not None else float("nan"),
                unit="radius ratio (vessel side / no vessel)",
                goal=goal,
                met=bool(met),
                source=(
                    "PMC5778864 (perfused porcine liver): RF heat sink stronger than MW; "
                    "Lu et al., AJR 2002;178:47; Ringe et al., PLoS One 2015 (MW ratios)"
                ),
                details={
                    "radius_no_vessel_mm": round(r_ref, 2),
                    "ratios": [round(x, 3) for x in ratios],
                },
            )
        )
    return out


#: Amabile C, Ahmed M, Solbiati L, et al., "Microwave ablation of primary and secondary liver
#: tumours: ex vivo, in vivo, and clinical characterisation", Int J Hyperthermia (abstract,
#: stored copy): the same commercial 2.45 GHz apparatus (H.S. Hospital Service, the Amica),
#: 60 W for 10 min in 46 patients: "ablation diameters were 4.1 +- 0.6 cm for metastases and
#: 3.7 +- 0.3 cm for HCC, with an average sphericity index of 0.70 +- 0.04" (maximum
#: longitudinal and transversal axes measured). The diameter is read as the transversal
#: (short) axis. Metastases sit in non-cirrhotic liver, as the engine's liver block does.
AMABILE_SETTING = ("amica", 60.0, 600.0)
AMABILE_DIAMETER_MM = {"metastases": (41.0, 6.0), "hcc": (37.0, 3.0)}
AMABILE_SPHERICITY = (0.70, 0.04)


def _check_clinical(spacing_mm: float, log) -> list[CheckResult]:
    """The engine's in vivo liver zone (37 degC, the tissue table's perfusion) vs patients."""
    from ioplan.physics import SimulationConfig, simulate

    dev, power_w, duration_s = AMABILE_SETTING
    res = simulate(SimulationConfig(applicator=applicator(dev), power_w=power_w,
                                    duration_s=duration_s, tissue="liver",
                                    spacing_mm=spacing_mm))  # fmt: skip
    width, length = res.zone.width_mm, res.zone.length_mm
    mean, sd = AMABILE_DIAMETER_MM["metastases"]
    if log is not None:
        log(f"{dev} {power_w:g} W {duration_s / 60:g} min in perfused liver: {length:.1f} x "
            f"{width:.1f} mm (patients' short axis {mean:g} +- {sd:g} mm)")  # fmt: skip
    return [
        CheckResult(
            name=f"{dev} {power_w:g} W, {duration_s / 60:g} min in perfused liver: short axis "
            "vs patients (liver metastases)",
            measured=width,
            reference=mean,
            unit="mm",
            goal=f"within the patients' SD ({sd:g} mm); the liver perfusion is the physiological "
            "hepatic flow, not fitted to this row",
            met=bool(abs(width - mean) <= sd),
            source="Amabile C et al., Int J Hyperthermia, ex vivo, in vivo and clinical "
            "characterisation of one 2.45 GHz MWA apparatus (abstract): 41 +- 6 mm "
            "(metastases), 37 +- 3 mm (HCC), sphericity 0.70 +- 0.04, 60 W 10 min",
            details={
                "length_mm": round(length, 2),
                "width_mm": round(width, 2),
                "hcc_short_axis_mm": list(AMABILE_DIAMETER_MM["hcc"]),
                "sphericity_model": round(width / length, 3) if length > 0 else None,
                "sphericity_patients": list(AMABILE_SPHERICITY),
                "perfusion_per_s": res.tissue_used["perfusion_per_s"] if res.tissue_used else None,
                "conditions": "liver block at 37 degC, the tissue table's perfusion (stops "
                "where coagulated), the device's ex vivo calibration",
            },
        )
    ]


#: Named groups of checks for ``ioplan validate --checks``.
CHECKS: dict[str, Callable[[float, Any], list[CheckResult]]] = {
    "cryo": _check_cryo,
    "rf": _check_rf,
    "rf-vessel": _check_rf_vessel,
    "heat-sink": _check_heat_sink,
    "clinical": _check_clinical,
}


def run_checks(
    names: list[str], *, spacing_mm: float = 1.0, log: Callable[[str], None] | None = None
) -> list[CheckResult]:
    """Run the named groups of checks (see :data:`CHECKS`)."""
    out = []
    for n in names:
        if n not in CHECKS:
            raise InputError(f"unknown check {n!r}; known: {', '.join(CHECKS)}")
        out += CHECKS[n](spacing_mm, log)
    return out

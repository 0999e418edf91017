"""The engine against published lung, kidney and liver zones (issue 21), mostly uncalibrated.

Every device model of the catalogue was fitted (where it was fitted at all) to liver zones.
Here the rows of :func:`ioplan.tissue.organ_zones` that the engine can represent are simulated
in a homogeneous block of the organ's normal tissue (the rows are normal in vivo porcine
lung and kidney), with the table's in vivo perfusion, and compared with the published
length and width (or cross-sectional area). One tissue value was fitted to one row (the
kidney's effective perfusion to the kidney MWA row, :data:`FITTED_ROWS`); every other row
carries the flag ``uncalibrated for <organ>``, and the device used (the source's, or the
closest catalogue device, stated with why).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.errors import InputError

__all__ = [
    "ORGAN_ZONE_SCHEMA_VERSION",
    "OrganZoneSetup",
    "organ_zone_lines",
    "organ_zone_setups",
    "predict_organ_zones",
    "write_organ_zone_report",
]

ORGAN_ZONE_SCHEMA_VERSION = 1

#: the block tissue of each organ's normal parenchyma (the rows are normal porcine organs)
_BLOCK_TISSUE = {"lung": "lung", "kidney": "kidney", "liver": "liver"}


@dataclass(frozen=True)
class OrganZoneSetup:
    """How one published row is simulated (or why it is not).

    Attributes
    ----------
    applicator : str
        Catalogue id ("" when the row cannot be represented).
    device_note : str
        The source's device, and why this catalogue device stands for it.
    tissue : str
        Block tissue (the organ's normal parenchyma, aerated lung or whole kidney).
    power_w, duration_s : float or None
        Generator power (W; None for cryo) and heating or freezing time (s).
    protocol : str or None
        Cryo protocol (``freeze:240``).
    array, spacing_between_mm : int, float
        Applicators and their spacing (mm).
    approximations : tuple of str
        What differs from the experiment.
    skipped : str
        Why the row is not simulated ("" when it is).
    """

    applicator: str
    device_note: str
    tissue: str
    power_w: float | None = None
    duration_s: float | None = None
    protocol: str | None = None
    array: int = 1
    spacing_between_mm: float = 15.0
    approximations: tuple[str, ...] = ()
    skipped: str = ""


_BLOCK_NOTE = (
    "a homogeneous block of the normal organ (infinite, no capsule, no pleura, no hilum, "
    "no large vessels or bronchi); in vivo: the tissue table's perfusion"
)


#: Rows a tissue value was fitted to (organ, modality): the kidney's effective perfusion
#: (tissues.toml kidney.perfusion_1_per_s) to the one kidney MWA row; the rest predict.
FITTED_ROWS = {("kidney", "MWA"): "kidney perfusion fitted to this row"}


def _calibration(row: dict[str, Any]) -> str:
    return FITTED_ROWS.get((row["organ"], row["modality"]), f"uncalibrated for {row['organ']}")


def _setup(row: dict[str, Any]) -> OrganZoneSetup:
    """The simulation standing for one row of organ_zones.csv."""
    organ, mod = row["organ"], row["modality"]
    tissue = _BLOCK_TISSUE[organ]
    base = (_BLOCK_NOTE,)
    if organ == "lung" and mod == "MWA":
        return OrganZoneSetup(
            "covidien-emprint",
            "device and frequency not named in the abstract; covidien-emprint (2450 MHz, 13 G, "
            "a 100 W generator setting, calibrated in liver) is the catalogue's 2450 MHz "
            "antenna charted at 100 W",
            tissue, row["power_w"], row["duration_s"],
            approximations=(*base, "aerated lung (inflated) properties for the whole block"),
        )  # fmt: skip
    if organ == "kidney" and mod == "MWA":
        return OrganZoneSetup(
            "covidien-emprint",
            "a 17 G triaxial antenna (not in the catalogue; frequency not stated in the "
            "abstract); covidien-emprint (2450 MHz, 13 G, charted to 100 W, calibrated in "
            "liver) stands for it; neuwave-pr is 17 G but rated 30-65 W and not calibrated",
            tissue, row["power_w"], row["duration_s"], approximations=base,
        )  # fmt: skip
    if organ == "kidney" and mod == "RFA":
        three = row["device"].startswith("three")
        return OrganZoneSetup(
            "cooled-rf-3cm",
            "17 G internally cooled electrode(s) with a 200 W pulsed generator: cooled-rf-3cm "
            "(Cool-tip class, 17 G, 3 cm exposure, its generator's impedance pulsing at "
            "200 W); the exposure length is not in the abstract",
            tissue, 200.0, row["duration_s"], array=3 if three else 1,
            spacing_between_mm=15.0,
            approximations=(*base, "power not in the abstract: the generator's 200 W maximum")
            + (("three electrodes driven together, not switched (the engine has no switching)",)
               if three else ()),
        )  # fmt: skip
    if organ in ("kidney", "liver") and mod == "cryo":
        return OrganZoneSetup(
            "cryo-2.4mm",
            "Visica2 liquid-nitrogen probe (not in the catalogue): cryo-2.4mm (argon, its "
            "calibrated cooling power) stands for it",
            tissue, protocol=f"freeze:{row['duration_s']:g}",
            approximations=(
                *base,
                "one freeze of the abstract's duration ('within N minutes'), no thaw; zone: "
                "the engine's lethal isotherm (-40 degC), necrosis measured at 3 days",
            ),
        )  # fmt: skip
    return OrganZoneSetup("", "", tissue, skipped=f"no engine setup for {organ} {mod}")


def organ_zone_setups() -> list[tuple[dict[str, Any], OrganZoneSetup]]:
    """Every row of :func:`ioplan.tissue.organ_zones` with the simulation standing for it."""
    from ioplan.tissue import organ_zones

    return [(dict(row), _setup(row)) for row in organ_zones()]


def _areas_cm2(res) -> dict[str, float]:
    """The zone's largest cross-section across the axis and its section through the axis (cm^2).

    The block's applicator runs along z through x = y = 0 (the array's centre).
    """
    mask = np.asarray(res.zone_mask, bool)
    g = res.grid
    h2 = float(g.spacing_mm[1] * g.spacing_mm[2]) * 1e-2  # mm^2 -> cm^2, x-y face
    hz = float(g.spacing_mm[0] * g.spacing_mm[2]) * 1e-2  # z-x face
    ix = round(-g.origin_mm[0] / g.spacing_mm[2])
    return {
        "transverse_cm2": round(float(mask.sum(axis=(1, 2)).max()) * h2, 3),
        "axial_plane_cm2": round(float(mask[:, :, ix].sum()) * hz, 3),
    }


def _config(setup: OrganZoneSetup, spacing_mm: float):
    """The engine's configuration of a row (the block, its device, setting and voxels)."""
    from ioplan.devices import applicator
    from ioplan.physics import CryoProtocol, SimulationConfig

    return SimulationConfig(
        applicator(setup.applicator),
        power_w=setup.power_w,
        duration_s=None if setup.protocol else setup.duration_s,
        protocol=CryoProtocol.parse(setup.protocol) if setup.protocol else None,
        tissue=setup.tissue,
        spacing_mm=spacing_mm,
        array=setup.array,
        spacing_between_mm=setup.spacing_between_mm,
    )


def predict_organ_zones(
    *,
    spacing_mm: float = 2.0,
    rows: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Simulate the published lung, kidney and liver rows and compare (no fitting).

    Parameters
    ----------
    spacing_mm : float
        Voxel size (mm), 0.25-5.
    rows : int
        Only the first ``rows`` rows (0: all).
    log : callable, optional
        Called with a line per row as it is simulated.

    Returns
    -------
    dict
        ``schema_version``, ``spacing_mm``, ``rows`` (per row: organ, state, modality, the
        source's device, the engine's setup, published and predicted length/width (mm) or
        areas (cm^2), errors, warnings, ``calibration`` (``"uncalibrated for <organ>"``, or
        what was fitted to the row: :data:`FITTED_ROWS`),
        ``source``), and ``note``.
    """
    if not math.isfinite(spacing_mm) or not 0.25 <= spacing_mm <= 5.0:
        raise InputError(f"spacing_mm must be 0.25-5 mm, got {spacing_mm}")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise InputError(f"rows must be an integer >= 0, got {rows!r}")
    from ioplan.physics import simulate

    todo = organ_zone_setups()
    if rows:
        todo = todo[:rows]
    out = []
    for row, setup in todo:
        rec: dict[str, Any] = {
            "organ": row["organ"], "state": row["state"], "species": row["species"],
            "modality": row["modality"], "device": row["device"], "n": row["n"],
            "measure": row["measure"], "source": row["source"],
            "calibration": _calibration(row),
            "published": {k: row[k] for k in ("power_w", "duration_s", "length_mm", "width_mm",
                                              "area_cm2")},
        }  # fmt: skip
        if setup.skipped:
            rec["skipped"] = setup.skipped
            out.append(rec)
            continue
        rec["engine"] = {
            "applicator": setup.applicator, "device_note": setup.device_note,
            "tissue": setup.tissue, "power_w": setup.power_w, "duration_s": setup.duration_s,
            "protocol": setup.protocol, "array": setup.array,
            "spacing_between_mm": setup.spacing_between_mm if setup.array > 1 else None,
            "approximations": list(setup.approximations),
        }  # fmt: skip
        cfg = _config(setup, spacing_mm)
        res = simulate(cfg)
        z = res.zone
        pred: dict[str, Any] = {
            "length_mm": round(z.length_mm, 2),
            "width_mm": round(z.width_mm, 2),
            "volume_ml": round(z.volume_ml, 3),
            **_areas_cm2(res),
            "isotherms_mm": {
                k: [round(v.length_mm, 2), round(v.width_mm, 2)] for k, v in res.isotherms.items()
            },
        }
        if setup.protocol and setup.array == 1:
            # sub-voxel widths (the isotherm's level set, as the Littrup checks): the lattice
            # width moves in voxel steps, 2 mm on a lethal zone a few voxels wide
            from ioplan.validation._checks import _iso_width

            lethal = float(cfg.lethal_temperature_c)
            pred["width_subvoxel_mm"] = round(_iso_width(res, lethal), 2)
            pred["ice_ball_width_subvoxel_mm"] = round(_iso_width(res, 0.0), 2)
        rec["predicted"] = pred
        rec["warnings"] = list(res.settings.get("warnings", []))
        rec["tissues"] = res.settings.get("tissues", {})
        err: dict[str, float] = {}
        for key in ("length_mm", "width_mm"):
            if row[key] is not None:
                err[key] = round(pred[key] - row[key], 2)
        if row["area_cm2"] is not None:
            for key in ("transverse_cm2", "axial_plane_cm2"):
                err[key] = round(pred[key] - row["area_cm2"], 3)
        rec["error"] = err
        out.append(rec)
        if log is not None:
            log(_line(rec))
    return {
        "schema_version": ORGAN_ZONE_SCHEMA_VERSION,
        "spacing_mm": spacing_mm,
        "rows": out,
        "note": (
            "Predictions of device models calibrated (where at all) in liver, run in blocks of "
            "normal lung, kidney or liver with the tissue table's properties. One value was "
            "fitted to one row: the kidney's effective perfusion (tissues.toml) to the kidney "
            "MWA row; every other row is uncalibrated for its organ. Published areas do not say "
            "in which plane they were cut: the zone's largest section across the applicator "
            "(transverse) and its section through the axis (axial plane) are both given."
        ),
    }


def _line(rec: dict[str, Any]) -> str:
    """One line of the summary for a row."""
    pub, head = rec["published"], f"{rec['organ']} {rec['modality']}"
    setting = (f"{pub['power_w']:g} W " if pub["power_w"] is not None else "") + (
        f"{pub['duration_s']:g} s"
    )
    if "skipped" in rec:
        return f"{head} {setting}: skipped ({rec['skipped']}) [{rec['calibration']}]"
    p, eng = rec["predicted"], rec["engine"]
    dev = eng["applicator"] + (f" x{eng['array']}" if eng["array"] > 1 else "")
    parts = []
    if pub["length_mm"] is not None:
        parts.append(f"length {p['length_mm']:.1f} vs {pub['length_mm']:g} mm")
    if pub["width_mm"] is not None:
        sub = p.get("width_subvoxel_mm")
        sub = f" (sub-voxel {sub:.1f})" if sub is not None else ""
        parts.append(f"width {p['width_mm']:.1f}{sub} vs {pub['width_mm']:g} mm")
    if eng["protocol"]:
        ice = p["isotherms_mm"].get("0", [0.0, 0.0])
        sub = p.get("ice_ball_width_subvoxel_mm")
        sub = f" (sub-voxel width {sub:.1f})" if sub is not None else ""
        parts.append(f"ice ball (0 degC) {ice[0]:.1f} x {ice[1]:.1f} mm{sub}")
    if pub["area_cm2"] is not None:
        parts.append(
            f"area {p['transverse_cm2']:.2f} (transverse) / {p['axial_plane_cm2']:.2f} (axial "
            f"plane) vs {pub['area_cm2']:g} cm^2"
        )
    where = f"{dev}, {eng['tissue']} block"
    return f"{head} {setting} ({where}): {', '.join(parts)} [{rec['calibration']}]"


def organ_zone_lines(doc: dict[str, Any]) -> list[str]:
    """The summary of :func:`predict_organ_zones`' result: a line per row, devices, sources."""
    lines = [
        f"ioplan: engine predictions vs published lung, kidney and liver zones "
        f"({doc['spacing_mm']:g} mm voxels); predicted vs published",
        "",
        *(_line(r) for r in doc["rows"]),
        "",
        "Devices and approximations per row:",
    ]
    for r in doc["rows"]:
        if "engine" in r:
            eng = r["engine"]
            what = f"- {r['organ']} {r['modality']} {r['device']}: {eng['device_note']}"
            lines.append(f"{what}; {'; '.join(eng['approximations'])}")
        lines.append(f"  source: {r['source']}")
    lines += ["", doc["note"], ""]
    return lines


def write_organ_zone_report(doc: dict[str, Any], folder: Path) -> list[Path]:
    """Write ``summary.txt`` (:func:`organ_zone_lines`) and ``organ_zones.json`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = organ_zone_lines(doc)
    summary = folder / "summary.txt"
    summary.write_text("\n".join(lines))
    js = folder / "organ_zones.json"
    js.write_text(json.dumps(doc, indent=2) + "\n")
    return [summary, js]

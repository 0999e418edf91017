"""MR needle artefact: its width by shaft material, field strength, sequence and angle to B0.

Model. A long cylinder of diameter ``D`` and volume susceptibility ``chi_m`` in tissue
(``chi_t``), its axis at angle ``theta`` to B0, perturbs the field outside it by

    dBz(r, phi) = (dchi / 2) B0 sin^2(theta) (D / 2r)^2 cos(2 phi),   dchi = chi_m - chi_t

(Schenck JF, Med Phys 1996;23:815-850, DOI 10.1118/1.597854: the infinite cylinder).
Signal is lost (gradient echo: dephasing within TE) or displaced (spin echo: a shift of
more than a pixel's bandwidth) where ``|dBz|`` exceeds a threshold fixed by the sequence,
so the void reaches the radius where ``(D / 2r)^2 |dchi| B0 sin^2(theta)`` equals it:

    W = D * max(1, K * s_seq * sqrt(|dchi| / |dchi_ref| * B0 / B0_ref) * sin(theta))

The artefact beyond the needle grows with ``sin(theta)`` (none parallel to B0: the width
is then the shaft itself), with ``sqrt(B0)`` and with ``sqrt(|dchi|)``; that parallel
needles show the smallest and perpendicular ones the largest artefact is what Lewin JS et
al. (AJR 1996;166:1337-1345) and Ladd ME et al. (MRM 1996;36:646-651) measured. ``K`` is
anchored on one published measurement (:data:`ARTEFACT_ANCHOR`), ``s_seq`` on the same
study's sequence comparison; both are rough (a planning aid, not a prediction).

B0 lies along the bore of a closed-bore scanner: the patient's superior-inferior axis,
``z`` of LPS (:data:`B0_AXIS_LPS`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ioplan.errors import InputError

__all__ = [
    "ARTEFACT_ANCHOR",
    "ARTEFACT_HIDE_FRACTION",
    "ARTEFACT_SEQUENCES",
    "B0_AXIS_LPS",
    "NEEDLE_SUSCEPTIBILITY_PPM",
    "angle_to_b0_deg",
    "artefact_hides_target",
    "needle_artefact_table",
    "needle_artefact_width_mm",
]

#: B0 of a closed-bore scanner: along the bore, the patient's superior-inferior axis (LPS z).
B0_AXIS_LPS = (0.0, 0.0, 1.0)

#: Volume susceptibility (SI, ppm) of shaft materials and of tissue, each with its source.
NEEDLE_SUSCEPTIBILITY_PPM: dict[str, dict[str, Any]] = {
    "tissue": {"value": -9.05, "source": "water, Schenck 1996 (Med Phys 23:815) Table 1"},
    "titanium": {"value": 182.0, "source": "Schenck 1996 (Med Phys 23:815) Table 1"},
    "nitinol": {"value": 245.0, "source": "Schenck 1996 (Med Phys 23:815) Table 1"},
    "inconel": {
        "value": 600.0,
        "source": "Inconel 625: relative permeability <= 1.0006 (Special Metals alloy 625 data "
        "sheet), chi = mu_r - 1; the alloy of MRI cryoneedles (Lu A et al., Proc ISMRM 2023, "
        "abstract 0727)",
    },
    "stainless_steel": {
        "value": 3520.0,
        "source": "austenitic (non-magnetic) stainless steel, the low end of 3520-6700 ppm "
        "(Schenck 1996, Med Phys 23:815); cold work raises it",
    },
}

#: The measurement ``K`` is anchored on: a titanium-class MR-conditional applicator at
#: 1.5 T, gradient echo, perpendicular to B0.
ARTEFACT_ANCHOR: dict[str, Any] = {
    "width_mm": 6.7,
    "diameter_mm": 2.1,
    "material": "titanium",
    "field_t": 1.5,
    "sequence": "GRE",
    "source": "shaft artefact 6.7 +- 2.4 mm perpendicular to B0 at 1.5 T (mean of T1w VIBE, "
    "T1w FLASH and T2w TSE) of an MR-conditional microwave applicator, Eur Radiol Exp 2019 "
    "(DOI 10.1186/s41747-019-0115-4); assumptions: the applicator's diameter (14 G, 2.1 mm) "
    "and material (titanium class), neither in the abstract",
}

#: Sequence factor ``s_seq`` (gradient echo = 1) with its source.
ARTEFACT_SEQUENCES: dict[str, dict[str, Any]] = {
    "GRE": {"factor": 1.0, "source": "reference (spoiled gradient echo: FLASH, VIBE)"},
    "bSSFP": {
        "factor": 0.85,
        "source": "assumption: balanced SSFP's short TE (~2 ms) and refocused gradients put it "
        "between GRE and TSE; its artefact shrinks with flip angle (Schmidt VF et al., Diagn "
        "Interv Radiol 2023;29:719, nitinol at 3 T)",
    },
    "TSE": {
        "factor": 0.6,
        "source": "the anchor study: FLASH 6.3 mm against 4.4 mm over all three sequences, TSE "
        "the smallest; spin echoes refocus the dephasing (Ladd 1996, MRM 36:646); the ratio "
        "0.6 is a rounded reading of those means, not a fit",
    },
}
ARTEFACT_SEQUENCES["SE"] = ARTEFACT_SEQUENCES["TSE"]

#: The artefact hides the target when it is wider than this fraction of the target's
#: diameter (an assumption: the tip can then not be placed against the target's margin).
ARTEFACT_HIDE_FRACTION = 0.5


def _delta_chi(material: str) -> float:
    if material not in NEEDLE_SUSCEPTIBILITY_PPM or material == "tissue":
        known = ", ".join(k for k in NEEDLE_SUSCEPTIBILITY_PPM if k != "tissue")
        raise InputError(f"needle material must be one of {known}, got {material!r}")
    tissue = NEEDLE_SUSCEPTIBILITY_PPM["tissue"]["value"]
    return abs(NEEDLE_SUSCEPTIBILITY_PPM[material]["value"] - tissue)


def _gain() -> float:
    """``K``: the anchor's width over its diameter at sin(theta) = 1, s_seq = 1."""
    return ARTEFACT_ANCHOR["width_mm"] / ARTEFACT_ANCHOR["diameter_mm"]


def needle_artefact_width_mm(*, material: str, field_t: float, sequence: str,
                             angle_to_b0_deg: float, diameter_mm: float) -> float:  # fmt: skip
    """Width (mm) of a needle's MR signal void across its shaft.

    Parameters
    ----------
    material : str
        Shaft material, a key of :data:`NEEDLE_SUSCEPTIBILITY_PPM` (not ``tissue``).
    field_t : float
        B0 in T (0.1-12).
    sequence : str
        ``GRE``, ``bSSFP``, ``TSE`` or ``SE`` (:data:`ARTEFACT_SEQUENCES`).
    angle_to_b0_deg : float
        Angle between the needle and B0 in degrees (0-180).
    diameter_mm : float
        Shaft diameter in mm (0.2-10).

    Returns
    -------
    float
        ``D * max(1, K s_seq sqrt(|dchi| B0 / (|dchi_ref| B0_ref)) |sin theta|)``.

    Examples
    --------
    >>> round(needle_artefact_width_mm(material="titanium", field_t=1.5, sequence="GRE",
    ...                                angle_to_b0_deg=90, diameter_mm=2.1), 2)
    6.7
    """
    if sequence not in ARTEFACT_SEQUENCES:
        known = ", ".join(ARTEFACT_SEQUENCES)
        raise InputError(f"sequence must be one of {known}, got {sequence!r}")
    for name, v, lo, hi in (("field_t", field_t, 0.1, 12.0),
                            ("angle_to_b0_deg", angle_to_b0_deg, 0.0, 180.0),
                            ("diameter_mm", diameter_mm, 0.2, 10.0)):  # fmt: skip
        if not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
            raise InputError(f"{name} must be {lo:g}-{hi:g}, got {v!r}")
    ratio = _delta_chi(material) / _delta_chi(ARTEFACT_ANCHOR["material"])
    scale = math.sqrt(ratio * field_t / ARTEFACT_ANCHOR["field_t"])
    s = abs(math.sin(math.radians(angle_to_b0_deg)))
    return float(diameter_mm * max(1.0, _gain() * ARTEFACT_SEQUENCES[sequence]["factor"]
                                   * scale * s))  # fmt: skip


def angle_to_b0_deg(direction: Any, b0_axis: Any = B0_AXIS_LPS) -> float:
    """Angle (degrees, 0-90) between a needle direction and B0 (either sense of either)."""
    d = np.asarray(direction, float)
    b = np.asarray(b0_axis, float)
    nd, nb = float(np.linalg.norm(d)), float(np.linalg.norm(b))
    if d.shape != (3,) or b.shape != (3,) or nd == 0 or nb == 0:
        raise InputError("direction and B0 axis must be non-zero 3-vectors")
    c = min(1.0, abs(float(d @ b)) / (nd * nb))
    return math.degrees(math.acos(c))


def artefact_hides_target(width_mm: float, target_diameter_mm: float) -> bool:
    """Whether a void this wide hides a target this wide (:data:`ARTEFACT_HIDE_FRACTION`)."""
    return width_mm > ARTEFACT_HIDE_FRACTION * target_diameter_mm


def needle_artefact_table(*, material: str, diameter_mm: float,
                          fields_t: tuple[float, ...] = (1.5, 3.0),
                          sequences: tuple[str, ...] = ("GRE", "bSSFP", "TSE"),
                          angles_deg: tuple[float, ...] = (0.0, 30.0, 45.0, 60.0, 90.0),
                          ) -> list[dict[str, Any]]:  # fmt: skip
    """Rows ``{field_t, sequence, angle_to_b0_deg, width_mm}`` for a protocol document."""
    return [
        {
            "field_t": f,
            "sequence": s,
            "angle_to_b0_deg": a,
            "width_mm": round(
                needle_artefact_width_mm(
                    material=material,
                    field_t=f,
                    sequence=s,
                    angle_to_b0_deg=a,
                    diameter_mm=diameter_mm,
                ),
                1,
            ),
        }
        for f in fields_t
        for s in sequences
        for a in angles_deg
    ]

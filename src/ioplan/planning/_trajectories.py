"""Straight needle paths from the skin to a target, with the reason for every rejection.

Candidate directions are spread evenly over the sphere (a Fibonacci lattice).
For each, the path runs from the target outwards to where it leaves the body
(the skin entry). A path is rejected when it passes closer than the safety
distance to a structure a needle must not cross (bone, lung and pleura, bowel,
gallbladder, large vessels, heart, kidney, spinal canal: every label marked
``critical``; and a case's extra classes with the role "avoid"), when it is
longer than the applicator can reach, or when its angle is beyond what the
scanner allows (CT: craniocaudal angle out of the axial plane; MR: the
applicator and its handle must fit in the bore).
Accepted paths are ranked by length, liver traversed before the tumour,
clearance, angle and the length outside the image.

Under MR guidance the angle that counts is the needle's to B0 (along the bore: LPS z), not
the axial plane's: the needle's susceptibility artefact widens with sin(angle to B0)
(:mod:`ioplan.planning._artefact`), and where it would be wider than half the target
(:data:`ARTEFACT_HIDE_FRACTION`) the excess width ranks the path lower, so paths near-parallel
to B0 are preferred. CT ranking is unchanged.

A path that leaves the image while still inside the body (a limited scan range or
field of view) continues through the edge slices, as the simulation domain does: its
skin entry and the structures on the way are those of the edge slice continued, not
imaged ones. That length is recorded (``unimaged_mm``) and such paths rank lower.

The organ (``TrajectoryConfig.organ``, issue 21) makes its own label traversable for its
own tumour (lung, kidney, the host bone) and adds its rules: a lung path is refused when
it crosses the pleura more than once or crosses a fissure, and records the aerated lung
it traverses (:mod:`ioplan.planning._organ_rules`); bronchi >= 2 mm and pulmonary
vessels >= 3 mm are avoided by their local inscribed radius, like large vessels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy import LABEL_INFO, Case, Label, auto_label_parameters, local_radius_mm
from ioplan.errors import InputError
from ioplan.imaging import Grid
from ioplan.planning._artefact import (
    ARTEFACT_HIDE_FRACTION,
    ARTEFACT_SEQUENCES,
    NEEDLE_SUSCEPTIBILITY_PPM,
    angle_to_b0_deg,
    needle_artefact_width_mm,
)
from ioplan.planning._organ_rules import (
    PLANNED_ORGANS,
    lung_path,
    lung_rejections,
    organ_settings,
    traversable_labels,
)

__all__ = [
    "SAFETY_RANGE_MM",
    "Trajectory",
    "TrajectoryConfig",
    "candidate_trajectories",
    "forbidden_groups",
]

#: Allowed distance between a needle path and a forbidden structure (mm).
SAFETY_RANGE_MM = (0.0, 30.0)

#: Structures grouped for the rejection reasons (labels marked critical in LABEL_INFO).
_GROUPS: dict[str, tuple[Label, ...]] = {
    "bone": (Label.RIB, Label.VERTEBRA, Label.LONG_BONE),
    "lung/pleura": (Label.LUNG,),
    "bowel": (Label.BOWEL_WALL, Label.BOWEL_CONTENT, Label.STOMACH),
    "gallbladder": (Label.GALLBLADDER,),
    "large vessel": (
        Label.PORTAL_VEIN,
        Label.HEPATIC_VEIN,
        Label.IVC,
        Label.AORTA,
        Label.RENAL_ARTERY,
        Label.RENAL_VEIN,
        Label.FEMORAL_ARTERY,
        Label.FEMORAL_VEIN,
    ),
    "artery/bile duct": (Label.HEPATIC_ARTERY, Label.BILE_DUCT),
    "heart": (Label.HEART,),
    "diaphragm": (Label.DIAPHRAGM,),
    "kidney": (Label.KIDNEY, Label.KIDNEY_MEDULLA),
    "spinal canal": (Label.SPINAL_CANAL,),
    "spinal cord/nerve root": (Label.SPINAL_CORD, Label.NERVE_ROOT),
    "peripheral nerve": (Label.PERIPHERAL_NERVE,),
    "collecting system/ureter": (Label.COLLECTING_SYSTEM, Label.URETER),
    "bronchus": (Label.BRONCHUS,),
    "pulmonary vessel": (Label.PULMONARY_VESSEL,),
}
#: Groups kept only where their local diameter reaches a threshold (mm): large vessels
#: (TrajectoryConfig.vessel_min_diameter_mm), and the lung's bronchi and vessels
#: (planner.toml [organs.lung]).
_SIZED = ("large vessel", "bronchus", "pulmonary vessel")
#: Labels whose crossing is checked along the path instead of by distance: the lung's
#: fissures (no crossing at all, planner.toml [organs.lung]).
_CROSSING_ONLY = (Label.FISSURE,)
#: The group of a case's extra classes with role "avoid" (structures of another tool's
#: segmentation with no ioplan label: pancreas, scapula, muscles, ...; see case.toml).
EXTRA_GROUP = "other structure"


@dataclass(frozen=True)
class TrajectoryConfig:
    """Constraints on needle paths (mm, degrees).

    Attributes
    ----------
    safety_mm : float
        Smallest distance allowed between the path and a forbidden structure.
    vessel_min_diameter_mm : float
        Vessels thinner than this may be crossed (they count through perfusion).
    max_length_mm : float
        Reach of the applicator (skin entry to tip).
    modality : str
        ``"CT"`` or ``"MR"`` guidance.
    max_ct_angle_deg : float
        CT: largest craniocaudal angle out of the axial plane.
    bore_diameter_mm, handle_length_mm : float
        MR: the applicator's outer end plus its handle must stay in the bore.
    min_liver_before_mm : float
        Normal liver wanted before the tumour (paths with less rank lower).
    n_directions : int
        Candidate directions over the sphere.
    organ : str
        The tumour's organ (liver, lung, kidney, bone): its own label may be crossed,
        and its rules apply (lung: pleural and fissure crossings).
    field_t, needle_material, needle_diameter_mm, mr_sequence
        MR: the needle artefact's field strength (T), shaft material, diameter (mm) and
        guidance sequence (:func:`ioplan.planning.needle_artefact_width_mm`).
    """

    safety_mm: float = 5.0
    vessel_min_diameter_mm: float = 3.0
    max_length_mm: float = 200.0
    modality: str = "CT"
    max_ct_angle_deg: float = 30.0
    bore_diameter_mm: float = 600.0
    handle_length_mm: float = 150.0
    min_liver_before_mm: float = 10.0
    n_directions: int = 600
    organ: str = "liver"
    field_t: float = 1.5
    needle_material: str = "titanium"
    needle_diameter_mm: float = 2.4
    mr_sequence: str = "GRE"

    def __post_init__(self) -> None:
        checks = {
            "safety_mm": SAFETY_RANGE_MM,
            "vessel_min_diameter_mm": (0.0, 30.0),
            "max_length_mm": (20.0, 500.0),
            "max_ct_angle_deg": (0.0, 90.0),
            "bore_diameter_mm": (300.0, 1000.0),
            "handle_length_mm": (0.0, 500.0),
            "min_liver_before_mm": (0.0, 100.0),
            "field_t": (0.1, 12.0),
            "needle_diameter_mm": (0.2, 10.0),
        }
        for name, (lo, hi) in checks.items():
            v = getattr(self, name)
            if not np.isfinite(v) or not lo <= v <= hi:
                raise InputError(f"{name} must be {lo:g}-{hi:g}, got {v}")
        if self.modality not in ("CT", "MR"):
            raise InputError(f"guidance modality must be CT or MR, got {self.modality!r}")
        if not 20 <= self.n_directions <= 20000:
            raise InputError(f"n_directions must be 20-20000, got {self.n_directions}")
        if self.needle_material not in NEEDLE_SUSCEPTIBILITY_PPM or (
            self.needle_material == "tissue"
        ):
            known = ", ".join(k for k in NEEDLE_SUSCEPTIBILITY_PPM if k != "tissue")
            raise InputError(f"needle_material must be one of {known}, got "
                             f"{self.needle_material!r}")  # fmt: skip
        if self.mr_sequence not in ARTEFACT_SEQUENCES:
            known = ", ".join(ARTEFACT_SEQUENCES)
            raise InputError(f"mr_sequence must be one of {known}, got {self.mr_sequence!r}")
        if self.organ not in PLANNED_ORGANS:
            known = ", ".join(PLANNED_ORGANS)
            raise InputError(f"organ must be one of {known}, got {self.organ!r}")


@dataclass(frozen=True)
class Trajectory:
    """A straight path: skin entry to target (LPS mm), whether it is allowed, and why not."""

    entry_mm: tuple[float, float, float]
    target_mm: tuple[float, float, float]
    length_mm: float
    accepted: bool
    reasons: tuple[str, ...] = ()
    clearance_mm: float = 0.0
    closest_structure: str = ""
    liver_before_tumour_mm: float = 0.0
    angle_deg: float = 0.0
    score: float = 0.0
    unimaged_mm: float = 0.0
    #: lung paths (organ lung): visceral pleural and fissure crossings from the entry to
    #: the target, aerated lung traversed before the tumour (mm) and the share of it below
    #: -950 HU (None: no image); zero for other organs and left out of to_dict then
    pleural_crossings: int = 0
    fissure_crossings: int = 0
    lung_path_mm: float = 0.0
    emphysema_fraction: float | None = None
    #: MR guidance: the needle's angle to B0 (degrees) and its artefact's width (mm); zero
    #: under CT and left out of to_dict then
    angle_to_b0_deg: float = 0.0
    artefact_width_mm: float = 0.0

    @property
    def direction(self) -> tuple[float, float, float]:
        """Unit insertion direction (entry towards target)."""
        d = np.asarray(self.target_mm) - np.asarray(self.entry_mm)
        return tuple(float(v) for v in d / np.linalg.norm(d))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record."""
        d = asdict(self)
        d["direction"] = list(self.direction)
        for k in ("entry_mm", "target_mm"):
            d[k] = [round(v, 2) for v in d[k]]
        d["reasons"] = list(self.reasons)
        keys = ("length_mm", "clearance_mm", "liver_before_tumour_mm", "angle_deg", "score")
        for k in (*keys, "unimaged_mm"):
            d[k] = round(d[k], 3)
        if self.pleural_crossings == 0 and self.lung_path_mm == 0.0:
            for k in ("pleural_crossings", "fissure_crossings", "lung_path_mm",
                      "emphysema_fraction"):  # fmt: skip
                d.pop(k)
        else:
            d["lung_path_mm"] = round(d["lung_path_mm"], 1)
            if d["emphysema_fraction"] is not None:
                d["emphysema_fraction"] = round(d["emphysema_fraction"], 3)
        if self.artefact_width_mm == 0.0:
            d.pop("angle_to_b0_deg")
            d.pop("artefact_width_mm")
        else:
            d["angle_to_b0_deg"] = round(d["angle_to_b0_deg"], 2)
            d["artefact_width_mm"] = round(d["artefact_width_mm"], 2)
        return d


def _fibonacci_directions(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = math.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


def forbidden_groups(
    case: Case, cfg: TrajectoryConfig, *, traversable: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Distance maps (mm) to each forbidden group on the case grid.

    The organ's own labels (``cfg.organ``: :func:`traversable_labels`) are left out, and
    so are fissures (checked as crossings along the path, lung rules). ``traversable``
    (boolean, the case's shape) marks voxels that are never an obstacle: the target
    structure itself, which the needle must enter (a biopsy of the gallbladder or of a
    kidney); the rest of its group still is one.
    """
    lab = np.asarray(case.labels.array)
    sp = case.labels.grid.spacing_mm
    lung = organ_settings("lung")
    min_diameter = {
        "large vessel": cfg.vessel_min_diameter_mm,
        "bronchus": float(lung["bronchus_min_diameter_mm"]),
        "pulmonary vessel": float(lung["vessel_min_diameter_mm"]),
    }
    allowed = set(traversable_labels(cfg.organ, lab, sp)) | {int(x) for x in _CROSSING_ONLY}
    out = {}
    for name, labels in _GROUPS.items():
        mask = np.isin(lab, [int(x) for x in labels if int(x) not in allowed])
        if name in _SIZED and mask.any() and min_diameter[name] > 0:
            # keep only the parts at least this wide (local inscribed radius)
            mask &= 2 * local_radius_mm(mask, sp) >= min_diameter[name]
        if traversable is not None:  # after the sizing: the target leaves no one thinner
            mask &= ~traversable
        if mask.any():
            out[name] = ndimage.distance_transform_edt(~mask, sampling=sp).astype(np.float32)
    # any other critical label not in a group
    grouped = {int(x) for v in _GROUPS.values() for x in v} | allowed
    other = [int(k) for k, v in LABEL_INFO.items() if v.critical and int(k) not in grouped]
    mask = np.isin(lab, other)
    if traversable is not None:
        mask &= ~traversable
    if mask.any():
        out["other critical"] = ndimage.distance_transform_edt(~mask, sampling=sp).astype(
            np.float32
        )
    extra = case.extra_mask("avoid")
    if traversable is not None:
        extra = extra & ~traversable
    if extra.any():
        out[EXTRA_GROUP] = ndimage.distance_transform_edt(~extra, sampling=sp).astype(np.float32)
    return out


def _target_diameter_mm(case: Case, target_mm: Any) -> float:
    """Equivalent-sphere diameter (mm) of the tumour at ``target_mm`` (0: no tumour label).

    The tumour component holding the target voxel, or else the one whose centre is nearest.
    """
    g = case.labels.grid
    mask = np.asarray(case.labels.array) == int(Label.TUMOR)
    boxes = ndimage.find_objects(mask.astype(np.uint8))
    if not boxes or boxes[0] is None:
        return 0.0
    box = boxes[0]
    comp, n = ndimage.label(mask[box])
    centre = np.rint(g.lps_to_index(np.asarray(target_mm, float))).astype(int)
    local = centre - np.array([sl.start for sl in box])
    inside = all(0 <= local[i] < comp.shape[i] for i in range(3))
    k = int(comp[tuple(local)]) if inside else 0
    if k == 0:
        centres = ndimage.center_of_mass(comp > 0, comp, range(1, n + 1))
        k = 1 + int(np.argmin([np.linalg.norm(np.subtract(c, local)) for c in centres]))
    volume_mm3 = float(np.count_nonzero(comp == k)) * float(np.prod(g.spacing_mm))
    return float((6.0 * volume_mm3 / math.pi) ** (1.0 / 3.0))


def _extra_class_near(case: Case, point_mm: np.ndarray, radius_mm: float) -> str:
    """The name of the avoided extra class nearest ``point_mm`` (within ``radius_mm``)."""
    if case.extra_labels is None:
        return ""
    g = case.labels.grid
    centre = np.rint(g.lps_to_index(point_mm)).astype(int)
    half = np.ceil(radius_mm / np.asarray(g.spacing_mm)).astype(int) + 1
    lo = np.clip(centre - half, 0, np.asarray(g.shape))
    hi = np.clip(centre + half + 1, 0, np.asarray(g.shape))
    win = np.asarray(case.extra_labels.array)[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    values = {c.value: c.name for c in case.extra_classes if c.role == "avoid"}
    idx = np.argwhere(np.isin(win, list(values)))
    if idx.size == 0:
        return ""
    d = np.linalg.norm((idx + lo - centre) * np.asarray(g.spacing_mm), axis=1)
    return values[int(win[tuple(idx[int(np.argmin(d))])])]


def _hu_beyond_entry(ct: np.ndarray, g: Grid, entry: np.ndarray, u: np.ndarray,
                     step: float) -> float | None:  # fmt: skip
    """The median CT value 2-10 mm beyond ``entry`` outwards (None beyond the image)."""
    s = np.arange(2.0, 10.0 + step, step)
    idx = np.rint(g.lps_to_index(entry[None, :] + s[:, None] * u[None, :])).astype(int)
    ok = np.all((idx >= 0) & (idx < np.asarray(g.shape)), axis=1)
    if not ok.any():
        return None
    return float(np.median(ct[tuple(idx[ok].T)]))


def candidate_trajectories(
    case: Case,
    target_mm: tuple[float, float, float],
    cfg: TrajectoryConfig | None = None,
    *,
    tip_beyond_mm: float = 0.0,
    distance_maps: dict[str, np.ndarray] | None = None,
) -> list[Trajectory]:
    """Every candidate path to ``target_mm``, accepted ones first (best first).

    ``tip_beyond_mm``: the applicator's tip goes this far past the target (its zone
    is centred behind the tip), and that part of the path is checked too.
    """
    cfg = cfg or TrajectoryConfig()
    g = case.labels.grid
    lab = np.asarray(case.labels.array)
    target = np.asarray(target_mm, float)
    if not g.contains_lps(target):
        raise InputError(f"target {tuple(target)} mm lies outside the case grid")
    dmaps = distance_maps if distance_maps is not None else forbidden_groups(case, cfg)
    step = 0.5 * min(g.spacing_mm)
    body = lab != int(Label.BACKGROUND)
    lung_rules = cfg.organ == "lung"
    hu_img = np.asarray(case.image.array) if lung_rules and case.image is not None else None
    lung_penalty = float(organ_settings("lung")["lung_mm_penalty"]) if lung_rules else 0.0
    mr = cfg.modality == "MR"
    visible_mm = ARTEFACT_HIDE_FRACTION * _target_diameter_mm(case, target) if mr else 0.0
    # without skin or fat labels the labels may end inside the body (organs labelled in an
    # unlabelled trunk): on CT, an entry is then checked against the image beyond it
    # (above the body outline's CT value of anatomy/data/auto_labels.toml, with its source,
    # the tissue beyond the last labelled voxel is body, not the air outside it)
    outline = bool(np.isin(lab, [int(Label.SKIN), int(Label.FAT)]).any())
    body_hu = auto_label_parameters()["ct"]["body_hu"]
    ct_img = (np.asarray(case.image.array) if not outline and case.image is not None
              and case.modality == "CT" and case.image.grid == g else None)  # fmt: skip
    out = []
    for u in _fibonacci_directions(cfg.n_directions):
        # march outwards from the target until the body ends (the skin entry)
        s_max = cfg.max_length_mm + 50.0
        s = np.arange(0.0, s_max, step)
        pts = target[None, :] + s[:, None] * u[None, :]
        idx = np.rint(g.lps_to_index(pts)).astype(int)
        inside_grid = np.all((idx >= 0) & (idx < np.asarray(g.shape)), axis=1)
        # beyond the image (a limited scan range or field of view) the edge slices are
        # continued, as the simulation domain does; that part is recorded as not imaged
        k_body = body[tuple(np.clip(idx, 0, np.asarray(g.shape) - 1).T)]
        outside = np.flatnonzero(~k_body)
        if outside.size == 0:
            continue  # never leaves the body within reach
        n_in = int(outside[0])
        if n_in == 0:
            continue
        entry = pts[n_in - 1]
        length = float(s[n_in - 1])
        unimaged = float(np.count_nonzero(~inside_grid[:n_in])) * step
        d = -u  # insertion direction, entry -> target
        # sample the whole shaft: entry to target, plus the part beyond the target
        back = np.arange(-tip_beyond_mm, 0.0, step) if tip_beyond_mm > 0 else np.zeros(0)
        path_s = np.concatenate([back, s[:n_in]])
        path = target[None, :] + path_s[:, None] * u[None, :]
        pidx = np.clip(np.rint(g.lps_to_index(path)).astype(int), 0, np.asarray(g.shape) - 1)
        reasons = []
        if ct_img is not None:
            hu_beyond = _hu_beyond_entry(ct_img, g, entry, u, step)
            if hu_beyond is not None and hu_beyond > body_hu:
                reasons.append(
                    f"the labels end inside the body here ({hu_beyond:.0f} HU beyond the "
                    "entry, not air): the case has no skin or fat labels (import it with "
                    "--auto-labels)"
                )
        clearance, closest = float("inf"), ""
        for name, dm in dmaps.items():
            dist = dm[tuple(pidx.T)]
            m = float(dist.min()) if dist.size else float("inf")
            if m < clearance:
                clearance, closest = m, name
            if m < cfg.safety_mm:
                where = path[int(np.argmin(dist))]
                what = name
                if name == EXTRA_GROUP:
                    near = _extra_class_near(case, where, m + 2 * max(g.spacing_mm))
                    what = f"{name} {near}" if near else name
                reasons.append(
                    f"passes {m:.1f} mm from {what} (safety {cfg.safety_mm:g} mm) at "
                    f"({where[0]:.0f}, {where[1]:.0f}, {where[2]:.0f}) mm"
                )
        if length > cfg.max_length_mm:
            reasons.append(f"{length:.0f} mm long, beyond the {cfg.max_length_mm:g} mm reach")
        angle = math.degrees(math.asin(min(1.0, abs(float(d[2])))))  # out of the axial plane
        b0_angle, artefact_mm, angle_term = 0.0, 0.0, -0.5 * angle
        if mr:  # the artefact's width counts where it would hide the target, not the plane
            b0_angle = angle_to_b0_deg(d)
            artefact_mm = needle_artefact_width_mm(
                material=cfg.needle_material, field_t=cfg.field_t, sequence=cfg.mr_sequence,
                angle_to_b0_deg=b0_angle, diameter_mm=cfg.needle_diameter_mm,
            )  # fmt: skip
            angle_term = -2.0 * max(0.0, artefact_mm - visible_mm)
        if cfg.modality == "CT" and angle > cfg.max_ct_angle_deg:
            reasons.append(
                f"{angle:.0f} deg out of the axial plane (CT limit {cfg.max_ct_angle_deg:g})"
            )
        if cfg.modality == "MR":
            outer = entry - d * (cfg.max_length_mm - length + cfg.handle_length_mm)
            centre = g.index_to_lps((np.asarray(g.shape) - 1) / 2.0)
            r_bore = float(np.hypot(outer[0] - centre[0], outer[1] - centre[1]))
            if r_bore > 0.5 * cfg.bore_diameter_mm:
                reasons.append(
                    f"applicator and handle end {r_bore:.0f} mm from the bore axis "
                    f"(bore {cfg.bore_diameter_mm:g} mm)"
                )
        # liver traversed before reaching the tumour (from the entry inwards)
        labels_path = lab[tuple(pidx[len(back) :][::-1].T)]
        tum = np.flatnonzero(labels_path == int(Label.TUMOR))
        upto = int(tum[0]) if tum.size else len(labels_path)
        liver_before = float(np.sum(labels_path[:upto] == int(Label.LIVER))) * step
        lung = {"pleural_crossings": 0, "fissure_crossings": 0, "lung_path_mm": 0.0,
                "emphysema_fraction": None}  # fmt: skip
        if lung_rules:
            hu = None
            if hu_img is not None and hu_img.shape == lab.shape:
                hu = hu_img[tuple(pidx[len(back) :][::-1].T)]
            lung = lung_path(labels_path, hu, step)
            reasons.extend(lung_rejections(lung))
        score = (
            -length
            - (2.0 * max(0.0, cfg.min_liver_before_mm - liver_before)
               if cfg.organ == "liver" else 0.0)
            + 2.0 * min(clearance, 20.0)
            + angle_term
            - 2.0 * unimaged
            - lung_penalty * lung["lung_path_mm"]
        )  # fmt: skip
        out.append(
            Trajectory(
                entry_mm=tuple(float(v) for v in entry),
                target_mm=tuple(float(v) for v in target),
                length_mm=length,
                accepted=not reasons,
                reasons=tuple(reasons),
                clearance_mm=clearance if np.isfinite(clearance) else 999.0,
                closest_structure=closest,
                liver_before_tumour_mm=liver_before,
                angle_deg=angle,
                score=score,
                unimaged_mm=unimaged,
                **lung,
                angle_to_b0_deg=b0_angle,
                artefact_width_mm=artefact_mm,
            )
        )
    out.sort(key=lambda t: (not t.accepted, -t.score))
    return out

"""Percutaneous core-needle biopsy: the viable target, the throw, the safest short path.

Viable target
    A lesion with a necrotic centre is sampled in its enhancing rim, never in the
    necrosis (a core of necrosis is non-diagnostic). The necrosis is found in the image
    itself (:func:`viable_target`): the lesion's intensities are smoothed (3 x 3 x 3
    median, the surroundings replaced by the lesion's median first) and split by the
    lower of the two multi-Otsu thresholds (three classes: necrosis, tumour, enhancing
    rim) computed on the lesion's own values; the darkest class is kept only where it is
    (1) clearly darker than the rest and necrosis-like (class means >= ``min_contrast_hu``
    apart and the dark mean <= ``max_necrosis_hu`` on CT; ``min_contrast_fraction`` of the
    bright class on MR), (2) connected, (3) central (the component's centroid lies at least
    ``central_depth_fraction`` of the lesion's largest depth inside) and (4) not negligible
    (>= ``min_fraction`` of the lesion). The viable part is the lesion less the necrosis
    dilated by ``edge_mm``, at least one voxel (partial volume). Without necrosis the whole
    lesion is viable and the throw is centred on the lesion's centre (its deepest point).

Throw
    A core needle (14-20G, ``biopsy.toml`` ``[needles]``) is placed coaxially: the introducer
    (one gauge larger) stops at the start of the throw, the gun fires the stylet one throw
    (10 or 20 mm) further; the tip after firing is the end of the throw (``target_mm``), and
    a side-notch needle's specimen ends ``tip_beyond_specimen_mm`` short of it. Every sample
    of the throw (half-voxel steps, nearest voxel) must lie in viable lesion.

Path
    Aim points: the lesion's centre (the throw centred on it), or, over a necrotic centre,
    points of the rim's mid-depth (the throw centred on one, or ending at it, or a quarter
    throw beyond it: the shortest that fits). For each aim point the trajectory engine
    (:func:`~ioplan.planning._trajectories.candidate_trajectories`) marches every
    direction out to the skin and checks the whole needle, skin to the end of the throw
    plus ``beyond_tip_mm``, against its forbidden structures (bone, pleura, bowel,
    gallbladder, large vessels, ...) and the organ's rules (lung: at most one pleural
    crossing, no fissure). Biopsy rules are added: the throw inside viable lesion; no
    vessel of any calibre within ``throw_vessel_clearance_mm`` of the throw or beyond the
    tip; liver: >= ``min_normal_liver_mm`` of normal liver before the lesion (tamponade);
    kidney: the hilum (renal vessels, collecting system, ureter) kept ``hilum_clearance_mm``
    from the needle. Of the paths that pass, the shortest (skin to fired tip) is chosen;
    equal lengths go to the larger clearance; ``viable_target.aim_reason`` says where and why.

Risks
    Bleeding: the SIR 2019 risk category of the procedure and the organ's published rate,
    scaled to the introducer's cross-section (an ioplan assumption, said so). Lung: the
    pneumothorax probability of the chosen path (:func:`pneumothorax_risk`).

Every threshold and figure is in ``planning/data/biopsy.toml`` with its source.
"""

from __future__ import annotations

import json
import math
import re
import time
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy import VESSEL_LABELS, Case, Label, label_from_name
from ioplan.errors import InputError
from ioplan.planning._biopsy_aim import aim_record
from ioplan.planning._checks import check_target_label, check_tumour_index
from ioplan.planning._metrics import tumour_mask
from ioplan.planning._organ_rules import organ_settings, planning_organ, pneumothorax_risk
from ioplan.planning._trajectories import (
    SAFETY_RANGE_MM,
    TrajectoryConfig,
    candidate_trajectories,
    forbidden_groups,
)

__all__ = [
    "BIOPSY_FOLDER_ENTRIES",
    "BIOPSY_SCHEMA_VERSION",
    "Biopsy",
    "BiopsyConfig",
    "NoSafePathError",
    "ViableTarget",
    "biopsy_settings",
    "plan_biopsy",
    "recommended_cores",
    "viable_target",
    "write_biopsy",
]

#: Version of biopsy.json's layout.
BIOPSY_SCHEMA_VERSION = 1
#: What :func:`write_biopsy` writes into its folder.
BIOPSY_FOLDER_ENTRIES = frozenset({"biopsy.json", "biopsy.mrk.json", "report.html", "figures"})
#: Hilar structures of the kidney (any calibre).
_HILUM = (Label.RENAL_ARTERY, Label.RENAL_VEIN, Label.COLLECTING_SYSTEM, Label.URETER)


class NoSafePathError(InputError):
    """No path satisfies the biopsy's rules (the message gives the commonest reasons)."""


@lru_cache(maxsize=1)
def biopsy_settings() -> dict[str, Any]:
    """The biopsy's settings with their sources (``planning/data/biopsy.toml``)."""
    text = resources.files("ioplan.planning").joinpath("data/biopsy.toml").read_text()
    return tomllib.loads(text)


def _needle(name: str) -> dict[str, Any]:
    st = biopsy_settings()["needles"]
    key = str(name).strip().upper()
    if key not in st["gauges"]:
        known = ", ".join(st["gauges"])
        raise InputError(f"--needle must be one of {known}, got {name!r}")
    gauge = int(st["gauges"][key])
    intro = gauge - int(st["introducer_gauge_offset"])
    od = st["outer_diameter_mm"]
    return {
        "name": key,
        "gauge": gauge,
        "outer_diameter_mm": float(od[str(gauge)]),
        "introducer_gauge": intro,
        "introducer_outer_diameter_mm": float(od[str(intro)]),
        "source": st["outer_diameter_source"],
        "introducer_source": st["introducer_source"],
    }


def recommended_cores(histology: str | None) -> dict[str, Any]:
    """Cores by histology need: ``{"histology", "recommended", "range", "source"}``.

    Examples
    --------
    >>> recommended_cores("rcc")["recommended"]
    2
    >>> recommended_cores("crc-metastasis")["histology"]
    'metastasis'
    """
    st = biopsy_settings()["cores"]
    key = str(histology or "default").strip().lower().replace(" ", "_")
    key = st["aliases"].get(key, key)
    if key not in st or key == "aliases":
        known = sorted({k for k in st if k != "aliases"} | set(st["aliases"]))
        raise InputError(f"--histology must be one of {', '.join(known)}, got {histology!r}")
    e = st[key]
    return {"histology": key, "recommended": int(e["recommended"]),
            "range": [int(v) for v in e["range"]], "source": e["source"]}  # fmt: skip


@dataclass(frozen=True)
class BiopsyConfig:
    """What to biopsy and with what (mm).

    Attributes
    ----------
    needle : str
        Core needle gauge, ``"14G"``, ``"16G"``, ``"18G"`` or ``"20G"``.
    throw_mm : float
        Throw of the gun, 10 or 20 mm.
    needle_type : str
        ``"side-notch"`` or ``"end-cut"`` (where the specimen lies behind the tip).
    histology : str, optional
        Decides the cores (default: the case's tumour record, else ``default``).
    guidance : str
        ``"CT"`` or ``"MR"`` (the trajectory engine's angle or bore limits).
    target_label : str
        The label to biopsy (default the tumour).
    tumour_index : int
        Which lesion of that label (0: the first).
    organ : str, optional
        liver, lung, kidney or bone (default: the case's, else inferred).
    safety_mm : float
        The trajectory engine's distance to forbidden structures.
    min_normal_liver_mm : float, optional
        Normal liver wanted before a liver lesion (default: biopsy.toml's 10 mm).
    n_directions : int
        Directions tried per aim point.
    max_aim_points, aim_batch : int
        Rim aim points tried over a necrotic centre, in batches: the search stops after
        the first batch that yields a safe path (the shortest so far is kept).
    """

    needle: str = "18G"
    throw_mm: float = 20.0
    needle_type: str = "side-notch"
    histology: str | None = None
    guidance: str = "CT"
    target_label: str = "tumor"
    tumour_index: int = 0
    organ: str | None = None
    safety_mm: float = 5.0
    min_normal_liver_mm: float | None = None
    n_directions: int = 600
    max_aim_points: int = 96
    aim_batch: int = 24

    def __post_init__(self) -> None:
        _needle(self.needle)
        throws = biopsy_settings()["needles"]["throws_mm"]
        if not any(abs(self.throw_mm - t) < 1e-9 for t in throws):
            shown = " or ".join(f"{t:g}" for t in throws)
            raise InputError(f"--throw-mm must be {shown}, got {self.throw_mm:g}")
        if self.needle_type not in ("side-notch", "end-cut"):
            raise InputError(f"needle type must be side-notch or end-cut, got {self.needle_type!r}")
        if str(self.guidance).upper() not in ("CT", "MR"):
            raise InputError(f"--guidance must be CT or MR, got {self.guidance!r}")
        object.__setattr__(self, "guidance", str(self.guidance).upper())
        label_from_name(self.target_label)
        if self.tumour_index < 0:
            raise InputError(f"--tumour must be 0 or more, got {self.tumour_index}")
        if self.histology is not None:
            recommended_cores(self.histology)
        lo, hi = SAFETY_RANGE_MM
        if not lo <= self.safety_mm <= hi:
            raise InputError(f"safety_mm must be {lo:g}-{hi:g}, got {self.safety_mm}")
        if self.min_normal_liver_mm is not None and not 0 <= self.min_normal_liver_mm <= 50:
            raise InputError(f"min_normal_liver_mm must be 0-50, got {self.min_normal_liver_mm}")
        if (
            not 20 <= self.n_directions <= 20000
            or not 1 <= self.max_aim_points <= 500
            or (self.aim_batch < 1)
        ):
            raise InputError("n_directions must be 20-20000 and max_aim_points 1-500")


@dataclass(frozen=True, eq=False)
class ViableTarget:
    """The lesion split into viable tissue and necrosis (boolean arrays on the case grid)."""

    lesion: np.ndarray
    viable: np.ndarray
    necrosis: np.ndarray
    necrotic_fraction: float
    threshold: float | None
    contrast: float | None
    method: str


def viable_target(image: np.ndarray, lesion: np.ndarray, spacing_mm, *,
                  modality: str = "CT") -> ViableTarget:  # fmt: skip
    """Find a necrotic centre in ``lesion`` from ``image`` (see the module's docstring).

    Parameters
    ----------
    image : ndarray
        CT (HU) or MR intensities, shape of ``lesion``.
    lesion : ndarray of bool
        The lesion's voxels.
    spacing_mm : sequence of 3 float
        Voxel size ``(z, y, x)``.
    modality : str
        ``"CT"`` (absolute HU contrast) or ``"MR"`` (relative contrast).
    """
    from skimage.filters import threshold_multiotsu, threshold_otsu

    st = biopsy_settings()["viable"]
    lesion = np.asarray(lesion, bool)
    sp = np.asarray(spacing_mm, float)
    empty = np.zeros_like(lesion)
    idx = np.argwhere(lesion)
    lo = np.maximum(idx.min(0) - 2, 0)
    hi = np.minimum(idx.max(0) + 3, lesion.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    les = lesion[box]
    raw = np.asarray(image, float)[box].copy()
    raw[~les] = np.median(raw[les])  # the surroundings (lung, fat) must not darken the edge
    smooth = ndimage.median_filter(raw, size=3)
    vals = smooth[les]

    def solid(why: str, thr=None, contrast=None) -> ViableTarget:
        return ViableTarget(lesion, lesion.copy(), empty, 0.0, thr, contrast, why)

    if vals.size < 27 or np.ptp(vals) == 0:
        return solid("no necrotic centre: lesion too small or uniform")
    try:  # the darkest of three classes (necrosis, tumour, enhancing rim)
        thr = float(threshold_multiotsu(vals, classes=3)[0])
    except ValueError:  # too few distinct values for three classes
        thr = float(threshold_otsu(vals))
    dark, bright = vals[vals < thr], vals[vals >= thr]
    if dark.size == 0 or bright.size == 0:
        return solid("no necrotic centre: one intensity class", thr)
    contrast = float(bright.mean() - dark.mean())
    if modality == "CT":
        clear = (contrast >= float(st["min_contrast_hu"])
                 and dark.mean() <= float(st["max_necrosis_hu"]))  # fmt: skip
        need = f">= {st['min_contrast_hu']:g} HU apart, dark <= {st['max_necrosis_hu']:g} HU"
    else:
        clear = contrast >= float(st["min_contrast_fraction"]) * abs(float(bright.mean()))
        need = f">= {100 * st['min_contrast_fraction']:g} % of the bright class apart"
    if not clear:
        return solid(f"no necrotic centre: darkest class {dark.mean():.0f}, "
                     f"{contrast:.0f} below the rest (needs {need})", thr, contrast)  # fmt: skip
    depth = ndimage.distance_transform_edt(les, sampling=sp)
    comps, n = ndimage.label(les & (smooth < thr))
    keep = np.zeros_like(les)
    for k in range(1, n + 1):
        c = comps == k
        centre = np.rint(np.argwhere(c).mean(0)).astype(int)
        if depth[tuple(centre)] >= float(st["central_depth_fraction"]) * depth.max():
            keep |= c
    fraction = float(keep.sum()) / float(les.sum())
    if fraction < float(st["min_fraction"]):
        return solid(f"no necrotic centre: no central dark region >= "
                     f"{100 * st['min_fraction']:g} % of the lesion", thr, contrast)  # fmt: skip
    keep = ndimage.binary_fill_holes(keep) & les
    edge_mm = max(float(st["edge_mm"]), float(sp.max()))  # at least one voxel
    near = ndimage.distance_transform_edt(~keep, sampling=sp) <= edge_mm + 1e-6
    necrosis, viable = empty.copy(), empty.copy()
    necrosis[box] = keep
    viable[box] = les & ~near
    method = (f"necrotic centre: median-filtered intensities below Otsu's {thr:.0f} "
              f"(classes {contrast:.0f} apart), connected and central; viable rim kept "
              f"{edge_mm:g} mm from it")  # fmt: skip
    return ViableTarget(lesion, viable, necrosis, fraction, thr, contrast, method)


@dataclass(frozen=True)
class Biopsy:
    """A planned biopsy: the path, the throw, the cores, the risks (LPS mm)."""

    entry_mm: tuple[float, float, float]
    target_mm: tuple[float, float, float]
    throw_start_mm: tuple[float, float, float]
    aim_mm: tuple[float, float, float]
    needle: dict[str, Any]
    needle_type: dict[str, Any]
    throw_mm: float
    cores: dict[str, Any]
    path_length_mm: float
    organ: str
    guidance: str
    target_label: str
    tumour_index: int
    viable: dict[str, Any]
    rules: dict[str, Any]
    path: dict[str, Any]
    risks: dict[str, Any]
    search: dict[str, Any] = field(default_factory=dict)
    runtime_s: float = 0.0

    @property
    def direction(self) -> np.ndarray:
        """Unit insertion direction (entry towards the tip)."""
        d = np.asarray(self.target_mm) - np.asarray(self.entry_mm)
        return d / np.linalg.norm(d)

    def to_dict(self) -> dict[str, Any]:
        """biopsy.json's document (the keys of issue 22 plus the details)."""
        from ioplan import __version__

        def pt(p):
            return [round(float(v), 2) for v in p]

        nd = self.needle
        return {
            "schema_version": BIOPSY_SCHEMA_VERSION,
            "entry_mm": pt(self.entry_mm),
            "target_mm": pt(self.target_mm),
            "needle": nd["name"],
            "throw_mm": self.throw_mm,
            "cores": self.cores["recommended"],
            "path_length_mm": round(self.path_length_mm, 1),
            "risks": self.risks,
            "organ": self.organ,
            "guidance": self.guidance,
            "target_label": self.target_label,
            "tumour_index": self.tumour_index,
            "direction": [round(float(v), 4) for v in self.direction],
            "throw_start_mm": pt(self.throw_start_mm),
            "aim_mm": pt(self.aim_mm),
            "tip_mm": pt(self.target_mm),
            "needle_detail": nd | {"type": self.needle_type},
            "cores_detail": self.cores,
            "viable_target": self.viable,
            "necrotic_fraction": self.viable["necrotic_fraction"],
            "rules": self.rules,
            "path": self.path,
            "search": self.search,
            "runtime_s": round(self.runtime_s, 2),
            "software_version": __version__,
        }


def _lesion(case: Case, cfg: BiopsyConfig, organ: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The lesion's voxels and its record (the tumour, or a component of another label)."""
    label = label_from_name(cfg.target_label)
    if label == Label.TUMOR:
        check_tumour_index(case, cfg.tumour_index, name="--tumour")
        return tumour_mask(case, cfg.tumour_index, organ)
    label = check_target_label(case, cfg.target_label)  # not the background, present
    comps, n = ndimage.label(np.asarray(case.labels.array) == int(label))
    sizes = ndimage.sum(np.ones_like(comps), comps, range(1, n + 1))
    order = np.argsort(-sizes)
    if cfg.tumour_index >= n:
        raise InputError(f"--tumour {cfg.tumour_index} does not exist: the case has {n} "
                         f"{cfg.target_label} region(s) (0-{n - 1})")  # fmt: skip
    return comps == int(order[cfg.tumour_index]) + 1, {}


def _aim_points(vt: ViableTarget, grid, n_max: int) -> np.ndarray:
    """Aim points (LPS mm): the lesion's deepest point, or points of the viable rim.

    Over a necrosis: the rim's mid-depth (the ridge of its depth) and its inner surface
    (viable voxels next to the guarded necrosis, where the longest chords that miss the
    necrosis pass), spread by farthest-point sampling; ``n_max`` of them, in that order
    (the first ones cover the rim coarsely, later ones fill in).
    """
    sp = np.asarray(grid.spacing_mm, float)
    depth = ndimage.distance_transform_edt(vt.viable, sampling=sp)
    if not vt.necrosis.any():
        best = np.unravel_index(int(np.argmax(depth)), depth.shape)
        return grid.index_to_lps(np.asarray([best], float))
    local = ndimage.maximum_filter(depth, size=3)
    ridge = vt.viable & (depth >= local - 0.5 * sp.min()) & (depth > 0)
    core = vt.lesion & ~vt.viable & ndimage.binary_dilation(vt.necrosis, iterations=3)
    inner = vt.viable & ndimage.binary_dilation(core)
    pts = np.argwhere(ridge | inner)
    if pts.size == 0:
        pts = np.argwhere(vt.viable)
    if pts.size == 0:
        raise NoSafePathError("the lesion has no viable tissue outside its necrosis")
    xyz = pts * sp
    pick = [int(np.argmax(depth[tuple(pts.T)]))]
    dmin = np.linalg.norm(xyz - xyz[pick[0]], axis=1)
    while len(pick) < min(n_max, len(pts)):
        k = int(np.argmax(dmin))
        if dmin[k] <= 0:
            break
        pick.append(k)
        dmin = np.minimum(dmin, np.linalg.norm(xyz - xyz[k], axis=1))
    return grid.index_to_lps(pts[pick].astype(float))


def _reason(text: str) -> str:
    """A rejection reason without its figures, to count alike reasons together."""
    text = re.sub(r" at \(.*\) mm$", "", text.split(" (safety")[0].split(" (CT")[0])
    return re.sub(r"-?\d+(\.\d+)? ?(mm|deg) ?", "", text).strip()


def _samples(a: np.ndarray, b: np.ndarray, step: float) -> np.ndarray:
    n = max(2, math.ceil(float(np.linalg.norm(b - a)) / step) + 1)
    return a[None, :] + np.linspace(0.0, 1.0, n)[:, None] * (b - a)[None, :]


def _lookup(grid, arr: np.ndarray, pts: np.ndarray, outside=0):
    idx = np.rint(grid.lps_to_index(pts)).astype(int)
    ok = np.all((idx >= 0) & (idx < np.asarray(grid.shape)), axis=1)
    out = np.full(len(pts), outside, dtype=arr.dtype)
    out[ok] = arr[tuple(idx[ok].T)]
    return out


def _min_along(g, dmap: np.ndarray | None, pts: np.ndarray) -> float | None:
    """The smallest value of a distance map at the points (None: no such structure)."""
    return None if dmap is None else float(_lookup(g, dmap, pts, np.inf).min())


def _check_throw(g, start, tip, entry, d, vt, lesion, maps, lims, organ, step):
    """The biopsy's own rules for one throw: its findings, or why it is refused."""
    if not np.all(_lookup(g, vt.viable, _samples(start, tip, step), False)):
        return "throw leaves the viable lesion"
    far = _samples(start, tip + lims["beyond"] * d, step)
    dv = (
        float(_lookup(g, maps["vessel"], far, np.inf).min()) if maps["vessel"] is not None else None
    )
    if dv is not None and dv < lims["vessel"]:
        return "vessel in or beyond the throw"
    shaft = _samples(entry, tip + lims["beyond"] * d, step)
    dh = (
        float(_lookup(g, maps["hilum"], shaft, np.inf).min()) if maps["hilum"] is not None else None
    )
    if dh is not None and dh < lims["hilum"]:
        return "passes the renal hilum"
    along = _samples(entry, tip, step)
    in_les = _lookup(g, lesion, along, False)
    first = int(np.flatnonzero(in_les)[0]) if in_les.any() else len(along)
    liver_mm = float(np.count_nonzero(_lookup(g, maps["liver"], along[:first], False))) * step
    if organ == "liver" and liver_mm < lims["liver"]:
        return "too little normal liver before the lesion"
    return {"d_vessel_throw": dv, "d_hilum": dh, "liver_mm": liver_mm}


def plan_biopsy(case: Case, cfg: BiopsyConfig | None = None) -> Biopsy:
    """Plan a core-needle biopsy of ``case``'s lesion (see the module's docstring).

    Raises
    ------
    InputError
        No such lesion or tumour index, a lesion outside its organ.
    NoSafePathError
        No path satisfies the rules (the message names the commonest reasons).
    """
    t0 = time.perf_counter()
    cfg = cfg or BiopsyConfig()
    st = biopsy_settings()
    rules_st = st["path"]
    organ = planning_organ(case, cfg.organ)
    known = [k for k, v in biopsy_settings()["risk"]["bleeding"].items() if isinstance(v, dict)]
    if organ not in known:  # before any work (was a KeyError at the end)
        raise InputError(
            f"biopsy planning covers {', '.join(known)}; not {organ} (no published bleeding "
            "rate for it in biopsy.toml)"
        )
    lesion, rec = _lesion(case, cfg, organ)
    g = case.labels.grid
    sp = np.asarray(g.spacing_mm, float)
    lab = np.asarray(case.labels.array)
    vt = viable_target(np.asarray(case.image.array), lesion, sp, modality=case.modality)
    needle = _needle(cfg.needle)
    ntype = dict(st["needle_types"][cfg.needle_type]) | {"name": cfg.needle_type}
    histology = cfg.histology or rec.get("histology")
    try:
        cores = recommended_cores(histology)
    except InputError:
        if cfg.histology is not None:
            raise
        cores = recommended_cores(None) | {"note": f"histology {histology!r}: default cores"}
    # the target structure is no obstacle on the way to itself (a gallbladder, a kidney)
    dmaps = forbidden_groups(case, TrajectoryConfig(safety_mm=cfg.safety_mm, organ=organ),
                             traversable=lesion)  # fmt: skip
    vessels = np.isin(lab, [int(v) for v in VESSEL_LABELS]) & ~lesion
    d_vessel = (ndimage.distance_transform_edt(~vessels, sampling=sp).astype(np.float32)
                if vessels.any() else None)  # fmt: skip
    hilum = np.isin(lab, [int(v) for v in _HILUM]) & ~lesion if organ == "kidney" else None
    d_hilum = (ndimage.distance_transform_edt(~hilum, sampling=sp).astype(np.float32)
               if hilum is not None and hilum.any() else None)  # fmt: skip
    liver = lab == int(Label.LIVER)
    subcap = None
    if organ == "liver":
        outside_liver = ~(liver | lesion | np.isin(lab, [int(v) for v in VESSEL_LABELS]))
        d_out = ndimage.distance_transform_edt(~outside_liver, sampling=sp)
        subcap = float(d_out[lesion].min())
    min_liver = (float(rules_st["min_normal_liver_mm"]) if cfg.min_normal_liver_mm is None
                 else cfg.min_normal_liver_mm)  # fmt: skip
    half = 0.5 * cfg.throw_mm
    beyond = float(rules_st["beyond_tip_mm"])
    step = 0.5 * float(sp.min())
    aims = _aim_points(vt, g, cfg.max_aim_points)
    # a solid lesion: the throw centred on its centre; a rim: the throw may also end at its
    # aim point or straddle it (it slides back along the shaft the engine checked)
    shifts = (0.0, 0.5 * half, half) if vt.necrosis.any() else (half,)
    maps = {"vessel": d_vessel, "hilum": d_hilum, "liver": liver}
    lims = {"vessel": float(rules_st["throw_vessel_clearance_mm"]), "beyond": beyond,
            "hilum": float(rules_st["hilum_clearance_mm"]), "liver": min_liver}  # fmt: skip
    reasons_count: dict[str, int] = {}
    stats = {"paths": 0, "engine_ok": 0, "aims": 0}

    def why(text: str) -> None:
        reasons_count[text] = reasons_count.get(text, 0) + 1

    def search(tcfg: TrajectoryConfig):
        best = None
        for i_aim, aim in enumerate(aims):
            if best is not None and i_aim >= cfg.aim_batch and i_aim % cfg.aim_batch == 0:
                break  # a batch found a path: stop refining the rim
            stats["aims"] = max(stats["aims"], i_aim + 1)
            trs = candidate_trajectories(case, tuple(aim), tcfg, tip_beyond_mm=half + beyond,
                                         distance_maps=dmaps)  # fmt: skip
            for t in trs:
                stats["paths"] += 1
                if not t.accepted:
                    why(_reason(t.reasons[0]))
                    continue
                stats["engine_ok"] += 1
                d = np.asarray(t.direction)
                entry = np.asarray(t.entry_mm)
                # the tip at the aim point itself, a quarter or half a throw beyond it (the
                # throw slides back along the checked shaft); the shortest first
                for shift in shifts:
                    tip = aim + shift * d
                    length = float(np.linalg.norm(tip - entry))
                    if length > tcfg.max_length_mm:
                        why("longer than the needle")
                        break
                    if best is not None and length > best["length"] + 1e-9:
                        break
                    start = tip - cfg.throw_mm * d
                    got = _check_throw(g, start, tip, entry, d, vt, lesion, maps, lims, organ,
                                       step)  # fmt: skip
                    if isinstance(got, str):
                        why(refused := got)  # kept: why the throw is not nearer the skin
                        continue
                    if (
                        best is None
                        or length < best["length"] - 1e-9
                        or (
                            abs(length - best["length"]) <= 1e-9
                            and t.clearance_mm > best["t"].clearance_mm
                        )
                    ):
                        best = {"length": length, "t": t, "aim": aim, "start": start,
                                "tip": tip, "entry": entry, "needle_length_mm":
                                tcfg.max_length_mm, "shift": shift, "refused":
                                refused if shift > shifts[0] else None, **got}  # fmt: skip
                    break
        return best

    # CT: the longest needle; MR: the shortest needle that reaches (its hub and the gun
    # must stay in the bore, and a shorter needle keeps them closer to the skin)
    lengths = [float(v) for v in st["needles"]["lengths_mm"]]
    best = None
    for length_mm in sorted(lengths) if cfg.guidance == "MR" else [max(lengths)]:
        # MR: the artefact of the introducer (the thickest shaft; titanium assumed)
        shaft_mm = needle["introducer_outer_diameter_mm"]
        tcfg = TrajectoryConfig(modality=cfg.guidance, safety_mm=cfg.safety_mm,
                                n_directions=cfg.n_directions, organ=organ,
                                max_length_mm=length_mm, needle_material="titanium",
                                handle_length_mm=float(st["needles"]["gun_length_mm"]),
                                needle_diameter_mm=shaft_mm)  # fmt: skip
        best = search(tcfg)
        if best is not None:
            break
    if best is None:
        top = sorted(reasons_count.items(), key=lambda kv: -kv[1])[:3]
        shown = "; ".join(f"{k} ({v})" for k, v in top) or "no direction reaches the skin"
        raise NoSafePathError(
            f"no safe biopsy path to {cfg.target_label} {cfg.tumour_index} "
            f"({len(aims)} aim point(s) x {cfg.n_directions} directions; {shown})"
        )
    t = best["t"]
    shaft = _samples(best["entry"], best["tip"], step)
    dv_path = float(_lookup(g, d_vessel, shaft, np.inf).min()) if d_vessel is not None else None
    rules = {
        "trajectory_engine": "forbidden structures within "
        f"{cfg.safety_mm:g} mm of the needle (skin to {beyond:g} mm beyond the tip), "
        f"{cfg.guidance} angle/bore limits, organ rules ({organ})",
        "throw_in_viable_lesion": True,
        "throw_vessel_clearance_mm": float(rules_st["throw_vessel_clearance_mm"]),
        "beyond_tip_mm": beyond,
    }
    if organ == "liver":
        rules["min_normal_liver_mm"] = min_liver
        rules["min_normal_liver_source"] = rules_st["min_normal_liver_source"]
    if organ == "kidney":
        rules["hilum_clearance_mm"] = float(rules_st["hilum_clearance_mm"])
        rules["hilum_source"] = rules_st["hilum_source"]
    if organ == "lung":
        lung = organ_settings("lung")
        rules["max_pleural_crossings"] = int(lung["max_pleural_crossings"])
        rules["fissure_crossing_allowed"] = bool(lung["fissure_crossing_allowed"])
        rules["lung_source"] = lung["max_pleural_crossings_source"]
    path = {
        "clearance_mm": round(float(t.clearance_mm), 2),
        "closest_structure": t.closest_structure,
        "angle_deg": round(float(t.angle_deg), 1),
        "vessel_distance_path_mm": None if dv_path is None else round(dv_path, 2),
        "vessel_distance_throw_and_beyond_mm": (None if best["d_vessel_throw"] is None
                                                else round(best["d_vessel_throw"], 2)),
        "normal_liver_before_lesion_mm": round(best["liver_mm"], 1),
        "unimaged_mm": round(float(t.unimaged_mm), 1),
        "needle_length_mm": best["needle_length_mm"],
    }  # fmt: skip
    if subcap is not None:
        path["lesion_to_capsule_mm"] = round(subcap, 1)
        path["subcapsular"] = bool(subcap <= float(rules_st["subcapsular_mm"]))
    if best["d_hilum"] is not None:
        path["hilum_distance_mm"] = round(best["d_hilum"], 1)
    risks: dict[str, Any] = {"bleeding": _bleeding(organ, needle)}
    if organ == "lung":
        path |= {"pleural_crossings": t.pleural_crossings,
                 "fissure_crossings": t.fissure_crossings,
                 "lung_path_mm": round(t.lung_path_mm, 1)}  # fmt: skip
        risks["pneumothorax"] = pneumothorax_risk(
            t.lung_path_mm, t.pleural_crossings, t.fissure_crossings, t.emphysema_fraction
        )
    else:
        risks["pneumothorax"] = None
    viable = {
        "necrotic_centre": bool(vt.necrosis.any()),
        "necrotic_fraction": round(vt.necrotic_fraction, 3),
        "lesion_ml": round(float(lesion.sum()) * float(np.prod(sp)) / 1000.0, 2),
        "viable_ml": round(float(vt.viable.sum()) * float(np.prod(sp)) / 1000.0, 2),
        "threshold": None if vt.threshold is None else round(vt.threshold, 1),
        "contrast": None if vt.contrast is None else round(vt.contrast, 1),
        "method": vt.method,
        **aim_record(vt, best["shift"], cfg.throw_mm, best["refused"]),  # aim, aim_reason
    }
    search_rec = {"aim_points": stats["aims"], "paths_examined": stats["paths"],
              "passed_trajectory_engine": stats["engine_ok"],
              "rejections": dict(sorted(reasons_count.items(), key=lambda kv: -kv[1]))}  # fmt: skip
    return Biopsy(
        entry_mm=tuple(float(v) for v in best["entry"]),
        target_mm=tuple(float(v) for v in best["tip"]),
        throw_start_mm=tuple(float(v) for v in best["start"]),
        aim_mm=tuple(float(v) for v in best["aim"]),
        needle=needle,
        needle_type=ntype,
        throw_mm=float(cfg.throw_mm),
        cores=cores,
        path_length_mm=best["length"],
        organ=organ,
        guidance=cfg.guidance,
        target_label=label_from_name(cfg.target_label).name.lower(),
        tumour_index=cfg.tumour_index,
        viable=viable,
        rules=rules,
        path=path,
        risks=risks,
        search=search_rec,
        runtime_s=time.perf_counter() - t0,
    )


def _bleeding(organ: str, needle: dict[str, Any]) -> dict[str, Any]:
    """The organ's bleeding figure scaled to the introducer's cross-section (biopsy.toml)."""
    st = biopsy_settings()
    b = st["risk"]["bleeding"]
    e = b[organ]
    intro = int(e["reference_gauge"]) - int(st["needles"]["introducer_gauge_offset"])
    ref_od = float(st["needles"]["outer_diameter_mm"][str(intro)])
    factor = (needle["introducer_outer_diameter_mm"] / ref_od) ** 2
    return {
        "category": e["category"],
        "category_source": b["category_source"],
        "published_rate_percent": float(e["rate_percent"]),
        "reference_gauge": int(e["reference_gauge"]),
        "rate_percent": round(float(e["rate_percent"]) * factor, 2),
        "gauge_factor": round(factor, 3),
        "what": e["what"],
        "source": e["source"],
        "gauge_model": b["gauge_model"],
        "source_verified": bool(e.get("verified", False)),
    }


# ------------------------------------------------------------------------------------------
# output: biopsy.json, Slicer markups, the report with slices along the path


def _plane(case: Case, centre: np.ndarray, u: np.ndarray, v: np.ndarray, half_mm: float,
           arrays: list[np.ndarray], step_mm: float) -> list[np.ndarray]:  # fmt: skip
    """Resample ``arrays`` on the plane ``centre + a u + b v`` (|a|, |b| <= half_mm)."""
    g = case.labels.grid
    s = np.arange(-half_mm, half_mm + 1e-9, step_mm)
    bb, aa = np.meshgrid(s, s, indexing="ij")  # rows along v, columns along u
    pts = centre[None, :] + aa.reshape(-1, 1) * u[None, :] + bb.reshape(-1, 1) * v[None, :]
    idx = g.lps_to_index(pts).T
    out = []
    for i, a in enumerate(arrays):
        order, cval = (1, -1024.0) if i == 0 else (0, 0.0)
        res = ndimage.map_coordinates(np.asarray(a, float), idx, order=order, cval=cval)
        out.append(res.reshape(aa.shape))
    return out


def _figures(b: Biopsy, case: Case, vt_masks: tuple[np.ndarray, np.ndarray], folder: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ioplan.report import CT_WINDOW_HU, save_figure

    lesion, necrosis = vt_masks
    image = np.asarray(case.image.array, float)
    d = b.direction
    entry, tip, start = (np.asarray(p, float) for p in (b.entry_mm, b.target_mm,
                                                        b.throw_start_mm))  # fmt: skip
    # the second in-plane axis towards the necrosis (else the lesion) centre, so that the
    # plane shows the throw beside it; the patient axis most perpendicular when in line
    focus = necrosis if necrosis.any() else lesion
    c_focus = case.labels.grid.index_to_lps(np.argwhere(focus).mean(0))
    w = c_focus - tip
    w = w - (w @ d) * d
    if np.linalg.norm(w) < 1.0:
        w = np.eye(3)[int(np.argmin(np.abs(np.eye(3) @ d)))]
        w = w - (w @ d) * d
    w /= np.linalg.norm(w)
    n = np.cross(d, w)
    step = 0.5 * float(min(case.labels.grid.spacing_mm))
    if case.modality == "CT":
        vmin, vmax = CT_WINDOW_HU
    else:
        sig = image[image > 0]
        vmin, vmax = np.percentile(sig, [1, 99]) if sig.size else (0.0, 1.0)
    arrays = [image, lesion, necrosis, np.asarray(case.labels.array)]
    # 1) the plane containing the needle
    mid = 0.5 * (entry + tip)
    half = 0.5 * float(np.linalg.norm(tip - entry)) + 25.0
    img, les, nec, _ = _plane(case, mid, d, w, half, arrays, step)
    grid_mm = np.arange(-half, half + 1e-9, step)  # rows along w, columns along d
    fig, ax = plt.subplots(figsize=(6, 6))
    ext = (-half, half, half, -half)
    ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, extent=ext)
    for m, colour in ((les, "lime"), (nec, "orange")):
        if m.any():
            ax.contour(grid_mm, grid_mm, m, levels=[0.5], colors=colour, linewidths=1.2)

    def along(p):
        r = np.asarray(p) - mid
        return float(r @ d), float(r @ w)

    (xe, ye), (xs, ys), (xt, yt) = along(entry), along(start), along(tip)
    ax.plot([xe, xs], [ye, ys], color="cyan", lw=1.5, label="introducer")
    ax.plot([xs, xt], [ys, yt], color="magenta", lw=2.5, label=f"throw {b.throw_mm:g} mm")
    ax.plot([xe], [ye], "o", color="cyan", ms=4)
    ax.set_xlabel("along the needle (mm)")
    ax.set_ylabel("across (mm)")
    ax.set_title(
        "plane of the needle and the lesion's centre: lesion (green), necrosis (orange)", fontsize=9
    )
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, folder / "needle_plane.png", dpi=90)
    # 2) cross-sections perpendicular to the needle at stations along it
    stations = np.linspace(0.0, 1.0, 6)
    fig, axs = plt.subplots(1, len(stations), figsize=(2.4 * len(stations), 2.8))
    total = float(np.linalg.norm(tip - entry))
    small_mm = np.arange(-20.0, 20.0 + 1e-9, step)
    for ax, f in zip(axs, stations, strict=True):
        c = entry + f * (tip - entry)
        img, les, nec, _ = _plane(case, c, w, n, 20.0, arrays, step)
        ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, extent=(-20, 20, 20, -20))
        for m, colour in ((les, "lime"), (nec, "orange")):
            if m.any():
                ax.contour(small_mm, small_mm, m, levels=[0.5], colors=colour, linewidths=1.0)
        ax.plot([0], [0], "+", color="magenta", ms=10, mew=2)
        ax.set_title(f"{f * total:.0f} mm from the skin", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("slices across the needle (centre +: the needle)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, folder / "path_slices.png", dpi=90)


def write_biopsy(b: Biopsy, case: Case, folder: str | Path, *, overwrite: bool = False,
                 cfg: BiopsyConfig | None = None) -> Path:  # fmt: skip
    """Write biopsy.json, biopsy.mrk.json, report.html and figures/; return the report.

    Written whole or not at all (:func:`ioplan.imaging.atomic_output_folder`);
    ``overwrite`` replaces an earlier biopsy folder, never a folder holding other files.
    """
    from ioplan.imaging import atomic_output_folder, write_markups_lines
    from ioplan.report import bullet_list, escape, figure, key_value_table, page, write_page

    cfg = cfg or BiopsyConfig(needle=b.needle["name"], throw_mm=b.throw_mm,
                              target_label=b.target_label, tumour_index=b.tumour_index,
                              organ=b.organ)  # fmt: skip
    lesion, _ = _lesion(case, cfg, b.organ)
    vt = viable_target(np.asarray(case.image.array), lesion, case.labels.grid.spacing_mm,
                       modality=case.modality)  # fmt: skip
    doc = b.to_dict()
    with atomic_output_folder(folder, command="biopsy", names=BIOPSY_FOLDER_ENTRIES,
                              overwrite=overwrite) as tmp:  # fmt: skip
        figs = tmp / "figures"
        figs.mkdir()
        write_markups_lines(
            [("biopsy", b.entry_mm, b.target_mm), ("throw", b.throw_start_mm, b.target_mm)],
            tmp / "biopsy.mrk.json",
        )
        _figures(b, case, (lesion, vt.necrosis), figs)
        r = b.risks
        rows = [
            ("organ", b.organ),
            ("target", f"{b.target_label} {b.tumour_index} ({b.viable['aim']})"),
            ("necrotic fraction", f"{100 * b.viable['necrotic_fraction']:.0f} %"),
            ("needle", f"{b.needle['name']} {b.needle_type['name']} through a "
                       f"{b.needle['introducer_gauge']}G coaxial introducer"),
            ("throw", f"{b.throw_mm:g} mm"),
            ("entry (LPS mm)", doc["entry_mm"]),
            ("throw start / tip (LPS mm)", f"{doc['throw_start_mm']} / {doc['target_mm']}"),
            ("path length (skin to fired tip)", f"{b.path_length_mm:.1f} mm"),
            ("cores", f"{b.cores['recommended']} (range {b.cores['range'][0]}-"
                      f"{b.cores['range'][1]}, {b.cores['histology']})"),
            ("bleeding", f"SIR 2019 {r['bleeding']['category']} risk; "
                         f"{r['bleeding']['rate_percent']:g} % ({r['bleeding']['what']})"),
        ]  # fmt: skip
        if r.get("pneumothorax"):
            rows.append(("pneumothorax", f"{100 * r['pneumothorax']['probability']:.0f} %"))
        path_rows = [(k.replace("_", " "), v) for k, v in b.path.items()]
        sources = [
            b.cores["source"],
            r["bleeding"]["category_source"],
            r["bleeding"]["source"],
            r["bleeding"]["gauge_model"],
            b.needle["source"],
            b.needle["introducer_source"],
        ]
        if r.get("pneumothorax"):
            sources.append(r["pneumothorax"]["source"])
        sources += [v for k, v in b.rules.items() if k.endswith("_source")]
        body = f"""<p>Core-needle biopsy path planned on this anatomy: the throw lies in
viable lesion ({escape(b.viable["method"])}); the path is the shortest that passes every rule
below. A research tool: check every path on the images before use.</p>
{key_value_table(rows)}
<h2>Slices along the path</h2>
{figure("figures/needle_plane.png", "plane containing the needle")}
{figure("figures/path_slices.png", "slices across the needle", width="100%")}
<h2>Rules</h2>{key_value_table((k.replace("_", " "), v) for k, v in b.rules.items())}
<h2>Path</h2>{key_value_table(path_rows)}
<h2>Search</h2>{key_value_table((k.replace("_", " "), v) for k, v in b.search.items())}
<h2>Sources</h2>{bullet_list(sources)}
<p>Files: biopsy.json, biopsy.mrk.json (entry to tip and the throw; open in 3D Slicer).</p>"""
        write_page(
            tmp / "report.html",
            page("Biopsy plan", body, footer=f"ioplan {doc['software_version']}"),
        )
        (tmp / "biopsy.json").write_text(json.dumps(doc, indent=2) + "\n")
    return Path(folder) / "report.html"

"""The planner's rules per organ (issue 21): lung, kidney, bone and soft tissue next to the liver.

The organ (:func:`planning_organ`) is given (``--organ``, ``case.toml``) or inferred from
the labels around the tumour (:func:`ioplan.anatomy.organ_of`). It decides:

- which labels a needle may cross to reach its own tumour (:func:`traversable_labels`:
  the lung for a lung tumour, the kidney for a renal tumour, the host bone for a bone
  tumour; every other critical structure stays forbidden);
- lung: the visceral pleural crossings of each path (:func:`lung_path`: entering the
  lung from outside is one crossing; more than one is refused), no fissure crossing,
  bronchi >= 2 mm and pulmonary vessels >= 3 mm avoided (by the local inscribed radius,
  as the liver's large vessels), the aerated lung traversed and its emphysema (HU < -950),
  and a pneumothorax risk figure per path (:func:`pneumothorax_risk`);
- the structures at risk and their temperature limits (:func:`protected_structures`,
  :func:`temperature_limits`): collecting system and ureter, spinal cord and nerve roots;
- kidney: bowel within 1 cm -> hydrodissection; cryo: two freeze cycles, the ice edge
  (0 degC) >= 5 mm beyond the tumour and the -20/-40 degC isotherms covering it, measured
  on the verification's Tmin (:func:`cryo_checks`);
- bone/spine: thermal protection and monitoring when the predicted temperature at the
  cord or a nerve root comes near its limit;
- soft tissue (:func:`soft_tissue_checks`): the peripheral nerve kept between its limits
  (10-45 degC) with the same thermal protection suggestion, the skin kept unfrozen and
  the ice edge far enough from it, the major artery and vein (heat sink; never crossed:
  the trajectories' large vessels), cryo's ice edge >= 5 mm beyond the tumour.

Every threshold is in ``planning/data/planner.toml`` with its source.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy import Label, organ_of
from ioplan.errors import InputError

__all__ = [
    "PLANNED_ORGANS",
    "cryo_checks",
    "default_margin_mm",
    "lung_path",
    "organ_findings",
    "organ_settings",
    "planning_organ",
    "pleural_crossings",
    "pneumothorax_risk",
    "protected_structures",
    "soft_tissue_checks",
    "temperature_limits",
    "traversable_labels",
]

#: Organs the planner plans for.
PLANNED_ORGANS = ("liver", "lung", "kidney", "bone", "soft_tissue")

#: Labels inside the visceral pleura: going from any other label into one of these along a
#: path is one pleural crossing (the tumour of a lung case lies inside the lung).
INTRAPULMONARY = (Label.LUNG, Label.FISSURE, Label.BRONCHUS, Label.PULMONARY_VESSEL)

#: Structures that must not receive lethal damage, by name (all organs). The liver keeps
#: its list of before issue 21 (:data:`_LIVER_PROTECTED`).
_LIVER_PROTECTED = {
    "bile duct": (Label.BILE_DUCT,),
    "bowel": (Label.BOWEL_WALL, Label.BOWEL_CONTENT, Label.STOMACH),
    "diaphragm": (Label.DIAPHRAGM,),
    "gallbladder": (Label.GALLBLADDER,),
    "kidney": (Label.KIDNEY,),
    "lung": (Label.LUNG,),
    "heart": (Label.HEART,),
}
_EXTRA_PROTECTED = {
    "collecting system": (Label.COLLECTING_SYSTEM,),
    "ureter": (Label.URETER,),
    "adrenal": (Label.ADRENAL,),
    "pancreas": (Label.PANCREAS,),
    "spinal cord": (Label.SPINAL_CORD,),
    "spinal canal": (Label.SPINAL_CANAL,),
    "nerve root": (Label.NERVE_ROOT,),
    "peripheral nerve": (Label.PERIPHERAL_NERVE,),
    "skin": (Label.SKIN,),
}
#: Every protected structure of every organ (names -> labels).
ALL_PROTECTED = {**_LIVER_PROTECTED, **_EXTRA_PROTECTED}
#: The protected structures that are the host organ itself (not protected for its tumour).
_HOST_PROTECTED = {
    "lung": ("lung",), "kidney": ("kidney",), "bone": (), "liver": (), "soft_tissue": ()
}  # fmt: skip
#: The structures each organ protects beyond the liver's list.
_ORGAN_EXTRA = {
    "liver": (),
    "lung": ("spinal cord", "spinal canal"),
    "kidney": ("collecting system", "ureter", "adrenal", "pancreas"),
    "bone": ("spinal cord", "spinal canal", "nerve root"),
    "soft_tissue": ("peripheral nerve", "skin", "spinal cord", "nerve root"),
}


def _settings() -> dict[str, Any]:
    from ioplan.planning._candidates import planner_settings

    return planner_settings()


def organ_settings(organ: str) -> dict[str, Any]:
    """The organ's rules from ``planner.toml`` (``[organs.<organ>]``)."""
    return dict(_settings()["organs"].get(organ, {}))


def planning_organ(case, organ: str | None = None) -> str:
    """The organ to plan for: given, the case's, inferred from the labels, else the liver.

    Soft tissue is planned when it is given (``--organ``, ``case.toml``: the thigh phantom
    writes it): inferred, it says only that no organ label touches the tumour, which an
    incompletely labelled organ case shows too; so an inferred soft tissue falls back to
    the liver, whose checks then refuse a tumour outside it (as before soft tissue had
    rules). An organ without rules is refused when given.
    """
    given = organ is not None or bool(getattr(case, "organ", None))
    found = organ_of(case, organ)
    if found == "soft_tissue" and not given:
        return "liver"
    if found in PLANNED_ORGANS:
        _check_host_share(found)
        return found
    if given:
        raise InputError(
            f"the planner has rules for {', '.join(PLANNED_ORGANS)}, not organ {found!r}"
        )
    return "liver"


def _check_host_share(organ: str) -> None:
    """A one-line refusal where the tumour check (``_metrics.HOST_SHARE``) lacks ``organ``."""
    from ioplan.planning._metrics import HOST_SHARE

    if organ not in HOST_SHARE:
        raise InputError(
            f"planning for organ {organ!r} is not enabled yet (planning/_metrics.py "
            "HOST_SHARE has no entry for it)"
        )


def case_organ(case) -> str:
    """The organ the planner set on ``case`` (liver when unset)."""
    organ = getattr(case, "organ", None)
    return organ if organ in PLANNED_ORGANS else "liver"


def default_margin_mm(organ: str, histology: str, modality: str = "mwa") -> float:
    """The ablative margin (mm) by organ, histology and modality (``planner.toml``).

    Kidney cryo: the lethal zone's margin (``cryo_margin_mm``), the 5 mm being the ice
    edge's (:func:`cryo_checks`).
    """
    st = organ_settings(organ)
    if modality == "cryo" and "cryo_margin_mm" in st:
        return float(st["cryo_margin_mm"])
    table = st.get("margin_mm", {"default": 5.0})
    key = str(histology).strip().lower()
    return float(table.get(key, table.get("default", 5.0)))


def surrogate_tissue(organ: str) -> str:
    """The tissue of the planner's zone surrogate for ``organ``.

    ``surrogate_tissue`` in planner.toml; the liver where the organ names none.
    """
    if organ == "liver":
        return "liver"
    return str(organ_settings(organ).get("surrogate_tissue", "liver"))


def host_labels(organ: str) -> tuple[int, ...]:
    """The labels of the host organ (its parenchyma)."""
    return {
        "liver": (int(Label.LIVER),),
        "lung": (int(Label.LUNG),),
        "kidney": (int(Label.KIDNEY), int(Label.KIDNEY_MEDULLA)),
        "bone": (int(Label.VERTEBRA), int(Label.RIB)),
        "soft_tissue": (int(Label.MUSCLE), int(Label.FAT)),
    }[organ]


def margin_tissue_labels(organ: str) -> tuple[int, ...]:
    """Labels a margin is measured in, besides the tumour and vessels.

    The host, and for the kidney the perirenal fat (the ice ball must reach 5 mm beyond
    an exophytic tumour too), for the lung its small airways and fissures, for bone its
    soft tissue.
    """
    extra = {
        "liver": (),
        "lung": (int(Label.BRONCHUS), int(Label.FISSURE)),
        "kidney": (int(Label.FAT),),
        "bone": (int(Label.MUSCLE), int(Label.FAT)),
        "soft_tissue": (),
    }[organ]
    return host_labels(organ) + extra


def traversable_labels(organ: str, labels: np.ndarray | None = None,
                       spacing_mm=None) -> tuple[int, ...]:  # fmt: skip
    """Critical labels a needle may cross for a tumour of ``organ``.

    Lung: the lung (never a fissure); kidney: cortex and medulla; bone: the bone label(s)
    the tumour touches (a vertebral tumour is entered through its vertebra, not through
    a rib); liver: none (the liver is not critical).
    """
    if organ == "lung":
        return (int(Label.LUNG),)
    if organ == "kidney":
        return (int(Label.KIDNEY), int(Label.KIDNEY_MEDULLA))
    if organ == "bone":
        bones = (int(Label.VERTEBRA), int(Label.RIB))
        if labels is None:
            return bones
        lab = np.asarray(labels)
        tum = lab == int(Label.TUMOR)
        if not tum.any():
            return bones
        shell = ndimage.binary_dilation(tum, iterations=2) & ~tum
        touched = tuple(b for b in bones if np.any(lab[shell] == b))
        return touched or bones
    return ()


def protected_structures(organ: str) -> dict[str, tuple[Label, ...]]:
    """Structures that must not receive lethal damage for a tumour of ``organ``."""
    out = {k: v for k, v in _LIVER_PROTECTED.items() if k not in _HOST_PROTECTED[organ]}
    out.update({k: _EXTRA_PROTECTED[k] for k in _ORGAN_EXTRA[organ]})
    return out


def temperature_limits() -> dict[str, dict[str, Any]]:
    """Temperature limits by structure name, with sources.

    ``planner.toml`` ``[limits]`` and each organ's own (``[organs.<organ>.limits]``: the
    soft tissue's peripheral nerve and skin).
    """
    st = _settings()
    out = {k.replace("_", " "): dict(v) for k, v in st["limits"].items()}
    for organ in st["organs"].values():
        for k, v in organ.get("limits", {}).items():
            out.setdefault(k.replace("_", " "), dict(v))
    return out


# ------------------------------------------------------------------------------------------
# lung


def pleural_crossings(labels_entry_to_target: np.ndarray) -> int:
    """Visceral pleural crossings along a path (labels sampled from the entry inward).

    Entering the lung (or the tumour, a bronchus, a pulmonary vessel or a fissure) from any
    other label is one crossing; leaving the lung and entering again is two.
    """
    lab = np.asarray(labels_entry_to_target)
    inside = np.isin(lab, [int(x) for x in (*INTRAPULMONARY, Label.TUMOR)])
    if inside.size == 0:
        return 0
    entries = np.count_nonzero(inside[1:] & ~inside[:-1])
    return int(entries + (1 if inside[0] else 0))


def lung_path(labels_entry_to_target: np.ndarray, hu: np.ndarray | None,
              step_mm: float) -> dict[str, Any]:  # fmt: skip
    """Pleural and fissure crossings, aerated lung traversed (mm) and its emphysema.

    ``hu`` is the image along the same samples (None: no image); emphysema is the share
    of lung samples below ``emphysema_hu`` (planner.toml).
    """
    st = organ_settings("lung")
    lab = np.asarray(labels_entry_to_target)
    fis = lab == int(Label.FISSURE)
    fissures = int(np.count_nonzero(fis[1:] & ~fis[:-1]) + (1 if fis.size and fis[0] else 0))
    aerated = np.isin(lab, [int(Label.LUNG), int(Label.BRONCHUS), int(Label.FISSURE)])
    # aerated lung up to the tumour (the applicator's part inside the tumour is not lung)
    tum = np.flatnonzero(lab == int(Label.TUMOR))
    upto = int(tum[0]) if tum.size else lab.size
    lung_mm = float(np.count_nonzero(aerated[:upto])) * step_mm
    emph = None
    if hu is not None and np.any(aerated[:upto]):
        vals = np.asarray(hu, float)[:upto][aerated[:upto]]
        emph = float(np.mean(vals < float(st["emphysema_hu"])))
    return {
        "pleural_crossings": pleural_crossings(lab),
        "fissure_crossings": fissures,
        "lung_path_mm": lung_mm,
        "emphysema_fraction": emph,
    }


def pneumothorax_risk(lung_path_mm: float, pleural_crossings: int, fissure_crossings: int = 0,
                      emphysema_fraction: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Pneumothorax probability of one path, from the meta-analysis' odds ratios.

    odds = odds(baseline) x OR(aerated lung >= 30 mm) x OR(emphysema) x OR(> 1 pleural
    puncture) x OR(fissure); probability = odds / (1 + odds). Sources in planner.toml
    (Huo et al., Br J Radiol 2020;93:20190866).

    Examples
    --------
    >>> round(pneumothorax_risk(10.0, 1)["probability"], 3)  # no factor: the baseline
    0.259
    >>> round(pneumothorax_risk(40.0, 1)["probability"], 3)  # 0.3495 x 2.38 = 0.832 odds
    0.454
    """
    st = organ_settings("lung")
    p0 = float(st["pneumothorax_baseline_probability"])
    odds = p0 / (1.0 - p0)
    factors = []
    if lung_path_mm >= float(st["pneumothorax_deep_lung_mm"]):
        odds *= float(st["pneumothorax_or_deep"])
        factors.append(f"aerated lung traversed >= {st['pneumothorax_deep_lung_mm']:g} mm "
                       f"(OR {st['pneumothorax_or_deep']:g})")  # fmt: skip
    emphysema = emphysema_fraction is not None and emphysema_fraction >= float(
        st["emphysema_fraction"]
    )
    if emphysema:
        odds *= float(st["pneumothorax_or_emphysema"])
        factors.append(f"emphysema on the path (OR {st['pneumothorax_or_emphysema']:g})")
    if pleural_crossings > 1:
        odds *= float(st["pneumothorax_or_extra_puncture"])
        or_extra = st["pneumothorax_or_extra_puncture"]
        factors.append(f"more than one pleural puncture (OR {or_extra:g})")
    if fissure_crossings > 0:
        odds *= float(st["pneumothorax_or_fissure"])
        factors.append(f"fissure crossed (OR {st['pneumothorax_or_fissure']:g})")
    return {
        "probability": round(odds / (1.0 + odds), 3),
        "baseline_probability": p0,
        "factors": factors,
        "emphysema": None if emphysema_fraction is None else bool(emphysema),
        "model": "odds of the pooled incidence times the odds ratios of the risk factors "
        "present (logistic, no interactions); biopsy data, ranks paths rather than "
        "predicting the rate after ablation",
        "source": st["pneumothorax_source"],
    }


def lung_rejections(finding: dict[str, Any]) -> list[str]:
    """Why a lung path is refused: too many pleural crossings, a fissure crossed."""
    st = organ_settings("lung")
    out = []
    n_max = int(st["max_pleural_crossings"])
    if finding["pleural_crossings"] > n_max:
        out.append(f"crosses the pleura {finding['pleural_crossings']} times (at most {n_max})")
    if finding["fissure_crossings"] > 0 and not st["fissure_crossing_allowed"]:
        out.append("crosses an interlobar fissure")
    return out


# ------------------------------------------------------------------------------------------
# kidney and bone


def shaft_mask(grid, box: tuple[slice, ...], shafts, radius_mm: float) -> np.ndarray:
    """Voxels of ``box`` within ``radius_mm`` of an applicator shaft (behind its tip)."""
    lo = np.array([b.start for b in box])
    shape = tuple(b.stop - b.start for b in box)
    pts = grid.index_to_lps(np.argwhere(np.ones(shape, bool)) + lo).reshape(*shape, 3)
    out = np.zeros(shape, bool)
    for tip, d in shafts:
        rel = pts - np.asarray(tip, float)
        d = np.asarray(d, float)
        along = rel @ d
        radial = np.linalg.norm(rel - along[..., None] * d, axis=-1)
        out |= (along <= radius_mm) & (radial <= radius_mm)
    return out


def cryo_checks(tumour: np.ndarray, tmin: np.ndarray, grid, zone: np.ndarray | None = None,
                shafts=(), shaft_radius_mm: float = 0.0, *,
                organ: str = "kidney") -> dict[str, Any]:  # fmt: skip
    """The kidney's (or ``organ``'s) cryo rules measured on the verification's Tmin and zone.

    A voxel is frozen when its Tmin is <= 0 degC or it lies in the lethal zone (the
    engine's -40 degC zone on its own grid, nearest-neighbour on the case grid; Tmin is
    interpolated linearly and the applicators' own voxels hold no tissue temperature, so
    Tmin is raised next to a probe). ``ice_margin_mm``: the smallest distance from the
    tumour to an unfrozen voxel centre, less half a voxel (the edge lies between a frozen
    and an unfrozen centre): how far the ice edge lies beyond the tumour at its closest.
    Voxels within ``shaft_radius_mm`` of a shaft (``(tip, direction)`` pairs) outside the
    zone are left out. The share of the tumour inside each isotherm (-20, -40 degC).
    """
    from ioplan.planning._candidates import grid_box

    st = organ_settings(organ)
    need = float(st["cryo_ice_margin_mm"])
    sp = grid.spacing_mm
    pad = need + 20.0
    box = grid_box(grid, [tumour], pad)
    tum, cold = tumour[box], tmin[box]
    lethal = zone[box] if zone is not None else np.zeros_like(tum)
    probe = shaft_mask(grid, box, shafts, shaft_radius_mm) if len(shafts) else np.zeros_like(tum)
    probe &= ~lethal
    unfrozen = (cold > 0.0) & ~lethal & ~probe
    if unfrozen.any():
        dist = ndimage.distance_transform_edt(~tum, sampling=sp)
        margin = max(0.0, float(dist[unfrozen].min()) - 0.5 * min(sp))
    else:
        margin = pad  # frozen all through the box: at least this far
    iso = {}
    for t in st["cryo_isotherms_c"]:
        inside = (cold <= t) | lethal if t >= -40.0 else cold <= t
        iso[f"tumour_within_{abs(int(t))}c_percent"] = round(100.0 * float(np.mean(inside[tum])), 2)
    ok = margin >= need and all(v >= 100.0 for v in iso.values())
    return {
        "freeze_cycles": int(st["cryo_freeze_cycles"]),
        "ice_margin_mm": round(margin, 2),
        "ice_margin_required_mm": need,
        **iso,
        "ok": bool(ok),
        "method": "frozen: Tmin <= 0 degC or in the lethal (-40 degC) zone; applicator "
        "voxels outside the zone left out; edge half a voxel inside the first unfrozen centre",
        "source": st["cryo_source"],
    }


def _distance_mm(mask: np.ndarray, to: np.ndarray, spacing_mm) -> float:
    if not mask.any() or not to.any():
        return math.inf
    return float(ndimage.distance_transform_edt(~to, sampling=spacing_mm)[mask].min())


def organ_findings(
    organ: str,
    *,
    labels: np.ndarray,
    grid,
    tumour: np.ndarray,
    zone: np.ndarray,
    tmax: np.ndarray,
    tmin: np.ndarray,
    modality: str,
    trajectories: list,
    at_risk,
    shafts=(),
    shaft_radius_mm: float = 0.0,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """plan.json's organ record, the suggestions and the notes of a verified plan.

    ``shafts``: the applicators' ``(tip, direction)`` (LPS mm), whose own voxels (within
    ``shaft_radius_mm``) hold no tissue temperature in the engine's maps.
    """
    spacing_mm = grid.spacing_mm
    rec: dict[str, Any] = {"organ": organ}
    suggestions: list[str] = []
    notes: list[str] = []
    lab = np.asarray(labels)
    if organ == "lung":
        paths = []
        for t in trajectories:
            f = {
                "pleural_crossings": t.pleural_crossings,
                "fissure_crossings": t.fissure_crossings,
                "lung_path_mm": round(t.lung_path_mm, 1),
                "emphysema_fraction": t.emphysema_fraction,
            }
            f["pneumothorax_risk"] = pneumothorax_risk(
                t.lung_path_mm, t.pleural_crossings, t.fissure_crossings, t.emphysema_fraction
            )
            paths.append(f)
        rec["paths"] = paths
        if paths:
            # the rule is per path: the most crossings of any one needle; the punctures and
            # the aerated lung traversed are those of all needles together
            rec["pleural_crossings"] = int(max(p["pleural_crossings"] for p in paths))
            rec["pleural_punctures"] = int(sum(p["pleural_crossings"] for p in paths))
            rec["lung_path_mm"] = round(sum(p["lung_path_mm"] for p in paths), 1)
            # several needles: the chance that at least one path gives a pneumothorax
            keep = 1.0
            for p in paths:
                keep *= 1.0 - p["pneumothorax_risk"]["probability"]
            rec["pneumothorax_risk"] = paths[0]["pneumothorax_risk"] | {
                "probability": round(1.0 - keep, 3),
                "per_path": [p["pneumothorax_risk"]["probability"] for p in paths],
            }
        st = organ_settings("lung")
        rec["margin_source"] = st["margin_source"]
    if organ == "kidney":
        st = organ_settings("kidney")
        bowel = np.isin(lab, [int(Label.BOWEL_WALL), int(Label.BOWEL_CONTENT),
                              int(Label.STOMACH)])  # fmt: skip
        d_bowel = min(
            _distance_mm(bowel, tumour, spacing_mm), _distance_mm(bowel, zone, spacing_mm)
        )
        rec["bowel_distance_mm"] = round(d_bowel, 1) if math.isfinite(d_bowel) else None
        if d_bowel < float(st["bowel_hydrodissection_mm"]):
            suggestions.append(
                f"hydrodissection: bowel lies {d_bowel:.0f} mm from the tumour or its zone "
                f"(within {st['bowel_hydrodissection_mm']:g} mm; {st['bowel_source']})"
            )
        if modality == "cryo":
            rec["cryo"] = cryo_checks(tumour, tmin, grid, zone, shafts, shaft_radius_mm)
            if not rec["cryo"]["ok"]:
                suggestions.append(
                    f"cryo: the ice edge lies {rec['cryo']['ice_margin_mm']} mm beyond the "
                    f"tumour (>= {rec['cryo']['ice_margin_required_mm']:g} mm wanted) or an "
                    "isotherm misses part of it: another probe or a longer freeze"
                )
    if organ in ("bone", "soft_tissue"):
        warn = float(organ_settings(organ)["warn_within_c"])
        where = {"bone": "epidural, neural foramen", "soft_tissue": "next to the nerve"}[organ]
        for r in at_risk:
            lo, hi = r.get("min_limit_c"), r.get("max_limit_c")
            if hi is None or r["structure"] == "skin":  # the skin has its own rule below
                continue
            t_hi, t_lo = r["max_temperature_c"], r["min_temperature_c"]
            if t_hi >= hi - warn or (lo is not None and t_lo <= lo + warn):
                suggestions.append(
                    f"thermal protection at the {r['structure']}: predicted {t_hi:.1f} degC "
                    f"max / {t_lo:.1f} degC min against limits {hi:g} / {lo:g} degC; monitor "
                    f"with thermocouples ({where}) and protect by CO2 or "
                    "fluid dissection, or shorten the ablation"
                )
    if organ == "soft_tissue":
        rec_soft, more = soft_tissue_checks(
            lab, grid, tumour, zone, tmin, modality, shafts, shaft_radius_mm
        )
        rec.update(rec_soft)
        suggestions.extend(more)
    limited = [r for r in at_risk if "max_limit_c" in r]
    if limited:
        rec["temperature_limits"] = {
            r["structure"]: {
                "max_temperature_c": r["max_temperature_c"],
                "min_temperature_c": r["min_temperature_c"],
                "max_limit_c": r["max_limit_c"],
                "min_limit_c": r["min_limit_c"],
                "limit_exceeded": r["limit_exceeded"],
            }
            for r in limited
        }
        for r in limited:
            if r["limit_exceeded"]:
                notes.append(
                    f"{r['structure']}: predicted {r['max_temperature_c']:.1f} / "
                    f"{r['min_temperature_c']:.1f} degC, beyond its limits "
                    f"{r['max_limit_c']:g} / {r['min_limit_c']:g} degC"
                )
    return rec, suggestions, notes


# ------------------------------------------------------------------------------------------
# soft tissue

#: Labels of the major arteries and veins (heat sinks; never crossed by a path, see the
#: trajectories' large vessels). The thigh phantom draws its femoral artery and vein with
#: the great vessels' labels.
_ARTERIES = (Label.AORTA, Label.HEPATIC_ARTERY, Label.RENAL_ARTERY, Label.FEMORAL_ARTERY)
_VEINS = (Label.IVC, Label.PORTAL_VEIN, Label.HEPATIC_VEIN, Label.RENAL_VEIN, Label.FEMORAL_VEIN)


def _frozen(grid, tmin: np.ndarray, zone: np.ndarray, shafts, shaft_radius_mm) -> np.ndarray:
    """Frozen voxels (Tmin <= 0 degC or in the lethal zone), applicator shafts left out.

    The shafts' own voxels outside the zone hold no tissue temperature (as
    :func:`cryo_checks`); they are looked for in the frozen voxels' box only.
    """
    zone = zone.astype(bool)
    frozen = (tmin <= 0.0) | zone
    idx = np.argwhere(frozen)
    if not len(shafts) or idx.size == 0:
        return frozen
    lo = np.maximum(idx.min(axis=0) - 1, 0)
    hi = np.minimum(idx.max(axis=0) + 2, frozen.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    frozen[box] &= ~(shaft_mask(grid, box, shafts, shaft_radius_mm) & ~zone[box])
    return frozen


def soft_tissue_checks(
    labels: np.ndarray,
    grid,
    tumour: np.ndarray,
    zone: np.ndarray,
    tmin: np.ndarray,
    modality: str,
    shafts=(),
    shaft_radius_mm: float = 0.0,
) -> tuple[dict[str, Any], list[str]]:
    """The soft tissue's rules on a verified plan: skin, major vessels, cryo ice margin.

    - skin: the smallest distance (mm) from the skin to the ice (cryo: Tmin <= 0 degC,
      applicator shafts left out, as :func:`cryo_checks`) or to the ablation zone (heat),
      against ``skin_ice_distance_mm``; the tumour's distance to the skin, against
      ``skin_protection_tumour_mm`` (skin protection planned below it);
    - major artery and vein: their distance (mm) to the tumour and to the zone; within
      ``vessel_heat_sink_mm`` of the tumour a heat-sink note (cryo: the vessel is
      tolerated by the ice, its warm blood shrinks the ice next to it);
    - cryo: :func:`cryo_checks` with ``[organs.soft_tissue]``'s ice margin.

    Returns plan.json's additions to ``organ_rules`` and the suggestions.
    """
    st = organ_settings("soft_tissue")
    sp = grid.spacing_mm
    lab = np.asarray(labels)
    rec: dict[str, Any] = {}
    out: list[str] = []
    cryo = modality == "cryo"
    skin = lab == int(Label.SKIN)
    if cryo:
        frozen = _frozen(grid, tmin, zone, shafts, shaft_radius_mm)
    else:
        frozen = zone.astype(bool)
    need = float(st["skin_ice_distance_mm"])
    d_ice = _distance_mm(skin, frozen, sp)
    d_tum = _distance_mm(skin, tumour, sp)
    rec["skin"] = {
        ("ice_to_skin_mm" if cryo else "zone_to_skin_mm"): _round(d_ice),
        "required_mm": need,
        "tumour_to_skin_mm": _round(d_tum),
        "ok": bool(d_ice >= need),
        "source": st["skin_source"],
    }
    if d_ice < need or d_tum < float(st["skin_protection_tumour_mm"]):
        what = "ice" if cryo else "ablation zone"
        out.append(
            f"skin protection: the {what} comes {d_ice:.0f} mm from the skin (>= {need:g} mm "
            f"wanted), the tumour lies {d_tum:.0f} mm under it: pneumodissection or "
            "hydrodissection under the skin, warm saline on it, and watch the "
            f"{what}'s edge ({st['skin_source']})"
        )
    vessels = {}
    for name, group in (("artery", _ARTERIES), ("vein", _VEINS)):
        m = np.isin(lab, [int(v) for v in group])
        vessels[f"{name}_to_tumour_mm"] = _round(_distance_mm(m, tumour, sp))
        vessels[f"{name}_to_zone_mm"] = _round(_distance_mm(m, zone.astype(bool), sp))
    near = [
        n for n in ("artery", "vein")
        if (vessels[f"{n}_to_tumour_mm"] or math.inf) <= float(st["vessel_heat_sink_mm"])
    ]  # fmt: skip
    vessels["heat_sink"] = bool(near)
    vessels["crossed_by_path"] = False  # the trajectories refuse any path through them
    vessels["source"] = st["vessel_source"]
    rec["major_vessels"] = vessels
    if near:
        out.append(
            f"heat sink: the major {' and '.join(near)} lie within "
            f"{st['vessel_heat_sink_mm']:g} mm of the tumour; "
            + ("the ice next to them is thinner: check its edge there on imaging"
               if cryo else "cryo keeps the vessel wall (it tolerates freezing)")
        )  # fmt: skip
    if cryo:
        rec["cryo"] = cryo_checks(tumour, tmin, grid, zone, shafts, shaft_radius_mm,
                                  organ="soft_tissue")  # fmt: skip
        if not rec["cryo"]["ok"]:
            out.append(
                f"cryo: the ice edge lies {rec['cryo']['ice_margin_mm']} mm beyond the "
                f"tumour (>= {rec['cryo']['ice_margin_required_mm']:g} mm wanted) or an "
                "isotherm misses part of it: another probe or a longer freeze"
            )
    rec["margin_source"] = st["margin_source"]
    return rec, out


def _round(x: float) -> float | None:
    return round(float(x), 1) if math.isfinite(x) else None

"""Treatment selection rules beyond the liver: lung, kidney, bone, soft tissue (issue 21).

Each rule reads the label map around the tumour (distances to bronchi, vessels, pleura,
collecting system, ureter, bowel, spinal cord and nerve roots; size and number) and states its
source. Thresholds and sources live side by side in ``planning/data/selection.toml``; the
liver's rules stay in :mod:`ioplan.planning._select`.

Every function here returns ``(recommendation, modality, reasons, measurements, within,
outside)``: ``within`` says whether ablation of this tumour lies inside the cited guidance
(None when no rule speaks), ``outside`` names what puts it outside (e.g. "larger than 3 cm").
"""

from __future__ import annotations

import math
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy import Label

__all__ = ["HISTOLOGIES", "RULES_WITH_SOURCES", "check_histology", "organ_rules", "select_organ"]

#: Histologies ``--histology`` and a case's ``[[tumors]] histology`` accept (aliases map onto
#: these); ``other_metastasis`` and ``cholangiocarcinoma`` are those ``ioplan phantom`` writes.
HISTOLOGIES = ("hcc", "colorectal_metastasis", "metastasis", "nsclc", "rcc", "sarcoma", "unknown",
               "other_metastasis", "cholangiocarcinoma")  # fmt: skip
_ALIASES = {
    "crc": "colorectal_metastasis",
    "crc_metastasis": "colorectal_metastasis",
    "crclm": "colorectal_metastasis",
    "colorectal": "colorectal_metastasis",
    "met": "metastasis",
    "metastases": "metastasis",
    "lung_cancer": "nsclc",
    "renal_cell_carcinoma": "rcc",
    "hepatocellular_carcinoma": "hcc",
}

#: Organs with rules of their own here (the liver's are in _select.py).
RULES_WITH_SOURCES = ("lung", "kidney", "bone", "soft_tissue")


def check_histology(histology: str) -> str:
    """``histology`` normalised (``crc-metastasis`` -> ``colorectal_metastasis``), or an error."""
    from ioplan.errors import InputError

    key = str(histology).strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in HISTOLOGIES:
        raise InputError(
            f"unknown histology {histology!r}; known: {', '.join(HISTOLOGIES)} "
            "(also crc-metastasis)"
        )
    return key


@lru_cache(maxsize=1)
def organ_rules() -> dict[str, Any]:
    """The rules' thresholds and sources (``planning/data/selection.toml``)."""
    text = resources.files("ioplan.planning").joinpath("data/selection.toml").read_text()
    return tomllib.loads(text)


def _src(key: str) -> str:
    if key == "ioplan":
        return "ioplan screening choice (no published cut-off found; see selection.toml)"
    return organ_rules()["sources"][key]


#: Half-width (mm) of the box around the tumour in which distances are first measured; a
#: structure found within it is the nearest one (anything outside lies farther), else the
#: whole volume is searched. Exact either way; the box only saves time on large CT grids.
_BOX_MM = 40.0


def _nearest_mm(target: np.ndarray, tumour: np.ndarray, sp) -> float:
    """Smallest distance (mm) from a tumour voxel centre to a ``target`` voxel; inf if none."""
    if not target.any():
        return math.inf
    idx = np.nonzero(tumour)
    pad = [math.ceil(_BOX_MM / float(s)) + 1 for s in sp]
    box = tuple(
        slice(max(int(i.min()) - p, 0), min(int(i.max()) + p + 1, n))
        for i, p, n in zip(idx, pad, tumour.shape, strict=True)
    )
    t_box = target[box]
    if t_box.any():
        d = float(ndimage.distance_transform_edt(~t_box, sampling=sp)[tumour[box]].min())
        if d <= _BOX_MM:
            return d
    return float(ndimage.distance_transform_edt(~target, sampling=sp)[tumour].min())


def _distance_to(lab: np.ndarray, tumour: np.ndarray, labels, sp) -> float:
    """Smallest distance (mm) from a tumour voxel centre to a voxel of ``labels``; inf if none."""
    return _nearest_mm(np.isin(lab, [int(x) for x in labels]), tumour, sp)


def _depth_inside(region: np.ndarray, tumour: np.ndarray, sp) -> float:
    """Smallest distance (mm) from a tumour voxel to the outside of ``region`` (its surface)."""
    return _nearest_mm(~region, tumour, sp)


def _mm(x: float) -> float | None:
    return None if not math.isfinite(x) else round(float(x), 1)


class _Why:
    """Collects reasons, each with its source."""

    def __init__(self) -> None:
        self.reasons: list[dict[str, str]] = []
        self.outside: list[str] = []

    def __call__(self, text: str, src: str) -> None:
        self.reasons.append({"reason": text, "source": _src(src)})

    def beyond(self, text: str, src: str) -> None:
        """A finding that puts ablation outside the cited guidance."""
        self.outside.append(text)
        self(text, src)


def select_organ(
    organ: str,
    lab: np.ndarray,
    comps: np.ndarray,
    diam_mm: list[float],
    sp: tuple[float, ...],
    histology: str,
    image: np.ndarray | None,
    modality: str,
):
    """Apply ``organ``'s rules; see the module docstring for what is returned."""
    if organ == "lung":
        return _lung(lab, comps, diam_mm, sp, histology, image, modality)
    if organ == "kidney":
        return _kidney(lab, comps, diam_mm, sp, histology)
    if organ == "bone":
        return _bone(lab, comps, diam_mm, sp, histology)
    if organ == "soft_tissue":
        return _soft_tissue(lab, comps, diam_mm, sp, histology)
    meas = {
        "tumours": len(diam_mm),
        "diameters_mm": [round(float(d), 1) for d in sorted(diam_mm, reverse=True)],
        "histology": histology,
    }
    reason = {
        "reason": f"no selection rules for {organ.replace('_', ' ')} yet (liver, lung, kidney, "
        "bone and soft tissue have them): the liver's rules are not applied here",
        "source": "ioplan (issue 21)",
    }
    return (
        f"no selection rules for {organ.replace('_', ' ')} yet: refer to the tumour board",
        None,
        [reason],
        meas,
        None,
        [],
    )


def _largest(comps: np.ndarray, diam_mm: list[float]) -> np.ndarray:
    return comps == int(np.argmax(diam_mm)) + 1


# --- lung ---------------------------------------------------------------------------------


def _lung(lab, comps, diam_mm, sp, histology, image, modality):
    r = organ_rules()["lung"]
    why = _Why()
    n = len(diam_mm)
    big = _largest(comps, diam_mm)
    lung_any = np.isin(
        lab,
        [int(Label.LUNG), int(Label.FISSURE), int(Label.BRONCHUS), int(Label.PULMONARY_VESSEL),
         int(Label.TUMOR)],
    )  # fmt: skip
    # tumours per lung: each tumour belongs to the connected lung it lies in
    lungs, _ = ndimage.label(lung_any)
    per_lung: dict[int, int] = {}
    for i in range(1, n + 1):
        ids = lungs[comps == i]
        k = int(np.bincount(ids).argmax())
        per_lung[k] = per_lung.get(k, 0) + 1
    most = max(per_lung.values())
    meas: dict[str, Any] = {
        "tumours": n,
        "tumours_per_lung_max": most,
        "diameters_mm": [round(float(d), 1) for d in sorted(diam_mm, reverse=True)],
        "histology": histology,
        "bronchus_mm": _distance_to(lab, big, (Label.BRONCHUS,), sp),
        "large_vessel_mm": _distance_to(
            lab, big, (Label.PULMONARY_VESSEL, Label.AORTA, Label.IVC, Label.HEART), sp
        ),
        "pleura_mm": _depth_inside(lung_any, big, sp),
        "fissure_mm": _distance_to(lab, big, (Label.FISSURE,), sp),
        "emphysema_laa950_pct": None,
    }
    lung = lab == int(Label.LUNG)
    if image is not None and modality.upper().startswith("CT") and lung.any():
        meas["emphysema_laa950_pct"] = round(
            100.0 * float((image[lung] < r["emphysema_hu"]).mean()), 1
        )
    dmax = max(diam_mm)
    lim = r["max_diameter_mm"]
    mod: str | None = "mwa"
    if most > r["max_tumours_per_lung"]:
        rec, mod = "not an ablation candidate by number: surgery, SBRT or systemic therapy", None
        why.beyond(
            f"{most} tumours in one lung: more than {r['max_tumours_per_lung']} per lung "
            "(lung: ablation for a limited number)",
            r["max_tumours_per_lung_source"],
        )
    elif dmax > lim:
        rec = (
            "SBRT or surgery; ablation (microwave, several antennas) only in selected cases: "
            f"larger than {lim / 10:g} cm"
        )
        why.beyond(
            f"largest tumour {dmax:.0f} mm: larger than {lim / 10:g} cm (lung: ablation for "
            f"<= {lim / 10:g} cm)",
            r["max_diameter_mm_source"],
        )
    else:
        rec = "thermal ablation (microwave, RF or cryo), or SBRT"
        why(
            f"largest tumour {dmax:.0f} mm, {n} tumour(s), at most {most} per lung: within "
            f"<= {lim / 10:g} cm",
            r["max_diameter_mm_source"],
        )
    if histology == "nsclc":
        why(
            "NSCLC: ablation is for stage I in patients who cannot have surgery (SBRT the "
            "alternative)",
            "sir_lung",
        )
    elif "metastasis" in histology:
        why(
            f"lung metastases: a limited number (<= {r['max_tumours_per_lung']} per lung), "
            "each small",
            "paez_carpio_lung",
        )
    if meas["bronchus_mm"] < r["central_bronchus_mm"]:
        why(
            f"central tumour: a bronchus {meas['bronchus_mm']:.1f} mm away (< "
            f"{r['central_bronchus_mm']:g} mm): higher risk (bleeding, fistula, heat sink); "
            "weigh SBRT",
            r["central_bronchus_mm_source"],
        )
    if meas["large_vessel_mm"] < r["vessel_mm"] and mod is not None:
        why(
            f"a large vessel lies {meas['large_vessel_mm']:.1f} mm from the tumour: heat sink; "
            "prefer microwave or cryo over RF",
            r["vessel_mm_source"],
        )
    if meas["pleura_mm"] < r["pleura_mm"] and mod is not None:
        why(
            f"tumour {meas['pleura_mm']:.1f} mm from the pleura: pain, effusion and "
            "pneumothorax risk",
            r["pleura_mm_source"],
        )
    if meas["fissure_mm"] < r["pleura_mm"] and mod is not None:
        why(
            f"a fissure {meas['fissure_mm']:.1f} mm away: do not cross it (a second pleural "
            "puncture)",
            r["pleura_mm_source"],
        )
    emph = meas["emphysema_laa950_pct"]
    if emph is not None and emph >= r["emphysema_pct"] and mod is not None:
        why(
            f"emphysema: {emph:.1f} % of the lung below {r['emphysema_hu']:g} HU; higher "
            "pneumothorax risk",
            "yamagami_ptx",
        )
    for k in ("bronchus_mm", "large_vessel_mm", "pleura_mm", "fissure_mm"):
        meas[k] = _mm(meas[k])
    return rec, mod, why.reasons, meas, not why.outside, why.outside


# --- kidney -------------------------------------------------------------------------------


def _renal_score(lab, big, sp, dmax, cs_mm, vessel_mm) -> dict[str, Any]:
    """The R, E, N points and the A, h descriptors of R.E.N.A.L. (L not computed).

    E is estimated from the tumour's surface: the share of a one-voxel shell around the
    tumour that is not kidney is taken as the exophytic share (a sphere half out of the
    kidney has half its surface in fat). N is the nearest distance to the collecting system
    (renal sinus fat is not labelled). A compares the tumour's and the kidney's centres along
    the anterior-posterior (LPS y) axis: ``p``/``a`` beyond a quarter of the kidney's AP
    extent, ``x`` otherwise.
    """
    kidney = np.isin(lab, [int(Label.KIDNEY), int(Label.KIDNEY_MEDULLA),
                           int(Label.COLLECTING_SYSTEM)])  # fmt: skip
    shell = ndimage.binary_dilation(big) & ~big & (lab != int(Label.TUMOR))
    exo = 1.0 - float(kidney[shell].mean()) if shell.any() else 0.0
    r_pts = 1 if dmax <= 40.0 else (2 if dmax < 70.0 else 3)
    e_pts = 1 if exo >= 0.5 else (2 if exo >= 0.05 else 3)
    n_pts = None if not math.isfinite(cs_mm) else (1 if cs_mm >= 7 else (2 if cs_mm > 4 else 3))
    ap = "x"
    if kidney.any():
        ky = np.nonzero(kidney)[1]
        ty = np.nonzero(big)[1]
        extent = (ky.max() - ky.min() + 1) * sp[1]
        dy = (ty.mean() - ky.mean()) * sp[1]  # array axis 1 = LPS y for an identity direction
        if abs(dy) > extent / 4:
            ap = "p" if dy > 0 else "a"
    hilar = math.isfinite(vessel_mm) and vessel_mm <= max(sp)
    partial = r_pts + e_pts + (n_pts or 0)
    return {
        "R": r_pts,
        "E": e_pts,
        "N": n_pts,
        "A": ap,
        "h": hilar,
        "exophytic_fraction": round(exo, 2),
        "partial_score_REN": partial if n_pts is not None else None,
        "L": None,
        "note": "L (polar lines) not computed: the full score is R+E+N+L with L 1-3; E from the "
        "tumour surface outside the kidney; A assumes an axial image with identity direction",
    }


def _kidney(lab, comps, diam_mm, sp, histology):
    r = organ_rules()["kidney"]
    why = _Why()
    n = len(diam_mm)
    big = _largest(comps, diam_mm)
    dmax = max(diam_mm)
    meas: dict[str, Any] = {
        "tumours": n,
        "diameters_mm": [round(float(d), 1) for d in sorted(diam_mm, reverse=True)],
        "histology": histology,
        "collecting_system_mm": _distance_to(lab, big, (Label.COLLECTING_SYSTEM,), sp),
        "ureter_mm": _distance_to(lab, big, (Label.URETER,), sp),
        "bowel_mm": _distance_to(
            lab, big, (Label.BOWEL_WALL, Label.BOWEL_CONTENT, Label.STOMACH), sp
        ),
        "renal_vessel_mm": _distance_to(lab, big, (Label.RENAL_ARTERY, Label.RENAL_VEIN), sp),
    }
    t1a, t1b, pref = r["t1a_max_mm"], r["t1b_max_mm"], r["preferred_max_mm"]
    meas["t_stage_by_size"] = "T1a" if dmax <= t1a else ("T1b" if dmax <= t1b else "T2")
    mod: str | None = "mwa"
    if dmax > t1b:
        rec, mod = "not an ablation candidate: nephrectomy (partial or radical)", None
        why.beyond(
            f"largest tumour {dmax:.0f} mm: larger than {t1b / 10:g} cm (T2; kidney: ablation "
            f"for T1a <= {t1a / 10:g} cm, T1b in selected cases)",
            r["t1b_max_mm_source"],
        )
    elif dmax > t1a:
        rec, mod = "partial nephrectomy; cryoablation (several probes) in selected patients", "cryo"
        why.beyond(
            f"largest tumour {dmax:.0f} mm: larger than {t1a / 10:g} cm (T1b; kidney: ablation "
            f"for T1a <= {t1a / 10:g} cm)",
            r["t1a_max_mm_source"],
        )
        why("T1b: ablation only in selected patients", "cirse_kidney")
    else:
        rec = "thermal ablation (cryo, microwave or RF), or partial nephrectomy"
        why(
            f"largest tumour {dmax:.0f} mm: T1a (<= {t1a / 10:g} cm)",
            r["t1a_max_mm_source"],
        )
        if dmax <= pref:
            why(f"under {pref / 10:g} cm: thermal ablation an alternate to surgery", "aua_kidney")
        else:
            why(
                f"{dmax:.0f} mm: over {pref / 10:g} cm, the size up to which ablation is favoured",
                r["preferred_max_mm_source"],
            )
            why(
                f"over {pref / 10:g} cm a second session is more often needed; plan a 5-10 mm "
                "cuff of parenchyma",
                "kidney_technique",
            )
    why("biopsy before (or at) ablation", "aua_kidney")
    if meas["collecting_system_mm"] < r["collecting_system_mm"] and mod is not None:
        mod = "cryo"
        rec = (
            rec + "; near the collecting system: cryoablation preferred, or heat with cold "
            "retrograde pyeloperfusion"
        )
        why(
            f"collecting system {meas['collecting_system_mm']:.1f} mm away (< "
            f"{r['collecting_system_mm']:g} mm): cryoablation, or RF/MW with pyeloperfusion",
            r["collecting_system_mm_source"],
        )
    if meas["ureter_mm"] < r["ureter_mm"] and mod is not None:
        why(
            f"ureter {meas['ureter_mm']:.1f} mm away: hydrodissection (or warm pyeloperfusion "
            "with cryo)",
            r["ureter_mm_source"],
        )
    if meas["bowel_mm"] < r["bowel_mm"] and mod is not None:
        why(
            f"bowel {meas['bowel_mm']:.1f} mm away (< {r['bowel_mm'] / 10:g} cm): hydrodissection",
            r["bowel_mm_source"],
        )
    if meas["renal_vessel_mm"] < r["vessel_mm"] and mod is not None:
        why(
            f"a renal artery/vein {meas['renal_vessel_mm']:.1f} mm away: heat sink (hilar)",
            r["vessel_mm_source"],
        )
    score = _renal_score(lab, big, sp, dmax, meas["collecting_system_mm"], meas["renal_vessel_mm"])
    meas["renal_nephrometry"] = score
    if score["partial_score_REN"] is not None:
        why(
            f"R.E.N.A.L. partial: R{score['R']} E{score['E']} N{score['N']} {score['A']}"
            f"{'h' if score['h'] else ''} = {score['partial_score_REN']} without L "
            f"(full score {score['partial_score_REN'] + 1}-{score['partial_score_REN'] + 3})",
            "renal",
        )
    for k in ("collecting_system_mm", "ureter_mm", "bowel_mm", "renal_vessel_mm"):
        meas[k] = _mm(meas[k])
    return rec, mod, why.reasons, meas, not why.outside, why.outside


# --- bone ---------------------------------------------------------------------------------


def _bone(lab, comps, diam_mm, sp, histology):
    r = organ_rules()["bone"]
    why = _Why()
    n = len(diam_mm)
    big = _largest(comps, diam_mm)
    dmax = max(diam_mm)
    shell = ndimage.binary_dilation(big) & ~big
    meas: dict[str, Any] = {
        "tumours": n,
        "diameters_mm": [round(float(d), 1) for d in sorted(diam_mm, reverse=True)],
        "histology": histology,
        "spinal_cord_mm": _distance_to(lab, big, (Label.SPINAL_CORD, Label.SPINAL_CANAL), sp),
        "nerve_root_mm": _distance_to(lab, big, (Label.NERVE_ROOT,), sp),
        "vertebral": bool((lab[shell] == int(Label.VERTEBRA)).any()),
    }
    mod: str | None = "cryo"
    rec = "cryoablation (or RF ablation) for a painful bone metastasis"
    why(
        f"bone tumour {dmax:.0f} mm: ablation palliates painful metastases (no size limit in "
        "the palliation trials; large ones need several probes)",
        "motion",
    )
    if histology not in ("metastasis", "unknown") and "metastasis" not in histology:
        why(
            f"histology {histology}: the cited evidence is for metastases; a primary bone "
            "tumour is for the sarcoma board",
            "motion",
        )
    lim = r["neural_mm"]
    for key, what in (("spinal_cord_mm", "spinal cord/canal"), ("nerve_root_mm", "nerve root")):
        if meas[key] < lim:
            why(
                f"{what} {meas[key]:.1f} mm away (< {lim / 10:g} cm): thermal protection "
                f"(CO2 or fluid insulation) and monitoring; keep it between "
                f"{r['neural_min_degC']:g} and {r['neural_max_degC']:g} degC",
                r["neural_limits_source"],
            )
            if r["neural_mm_source"] == "ioplan" and key == "spinal_cord_mm":
                why(f"{lim:g} mm screening distance for neural structures", "ioplan")
            elif r["neural_mm_source"] == "ioplan" and meas["spinal_cord_mm"] >= lim:
                why(f"{lim:g} mm screening distance for neural structures", "ioplan")
    if meas["vertebral"]:
        rec += ", with cementoplasty of the vertebral body"
        why("vertebral body lesion: add cementoplasty against fracture", "cementoplasty")
    for k in ("spinal_cord_mm", "nerve_root_mm"):
        meas[k] = _mm(meas[k])
    return rec, mod, why.reasons, meas, True, []


# --- soft tissue --------------------------------------------------------------------------


#: Labels of the nerves a soft-tissue tumour may lie next to.
_NERVES = (Label.PERIPHERAL_NERVE, Label.NERVE_ROOT, Label.SPINAL_CORD, Label.SPINAL_CANAL)
#: Major vessels.
_MAJOR_VESSELS = (Label.AORTA, Label.IVC, Label.RENAL_ARTERY, Label.RENAL_VEIN,
                  Label.HEPATIC_ARTERY, Label.PORTAL_VEIN, Label.HEPATIC_VEIN,
                  Label.FEMORAL_ARTERY, Label.FEMORAL_VEIN)  # fmt: skip
_BONES = (Label.LONG_BONE, Label.RIB, Label.VERTEBRA)


def _soft_tissue(lab, comps, diam_mm, sp, histology):
    """Soft-tissue tumours: cryo (near nerves above all), size, nerve, vessels, skin.

    ``within`` is None unless a finding puts the tumour outside the cited experience (no
    guideline endorses soft-tissue ablation by size: the evidence is case series), then
    False with the finding named ("larger than 6 cm").
    """
    r = organ_rules()["soft_tissue"]
    neuro = organ_rules()["bone"]
    why = _Why()
    big = _largest(comps, diam_mm)
    dmax = max(diam_mm)
    # the skin, or the body's surface where the skin is not labelled (air outside)
    skin = (Label.SKIN,) if np.any(lab == int(Label.SKIN)) else (Label.BACKGROUND,)
    meas: dict[str, Any] = {
        "tumours": len(diam_mm),
        "diameters_mm": [round(float(d), 1) for d in sorted(diam_mm, reverse=True)],
        "histology": histology,
        "nerve_mm": _distance_to(lab, big, _NERVES, sp),
        "major_vessel_mm": _distance_to(lab, big, _MAJOR_VESSELS, sp),
        "bone_mm": _distance_to(lab, big, _BONES, sp),
        "skin_mm": _distance_to(lab, big, skin, sp),
    }
    rec = "cryoablation (ice ball visible on CT/MR) for a soft-tissue metastasis or desmoid"
    why(
        f"soft-tissue tumour {dmax:.0f} mm: cryoablation is the usual ablation here",
        "soft_tissue_cryo",
    )
    lim = r["max_diameter_mm"]
    if dmax > lim:
        why.beyond(
            f"largest tumour {dmax:.0f} mm: larger than {lim / 10:g} cm (large-tumour "
            "cryoablation: more major complications, often a planned subtotal ablation)",
            r["max_diameter_mm_source"],
        )
        rec += (
            f"; larger than {lim / 10:g} cm: several probes, consider a staged or subtotal ablation"
        )
    if histology == "sarcoma":
        rec = "surgery (sarcoma centre); cryoablation for patients who cannot have it"
        why(
            "primary soft-tissue sarcoma: ablation only for non-surgical patients",
            "soft_tissue_cryo",
        )
    if meas["nerve_mm"] < r["neural_mm"]:
        rec += "; next to a nerve: cryo preferred (the ice edge is seen and kept off the nerve)"
        why(
            f"nerve {meas['nerve_mm']:.1f} mm away (< {r['neural_mm']:g} mm): cryoablation "
            "preferred, with thermal protection and monitoring; keep it between "
            f"{neuro['neural_min_degC']:g} and {neuro['neural_max_degC']:g} degC",
            neuro["neural_limits_source"],
        )
        why(
            f"{r['neural_mm']:g} mm screening distance: 10 mm from an ice edge that lies "
            "5-15 mm beyond the tumour",
            "ioplan",
        )
    if meas["major_vessel_mm"] < r["vessel_mm"]:
        why(
            f"a major artery or vein {meas['major_vessel_mm']:.1f} mm away: heat sink (the ice "
            "is thinner next to it); never cross it with a probe",
            r["vessel_mm_source"],
        )
    if meas["skin_mm"] < r["skin_mm"]:
        why(
            f"tumour {meas['skin_mm']:.1f} mm under the skin (< {r['skin_mm']:g} mm): skin "
            "protection (pneumodissection or hydrodissection, warm saline) and the ice edge "
            "watched",
            r["skin_mm_source"],
        )
    for k in ("nerve_mm", "major_vessel_mm", "bone_mm", "skin_mm"):
        meas[k] = _mm(meas[k])
    return rec, "cryo", why.reasons, meas, (False if why.outside else None), why.outside

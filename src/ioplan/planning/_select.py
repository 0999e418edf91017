"""Treatment selection: a short, cited recommendation for a tumour board.

Each rule reads the case (tumour sizes and number, distances to vessels, bowel,
bile ducts, gallbladder, diaphragm and liver capsule, imaging modality) and
states its source. The output supports a tumour board; it does not replace one.

The organ is a parameter (issue 21): the liver's rules are here; lung, kidney, bone and
soft-tissue rules, with their thresholds and sources in ``planning/data/selection.toml``, are in
:mod:`ioplan.planning._select_organs`. An organ without rules says so instead of borrowing
the liver's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy import Case, Label, check_organ, infer_organ
from ioplan.errors import InputError
from ioplan.planning._select_organs import HISTOLOGIES, check_histology, select_organ

__all__ = ["SOURCES", "Selection", "select_treatment"]

#: The sources the rules cite (short form, as printed).
SOURCES = {
    "bclc": "Reig et al., BCLC strategy 2022 update, J Hepatol 2022;76:681 (ablation for "
    "very early/early HCC; TACE for intermediate stage)",
    "easl": "EASL Clinical Practice Guidelines: HCC, J Hepatol 2018;69:182 (ablation first "
    "line <= 2-3 cm; MWA preferred over RFA for 3-5 cm or near vessels; TACE/TARE beyond)",
    "size": "Ablation zones of single applicators are mostly <= 4-5 cm (manufacturer charts, "
    "shared/validation/mwa_zones.csv): a tumour plus 2 x margin above ~4 cm needs several "
    "probes or another treatment",
    "margin": "Margins: >= 5 mm for HCC (Laimer et al., Eur Radiol 2020), 10 mm for colorectal "
    "metastases (Wang et al., CVIR 2013)",
    "heat_sink": "Heat sink: seen next to 73 % of veins > 3 mm and all > 5 mm (Lu et al., AJR "
    "2002;178:47); microwave is less affected than RF (EASL 2018)",
    "bowel": "Bowel or gallbladder within 1 cm: thermal injury risk; hydrodissection, or cryo "
    "whose ice ball is visible on CT/MR (CIRSE standards of practice on liver ablation, "
    "Crocetti et al., CVIR 2020)",
    "bile": "Central bile ducts within 1 cm: risk of biliary stricture after thermal "
    "ablation (Crocetti et al., CVIR 2020)",
    "capsule": "Subcapsular or dome tumours: more pain and diaphragm injury; hydrodissection "
    "or an angled path (Crocetti et al., CVIR 2020)",
    "mr": "Tumours seen only on MR need MR-guided (or fusion-guided) ablation",
    "crlm": "ESMO metastatic colorectal cancer guideline (Cervantes A et al., Ann Oncol "
    "2023;34:10-32): thermal ablation is an option for small colorectal liver metastases "
    "(< 3 cm), alone or with resection; BCLC staging is for HCC only",
    "other_histology": "No histology-specific guideline for ablating this tumour in the liver "
    "(BCLC staging and its HCC evidence do not apply): the multidisciplinary tumour board "
    "decides (CIRSE standards of practice on liver ablation, Crocetti et al., CVIR 2020)",
    "margin_general": "No histology-specific margin: 5 mm, the low end of the 5-10 mm "
    "ablative margin of complete ablation (Ahmed M et al., Image-guided tumor ablation: "
    "standardization of terminology, Radiology 2014;273:241-260)",
}


@dataclass(frozen=True)
class Selection:
    """The recommendation, the reasons (each with its source) and the measurements used.

    Attributes
    ----------
    recommendation : str
        One line for the tumour board.
    modality : str or None
        ``"mwa"``, ``"rfa"`` or ``"cryo"`` when ablation is recommended, else None.
    reasons : tuple of dict
        ``{"reason": ..., "source": ...}``, each with its short citation.
    measurements : dict
        What the rules read (sizes in mm, distances in mm, counts); JSON-able.
    organ : str
        The organ whose rules were applied (:data:`ioplan.anatomy.ORGANS`).
    organ_source : str
        ``"option"`` (the ``organ`` argument, ``--organ``), ``"case"`` (``case.toml``),
        ``"inferred"`` (the labels around the tumour) or ``"default"`` (liver).
    ablation_within_guidelines : bool or None
        Whether ablating this tumour lies inside the cited guidance (None: no rule speaks).
    outside_guidelines : tuple of str
        What puts it outside, in words (e.g. "... larger than 3 cm (lung: ablation for
        <= 3 cm)").
    """

    recommendation: str
    modality: str | None
    reasons: tuple[dict[str, str], ...]
    measurements: dict[str, Any]
    disclaimer: str = "supports a tumour board; it does not replace one"
    organ: str = "liver"
    organ_source: str = "default"
    ablation_within_guidelines: bool | None = None
    outside_guidelines: tuple[str, ...] = ()
    #: Said beside the recommendation (e.g. an --organ the labels contradict).
    notes: tuple[str, ...] = ()

    @property
    def organ_given(self) -> bool:
        """True when the organ was given (``--organ`` or ``case.toml``), not inferred."""
        return self.organ_source in ("option", "case")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record (``plan.json``'s ``selection``, ``ioplan select --json``).

        Keys: ``recommendation``, ``modality``, ``reasons`` (list of ``{reason, source}``),
        ``measurements``, ``disclaimer``, ``organ``, ``organ_source``, ``organ_given``,
        ``ablation_within_guidelines``, ``outside_guidelines`` (list of str). Keys are only
        ever added, never renamed or dropped.
        """
        d = asdict(self)
        d["reasons"] = list(d["reasons"])
        d["outside_guidelines"] = list(d["outside_guidelines"])
        d["notes"] = list(d["notes"])
        d["organ_given"] = self.organ_given
        return d


def _distance_to(lab: np.ndarray, tumour: np.ndarray, labels, sp) -> float:
    m = np.isin(lab, [int(x) for x in labels])
    if not m.any():
        return math.inf
    return float(ndimage.distance_transform_edt(~m, sampling=sp)[tumour].min())


def _which_organ(case: Case, organ: str | None, lab: np.ndarray, sp) -> tuple[str, str]:
    """The organ and where it came from (option, case, inferred, default)."""
    if organ is not None:
        return check_organ(organ), "option"
    if getattr(case, "organ", None):
        return check_organ(case.organ), "case"
    found = infer_organ(lab, sp)
    return (found, "inferred") if found else ("liver", "default")


def select_treatment(
    case: Case, organ: str | None = None, *, histology: str | None = None
) -> Selection:
    """Recommend ablation (which modality), radioembolization/TACE, a combination, or referral.

    An ``organ`` that the labels around the tumour contradict is applied as asked, and
    said in ``Selection.notes``.

    Parameters
    ----------
    case : Case
        Image, labels (a ``TUMOR`` label is required) and metadata.
    organ : str, optional
        The organ whose rules apply (:data:`ioplan.anatomy.ORGANS`); default: ``case.toml``'s
        ``organ``, else inferred from the labels around the tumour, else liver (as
        :func:`ioplan.anatomy.organ_of`).
    histology : str, optional
        Overrides the first ``[[tumors]]`` histology of ``case.toml``: ``hcc``,
        ``colorectal_metastasis`` (``crc-metastasis``), ``metastasis``, ``nsclc``, ``rcc``,
        ``sarcoma``, ``unknown``.

    Returns
    -------
    Selection
        ``Selection.to_dict()`` is its JSON-able form.
    """
    sel = _select_treatment(case, organ, histology=histology)
    if sel.organ_source == "option":
        found = infer_organ(np.asarray(case.labels.array), case.labels.grid.spacing_mm)
        if found is not None and found != sel.organ:
            from dataclasses import replace

            note = (f"the {sel.organ}'s rules apply as --organ asked, but the labels around the "
                    f"tumour put it in the {found}: check --organ")  # fmt: skip
            sel = replace(sel, notes=(*sel.notes, note))
    return sel


def _select_treatment(
    case: Case, organ: str | None = None, *, histology: str | None = None
) -> Selection:
    """The recommendation before the organ check of :func:`select_treatment`."""
    lab = np.asarray(case.labels.array)
    g = case.labels.grid
    sp = g.spacing_mm
    given_histology = check_histology(histology) if histology is not None else None
    tum = lab == int(Label.TUMOR)
    if not tum.any():
        raise InputError("the case has no tumour label: nothing to select a treatment for")
    organ_name, organ_source = _which_organ(case, organ, lab, sp)
    comps, n = ndimage.label(tum)
    vols = ndimage.sum(tum, comps, range(1, n + 1)) * g.voxel_volume_ml
    diam = [2.0 * (3.0 * v * 1e3 / (4.0 * math.pi)) ** (1 / 3) for v in vols]
    if given_histology is not None:
        histology = given_histology
    elif case.tumors:
        raw = case.tumors[0].get("histology", "unknown")
        try:
            histology = check_histology(raw if isinstance(raw, str) else "?")
        except InputError:
            raise InputError(
                f"case.toml: the tumour's histology {raw!r} is not one of {', '.join(HISTOLOGIES)}"
            ) from None
    else:
        histology = "unknown"
    if organ_name != "liver":
        image = np.asarray(case.image.array) if case.image is not None else None
        rec, mod, reasons, meas, within, outside = select_organ(
            organ_name, lab, comps, diam, sp, histology, image, case.modality
        )
        meas["imaging"] = case.modality
        if case.modality.upper().startswith("MR") and mod is not None:
            reasons.append({"reason": "the case is an MR image", "source": SOURCES["mr"]})
        return Selection(
            rec, mod, tuple(reasons), meas, organ=organ_name, organ_source=organ_source,
            ablation_within_guidelines=within, outside_guidelines=tuple(outside),
        )  # fmt: skip
    largest = int(np.argmax(diam)) + 1
    big = comps == largest
    margin = 10.0 if histology == "colorectal_metastasis" else 5.0
    # the liver with its own vessels and ducts: its outer surface is the capsule
    liver_any = np.isin(
        lab,
        [int(Label.LIVER), int(Label.TUMOR), int(Label.PORTAL_VEIN), int(Label.HEPATIC_VEIN),
         int(Label.HEPATIC_ARTERY), int(Label.BILE_DUCT)],
    )  # fmt: skip
    outside_liver = ndimage.distance_transform_edt(liver_any, sampling=sp)
    meas = {
        "tumours": int(n),
        "diameters_mm": [round(d, 1) for d in sorted(diam, reverse=True)],
        "histology": histology,
        "margin_mm": margin,
        "large_vessel_mm": _distance_to(
            lab, big, (Label.PORTAL_VEIN, Label.HEPATIC_VEIN, Label.IVC, Label.AORTA), sp
        ),
        "bowel_or_gallbladder_mm": _distance_to(
            lab,
            big,
            (Label.BOWEL_WALL, Label.BOWEL_CONTENT, Label.STOMACH, Label.GALLBLADDER),
            sp,
        ),
        "bile_duct_mm": _distance_to(lab, big, (Label.BILE_DUCT,), sp),
        "capsule_mm": float(outside_liver[big].min()),
        "imaging": case.modality,
    }
    reasons: list[dict[str, str]] = []

    def why(text: str, src: str) -> None:
        reasons.append({"reason": text, "source": SOURCES[src]})

    dmax = max(diam)
    zone_needed = dmax + 2 * margin
    outside: list[str] = []
    # which evidence the size and number rules rest on: BCLC for HCC only
    stage_src = {"hcc": "bclc", "colorectal_metastasis": "crlm"}.get(histology, "other_histology")
    if n > 3:
        rec, mod = "radioembolization or TACE (multifocal disease)", None
        why(f"{n} tumours: more than 3 is multifocal disease"
            + (" (intermediate stage)" if histology == "hcc" else ""), stage_src)  # fmt: skip
        outside.append(f"{n} tumours: more than 3 (liver: ablation for up to 3)")
    elif dmax > 50.0:
        rec, mod = "radioembolization or TACE, or surgery (tumour too large to ablate)", None
        why(f"largest tumour {dmax:.0f} mm: beyond 5 cm ablation is not recommended", "easl")
        outside.append(f"largest tumour {dmax:.0f} mm: larger than 5 cm (liver: no ablation)")
    elif dmax > 30.0 or zone_needed > 45.0:
        rec, mod = "microwave ablation with several antennas, or ablation combined with TACE", "mwa"
        why(
            f"largest tumour {dmax:.0f} mm (+ {margin:g} mm margin = {zone_needed:.0f} mm zone): "
            "3-5 cm needs overlapping zones; MWA preferred over RFA",
            "easl",
        )
        why("one applicator's zone is mostly <= 4-5 cm", "size")
        if dmax > 30.0:
            outside.append(
                f"largest tumour {dmax:.0f} mm: larger than 3 cm (liver: ablation alone first "
                "line <= 3 cm; 3-5 cm several antennas or combined with TACE)"
            )
    else:
        rec, mod = "thermal ablation, microwave preferred", "mwa"
        first = {"bclc": "ablation is first line", "crlm": "ablation is an option"}.get(
            stage_src, "ablation is possible by size (no histology-specific guideline)"
        )
        why(f"largest tumour {dmax:.0f} mm, {n} tumour(s): {first}", stage_src)
    known = histology in ("hcc", "colorectal_metastasis")
    why(f"margin {margin:g} mm for {histology}", "margin" if known else "margin_general")
    if meas["large_vessel_mm"] < 5.0 and mod is not None:
        why(
            f"a vessel >= 3 mm lies {meas['large_vessel_mm']:.1f} mm from the tumour: heat sink; "
            "prefer microwave (or cryo) over RF, and check the margin next to it",
            "heat_sink",
        )
    if meas["bowel_or_gallbladder_mm"] < 10.0 and mod is not None:
        mod = "cryo"
        rec = "cryoablation (ice ball visible near bowel/gallbladder), or hydrodissection + MWA"
        why(f"bowel or gallbladder {meas['bowel_or_gallbladder_mm']:.1f} mm away", "bowel")
    if meas["bile_duct_mm"] < 10.0 and mod is not None:
        why(f"central bile duct {meas['bile_duct_mm']:.1f} mm away", "bile")
    if meas["capsule_mm"] < 5.0 and mod is not None:
        why(f"tumour {meas['capsule_mm']:.1f} mm from the liver capsule", "capsule")
    if case.modality.upper().startswith("MR") and mod is not None:
        why("the case is an MR image", "mr")
    for k in ("large_vessel_mm", "bowel_or_gallbladder_mm", "bile_duct_mm", "capsule_mm"):
        meas[k] = None if not math.isfinite(meas[k]) else round(meas[k], 1)
    return Selection(
        rec, mod, tuple(reasons), meas, organ="liver", organ_source=organ_source,
        ablation_within_guidelines=not outside, outside_guidelines=tuple(outside),
    )  # fmt: skip

"""A case completed from its image: the structures its labels lack, found automatically."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ioplan.anatomy._auto import auto_labels
from ioplan.anatomy._case import Case
from ioplan.anatomy._labels import Label
from ioplan.imaging import Volume

__all__ = ["lacks_body_outline", "with_auto_labels"]

# auto_labels' structures -> the ioplan label they become in a case. Airways and bowel gas
# are air: the engine and the path planner treat them as lung and bowel content (both are
# structures a needle avoids); the case records where each came from.
_AS_LABEL = {
    "skin": Label.SKIN,
    "fat": Label.FAT,
    "lung": Label.LUNG,
    "airway": Label.LUNG,
    "bone": Label.RIB,
    "liver_vessels": Label.PORTAL_VEIN,
    "gas": Label.BOWEL_CONTENT,
    "soft_tissue": Label.MUSCLE,
}


def lacks_body_outline(case: Case) -> bool:
    """Whether the labels hold no body outline: no skin and no fat.

    Muscles alone are no outline (TotalSegmentator labels the deep ones, autochthon and
    iliopsoas, inside an unlabelled body). Needle paths start where the labelled body
    ends, so such a case needs the outline found from the image (:func:`with_auto_labels`),
    as ``ioplan import-case`` and the web import do by default.
    """
    import numpy as np

    from ioplan.anatomy._labels import Label

    body = (int(Label.SKIN), int(Label.FAT))
    return not bool(np.isin(np.asarray(case.labels.array), body).any())


def with_auto_labels(case: Case, *, contrast: bool | None = None) -> Case:
    """The case with body, skin, fat, lung, airways, bone (and liver vessels) filled in.

    Runs :func:`ioplan.anatomy.auto_labels` on the case's image; the case's own labels
    win where they are non-zero (except liver vessels, found inside the liver label), so
    only what the labels lack is added. Airways
    become ``lung`` and bowel gas ``bowel_content`` (air either way). ``case.structures``
    records ``source = "auto"`` for every structure found from the image, and the
    contrast decision and the method's notes go to ``case.source["notes"]``.

    Parameters
    ----------
    case : Case
        An imported case (any modality; MR finds body and lung only).
    contrast : bool, optional
        Whether the CT is contrast-enhanced (liver vessels are extracted only then);
        decided from the image when None.

    Returns
    -------
    Case
        A new case; the input is not changed.
    """
    own = np.asarray(case.labels.array)
    found = auto_labels(case.image, modality=case.modality, labels=own, contrast=contrast)
    arr = np.asarray(found.labels.array).astype(np.uint8, copy=True)
    for name, value in found.classes.items():
        target = _AS_LABEL.get(name)
        if target is not None and value != int(target):
            arr[arr == value] = int(target)
    structures = {k: dict(v) for k, v in (case.structures or {}).items()}
    for name, source in found.provenance.items():
        if source != "auto" or name not in _AS_LABEL:
            continue
        label = _AS_LABEL[name].name.lower()
        entry = structures.setdefault(label, {"source": "auto", "classes": []})
        if entry.get("source") != "labels":
            entry["source"] = "auto"
        entry.setdefault("classes", [])
        if name not in entry["classes"]:
            entry["classes"].append(name)
    notes = [*case.source.get("notes", []), *found.notes]  # found.notes has the contrast reason
    source = dict(case.source) | {"notes": [n for n in notes if n], "auto_labels": True}
    return replace(case, labels=Volume(arr, case.labels.grid), structures=structures,
                   source=source)  # fmt: skip

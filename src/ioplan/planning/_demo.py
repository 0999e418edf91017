"""The demo cases: a liver tumour next to a 5-6 mm hepatic vein branch, and organ phantoms.

The organ phantoms (lung, kidney, bone, soft tissue; issue 21) hold their default tumour
site.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ioplan.anatomy import Case, Label, PhantomConfig, TumorSpec, generate_phantom
from ioplan.errors import InputError
from ioplan.imaging import atomic_output_folder, write_completion_record

if TYPE_CHECKING:
    from ioplan.planning._plan import Plan

__all__ = ["DEMO_FOLDER_ENTRIES", "ORGAN_DEMOS", "demo_case", "organ_demo_case", "write_demo"]

#: The organ demos: phantom site, tumour diameter (mm), histology, default modality and
#: search budget (s; None: the planner's). Lung: a peripheral 20 mm metastasis (lung
#: ablation is mostly for tumours <= 3 cm) by microwave; kidney: a 15 mm exophytic renal
#: cell carcinoma (T1a) by cryo (two freeze cycles; a double freeze of several probes is
#: the slowest verification, so the search stops after 35 s (two or three verified
#: rounds) to keep the demo under a minute); bone: a 20 mm vertebral body metastasis by
#: microwave, the cord behind it; soft tissue: a 20 mm metastasis in the lateral thigh,
#: 20 mm from the sciatic nerve, by cryo (the modality of soft-tissue ablation near nerves:
#: its ice ball is seen and kept off the nerve); 50 s of search fit two verified rounds
#: (the second corrects the first's 95 % coverage) in about a minute at 2 mm.
ORGAN_DEMOS = {
    "lung": {"site": "peripheral", "diameter_mm": 20.0, "histology": "metastasis",
             "modality": "mwa", "time_budget_s": None},
    "kidney": {"site": "exophytic", "diameter_mm": 15.0, "histology": "rcc",
               "modality": "cryo", "time_budget_s": 35.0},
    "bone": {"site": "vertebra", "diameter_mm": 20.0, "histology": "metastasis",
             "modality": "mwa", "time_budget_s": None},
    "soft_tissue": {"site": "thigh", "diameter_mm": 20.0, "histology": "metastasis",
                    "modality": "cryo", "time_budget_s": 50.0},
}  # fmt: skip

#: What :func:`write_demo` writes into its folder (an older demo folder holds only these).
DEMO_FOLDER_ENTRIES = frozenset(
    {"case.toml", "image.nii.gz", "labels.nii.gz", "vessels.csv", "index.html", "figures", "plan"}
)


def demo_case(
    *,
    seed: int = 0,
    spacing_mm: float = 2.0,
    tumour_diameter_mm: float = 28.0,
    vessel_diameter_mm: tuple[float, float] = (5.0, 6.0),
    gap_mm: float = 2.0,
    progress=None,
) -> tuple[Case, dict]:
    """A phantom whose tumour lies ``gap_mm`` from a hepatic vein branch of 5-6 mm.

    The vessel trees depend only on the seed, so a first phantom gives the branches;
    the tumour is then placed beside the longest branch of the wanted calibre that
    leaves room for it inside the liver, and the phantom is generated again with it.
    Returns the case and a record of the chosen branch.
    """
    first = generate_phantom(PhantomConfig(spacing_mm=spacing_mm, seed=seed, noise_hu=0.0))
    g = first.labels.grid
    liver = np.isin(first.labels.array, [int(Label.LIVER), int(Label.TUMOR)]) | np.isin(
        first.labels.array,
        [int(Label.PORTAL_VEIN), int(Label.HEPATIC_VEIN), int(Label.HEPATIC_ARTERY)],
    )
    depth = ndimage.distance_transform_edt(liver, sampling=g.spacing_mm)
    r_t = 0.5 * tumour_diameter_mm
    lo, hi = vessel_diameter_mm
    best = None
    for seg in first.vessels:
        if not seg.tree.startswith("hepatic_") or seg.tree == "hepatic_artery":
            continue
        if not lo <= 2 * seg.radius_mm <= hi:
            continue
        p0, p1 = np.asarray(seg.start_mm), np.asarray(seg.end_mm)
        axis = p1 - p0
        length = float(np.linalg.norm(axis))
        if length < 10.0:
            continue
        axis /= length
        helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        e1 = np.cross(axis, helper)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(axis, e1)
        mid = 0.5 * (p0 + p1)
        for ang in np.linspace(0, 2 * np.pi, 12, endpoint=False):
            c = mid + (np.cos(ang) * e1 + np.sin(ang) * e2) * (r_t + seg.radius_mm + gap_mm)
            if not g.contains_lps(c):
                continue
            idx = tuple(np.rint(g.lps_to_index(c)).astype(int))
            room = float(depth[idx])
            if room >= r_t + 8.0 and (best is None or room > best[0]):
                best = (room, c, seg)
    if best is None:
        raise InputError("no hepatic vein branch of 5-6 mm with room for the demo tumour")
    room, centre, seg = best
    tumour = TumorSpec(
        diameter_mm=tumour_diameter_mm,
        centre_mm=tuple(float(v) for v in centre),
        irregularity=0.1,
        histology="hcc",
    )
    ph = generate_phantom(
        PhantomConfig(spacing_mm=spacing_mm, seed=seed, tumors=(tumour,)), progress=progress
    )
    info = {
        "vessel_tree": seg.tree,
        "vessel_diameter_mm": round(2 * seg.radius_mm, 2),
        "vessel_axis_mm": [list(seg.start_mm), list(seg.end_mm)],
        "gap_mm": gap_mm,
        "tumour_centre_mm": [round(float(v), 2) for v in centre],
        "tumour_diameter_mm": tumour_diameter_mm,
    }
    return Case.from_phantom(ph, name="demo"), info


def organ_demo_case(organ: str, *, seed: int = 0, spacing_mm: float = 2.0,
                    progress=None) -> tuple[Case, dict]:  # fmt: skip
    """The organ phantom of ``organ`` (lung, kidney, bone, soft tissue) with its demo tumour.

    Returns the case (its ``organ`` set) and a record of the demo (organ, site, tumour).
    """
    if organ not in ORGAN_DEMOS:
        raise InputError(f"--organ must be liver, {', '.join(ORGAN_DEMOS)}, got {organ!r}")
    spec = ORGAN_DEMOS[organ]
    # the phantom knows liver histologies only: the demo's is written into the case after
    tumour = TumorSpec(diameter_mm=spec["diameter_mm"], histology="other_metastasis")
    ph = generate_phantom(
        PhantomConfig(spacing_mm=spacing_mm, seed=seed, tumors=(tumour,), organ=organ,
                      site=spec["site"]),
        progress=progress,
    )  # fmt: skip
    from dataclasses import replace

    case = Case.from_phantom(ph, name=f"demo-{organ}")
    tumors = tuple(dict(t, histology=spec["histology"]) for t in case.tumors)
    case = replace(case, organ=organ, tumors=tumors)
    info = {
        "organ": organ,
        "site": spec["site"],
        "tumour_diameter_mm": spec["diameter_mm"],
        "histology": spec["histology"],
    }
    return case, info


def write_demo(case: Case, info: dict, plan: Plan, folder: str | Path, *,
               overwrite: bool = False) -> dict:  # fmt: skip
    """Write the demo's folder whole or not at all; return its ``plan/plan.json`` document.

    The case (``case.toml``, images, ``vessels.csv``), its overview (``index.html``,
    ``figures/``) and the plan in ``plan/`` (with a ``demo`` key in ``plan.json``
    recording ``info``) go into a temporary sibling folder renamed into place at the
    end (see :func:`ioplan.planning.atomic_output_folder`); ``overwrite`` replaces an
    earlier demo folder whole and refuses a folder holding anything else.
    """
    from ioplan.anatomy import save_case
    from ioplan.planning._outputs import write_plan_files
    from ioplan.report import write_case_overview

    with atomic_output_folder(
        folder, command="demo", names=DEMO_FOLDER_ENTRIES, overwrite=overwrite
    ) as tmp:
        save_case(case, tmp, overwrite=True)
        write_case_overview(case, tmp)
        doc = write_plan_files(plan, case, tmp / "plan", extra={"demo": info})
        write_completion_record(tmp / "plan", "plan")
    return doc

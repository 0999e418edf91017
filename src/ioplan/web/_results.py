"""Margin confirmation: ``/api/cases/{name}/margin`` (JSON, NIfTI) and ``/cases/{name}/margin``.

The document is :func:`ioplan.assessment.confirm_margin`'s, the one ``ioplan margin --json``
prints for the case's tumour (``--tumor CASE/labels.nii.gz --tumor-label 8``) against an
ablation zone, plus the keys of :data:`ADDED_MARGIN_KEYS`, which say which zone was
measured. A case may hold the zone seen after the ablation (:data:`OBSERVED_ZONE_FILE`, a
mask in the case folder); without one, the plan's predicted zone (``plan/zone.nii.gz``) is
measured and the document and the page say so: that is a prediction, not a confirmation.

The SIRT dose routes and page are in :mod:`ioplan.web._results_sirt` (included here).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from html import escape
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse

from ioplan.web._api_cases import Services, nifti_response
from ioplan.web._cases import PLAN_FOLDER, CaseNotFoundError, _mtime_key
from ioplan.web._pages import WINDOW_PRESETS, page
from ioplan.web._results_common import cached_nifti, fmt
from ioplan.web._results_sirt import router as sirt_router

__all__ = [
    "ADDED_MARGIN_KEYS",
    "MARGIN_CLASSES",
    "MARGIN_VOLUMES",
    "OBSERVED_ZONE_FILE",
    "margin_document",
    "router",
]

router = APIRouter()
router.include_router(sirt_router)

#: The post-ablation zone of a case, when one was drawn: a mask (0/1 or labels, every
#: non-zero counted) in the case folder, on any grid overlapping the case's.
OBSERVED_ZONE_FILE = "ablation_zone.nii.gz"
#: The plan's predicted zone (``ioplan plan`` and ``ioplan demo`` write it).
PLANNED_ZONE_FILE = f"{PLAN_FOLDER}/zone.nii.gz"
#: Keys the web adds to the ``ioplan margin --json`` document.
ADDED_MARGIN_KEYS = ("zone_source", "zone_file", "zone_source_note")
#: Volumes of ``/api/cases/{name}/margin/{kind}.nii.gz``.
MARGIN_VOLUMES = ("surface", "zone")
#: Values of the ``surface`` volume: the tumour's surface voxels by the margin (mm) of the
#: nearest surface vertex, in the bins of :data:`ioplan.assessment.MARGIN_BINS_MM` (those
#: of ``surface_fraction``), and the closest point (the minimal margin's place).
MARGIN_CLASSES = (
    {"value": 1, "bin": "lt0", "name": "< 0 mm (tumour outside the zone)", "color": "#aa00aa"},
    {"value": 2, "bin": "0to5", "name": "0-5 mm", "color": "#ff2020"},
    {"value": 3, "bin": "5to10", "name": "5-10 mm", "color": "#ffff00"},
    {"value": 4, "bin": "ge10", "name": ">= 10 mm", "color": "#00d000"},
    {"value": 5, "bin": None, "name": "closest point (minimal margin)", "color": "#00ffff"},
)
_ZONE_NOTES = {
    "observed": "the ablation zone seen after the procedure (" + OBSERVED_ZONE_FILE + ")",
    "planned": "no observed ablation zone in this case: the plan's predicted zone was measured "
    "(a prediction, not a confirmation of the ablation)",
}

_MarginMm = Annotated[
    float, Query(ge=0.0, le=30.0, description="Margin wanted for technical success, 0-30 mm.")
]
_Zone = Annotated[
    Literal["auto", "observed", "planned"],
    Query(description="Which zone: the observed one if the case has it (auto), or the plan's."),
]

_KEPT = 8
_cache: OrderedDict[tuple, Any] = OrderedDict()
_lock = threading.Lock()


def _zone_file(svc, name: str, zone: str) -> tuple[str, str, Path]:
    """(source, file relative to the case, resolved path) of the zone to measure."""
    folder = svc.store.folder(name)
    observed, planned = folder / OBSERVED_ZONE_FILE, folder / PLANNED_ZONE_FILE
    if zone == "observed" or (zone == "auto" and observed.is_file()):
        if not observed.is_file():
            raise CaseNotFoundError(
                f"case {name} has no observed ablation zone ({OBSERVED_ZONE_FILE})"
            )
        return "observed", OBSERVED_ZONE_FILE, svc.store._inside(folder, observed)
    if not planned.is_file():
        raise CaseNotFoundError(
            f"case {name} has no ablation zone: neither {OBSERVED_ZONE_FILE} nor a plan's "
            "predicted zone (make one with ioplan plan)"
        )
    return "planned", PLANNED_ZONE_FILE, svc.store._inside(folder, planned)


def _measured_tumour(case, folder: Path, source: str):
    """The tumour a margin is measured for, and what the document says about it.

    A plan treats one tumour (plan.json ``tumour_index``): its predicted zone is measured
    against that tumour alone (the case's other tumours were not its target). An observed
    zone is measured against every tumour of the case, and said when there are several.
    Returns ``(mask volume or None for every tumour, keys for the document)``.
    """
    import json

    from scipy import ndimage

    from ioplan.anatomy import Label
    from ioplan.imaging import Volume
    from ioplan.planning import tumour_mask

    n = int(ndimage.label(np.asarray(case.labels.array) == int(Label.TUMOR))[1])
    if n <= 1:
        return None, {}
    if source == "planned":
        try:
            idx = int(json.loads((folder / "plan" / "plan.json").read_text())["tumour_index"])
        except (OSError, ValueError, KeyError, TypeError):
            idx = 0
        mask, _ = tumour_mask(case, idx)
        return Volume(mask.astype(np.uint8), case.labels.grid), {
            "tumour_index": idx,
            "note": f"the case holds {n} tumours: the plan's zone is measured against the "
            f"tumour it was made for (tumour {idx})",
        }
    return None, {"note": f"the case holds {n} tumours: all are measured against the zone"}


def _confirm(svc, name: str, margin_mm: float, zone: str):
    """(document, confirmation, cache key): :func:`confirm_margin` once per files and inputs."""
    from ioplan.anatomy import Label
    from ioplan.assessment import confirm_margin

    source, rel, path = _zone_file(svc, name, zone)
    folder = svc.store.folder(name)
    files = _mtime_key(folder / "case.toml", folder / "labels.nii.gz", path)
    key = (str(svc.store.root), str(svc.cache_dir), name, files, source, float(margin_mm))
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    case = svc.store.load(name)
    tumour, extra = _measured_tumour(case, folder, source)
    if tumour is None:
        c = confirm_margin(case.labels, path, margin_mm=margin_mm, tumour_label=int(Label.TUMOR))
    else:
        c = confirm_margin(tumour, path, margin_mm=margin_mm)
    doc = c.document | {k: v for k, v in extra.items() if k != "note"} | {
        "zone_source": source,
        "zone_file": rel,
        "zone_source_note": _ZONE_NOTES[source],
    }
    if extra.get("note"):
        doc["notes"] = [*doc.get("notes", []), extra["note"]]
    tag = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
    out = (doc, c, tag)
    with _lock:
        _cache[key] = out
        while len(_cache) > _KEPT:
            _cache.popitem(last=False)
    return out


def margin_document(svc, name: str, margin_mm: float = 5.0, zone: str = "auto") -> dict:
    """The ``ioplan margin --json`` document of case ``name`` plus :data:`ADDED_MARGIN_KEYS`."""
    return _confirm(svc, name, margin_mm, zone)[0]


def surface_classes(c, grid) -> np.ndarray:
    """``uint8`` on ``grid``: tumour surface voxels by margin class, the closest point 5.

    A surface voxel (in the tumour, with a face neighbour outside) takes the margin of the
    nearest surface vertex; the closest point is marked by its voxel and the six next to it.
    """
    from scipy import ndimage
    from scipy.spatial import cKDTree

    from ioplan.assessment import MARGIN_BINS_MM
    from ioplan.imaging import resample

    res = c.result
    tum = c.tumour
    if tum.grid != grid:
        tum = resample(tum, grid, interpolation="linear")
    t = np.asarray(tum.array, float) > 0.5
    shell = t & ~ndimage.binary_erosion(t)
    out = np.zeros(grid.shape, np.uint8)
    idx = np.argwhere(shell)
    if len(idx) and res.mesh is not None and res.vertex_margin_mm is not None:
        _, near = cKDTree(res.mesh.vertices_mm).query(grid.index_to_lps(idx.astype(float)))
        m = np.asarray(res.vertex_margin_mm, float)[near]
        value = np.zeros(len(idx), np.uint8)
        for cls in MARGIN_CLASSES:
            if cls["bin"] is None:
                continue
            lo, hi = MARGIN_BINS_MM[cls["bin"]]
            value[(m >= lo) & (m < hi)] = cls["value"]  # NaN (excluded) stays 0
        out[tuple(idx.T)] = value
    centre = np.rint(grid.lps_to_index(np.asarray(res.closest_point_mm, float))).astype(int)
    for d in ((0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
        p = centre + np.asarray(d)
        if np.all(p >= 0) and np.all(p < np.asarray(grid.shape)):
            out[tuple(p)] = 5
    return out


@router.get("/api/cases/{name}/margin", summary="Margin confirmation (`ioplan margin --json`)")
def margin_api(
    name: str, svc: Services, margin_mm: _MarginMm = 5.0, zone: _Zone = "auto"
) -> dict[str, Any]:
    """The case's tumour against its ablation zone: minimal margin, coverage, success.

    The keys of ``ioplan margin --json`` plus ``zone_source`` (``observed``: the case's
    ``ablation_zone.nii.gz``; ``planned``: the plan's predicted zone), ``zone_file`` and
    ``zone_source_note``.
    """
    return margin_document(svc, name, margin_mm, zone)


@router.get(
    "/api/cases/{name}/margin/{kind}.nii.gz",
    summary="A margin volume",
    responses={200: {"content": {"application/gzip": {}}, "description": "NIfTI-1, gzip"}},
)
def margin_volume(
    name: str, kind: str, svc: Services, margin_mm: _MarginMm = 5.0, zone: _Zone = "auto"
) -> FileResponse:
    """A volume of the margin view, NIfTI gzip.

    ``surface``: the tumour surface by margin class (:data:`MARGIN_CLASSES`, uint8, on the
    case grid); ``zone``: the zone measured (0/1, on its own grid).
    """
    if kind not in MARGIN_VOLUMES:
        raise CaseNotFoundError(
            f"no margin volume {kind[:40]!r} (one of {', '.join(MARGIN_VOLUMES)})"
        )
    _, c, tag = _confirm(svc, name, margin_mm, zone)
    grid = svc.store.load(name).labels.grid

    def make():
        from ioplan.imaging import Volume

        if kind == "surface":
            return Volume(surface_classes(c, grid), grid)
        return Volume((np.asarray(c.zone.array, float) > 0.5).astype(np.uint8), c.zone.grid)

    return nifti_response(cached_nifti(svc, name, f"margin-{kind}-{tag}", make))


def _query(margin_mm: float, zone: str) -> str:
    return f"margin_mm={margin_mm:g}&zone={zone}"


@router.get("/cases/{name}/margin", response_class=HTMLResponse, include_in_schema=False)
def margin_page(
    name: str, svc: Services, margin_mm: _MarginMm = 5.0, zone: _Zone = "auto"
) -> HTMLResponse:
    """The CT with the tumour surface coloured by margin, the closest point, the figures."""
    doc = margin_document(svc, name, margin_mm, zone)
    modality = svc.store.summary(name)["modality"]
    src = doc["zone_source"]
    ok = "achieved" if doc["technical_success"] else "NOT achieved"
    sf, vic = doc["surface_fraction"], doc["vic_ml"]
    rows = [
        ("zone measured", f"{src} ({doc['zone_file']})"),
        ("minimal ablative margin", f"{fmt(doc['minimal_margin_mm'], '.2f')} mm"),
        ("technical success", f"{ok} (margin wanted {doc['margin_mm']:g} mm)"),
        ("tumour covered", f"{fmt(doc['coverage_percent'])} %"),
        ("complete ablation", "yes" if doc["complete_ablation"] else "no"),
        ("closest point (LPS mm)", ", ".join(f"{v:.1f}" for v in doc["closest_point_mm"])),
        ("tumour / zone volume", f"{doc['tumour_volume_ml']:.2f} / {doc['zone_volume_ml']:.2f} mL"),
        ("insufficient coverage 0/5/10 mm", " / ".join(f"{vic[k]:.2f}" for k in vic) + " mL"),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    fractions = "".join(
        f'<tr><td><span class="swatch" style="background:{c["color"]}"></span>'
        f"{escape(c['name'])}</td><td>{fmt(sf.get(c['bin']))}</td></tr>"
        for c in MARGIN_CLASSES
        if c["bin"] is not None
    )
    note_class = "note" if src == "planned" else ""
    notes = "".join(f"<li>{escape(n)}</li>" for n in doc["notes"])
    zones = "".join(
        f'<option value="{z}"{" selected" if z == zone else ""}>{z}</option>'
        for z in ("auto", "observed", "planned")
    )
    presets = "".join(
        f'<button data-window="{w},{lvl}">{escape(k)}</button>'
        for k, (w, lvl) in WINDOW_PRESETS.items()
    )
    e = escape(name)
    body = f"""<main><div id="side"><h2>margin of {e}</h2>
<p id="zone-source" class="{note_class}" data-source="{src}">{escape(doc["zone_source_note"])}</p>
<table id="margin-figures">{table}</table>
<h3>Tumour surface by margin (% of its area)</h3>
<table id="margin-legend"><tr><th>margin</th><th>% surface</th></tr>{fractions}
<tr><td><span class="swatch" style="background:#00ffff"></span>closest point</td><td>
{fmt(doc["minimal_margin_mm"], ".2f")} mm</td></tr>
<tr><td><span class="swatch" style="background:#3388ff"></span>ablation zone</td><td></td></tr>
</table>
<form method="get" action="/cases/{e}/margin"><label>margin wanted (mm)
<input name="margin_mm" type="number" min="0" max="30" step="0.5" value="{doc["margin_mm"]:g}">
</label> <label>zone <select name="zone">{zones}</select></label>
<button type="submit">measure</button></form>
<div>window: {presets}</div>
<div>view: <button data-layout="multi">3 planes + 3D</button><button data-layout="axial">axial
</button><button data-layout="render">3D</button><button id="reset">closest point</button></div>
<ul id="notes">{notes}</ul>
<p><a href="/cases/{e}">the case</a> &middot; <a href="/cases/{e}/sirt">SIRT dose</a>
&middot; <a href="/api/cases/{e}/margin?{_query(margin_mm, zone)}">JSON</a></p></div>
<div id="viewer" style="align-self:flex-start;height:660px"><canvas id="gl"></canvas>
<div id="status"></div></div></main>"""
    cfg = {
        "page": "margin",
        "case": name,
        "modality": modality,
        "windows": WINDOW_PRESETS,
        "query": _query(margin_mm, zone),
        "closest_point_mm": doc["closest_point_mm"],
        "classes": [{k: c[k] for k in ("value", "name", "color")} for c in MARGIN_CLASSES],
        "zone_color": "#3388ff",
    }
    return page(f"margin {name}", body, cfg, svc.viewer_built, script="results.js")

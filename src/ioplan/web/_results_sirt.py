"""SIRT dose with DVH: ``POST /api/cases/{name}/sirt``, the dose NIfTI, ``/cases/{name}/sirt``.

The dose is :func:`ioplan.embolization.voxel_dose` (``ioplan sirt voxel``) of a synthetic
SPECT of the case (:func:`ioplan.embolization.synthetic_spect`, ``ioplan sirt
synthetic-spect``) on the case's CT and labels. The document holds the keys of ``ioplan
sirt voxel --json`` plus :data:`ADDED_SIRT_KEYS`: the SPECT's settings, the cumulative DVH
of each structure on one dose axis, and the address of the dose map. At the demo's 4 mm
grid the whole takes well under a second (local deposition or kernel), so it is answered
at once rather than as a job.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from html import escape
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from ioplan.web._api_cases import Services, nifti_response
from ioplan.web._cases import CaseNotFoundError, _mtime_key
from ioplan.web._pages import WINDOW_PRESETS, page
from ioplan.web._results_common import cached_nifti, fmt, result_path

__all__ = ["ADDED_SIRT_KEYS", "DVH_POINTS", "SirtInputs", "SirtRequest", "router", "sirt_dose"]

router = APIRouter()

#: Keys the web adds to the ``ioplan sirt voxel --json`` document.
ADDED_SIRT_KEYS = ("spect", "dvh", "dose_url")
#: Points of the DVH's dose axis (0 to the highest dose, evenly spaced).
DVH_POINTS = 201
#: Chart colours of the structures of :func:`~ioplan.embolization.voxel_dose`.
STRUCTURE_COLOURS = {"tumor": "#ff4040", "normal_liver": "#40a0ff", "lung": "#c0c0c0"}


class SirtInputs(BaseModel):
    """The inputs of ``ioplan sirt synthetic-spect`` and ``ioplan sirt voxel`` on a case.

    The ranges are checked by the library (400, naming the CLI option); this model checks
    only the types (422).
    """

    model_config = ConfigDict(allow_inf_nan=False)
    activity_gbq: float = Field(2.0, description="Injected activity in GBq, > 0 and <= 20.")
    method: Literal["ldm", "kernel"] = Field(
        "ldm", description="ldm (local deposition) or kernel (S-value kernel)."
    )
    lsf: float = Field(
        0.05, description="Lung shunt fraction, >= 0 and < 1: the SPECT's and the dose's."
    )
    lung_mass_kg: float | None = Field(
        None, description="Lung mass in kg, 0.1-3, instead of the CT lung label's."
    )
    cf: float | None = Field(None, description="Dose constant (Gy kg/GBq); default 49.67.")
    tn: float = Field(4.0, description="SPECT: tumour-to-normal uptake ratio, > 0 and <= 100.")
    fwhm_mm: float = Field(12.0, description="SPECT: resolution (FWHM) in mm, > 0 and <= 100.")
    total_counts: float = Field(2e6, description="SPECT: expected total counts, 1 to 1e10.")
    seed: int = Field(0, description="SPECT: seed of the Poisson noise, >= 0.")


class SirtRequest(SirtInputs):
    """A SIRT dose request (JSON body): unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


_KEPT = 4
_SPECT_KEYS = ("tn", "fwhm_mm", "total_counts", "seed")
_cache: OrderedDict[tuple, Any] = OrderedDict()
_lock = threading.Lock()


def dvh_curves(res) -> dict[str, Any]:
    """Cumulative DVHs of ``res`` (a :class:`~ioplan.embolization.VoxelDose`) on one axis.

    ``volume_percent[s][k]`` is the percentage of structure ``s``'s voxels whose dose is
    at least ``dose_gy[k]``; ``dose_gy`` runs from 0 to the highest dose in
    :data:`DVH_POINTS` steps.
    """
    top = max((float(d[-1]) for d, _ in res.dvh.values() if len(d)), default=0.0)
    axis = np.linspace(0.0, max(top, 1e-6), DVH_POINTS)
    curves = {}
    for s, (d, _) in res.dvh.items():
        n = len(d)
        above = n - np.searchsorted(d, axis, side="left")
        curves[s] = [round(float(v), 4) for v in 100.0 * above / n]
    return {
        "dose_gy": [round(float(v), 4) for v in axis],
        "volume_percent": curves,
        "definition": "cumulative: percent of the structure's volume receiving at least dose_gy",
    }


def sirt_dose(svc, name: str, req: SirtInputs) -> dict[str, Any]:
    """The ``ioplan sirt voxel --json`` document of case ``name`` plus :data:`ADDED_SIRT_KEYS`.

    The dose map is written into the server's cache (``dose_url`` serves it).
    """
    from ioplan.embolization import check_lsf, check_range, synthetic_spect, voxel_dose

    folder = svc.store.folder(name)
    check_range("activity_gbq", req.activity_gbq)  # cheap checks before the SPECT
    check_lsf(req.lsf)
    files = _mtime_key(*(folder / f for f in ("case.toml", "image.nii.gz", "labels.nii.gz")))
    inputs = req.model_dump(mode="json")
    # per server (its cases and its cache folder), case files and inputs
    key = (str(svc.store.root), str(svc.cache_dir), name, files, tuple(sorted(inputs.items())))
    tag = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
    with _lock:
        hit = _cache.get(key)
    if hit is not None and result_path(svc, name, f"sirt-dose-{tag}").is_file():
        return hit
    case = svc.store.load(name)
    spect = synthetic_spect(case.labels, tn=req.tn, lsf=req.lsf, fwhm_mm=req.fwhm_mm,
                            total_counts=req.total_counts, seed=req.seed)  # fmt: skip
    res = voxel_dose(spect, case.image, case.labels, req.activity_gbq, lsf=req.lsf,
                     method=req.method, cf=req.cf, lung_mass_kg=req.lung_mass_kg)  # fmt: skip
    doc = res.to_dict() | {"activity_gbq": req.activity_gbq, "lsf": req.lsf, "lsf_from": "given"}
    cached_nifti(svc, name, f"sirt-dose-{tag}", lambda: res.dose)
    doc |= {
        "spect": {"kind": "synthetic"} | {k: inputs[k] for k in _SPECT_KEYS},
        "dvh": dvh_curves(res),
        "dose_url": f"/api/cases/{name}/sirt/dose/{tag}.nii.gz",
    }
    with _lock:
        _cache[key] = doc
        while len(_cache) > _KEPT:
            _cache.popitem(last=False)
    return doc


@router.post("/api/cases/{name}/sirt", summary="SIRT voxel dose and DVH (`ioplan sirt voxel`)")
def sirt_api(name: str, req: SirtRequest, svc: Services) -> dict[str, Any]:
    """Y-90 dose of a synthetic SPECT of the case (at ``tn``, ``lsf``) for ``activity_gbq``.

    The keys of ``ioplan sirt voxel --json`` (``method``, ``cf_gy_kg_per_gbq``,
    ``structures`` with mean, D50/70/95/98 and V100/150/205 per structure, ``lung_mass_kg``,
    ``lung_dose_gy``, ``notes``, ``activity_gbq``, ``lsf``) plus ``spect`` (its settings),
    ``dvh`` (cumulative DVH per structure) and ``dose_url`` (the dose map, Gy, NIfTI gzip).
    """
    return sirt_dose(svc, name, req)


@router.get(
    "/api/cases/{name}/sirt/dose/{tag}.nii.gz",
    summary="A SIRT dose map",
    responses={200: {"content": {"application/gzip": {}}, "description": "NIfTI-1, gzip"}},
)
def sirt_dose_volume(name: str, tag: str, svc: Services) -> FileResponse:
    """The dose (Gy, float32, on the case grid) named by a SIRT document's ``dose_url``."""
    path = result_path(svc, name, f"sirt-dose-{tag}")
    if not path.is_file():
        raise CaseNotFoundError(
            "no such dose map (kept for a while only: POST /api/cases/NAME/sirt again)"
        )
    return nifti_response(path)


_FIELDS = (
    ("activity_gbq", "activity (GBq)", "0.1"),
    ("lsf", "lung shunt fraction", "0.01"),
    ("tn", "T/N ratio", "0.5"),
    ("fwhm_mm", "SPECT FWHM (mm)", "1"),
    ("seed", "noise seed", "1"),
)
_STATS = (
    ("volume_ml", "volume mL", ".1f"),
    ("mean_gy", "mean", ".1f"),
    ("d50_gy", "D50", ".1f"),
    ("d70_gy", "D70", ".1f"),
    ("d95_gy", "D95", ".1f"),
    ("d98_gy", "D98", ".1f"),
    ("v100_percent", "V100", ".1f"),
    ("v150_percent", "V150", ".1f"),
    ("v205_percent", "V205", ".1f"),
)


@router.get("/cases/{name}/sirt", response_class=HTMLResponse, include_in_schema=False)
def sirt_page(name: str, svc: Services, req: Annotated[SirtInputs, Query()]) -> HTMLResponse:
    """The dose map over the CT, the DVH chart and the D/V figures of each structure."""
    doc = sirt_dose(svc, name, req)
    modality = svc.store.summary(name)["modality"]
    structures = doc["structures"]
    head = "".join(
        f'<th><span class="swatch" style="background:{STRUCTURE_COLOURS.get(s, "#888888")}">'
        f"</span>{escape(s)}</th>"
        for s in structures
    )
    rows = "".join(
        f"<tr><th>{escape(label)}</th>"
        + "".join(
            f'<td data-structure="{escape(s)}" data-key="{k}">{fmt(st.get(k), spec)}</td>'
            for s, st in structures.items()
        )
        + "</tr>"
        for k, label, spec in _STATS
    )
    values = req.model_dump()
    inputs = "".join(
        f'<label>{escape(label)} <input name="{k}" type="number" step="{step}" '
        f'value="{values[k]:g}"></label><br>'
        for k, label, step in _FIELDS
    )
    methods = "".join(
        f'<option value="{m}"{" selected" if m == req.method else ""}>{m}</option>'
        for m in ("ldm", "kernel")
    )
    lung = (
        f"lung {fmt(doc['lung_mass_kg'], '.3f')} kg, mean dose {fmt(doc['lung_dose_gy'])} Gy"
        if doc["lung_dose_gy"] is not None
        else "no lung dose (no lung label)"
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in doc["notes"])
    presets = "".join(
        f'<button data-window="{w},{lvl}">{escape(k)}</button>'
        for k, (w, lvl) in WINDOW_PRESETS.items()
    )
    e = escape(name)
    body = f"""<main><div id="side" style="width:460px"><h2>SIRT dose of {e}</h2>
<p id="sirt-summary">Y-90, {doc["activity_gbq"]:g} GBq, method {escape(doc["method"])}, CF
{doc["cf_gy_kg_per_gbq"]:g} Gy kg/GBq, LSF {doc["lsf"]:g}; {escape(lung)}. Synthetic SPECT
of the case (T/N {doc["spect"]["tn"]:g}).</p>
<table id="dvh-figures"><tr><th></th>{head}</tr>{rows}</table>
<p style="font-size:12px">Doses in Gy (mean; D<i>x</i>: the dose that at least <i>x</i> % of
the volume receives); V<i>y</i>: % of the volume receiving at least <i>y</i> Gy.</p>
<svg id="dvh" width="440" height="300" role="img" aria-label="cumulative DVH"></svg>
<form method="get" action="/cases/{e}/sirt">{inputs}<label>method <select name="method">
{methods}</select></label> <button type="submit">compute</button></form>
<div>window: {presets}</div>
<div>view: <button data-layout="multi">3 planes + 3D</button><button data-layout="axial">axial
</button><button id="reset">reset view</button></div>
<ul id="notes">{notes}</ul>
<p><a href="/cases/{e}">the case</a> &middot; <a href="/cases/{e}/margin">margin</a></p></div>
<div id="viewer" style="align-self:flex-start;height:660px"><canvas id="gl"></canvas>
<div id="status"></div></div></main>"""
    st = doc["structures"]
    # the colour scale tops at the tumour's median dose (the liver's highest without one)
    top = st["tumor"]["d50_gy"] if "tumor" in st else st.get("normal_liver", {}).get("max_gy")
    cfg = {
        "page": "sirt",
        "case": name,
        "modality": modality,
        "windows": WINDOW_PRESETS,
        "dose_url": doc["dose_url"],
        "dose_range_gy": [1.0, max(10.0, top or 0.0)],
        "focus_mm": _tumour_centre_mm(svc.store.load(name)),
        "dvh": doc["dvh"],
        "colours": STRUCTURE_COLOURS,
    }
    return page(f"SIRT {name}", body, cfg, svc.viewer_built, script="results.js")


def _tumour_centre_mm(case) -> list[float] | None:
    """The centroid (LPS mm) of the tumour voxels, where the page's slices start."""
    from ioplan.anatomy import Label

    idx = np.argwhere(np.asarray(case.labels.array) == int(Label.TUMOR))
    if not len(idx):
        return None
    return [round(float(v), 2) for v in case.labels.grid.index_to_lps(idx.mean(axis=0)[None])[0]]

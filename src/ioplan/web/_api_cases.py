"""``/api/health``, ``/api/cases/...``, ``/api/labels``, ``/api/applicators``: the read side."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse

from ioplan import __version__
from ioplan.errors import InputError, IoplanError

__all__ = ["router"]

router = APIRouter(prefix="/api")

_NIFTI = {"content": {"application/gzip": {}}, "description": "NIfTI-1, gzip (Range supported)"}


def services(request: Request):
    """The app's :class:`~ioplan.web._app.Services` (store, jobs, settings)."""
    return request.app.state.ioplan


Services = Annotated[Any, Depends(services)]


def nifti_response(path) -> FileResponse:
    """A served NIfTI (gzip) file: Range requests answered by the file response."""
    return FileResponse(
        path,
        media_type="application/gzip",
        filename=None,
        headers={"Cache-Control": "private, max-age=60", "Accept-Ranges": "bytes"},
    )


@router.get("/health", summary="Is the server up")
def health(svc: Services) -> dict[str, Any]:
    """``{"status": "ok", "version", "viewer_built"}``."""
    return {"status": "ok", "version": __version__, "viewer_built": svc.viewer_built}


@router.get("/cases", summary="The cases in the cases folder")
def list_cases(svc: Services) -> list[dict[str, Any]]:
    """A list of ``{"name", "modality", "tumors", "has_plan"}``, sorted by name."""
    return [svc.store.summary(n) for n in svc.store.names()]


@router.get("/cases/{name}", summary="A case's `ioplan info --json` document")
def case_info(name: str, svc: Services) -> dict[str, Any]:
    """``name``, ``modality``, ``grid``, ``voxel_volume_ml``, ``labels``, ... (as the CLI)."""
    return svc.store.info(name)


@router.get("/cases/{name}/volumes/{kind}.nii.gz", summary="A case volume", responses={200: _NIFTI})
def case_volume(name: str, kind: str, svc: Services) -> FileResponse:
    """The case's ``image`` (CT: HU as int16) or ``labels`` (:data:`CASE_VOLUMES`)."""
    return nifti_response(svc.store.volume_path(name, kind))


@router.get("/cases/{name}/plan", summary="The case's plan (plan.json)")
def case_plan(name: str, svc: Services) -> dict[str, Any]:
    """The ``plan.json`` document of ``CASE/plan/`` (the keys of ``ioplan plan --json``)."""
    return svc.store.plan(name)


@router.get(
    "/cases/{name}/plan/volumes/{kind}.nii.gz", summary="A plan volume", responses={200: _NIFTI}
)
def plan_volume(name: str, kind: str, svc: Services) -> FileResponse:
    """``zone``, ``margin_shell`` (0/1), ``tmax``, ``tmin`` (degC), ``trajectories`` (lines).

    See :data:`ioplan.web.PLAN_VOLUMES`.
    """
    return nifti_response(svc.store.plan_volume_path(name, kind))


@router.get("/labels", summary="Label values, names and display colours")
def labels() -> list[dict[str, Any]]:
    """``[{"value", "name", "color"}]`` from :data:`ioplan.anatomy.LABEL_INFO`."""
    from ioplan.anatomy import LABEL_INFO

    return [
        {"value": int(lbl), "name": lbl.name.lower(), "color": info.colour}
        for lbl, info in LABEL_INFO.items()
    ]


@router.get("/applicators", summary="The applicator catalogue (`ioplan applicators --json`)")
def applicators() -> list[dict[str, Any]]:
    """Every applicator's full record."""
    from ioplan.devices import list_applicators

    return [a.to_dict() for a in list_applicators()]


@router.post("/cases", status_code=201, summary="Import a case (as `ioplan import-case`)")
def import_case(
    svc: Services,
    name: Annotated[str, Form(description="Pseudonymous case name (e.g. liver-017).")],
    image: Annotated[UploadFile, File(description="CT or MR, NIfTI (.nii or .nii.gz).")],
    labels: Annotated[UploadFile, File(description="Label map on any grid, NIfTI.")],
    label_map: Annotated[
        str, Form(description="totalsegmentator, or NAME=VALUE pairs separated by commas.")
    ] = "totalsegmentator",
    modality: Annotated[str, Form(description="CT or MR.")] = "CT",
) -> dict[str, Any]:
    """Write a new case folder from an uploaded image and label map; returns its summary.

    The body is limited (``--max-upload-mb``); the files are read by the same functions as
    ``ioplan import-case`` (``case_from_images``, ``save_case``), an existing case is never
    replaced.
    """
    return svc.import_case(name, image, labels, label_map, modality)


def parse_label_table(text: str) -> dict[str, int] | None:
    """``liver=1,tumor=2`` -> a table; a named map (``totalsegmentator``) -> None.

    A class file (``--label-map FILE`` of ``import-case``) is refused: it would be a file
    on the server, read and named in the reply.
    """
    from ioplan.anatomy import LABEL_MAP_NAMES

    if "=" not in text:
        if text.strip().lower() not in LABEL_MAP_NAMES:
            raise InputError(
                f"label_map must be {', '.join(LABEL_MAP_NAMES)} or NAME=VALUE pairs "
                "separated by commas (the server reads no class file)"
            )
        return None
    table: dict[str, int] = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        try:
            table[key.strip()] = int(value)
        except ValueError:
            raise InputError(
                f"label_map: NAME=VALUE needs an integer VALUE, got {item!r}"
            ) from None
    return table


def upload_name(field: str, filename: str | None) -> str:
    """How a message names an uploaded file: its own name, else the form's field.

    The name as the browser sent it, without folders; a name that looks like a patient
    identifier (a person's name, a record number, a date: :func:`check_case_name`'s
    rule), or none, is replaced by the field (``the uploaded labels``).
    """
    from ioplan.anatomy import check_case_name

    base = re.split(r"[/\\]", filename or "")[-1].strip()
    stem = re.sub(r"(\.nii)?(\.gz)?$", "", base, flags=re.IGNORECASE)
    try:
        check_case_name(stem)
    except InputError:
        return f"the uploaded {field}"
    return base


def renamed_upload_error(exc: IoplanError, scratch: Path, shown: dict[Path, str]) -> IoplanError:
    """``exc`` of the same class, its scratch files named as uploaded (``shown``)."""
    text = str(exc)
    for path, name in shown.items():
        text = text.replace(str(path), name)
    text = text.replace(str(scratch), "the upload")
    return type(exc)(text)

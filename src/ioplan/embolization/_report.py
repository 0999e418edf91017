"""SIRT outputs: one-page HTML reports, the dose map and its dose-volume histograms."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ioplan.embolization._voxel import VoxelDose
from ioplan.imaging import atomic_output_folder, check_replaceable, write_nifti
from ioplan.report import (
    bullet_list,
    escape,
    figure,
    key_value_table,
    page,
    save_figure,
    table,
    write_page,
)

__all__ = ["check_report_folder", "write_sirt_report", "write_voxel_outputs"]


def _rows(doc: dict[str, Any]) -> str:
    return key_value_table(
        (k, json.dumps(v)) for k, v in doc.items() if k not in ("warnings", "structures", "notes")
    )


_SIRT_REPORT_FILES = frozenset({"report.html"})
_VOXEL_FILES = frozenset({"dose.nii.gz", "dvh.png", "dosimetry.json", "report.html"})


def check_report_folder(folder: str | Path, *, overwrite: bool = False,
                        voxel: bool = False) -> Path:  # fmt: skip
    """Refuse an output folder before any work.

    Refused: a file; a folder holding anything, unless ``overwrite``; a folder holding
    files these outputs would not replace (``report.html``, or with ``voxel`` also
    ``dose.nii.gz``, ``dvh.png``, ``dosimetry.json``); a folder that cannot be written.
    """
    files = _VOXEL_FILES if voxel else _SIRT_REPORT_FILES
    return check_replaceable(folder, command="sirt", names=files, overwrite=overwrite)


def _write_folder_atomically(folder: Path, write: Callable[[Path], None], *, overwrite: bool,
                             files: frozenset[str]) -> Path:  # fmt: skip
    """Write into a temporary sibling folder renamed into place (see ``atomic_output_folder``)."""
    with atomic_output_folder(folder, command="sirt", names=files, overwrite=overwrite) as tmp:
        write(tmp)
    return Path(folder)


def write_sirt_report(result: dict[str, Any], folder: str | Path, title: str, *,
                      overwrite: bool = False) -> Path:  # fmt: skip
    """A one-page HTML report of an activity calculation: ``FOLDER/report.html``.

    The folder is written atomically; an earlier report there is replaced only with
    ``overwrite`` (:class:`~ioplan.errors.OutputExistsError` otherwise).
    """
    body = f"""<p>Dose constant {escape(result.get("cf_gy_kg_per_gbq", ""))} Gy kg/GBq.</p>
<h2>Warnings</h2>{bullet_list(result.get("warnings", []))}{_rows(result)}"""
    text = page(title, body)
    out = _write_folder_atomically(
        Path(folder), lambda tmp: write_page(tmp / "report.html", text),
        overwrite=overwrite, files=_SIRT_REPORT_FILES,
    )  # fmt: skip
    return out / "report.html"


def write_voxel_outputs(res: VoxelDose, doc: dict[str, Any], folder: Path, *,
                        overwrite: bool = False) -> Path:  # fmt: skip
    """``dose.nii.gz`` (Gy), ``dvh.png``, ``dosimetry.json`` and ``report.html``.

    Written atomically (a temporary folder renamed into place); an earlier output is
    replaced only with ``overwrite``.
    """
    out = _write_folder_atomically(
        Path(folder), lambda tmp: _voxel_files(res, doc, tmp), overwrite=overwrite,
        files=_VOXEL_FILES,
    )  # fmt: skip
    return out / "report.html"


def _voxel_files(res: VoxelDose, doc: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    write_nifti(res.dose, out / "dose.nii.gz", overwrite=True)
    (out / "dosimetry.json").write_text(json.dumps(doc, indent=2) + "\n")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, (d, v) in res.dvh.items():
        ax.plot(d, v, label=name)
    for x in (100, 150, 205):
        ax.axvline(x, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("dose (Gy)")
    ax.set_ylabel("volume (%)")
    ax.set_title(f"cumulative DVH ({res.method}, CF {res.cf_gy_kg_per_gbq} Gy kg/GBq)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "dvh.png", dpi=110)
    head = list(next(iter(res.structures.values()), {}))
    rows = [[name, *st.values()] for name, st in res.structures.items()]
    body = f"""<p>Method {escape(res.method)}; dose constant {res.cf_gy_kg_per_gbq} Gy kg/GBq.</p>
{figure("dvh.png", "cumulative dose-volume histograms")}
{table(["structure", *head], rows)}
<h2>Warnings</h2>{bullet_list(res.warnings)}
<h2>Notes</h2>{bullet_list(res.notes)}
<p>Files: dose.nii.gz (Gy), dosimetry.json, dvh.png.</p>"""
    write_page(out / "report.html", page("Y-90 voxel dosimetry", body))

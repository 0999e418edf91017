"""SIRT outputs: one-page HTML reports, the dose map and its dose-volume histograms."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ioplan.embolization._voxel import VoxelDose
from ioplan.imaging import check_output_folder, write_nifti

__all__ = ["write_sirt_report", "write_voxel_outputs"]

_STYLE = """<style>body{font-family:sans-serif;max-width:1000px;margin:auto}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}
</style>"""


def _rows(doc: dict[str, Any]) -> str:
    return "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in doc.items()
        if k not in ("warnings", "structures", "notes")
    )


def write_sirt_report(result: dict[str, Any], folder: Path, title: str) -> Path:
    """A one-page HTML report of an activity calculation."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in result.get("warnings", []))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
{_STYLE}</head><body><h1>{html.escape(title)}</h1>
<p>Dose constant {result.get("cf_gy_kg_per_gbq", "")} Gy kg/GBq. Not for clinical use.</p>
<h2>Warnings</h2><ul>{warn or "<li>none</li>"}</ul><table>{_rows(result)}</table>
</body></html>
"""
    (out / "report.html").write_text(page)
    return out / "report.html"


def write_voxel_outputs(res: VoxelDose, doc: dict[str, Any], folder: Path, *,
                        overwrite: bool = False) -> Path:  # fmt: skip
    """``dose.nii.gz`` (Gy), ``dvh.png``, ``dosimetry.json`` and ``report.html``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = check_output_folder(folder, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
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
    fig.savefig(out / "dvh.png", dpi=110)
    plt.close(fig)
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{v}</td>" for v in st.values()) + "</tr>"
        for k, st in res.structures.items()
    )
    head = next(iter(res.structures.values()), {})
    cols = "".join(f"<th>{html.escape(k)}</th>" for k in head)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in res.notes)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Y-90 voxel dosimetry</title>
{_STYLE}</head><body><h1>Y-90 voxel dosimetry ({html.escape(res.method)})</h1>
<p>Dose constant {res.cf_gy_kg_per_gbq} Gy kg/GBq. Not for clinical use.</p>
<img src="dvh.png"><table><tr><th>structure</th>{cols}</tr>{rows}</table>
<h2>Notes</h2><ul>{notes or "<li>none</li>"}</ul>
<p>Files: dose.nii.gz (Gy), dosimetry.json, dvh.png.</p></body></html>
"""
    (out / "report.html").write_text(page)
    return out / "report.html"

"""Margin outputs: the coloured tumour surface (PLY, VTK), a NIfTI map, pictures, a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ioplan.assessment._margin import MarginResult
from ioplan.imaging import (
    Volume,
    axial_volume,
    check_mergeable,
    staged_output_folder,
    write_nifti,
)
from ioplan.report import (
    bullet_list,
    escape,
    figure,
    key_value_table,
    page,
    save_figure,
    write_page,
)

__all__ = ["write_margin_outputs", "write_ply", "write_vtk"]


def write_ply(path: Path, vertices_mm: np.ndarray, faces: np.ndarray, margin_mm: np.ndarray):
    """ASCII PLY with a per-vertex ``margin_mm`` (opens in 3D Slicer as a scalar)."""
    lines = [
        "ply",
        "format ascii 1.0",
        "comment ioplan tumour surface, LPS mm, per-vertex margin to the ablation zone (mm)",
        f"element vertex {len(vertices_mm)}",
        "property float x",
        "property float y",
        "property float z",
        "property float margin_mm",
        f"element face {len(faces)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    lines += [f"{x:.4f} {y:.4f} {z:.4f} {m:.4f}" for (x, y, z), m in zip(vertices_mm, margin_mm,
                                                                         strict=True)]  # fmt: skip
    lines += [f"3 {a} {b} {c}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


def write_vtk(path: Path, vertices_mm: np.ndarray, faces: np.ndarray, margin_mm: np.ndarray):
    """Legacy VTK polydata (LPS mm) with point scalars ``margin_mm``."""
    lines = [
        "# vtk DataFile Version 3.0",
        "ioplan tumour surface with margin (mm); SPACE=LPS",
        "ASCII",
        "DATASET POLYDATA",
        f"POINTS {len(vertices_mm)} float",
    ]
    lines += [f"{x:.4f} {y:.4f} {z:.4f}" for x, y, z in vertices_mm]
    lines.append(f"POLYGONS {len(faces)} {4 * len(faces)}")
    lines += [f"3 {a} {b} {c}" for a, b, c in faces]
    lines += [f"POINT_DATA {len(vertices_mm)}", "SCALARS margin_mm float 1", "LOOKUP_TABLE default"]
    lines += [f"{m:.4f}" for m in margin_mm]
    path.write_text("\n".join(lines) + "\n")


def _margin_map(res: MarginResult, like: Volume) -> Volume:
    """Tumour-surface voxels carry the margin of the nearest surface vertex; 0 elsewhere."""
    from scipy import ndimage

    g = like.grid
    t = np.asarray(like.array)
    t = t > (0.5 if np.issubdtype(t.dtype, np.floating) else 0)
    shell = t & ~ndimage.binary_erosion(t)
    out = np.zeros(g.shape, np.float32)
    idx = np.argwhere(shell)
    if len(idx) and res.mesh is not None and res.vertex_margin_mm is not None:
        _, near = cKDTree(res.mesh.vertices_mm).query(g.index_to_lps(idx))
        out[tuple(idx.T)] = res.vertex_margin_mm[near]
    return Volume(out, g)


def _figure(res: MarginResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert res.mesh is not None and res.vertex_margin_mm is not None
    v, m = res.mesh.vertices_mm, res.vertex_margin_mm
    fig = plt.figure(figsize=(11, 4.2))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    lim = max(abs(float(np.min(m))), abs(float(np.max(m))), res.margin_mm, 1.0)
    sc = ax.scatter(v[:, 0], v[:, 1], v[:, 2], c=m, cmap="RdYlGn", vmin=-lim, vmax=lim, s=2)
    ax.set_xlabel("x (mm, L)")
    ax.set_ylabel("y (mm, P)")
    ax.set_zlabel("z (mm, S)")
    ax.set_title(f"tumour surface coloured by margin; MAM {res.minimal_margin_mm:.1f} mm")
    fig.colorbar(sc, ax=ax, shrink=0.7, label="margin (mm)")
    ax2 = fig.add_subplot(1, 2, 2)
    w = res.mesh.vertex_areas_mm2()
    ax2.hist(m, bins=40, weights=100 * w / w.sum(), color="grey")
    for x_, c in ((0.0, "red"), (res.margin_mm, "orange")):
        ax2.axvline(x_, color=c, ls="--")
    ax2.set_xlabel("margin (mm)")
    ax2.set_ylabel("% of tumour surface")
    ax2.set_title("margin distribution (red: 0 mm, orange: set margin)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _slices(res: MarginResult, tumour: Volume, zone: Volume | None, path: Path) -> None:
    """Axial, coronal and sagittal slices through the closest point: tumour, zone, point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tumour = axial_volume(tumour)  # radiological view whatever the file's orientation
    g = tumour.grid
    t = np.asarray(tumour.array, float)
    z = None
    if zone is not None:
        from ioplan.imaging import resample

        zv = zone if zone.grid == g else resample(zone, g, interpolation="linear")
        z = np.asarray(zv.array, float)
    c = np.clip(np.rint(g.lps_to_index(res.closest_point_mm)).astype(int), 0,
                np.asarray(g.shape) - 1)  # fmt: skip
    half = np.ceil(40.0 / np.asarray(g.spacing_mm)).astype(int)  # a 80 mm window
    lo = np.maximum(c - half, 0)
    hi = np.minimum(c + half + 1, g.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    t, cc = t[box], c - lo
    z = z[box] if z is not None else None
    sp = g.spacing_mm
    views = (
        ("axial", lambda a: a[cc[0]], (cc[1], cc[2]), sp[1] / sp[2]),
        ("coronal", lambda a: a[:, cc[1]], (cc[0], cc[2]), sp[0] / sp[2]),
        ("sagittal", lambda a: a[:, :, cc[2]], (cc[0], cc[1]), sp[0] / sp[1]),
    )
    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    for ax, (name, take, (r, col), aspect) in zip(axes, views, strict=True):
        ax.imshow(np.zeros_like(take(t)), cmap="gray", vmin=0, vmax=1, aspect=aspect,
                  origin="lower" if name != "axial" else "upper")  # fmt: skip
        if take(t).max() > 0.5:
            ax.contour(take(t), levels=[0.5], colors="lime")
        if z is not None and take(z).max() > 0.5:
            ax.contour(take(z), levels=[0.5], colors="red")
        ax.plot(col, r, "x", color="yellow", ms=8)
        ax.set_title(f"{name} through the closest point (x)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.legend(
        handles=[plt.Line2D([], [], color="lime", label="tumour"),
                 plt.Line2D([], [], color="red", label="ablation zone")],
        loc="lower center", ncol=2,
    )  # fmt: skip
    save_figure(fig, path, dpi=100)


def write_margin_outputs(
    res: MarginResult, tumour: Volume, folder: str | Path, doc: dict[str, Any], *,
    overwrite: bool = False, zone: Volume | None = None,
) -> Path:  # fmt: skip
    """Write the margin outputs into ``folder``; return the report's path.

    ``margin.json``, ``margin_surface.ply`` and ``.vtk``, ``margin_map.nii.gz``,
    ``margin.png``, ``slices.png`` and ``report.html``, written into a temporary sibling
    folder and moved into place at the end (an interrupted run leaves nothing half-written).
    """
    # with overwrite, only an earlier margin output's files are replaced (others kept)
    folder = check_mergeable(Path(folder), command="margin", own_json="margin.json",
                             overwrite=overwrite, accept=lambda d: "minimal_margin_mm" in d)
    with staged_output_folder(folder, overwrite=overwrite) as out:
        (out / "margin.json").write_text(json.dumps(doc, indent=2) + "\n")
        assert res.mesh is not None and res.vertex_margin_mm is not None
        write_ply(
            out / "margin_surface.ply", res.mesh.vertices_mm, res.mesh.faces, res.vertex_margin_mm
        )
        write_vtk(
            out / "margin_surface.vtk", res.mesh.vertices_mm, res.mesh.faces, res.vertex_margin_mm
        )
        write_nifti(_margin_map(res, tumour), out / "margin_map.nii.gz", overwrite=True)
        _figure(res, out / "margin.png")
        _slices(res, tumour, zone, out / "slices.png")
        rows = [(k, v) for k, v in doc.items() if not isinstance(v, dict | list)]
        frac = [(k, f"{v:.1f}") for k, v in doc["surface_fraction"].items()]
        vic = [(f"{k} mm", f"{v:.3f}") for k, v in doc["vic_ml"].items()]
        reg = escape(json.dumps(doc.get("registration", {}), indent=1))
        verdict = "achieved" if res.technical_success else "NOT achieved"
        body = f"""<p>Technical success (tumour plus {res.margin_mm:g} mm inside the zone):
<b>{verdict}</b>. Minimal ablative margin <b>{res.minimal_margin_mm:.2f} mm</b> at
{escape(list(doc["closest_point_mm"]))} (LPS mm), measured between sub-voxel surfaces
(marching cubes, exact point-to-triangle distances).</p>
{figure("margin.png", "tumour surface coloured by margin", width="100%")}
{figure("slices.png", "slices through the closest point", width="100%")}
{key_value_table(rows)}
<h2>Tumour surface by margin (%)</h2>{key_value_table(frac)}
<h2>Volume of insufficient coverage (mL; Kaye et al. 2019)</h2>{key_value_table(vic)}
<h2>Registration</h2><pre>{reg}</pre>
<h2>Notes</h2>{bullet_list(doc.get("notes", []))}
<p>Files: margin.json, margin_surface.ply and margin_surface.vtk (tumour surface with a
per-vertex margin_mm, LPS, open in 3D Slicer), margin_map.nii.gz (margin on the tumour's
surface voxels, 0 elsewhere).</p>"""
        write_page(out / "report.html", page("Ablation margin", body))
    return folder / "report.html"

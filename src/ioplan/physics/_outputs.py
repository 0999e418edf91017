"""Writing a simulation's maps (NIfTI), its JSON result and a picture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ioplan.imaging import Volume, staged_output_folder, write_nifti
from ioplan.physics._result import SimulationResult

__all__ = ["write_simulation_outputs"]


def write_simulation_outputs(
    result: SimulationResult, folder: str | Path, *, overwrite: bool = False
) -> Path:
    """Write the maps, the JSON result and a picture of one simulation.

    Files: ``temperature.nii.gz`` (final, degC), ``damage.nii.gz`` (Arrhenius
    Omega), ``cem43.nii.gz`` (min), ``tmin.nii.gz``/``tmax.nii.gz`` (degC),
    ``zone.nii.gz`` (0/1), ``result.json`` and ``zone.png`` (a slice through the
    applicator axis), all on the simulation grid.

    The files are written into a temporary sibling folder and moved into place
    (:func:`~ioplan.imaging.staged_output_folder`): an interrupted write leaves
    ``folder`` as it was. Without ``overwrite`` a non-empty ``folder`` is refused.
    """
    with staged_output_folder(folder, overwrite=overwrite) as tmp:
        _write(result, tmp)
    return Path(folder)


def _write(result: SimulationResult, folder: Path) -> None:
    g = result.grid
    st = result.state
    maps = {
        "temperature.nii.gz": st.temperature_c,
        "damage.nii.gz": st.omega,
        "cem43.nii.gz": st.cem43_min,
        "tmin.nii.gz": st.tmin_c,
        "tmax.nii.gz": st.tmax_c,
    }
    for name, arr in maps.items():
        write_nifti(Volume(np.asarray(arr, np.float32), g), folder / name, overwrite=True)
    write_nifti(
        Volume(result.zone_mask.astype(np.uint8), g), folder / "zone.nii.gz", overwrite=True
    )
    (folder / "result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    _zone_picture(result, folder / "zone.png")


def _zone_picture(result: SimulationResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = result.grid
    tip = np.asarray(result.settings.get("tips_mm", [[0, 0, 0]])[0], float)
    idx = np.clip(np.rint(g.lps_to_index(tip)).astype(int), 0, np.asarray(g.shape) - 1)
    cold = result.modality == "cryo"
    field = result.state.tmin_c if cold else result.state.tmax_c
    sl = field[:, idx[1], :][::-1]
    zone = result.zone_mask[:, idx[1], :][::-1]
    z, _, x = g.axis_coordinates_mm()
    extent = (x[0], x[-1], z[0], z[-1])
    fig, ax = plt.subplots(figsize=(5.5, 6))
    im = ax.imshow(sl, cmap="coolwarm", extent=extent, aspect="equal",
                   vmin=-60 if cold else 37, vmax=37 if cold else 100)  # fmt: skip
    levels = [-40, -20, 0] if cold else [50, 60]
    cs = ax.contour(x, z[::-1], sl, levels=sorted(levels), colors="k", linewidths=0.8)
    ax.clabel(cs, fmt="%g", fontsize=7)
    ax.contour(x, z[::-1], zone.astype(float), levels=[0.5], colors="lime", linewidths=1.5)
    ax.set_xlabel("x (mm, patient left +)")
    ax.set_ylabel("z (mm, superior +)")
    label = "lowest" if cold else "highest"
    ax.set_title(f"{result.applicator}: {label} temperature, zone (green)", fontsize=9)
    fig.colorbar(im, ax=ax, label=f"{label} temperature (degC)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

"""Writing a simulation's maps (NIfTI), its JSON result and a picture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ioplan.imaging import Volume, atomic_output_folder, check_replaceable, write_nifti
from ioplan.physics._result import SimulationResult

__all__ = ["SIMULATION_FOLDER_ENTRIES", "check_simulation_folder", "write_simulation_outputs"]

#: What ``ioplan simulate --output-dir`` writes (an older output holds only these).
SIMULATION_FOLDER_ENTRIES = frozenset({
    "temperature.nii.gz", "damage.nii.gz", "cem43.nii.gz", "tmin.nii.gz", "tmax.nii.gz",
    "zone.nii.gz", "result.json", "zone.png",
})  # fmt: skip


def check_simulation_folder(folder: str | Path, *, overwrite: bool) -> Path:
    """Refuse an output folder simulate may not write, before any work.

    As every command that writes a folder: ``overwrite`` replaces only an earlier output
    of ``ioplan simulate``, never a folder holding the user's files (or a case).
    """
    return check_replaceable(folder, command="simulate", names=SIMULATION_FOLDER_ENTRIES,
                             overwrite=overwrite, own_json=_is_result)  # fmt: skip


def _is_result(doc: dict) -> bool:
    """A result.json that ``ioplan simulate`` wrote (not a file of the user's by that name)."""
    return {"zone", "settings", "grid"} <= set(doc)


def write_simulation_outputs(
    result: SimulationResult, folder: str | Path, *, overwrite: bool = False
) -> Path:
    """Write the maps, the JSON result and a picture of one simulation.

    Files: ``temperature.nii.gz`` (final, degC), ``damage.nii.gz`` (Arrhenius
    Omega), ``cem43.nii.gz`` (min), ``tmin.nii.gz``/``tmax.nii.gz`` (degC),
    ``zone.nii.gz`` (0/1), ``result.json`` and ``zone.png`` (a slice through the
    applicator axis), all on the simulation grid.

    The folder is written whole or not at all (:func:`~ioplan.imaging.atomic_output_folder`):
    an interrupted write leaves ``folder`` as it was. Without ``overwrite`` a non-empty
    ``folder`` is refused; with it, only an earlier output of simulate is replaced.
    """
    with atomic_output_folder(folder, command="simulate", names=SIMULATION_FOLDER_ENTRIES,
                              overwrite=overwrite, own_json=_is_result) as tmp:  # fmt: skip
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

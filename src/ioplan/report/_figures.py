"""Figure pieces shared by the reports: CT window, radiological orientation, saving.

Every slice ioplan draws is shown in the radiological convention whatever the file's
orientation: axial slices with the patient's right on the image left and anterior up,
coronal and sagittal slices with superior up: :func:`ioplan.imaging.axial_volume` brings
any volume to the array order ``(z, y, x)`` with LPS-increasing axes, after which
``array[k]`` is an axial slice ready for ``imshow``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CT_WINDOW_HU", "save_figure"]

#: Soft-tissue window for abdominal CT, width 400 HU and level 40 HU: the "abdomen"
#: (soft tissue) preset of CT consoles and viewers (e.g. 3D Slicer's "CT-Abdomen" window
#: preset, W350-400/L40-50).
CT_WINDOW_HU = (40.0 - 200.0, 40.0 + 200.0)


def save_figure(fig, path: str | Path, *, dpi: int = 100) -> Path:
    """Save a matplotlib figure (creating the folder) and close it; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

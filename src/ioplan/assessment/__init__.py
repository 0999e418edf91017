"""Ablation confirmation: registration, minimal ablative margin, standard terms."""

from ioplan.assessment._margin import (
    MARGIN_BINS_MM,
    MarginResult,
    Mesh,
    measure_margin,
    point_mesh_distance,
    surface_mesh,
)
from ioplan.assessment._outputs import write_margin_outputs
from ioplan.assessment._register import register_images, register_landmarks, warp
from ioplan.assessment._response import Measurement, measure_lesions, response

__all__ = [
    "MARGIN_BINS_MM",
    "MarginResult",
    "Measurement",
    "Mesh",
    "measure_lesions",
    "measure_margin",
    "point_mesh_distance",
    "register_images",
    "register_landmarks",
    "response",
    "surface_mesh",
    "warp",
    "write_margin_outputs",
]

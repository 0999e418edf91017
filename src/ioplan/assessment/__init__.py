"""Ablation confirmation: registration, minimal ablative margin, standard terms."""

from ioplan.assessment._confirm import MarginConfirmation, confirm_margin
from ioplan.assessment._margin import (
    MARGIN_BINS_MM,
    SMOOTH_SIGMA_VOXELS,
    MarginResult,
    Mesh,
    measure_margin,
    point_mesh_distance,
    surface_mesh,
)
from ioplan.assessment._masks import mask_field, select_label
from ioplan.assessment._outputs import write_margin_outputs
from ioplan.assessment._register import (
    STAGES,
    Registration,
    parse_stages,
    register_images,
    register_landmarks,
    warp,
)
from ioplan.assessment._response import Measurement, measure_lesions, response

__all__ = [
    "MARGIN_BINS_MM",
    "SMOOTH_SIGMA_VOXELS",
    "STAGES",
    "MarginConfirmation",
    "MarginResult",
    "Measurement",
    "Mesh",
    "Registration",
    "confirm_margin",
    "mask_field",
    "measure_lesions",
    "measure_margin",
    "parse_stages",
    "point_mesh_distance",
    "register_images",
    "register_landmarks",
    "response",
    "select_label",
    "surface_mesh",
    "warp",
    "write_margin_outputs",
]

"""Ablation confirmation: registration, minimal ablative margin, standard terms."""

from ioplan.assessment._margin import (
    MARGIN_BINS_MM,
    MarginResult,
    Mesh,
    measure_margin,
    point_mesh_distance,
    surface_mesh,
)

__all__ = [
    "MARGIN_BINS_MM",
    "MarginResult",
    "Mesh",
    "measure_margin",
    "point_mesh_distance",
    "surface_mesh",
]

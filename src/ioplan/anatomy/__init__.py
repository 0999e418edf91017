"""Anatomy: label conventions, the synthetic abdominal phantom, vessel trees, case folders."""

from ioplan.anatomy._case import (
    CASE_FORMAT_VERSION,
    Case,
    LabelStats,
    case_from_images,
    label_statistics,
    load_case,
    save_case,
)
from ioplan.anatomy._labels import LABEL_INFO, VESSEL_LABELS, Label, LabelInfo, label_from_name
from ioplan.anatomy._phantom import (
    DEFAULT_TUMOR_CENTRES_MM,
    PHANTOM_STEPS,
    Phantom,
    PhantomConfig,
    TumorSpec,
    check_phantom_memory,
    generate_phantom,
    phantom_grid,
)
from ioplan.anatomy._vessels import (
    VesselSegment,
    grow_tree,
    local_radius_mm,
    rasterise_segments,
)

__all__ = [
    "CASE_FORMAT_VERSION",
    "DEFAULT_TUMOR_CENTRES_MM",
    "LABEL_INFO",
    "PHANTOM_STEPS",
    "VESSEL_LABELS",
    "Case",
    "Label",
    "LabelInfo",
    "LabelStats",
    "Phantom",
    "PhantomConfig",
    "TumorSpec",
    "VesselSegment",
    "case_from_images",
    "check_phantom_memory",
    "generate_phantom",
    "grow_tree",
    "label_from_name",
    "label_statistics",
    "load_case",
    "local_radius_mm",
    "phantom_grid",
    "rasterise_segments",
    "save_case",
]

"""Treatment planning: needle paths, applicator placement and energy, the verified plan."""

from ioplan.imaging import COMPLETION_RECORD, atomic_output_folder, check_replaceable
from ioplan.planning._candidates import target_points
from ioplan.planning._checks import (
    MARGIN_RANGE_MM,
    PROTECT_RANGE_MM,
    SPACING_RANGE_MM,
    check_in_range,
    check_plan_request,
    check_target_label,
    check_tumour_index,
    plan_memory_bytes,
    tumour_count,
)
from ioplan.planning._demo import (
    DEMO_FOLDER_ENTRIES,
    ORGAN_DEMOS,
    demo_case,
    organ_demo_case,
    write_demo,
)
from ioplan.planning._inverse import zone_with_shaft
from ioplan.planning._metrics import goal_shortfalls, goal_verdict, tumour_mask
from ioplan.planning._organ_rules import (
    PLANNED_ORGANS,
    cryo_checks,
    planning_organ,
    pleural_crossings,
    pneumothorax_risk,
    protected_structures,
    temperature_limits,
)
from ioplan.planning._outputs import PLAN_FOLDER_ENTRIES, display_volumes, write_plan
from ioplan.planning._perivascular import describe as describe_perivascular
from ioplan.planning._perivascular import perivascular_report
from ioplan.planning._plan import (
    DEFAULT_APPLICATOR,
    GOAL,
    GOAL_MARGIN_COVERAGE_PERCENT,
    PLAN_SCHEMA_VERSION,
    Plan,
    PlanConfig,
    plan_ablation,
)
from ioplan.planning._robust import PlacementError, robust_coverage
from ioplan.planning._select import SOURCES, Selection, select_treatment
from ioplan.planning._setcover import CoverProblem, CoverSolution, solve_cover
from ioplan.planning._trajectories import (
    SAFETY_RANGE_MM,
    Trajectory,
    TrajectoryConfig,
    candidate_trajectories,
    forbidden_groups,
)

__all__ = [
    "COMPLETION_RECORD",
    "DEFAULT_APPLICATOR",
    "DEMO_FOLDER_ENTRIES",
    "GOAL",
    "GOAL_MARGIN_COVERAGE_PERCENT",
    "MARGIN_RANGE_MM",
    "ORGAN_DEMOS",
    "PLANNED_ORGANS",
    "PLAN_FOLDER_ENTRIES",
    "PLAN_SCHEMA_VERSION",
    "PROTECT_RANGE_MM",
    "SAFETY_RANGE_MM",
    "SOURCES",
    "SPACING_RANGE_MM",
    "CoverProblem",
    "CoverSolution",
    "PlacementError",
    "Plan",
    "PlanConfig",
    "Selection",
    "Trajectory",
    "TrajectoryConfig",
    "atomic_output_folder",
    "candidate_trajectories",
    "check_in_range",
    "check_plan_request",
    "check_replaceable",
    "check_target_label",
    "check_tumour_index",
    "cryo_checks",
    "demo_case",
    "describe_perivascular",
    "display_volumes",
    "forbidden_groups",
    "goal_shortfalls",
    "goal_verdict",
    "organ_demo_case",
    "perivascular_report",
    "plan_ablation",
    "plan_memory_bytes",
    "planning_organ",
    "pleural_crossings",
    "pneumothorax_risk",
    "protected_structures",
    "robust_coverage",
    "select_treatment",
    "solve_cover",
    "target_points",
    "temperature_limits",
    "tumour_count",
    "tumour_mask",
    "write_demo",
    "write_plan",
    "zone_with_shaft",
]

# Issue 22's modules (biopsy, drainage, the MR needle artefact) export their own names.
from ioplan.planning import _artefact, _biopsy, _drainage
from ioplan.planning._artefact import *  # noqa: F403
from ioplan.planning._biopsy import *  # noqa: F403
from ioplan.planning._drainage import *  # noqa: F403

__all__ += [*_artefact.__all__, *_biopsy.__all__, *_drainage.__all__]

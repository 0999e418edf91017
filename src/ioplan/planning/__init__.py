"""Treatment planning: needle paths, applicator placement and energy, the verified plan."""

from ioplan.planning._demo import demo_case
from ioplan.planning._outputs import write_plan
from ioplan.planning._plan import (
    DEFAULT_APPLICATOR,
    PLAN_SCHEMA_VERSION,
    Plan,
    PlanConfig,
    plan_ablation,
    tumour_mask,
)
from ioplan.planning._select import SOURCES, Selection, select_treatment
from ioplan.planning._trajectories import (
    Trajectory,
    TrajectoryConfig,
    candidate_trajectories,
    forbidden_groups,
)

__all__ = [
    "DEFAULT_APPLICATOR",
    "PLAN_SCHEMA_VERSION",
    "SOURCES",
    "Plan",
    "PlanConfig",
    "Selection",
    "Trajectory",
    "TrajectoryConfig",
    "candidate_trajectories",
    "demo_case",
    "forbidden_groups",
    "plan_ablation",
    "select_treatment",
    "tumour_mask",
    "write_plan",
]

"""Cohort studies and uncertainty sweeps on Dask (issue 23).

Local by default (a ``LocalCluster``), a Dask cluster by address.
"""

from ioplan.batch._batch import (
    BATCH_ACTIONS,
    BatchOptions,
    check_batch_output,
    find_cases,
    run_batch,
    run_case,
)
from ioplan.batch._cluster import (
    check_cluster_options,
    check_scheduler_address,
    dask_client,
    describe,
    run_tasks,
)
from ioplan.batch._montecarlo import (
    UncertaintySpec,
    first_order_indices,
    lognormal_factor,
    perturb_needle,
    sample_draws,
    wilson_interval,
)
from ioplan.batch._uncertainty import (
    UNCERTAINTY_FOLDER_ENTRIES,
    EngineZoneModel,
    Needle,
    SphereZoneModel,
    UncertaintyResult,
    engine_model_from_plan,
    run_uncertainty,
    write_uncertainty,
)

__all__ = [
    "BATCH_ACTIONS",
    "UNCERTAINTY_FOLDER_ENTRIES",
    "BatchOptions",
    "EngineZoneModel",
    "Needle",
    "SphereZoneModel",
    "UncertaintyResult",
    "UncertaintySpec",
    "check_batch_output",
    "check_cluster_options",
    "check_scheduler_address",
    "dask_client",
    "describe",
    "engine_model_from_plan",
    "find_cases",
    "first_order_indices",
    "lognormal_factor",
    "perturb_needle",
    "run_batch",
    "run_case",
    "run_tasks",
    "run_uncertainty",
    "sample_draws",
    "wilson_interval",
    "write_uncertainty",
]

"""The web workspace: ``ioplan serve``, a FastAPI service over the library and its viewer.

Routes that others rely on (a contract): ``GET /api/health``, ``GET /api/cases`` (a list
of objects with at least ``name``), ``GET /api/cases/{name}`` (the ``ioplan info --json``
document), ``/openapi.json``, and the pages ``/cases/{name}`` and ``/cases/{name}/plan``.
The viewer (NiiVue) is built from ``frontend/`` into ``static/`` when the package is
installed; without it the pages still show their tables.
"""

from ioplan.web._app import DEFAULT_MAX_UPLOAD_MB, STATIC_DIR, Services, create_app
from ioplan.web._cases import CASE_VOLUMES, PLAN_VOLUMES, CaseNotFoundError, CaseStore, case_info
from ioplan.web._jobs import Job, JobCancelled, JobManager
from ioplan.web._serve import check_bind, check_port_free, serve
from ioplan.web._simulation import PreviewRequest, SimulateRequest

__all__ = [
    "CASE_VOLUMES",
    "DEFAULT_MAX_UPLOAD_MB",
    "PLAN_VOLUMES",
    "STATIC_DIR",
    "CaseNotFoundError",
    "CaseStore",
    "Job",
    "JobCancelled",
    "JobManager",
    "PreviewRequest",
    "Services",
    "SimulateRequest",
    "case_info",
    "check_bind",
    "check_port_free",
    "create_app",
    "serve",
]

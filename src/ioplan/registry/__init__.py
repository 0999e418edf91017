"""Registry of patients, lesions, procedures and follow-ups, and outcome analysis.

A relational database (SQLite file by default, PostgreSQL by URL) with SQLAlchemy 2 models
and Alembic migrations; CSV import and export with whole-import validation in one
transaction; outcomes in the standard terms of image-guided ablation (Ahmed et al. 2014):
technical success, technique efficacy, local tumour progression with death competing,
Kaplan-Meier survival, and a per-tumour Cox model with cluster-robust errors (lifelines).
"""

from ioplan.registry._csv import (
    TABLES,
    RegistryImportError,
    RowError,
    columns_markdown,
    export_csv,
    import_csv,
    link_margin,
    read_tables,
    table_rows,
    write_tables,
)
from ioplan.registry._db import (
    DEFAULT_DB,
    RegistryError,
    current_revision,
    head_revision,
    init_db,
    normalise_url,
    open_db,
    redact_url,
    session_scope,
)
from ioplan.registry._demo import demo_rows, write_demo_cohort
from ioplan.registry._models import Base, Patient
from ioplan.registry._outcomes import (
    Cohort,
    OutcomeReport,
    aalen_johansen_at,
    analyse,
    check_times,
    kaplan_meier_at,
    load_cohort,
    wilson_interval,
)
from ioplan.registry._report import write_report

__all__ = [
    "DEFAULT_DB",
    "TABLES",
    "Base",
    "Cohort",
    "OutcomeReport",
    "Patient",
    "RegistryError",
    "RegistryImportError",
    "RowError",
    "aalen_johansen_at",
    "analyse",
    "check_times",
    "columns_markdown",
    "current_revision",
    "demo_rows",
    "export_csv",
    "head_revision",
    "import_csv",
    "init_db",
    "kaplan_meier_at",
    "link_margin",
    "load_cohort",
    "normalise_url",
    "open_db",
    "read_tables",
    "redact_url",
    "session_scope",
    "table_rows",
    "wilson_interval",
    "write_demo_cohort",
    "write_report",
    "write_tables",
]

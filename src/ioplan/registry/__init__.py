"""Registry of patients, lesions, procedures and follow-ups, and outcome analysis.

A relational database (SQLite file by default, PostgreSQL by URL) with SQLAlchemy 2 models
and Alembic migrations; CSV import (streamed, validated row by row, in one transaction) and
export (formula-like text quoted); outcomes in the standard terms of image-guided ablation
(Ahmed et al. 2014): technical success, technique efficacy, local tumour progression with
death competing, Kaplan-Meier survival, and a per-tumour Cox model with cluster-robust errors
(lifelines).
"""

from ioplan.registry._csv import export_csv, table_rows, write_tables
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
from ioplan.registry._import import Progress, import_csv, read_tables
from ioplan.registry._models import Base, Patient
from ioplan.registry._outcomes import (
    Cohort,
    OutcomeReport,
    aalen_johansen_at,
    analyse,
    check_times,
    kaplan_meier_at,
    load_cohort,
    parse_months,
    wilson_interval,
)
from ioplan.registry._records import count_patients, delete_patient, link_margin
from ioplan.registry._report import write_report
from ioplan.registry._schema import (
    TABLES,
    Column,
    IdentifyingFieldError,
    ImportReport,
    RegistryImportError,
    RowError,
    columns_markdown,
    format_cell,
    parse_cell,
)
from ioplan.registry._service import (
    export_files,
    import_files,
    outcome_report,
    record_margin,
    remove_patient,
    run_demo,
)

__all__ = [
    "DEFAULT_DB",
    "TABLES",
    "Base",
    "Cohort",
    "Column",
    "IdentifyingFieldError",
    "ImportReport",
    "OutcomeReport",
    "Patient",
    "Progress",
    "RegistryError",
    "RegistryImportError",
    "RowError",
    "aalen_johansen_at",
    "analyse",
    "check_times",
    "columns_markdown",
    "count_patients",
    "current_revision",
    "delete_patient",
    "demo_rows",
    "export_csv",
    "export_files",
    "format_cell",
    "head_revision",
    "import_csv",
    "import_files",
    "init_db",
    "kaplan_meier_at",
    "link_margin",
    "load_cohort",
    "normalise_url",
    "open_db",
    "outcome_report",
    "parse_cell",
    "parse_months",
    "read_tables",
    "record_margin",
    "redact_url",
    "remove_patient",
    "run_demo",
    "session_scope",
    "table_rows",
    "wilson_interval",
    "write_demo_cohort",
    "write_report",
    "write_tables",
]

"""Initial schema of the registry.

Tables: patients, lesions, procedures, treated lesions, follow-ups, lesion responses,
complications, deaths.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("diagnosis", sa.String(length=64), nullable=True),
        sa.Column("last_contact_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("patient_key", name=op.f("uq_patients_patient_key")),
    )
    op.create_table(
        "deaths",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_deaths_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deaths")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_deaths_patient_id")),
    )
    op.create_table(
        "followups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("followup_key", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("imaging", sa.String(length=16), nullable=False),
        sa.Column("intrahepatic_distant_recurrence", sa.Boolean(), nullable=False),
        sa.Column("extrahepatic_disease", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_followups_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followups")),
        sa.UniqueConstraint("followup_key", name=op.f("uq_followups_followup_key")),
    )
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_followups_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "lesions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lesion_key", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("organ", sa.String(length=32), nullable=False),
        sa.Column("segment", sa.String(length=16), nullable=True),
        sa.Column("size_mm", sa.Float(), nullable=False),
        sa.Column("histology", sa.String(length=64), nullable=True),
        sa.Column("vessel_distance_mm", sa.Float(), nullable=True),
        sa.CheckConstraint("size_mm > 0", name=op.f("ck_lesions_size_positive")),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_lesions_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lesions")),
        sa.UniqueConstraint("lesion_key", name=op.f("uq_lesions_lesion_key")),
    )
    with op.batch_alter_table("lesions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lesions_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "procedures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("procedure_key", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("guidance", sa.String(length=16), nullable=True),
        sa.Column("applicators", sa.Text(), nullable=True),
        sa.Column("settings", sa.Text(), nullable=True),
        sa.Column("plan_json", sa.Text(), nullable=True),
        sa.Column("margin_json", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_procedures_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_procedures")),
        sa.UniqueConstraint("procedure_key", name=op.f("uq_procedures_procedure_key")),
    )
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_procedures_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "complications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("complication_key", sa.String(length=64), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=True),
        sa.Column("cirse_grade", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "cirse_grade BETWEEN 1 AND 6", name=op.f("ck_complications_cirse_grade_range")
        ),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["procedures.id"],
            name=op.f("fk_complications_procedure_id_procedures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complications")),
        sa.UniqueConstraint("complication_key", name=op.f("uq_complications_complication_key")),
    )
    with op.batch_alter_table("complications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_complications_procedure_id"), ["procedure_id"], unique=False
        )

    op.create_table(
        "lesion_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("followup_id", sa.Integer(), nullable=False),
        sa.Column("lesion_id", sa.Integer(), nullable=False),
        sa.Column("criteria", sa.String(length=16), nullable=True),
        sa.Column("response", sa.String(length=4), nullable=True),
        sa.Column("complete_ablation", sa.Boolean(), nullable=True),
        sa.Column("ltp", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["followup_id"],
            ["followups.id"],
            name=op.f("fk_lesion_responses_followup_id_followups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lesion_id"],
            ["lesions.id"],
            name=op.f("fk_lesion_responses_lesion_id_lesions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lesion_responses")),
        sa.UniqueConstraint(
            "followup_id", "lesion_id", name=op.f("uq_lesion_responses_followup_id")
        ),
    )
    with op.batch_alter_table("lesion_responses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lesion_responses_followup_id"), ["followup_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_lesion_responses_lesion_id"), ["lesion_id"], unique=False
        )

    op.create_table(
        "treated_lesions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=False),
        sa.Column("lesion_id", sa.Integer(), nullable=False),
        sa.Column("technical_success", sa.Boolean(), nullable=True),
        sa.Column("minimal_margin_mm", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lesion_id"],
            ["lesions.id"],
            name=op.f("fk_treated_lesions_lesion_id_lesions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["procedures.id"],
            name=op.f("fk_treated_lesions_procedure_id_procedures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_treated_lesions")),
        sa.UniqueConstraint(
            "procedure_id", "lesion_id", name=op.f("uq_treated_lesions_procedure_id")
        ),
    )
    with op.batch_alter_table("treated_lesions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_treated_lesions_lesion_id"), ["lesion_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_treated_lesions_procedure_id"), ["procedure_id"], unique=False
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("treated_lesions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_treated_lesions_procedure_id"))
        batch_op.drop_index(batch_op.f("ix_treated_lesions_lesion_id"))

    op.drop_table("treated_lesions")
    with op.batch_alter_table("lesion_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesion_responses_lesion_id"))
        batch_op.drop_index(batch_op.f("ix_lesion_responses_followup_id"))

    op.drop_table("lesion_responses")
    with op.batch_alter_table("complications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complications_procedure_id"))

    op.drop_table("complications")
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_procedures_patient_id"))

    op.drop_table("procedures")
    with op.batch_alter_table("lesions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesions_patient_id"))

    op.drop_table("lesions")
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_followups_patient_id"))

    op.drop_table("followups")
    op.drop_table("deaths")
    op.drop_table("patients")

"""Database models of the registry (SQLAlchemy 2, declarative with typed columns).

Every table has an integer primary key and, where people refer to a row, a text key
(``patient_key``, ``lesion_key``, ...) that is unique and is what CSV files use. Patients are
known only by a pseudonymous key: the registry has no column for a name, a birth date or a
hospital number. Deleting a patient removes every row linked to them, both through the ORM
(``cascade="all, delete-orphan"``) and in the database (``ON DELETE CASCADE``), so that a delete
issued in SQL behaves the same.

The schema is created by Alembic migrations (``ioplan/registry/migrations``), never by
``create_all``; a test checks that the migrations and these models agree.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "CRITERIA",
    "GUIDANCE",
    "IMAGING",
    "MODALITIES",
    "RESPONSES",
    "Base",
    "Complication",
    "Death",
    "FollowUp",
    "Lesion",
    "LesionResponse",
    "Patient",
    "Procedure",
    "TreatedLesion",
]

#: Procedure types (ablative, intra-arterial, and the others a registry meets in practice).
MODALITIES = ("RFA", "MWA", "cryo", "laser", "IRE", "TACE", "TARE", "biopsy", "drainage")
#: Ablative modalities: the ones technical success, technique efficacy and LTP apply to.
ABLATIVE = ("RFA", "MWA", "cryo", "laser", "IRE")
#: Image guidance of a procedure.
GUIDANCE = ("CT", "MR", "US", "fluoroscopy", "CBCT", "PET-CT")
#: Imaging modality of a follow-up.
IMAGING = ("CT", "MR", "US", "PET-CT", "CEUS")
#: Response criteria (see ioplan.assessment: RECIST 1.1, mRECIST, EASL).
CRITERIA = ("RECIST1.1", "mRECIST", "EASL")
#: Response categories shared by the three criteria.
RESPONSES = ("CR", "PR", "SD", "PD")

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention (stable constraint names for migrations)."""

    metadata = MetaData(naming_convention=_NAMING)


def _fk(target: str) -> ForeignKey:
    return ForeignKey(target, ondelete="CASCADE")


def _children(back: str) -> dict:
    return {"back_populates": back, "cascade": "all, delete-orphan", "passive_deletes": True}


class Patient(Base):
    """A patient, known by a pseudonymous key only."""

    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(64), unique=True)
    sex: Mapped[str | None] = mapped_column(String(1))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    diagnosis: Mapped[str | None] = mapped_column(String(64))
    last_contact_on: Mapped[dt.date | None] = mapped_column(Date)

    lesions: Mapped[list[Lesion]] = relationship(**_children("patient"))
    procedures: Mapped[list[Procedure]] = relationship(**_children("patient"))
    followups: Mapped[list[FollowUp]] = relationship(**_children("patient"))
    death: Mapped[Death | None] = relationship(**_children("patient"))


class Lesion(Base):
    """A tumour: organ, segment, largest diameter, histology, distance to the nearest vessel."""

    __tablename__ = "lesions"
    __table_args__ = (CheckConstraint("size_mm > 0", name="size_positive"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    lesion_key: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(_fk("patients.id"), index=True)
    organ: Mapped[str] = mapped_column(String(32))
    segment: Mapped[str | None] = mapped_column(String(16))
    size_mm: Mapped[float] = mapped_column(Float)
    histology: Mapped[str | None] = mapped_column(String(64))
    vessel_distance_mm: Mapped[float | None] = mapped_column(Float)

    patient: Mapped[Patient] = relationship(back_populates="lesions")
    treatments: Mapped[list[TreatedLesion]] = relationship(**_children("lesion"))
    responses: Mapped[list[LesionResponse]] = relationship(**_children("lesion"))


class Procedure(Base):
    """One procedure (session) of a patient; the lesions it treated are in TreatedLesion."""

    __tablename__ = "procedures"
    id: Mapped[int] = mapped_column(primary_key=True)
    procedure_key: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(_fk("patients.id"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    modality: Mapped[str] = mapped_column(String(16))
    guidance: Mapped[str | None] = mapped_column(String(16))
    applicators: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[str | None] = mapped_column(Text)  # JSON text: power, time, ...
    plan_json: Mapped[str | None] = mapped_column(Text)  # path or URI of plan.json
    margin_json: Mapped[str | None] = mapped_column(Text)  # path or URI of margin.json

    patient: Mapped[Patient] = relationship(back_populates="procedures")
    treated: Mapped[list[TreatedLesion]] = relationship(**_children("procedure"))
    complications: Mapped[list[Complication]] = relationship(**_children("procedure"))


class TreatedLesion(Base):
    """A lesion treated in a procedure, with the result seen at the end of it."""

    __tablename__ = "treated_lesions"
    __table_args__ = (UniqueConstraint("procedure_id", "lesion_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    procedure_id: Mapped[int] = mapped_column(_fk("procedures.id"), index=True)
    lesion_id: Mapped[int] = mapped_column(_fk("lesions.id"), index=True)
    technical_success: Mapped[bool | None] = mapped_column(Boolean)
    minimal_margin_mm: Mapped[float | None] = mapped_column(Float)

    procedure: Mapped[Procedure] = relationship(back_populates="treated")
    lesion: Mapped[Lesion] = relationship(back_populates="treatments")


class FollowUp(Base):
    """A follow-up visit with imaging; per-lesion findings are in LesionResponse."""

    __tablename__ = "followups"
    id: Mapped[int] = mapped_column(primary_key=True)
    followup_key: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(_fk("patients.id"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    imaging: Mapped[str] = mapped_column(String(16))
    intrahepatic_distant_recurrence: Mapped[bool] = mapped_column(Boolean, default=False)
    extrahepatic_disease: Mapped[bool] = mapped_column(Boolean, default=False)

    patient: Mapped[Patient] = relationship(back_populates="followups")
    responses: Mapped[list[LesionResponse]] = relationship(**_children("followup"))


class LesionResponse(Base):
    """What a follow-up shows of one treated lesion."""

    __tablename__ = "lesion_responses"
    __table_args__ = (UniqueConstraint("followup_id", "lesion_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    followup_id: Mapped[int] = mapped_column(_fk("followups.id"), index=True)
    lesion_id: Mapped[int] = mapped_column(_fk("lesions.id"), index=True)
    criteria: Mapped[str | None] = mapped_column(String(16))
    response: Mapped[str | None] = mapped_column(String(4))
    complete_ablation: Mapped[bool | None] = mapped_column(Boolean)
    ltp: Mapped[bool] = mapped_column(Boolean, default=False)

    followup: Mapped[FollowUp] = relationship(back_populates="responses")
    lesion: Mapped[Lesion] = relationship(back_populates="responses")


class Complication(Base):
    """A complication of a procedure, graded by the CIRSE classification (1-6)."""

    __tablename__ = "complications"
    __table_args__ = (CheckConstraint("cirse_grade BETWEEN 1 AND 6", name="cirse_grade_range"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    complication_key: Mapped[str] = mapped_column(String(64), unique=True)
    procedure_id: Mapped[int] = mapped_column(_fk("procedures.id"), index=True)
    date: Mapped[dt.date | None] = mapped_column(Date)
    cirse_grade: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)

    procedure: Mapped[Procedure] = relationship(back_populates="complications")


class Death(Base):
    """The death of a patient (at most one per patient)."""

    __tablename__ = "deaths"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(_fk("patients.id"), unique=True)
    date: Mapped[dt.date] = mapped_column(Date)
    cause: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship(back_populates="death")

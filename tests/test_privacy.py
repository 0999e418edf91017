"""The shared list of identifying field names (``ioplan.privacy``).

Reference: the DICOM standard's data dictionary as pydicom ships it (every keyword on the
list must be a real DICOM keyword, so that a typo cannot leave a tag unguarded), and the
registry's own documented columns, none of which may be refused.
"""

from __future__ import annotations

import pytest

from ioplan.privacy import IDENTIFYING_DICOM_KEYWORDS, identifying_field
from ioplan.registry import TABLES


def test_dicom_keywords_are_real_dicom_keywords():
    from pydicom.datadict import tag_for_keyword

    unknown = [kw for kw in IDENTIFYING_DICOM_KEYWORDS if tag_for_keyword(kw) is None]
    assert not unknown, unknown
    assert {"PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"} <= set(
        IDENTIFYING_DICOM_KEYWORDS
    )


@pytest.mark.parametrize(
    "name",
    [
        "MRN", "mrn", "patient_name", "PatientName", "Patient's Name", "patient-name",
        "date_of_birth", "Date of Birth", "DOB", "birth_date", "PatientBirthDate",
        "PATIENT BIRTH DATE", "patient.birth.date", "address", "Patient_Address",
        "accession", "Accession Number", "ssn", "NHS number", "nhs_no", "patient_id",
        "Patient ID", "first name", "surname", "patient_dob", "email", "StudyInstanceUID",
    ],
)  # fmt: skip
def test_identifying_spellings_are_found(name):
    assert identifying_field(name)


@pytest.mark.parametrize(
    "name",
    ["patient_key", "birth_year", "sex", "name", "power_w", "time_s", "study_id",
     "diagnosis", "applicators", "PatientSex", "patient", "Emprint"],
)  # fmt: skip
def test_pseudonymous_fields_are_kept(name):
    """The registry's key, year of birth and sex, a study ID, and a bare "name" (of an
    applicator as often as a person) stay allowed."""
    assert not identifying_field(name)


def test_no_documented_registry_column_is_identifying():
    cols = [c.name for cols in TABLES.values() for c in cols]
    assert len(cols) > 30  # the whole documented format, not an empty list
    assert [c for c in cols if identifying_field(c)] == []

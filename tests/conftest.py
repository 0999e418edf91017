"""Shared fixtures: a small phantom case generated once per test session."""

from __future__ import annotations

import os
import sys

# Python's bytecode cache for the suite's processes, even where the environment turns it off
# (PYTHONDONTWRITEBYTECODE=1, common in containers): without it every process (the xdist
# workers, and each CLI, benchmark, Dask or GPU-simulator subprocess a test starts) compiles
# ioplan's sources again, and pytest rewrites every test module again: about 10 s of
# collection per worker and 1-2 s per subprocess. The caches go to the usual __pycache__
# folders (ignored by git). Set here, in the first conftest, before xdist starts its workers.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    sys.dont_write_bytecode = False

# Under pytest-xdist (the suite runs on every core) each worker keeps its numba kernels and
# BLAS to one thread: two workers of two threads each on two cores oversubscribe, and the
# engine's parallel loops then wait on each other (the cryo plan tests ran 5x slower).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest

from ioplan.anatomy import Case, PhantomConfig, generate_phantom

# Files collected late but among the heaviest, run first instead: pytest-xdist (--dist
# loadfile) hands out whole files in collection order, and the web and validation folders
# come last alphabetically, so their heaviest files ran alone on one core at the end while
# the other core waited (the browser's plan-page test about 40 s). Only these files move;
# the rest keep their order (a sort is stable).
_RUN_FIRST = (
    "tests/web/test_browser.py",
    "tests/validation/test_validation.py",
    "tests/web/test_jobs.py",
)


_WARM_DTYPES = ("float32", "float64")
_WARM_DIR_ENV = "IOPLAN_TEST_KERNELS_WARM_DIR"
#: Longest a worker waits for the kernels (s): the two compiles took 40 and 25 s on one
#: core each (session 49); past this the workers go on and compile what they need.
_WARM_WAIT_S = 240.0
_warm_procs: list = []


def pytest_configure(config):
    """Under xdist, compile the engine's kernels once per dtype before the workers' tests.

    tests/_warm_kernels.py runs once per dtype, in parallel, from the controller (before
    the workers start, so they inherit the folder's name); each worker's first test waits
    for both (see ``_kernels_compiled``). Warm caches make it a few seconds of loading.
    """
    import subprocess
    import tempfile
    from pathlib import Path

    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return
    folder = Path(tempfile.mkdtemp(prefix="ioplan-warm-"))
    os.environ[_WARM_DIR_ENV] = str(folder)
    script = Path(__file__).with_name("_warm_kernels.py")
    for dtype in _WARM_DTYPES:
        log = open(folder / f"{dtype}.log", "w")  # closed in pytest_unconfigure
        _warm_procs.append((subprocess.Popen(
            [sys.executable, str(script), dtype, str(folder / f"{dtype}.done")],
            stdout=log, stderr=subprocess.STDOUT,
        ), log))  # fmt: skip


def pytest_unconfigure(config):
    import shutil

    for proc, log in _warm_procs:
        proc.wait()
        log.close()
    folder = os.environ.pop(_WARM_DIR_ENV, None) if _warm_procs else None
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _kernels_compiled():
    """A worker's tests start once the controller's kernel compiles are done."""
    import time
    from pathlib import Path

    folder = os.environ.get(_WARM_DIR_ENV)
    if folder and os.environ.get("PYTEST_XDIST_WORKER"):
        end = time.monotonic() + _WARM_WAIT_S
        done = [Path(folder) / f"{d}.done" for d in _WARM_DTYPES]
        while not all(f.exists() for f in done) and time.monotonic() < end:
            time.sleep(0.2)
    yield


def pytest_collection_modifyitems(session, config, items):
    root = config.rootpath
    rank = {name: i for i, name in enumerate(_RUN_FIRST)}

    def key(item) -> int:
        try:
            rel = item.path.relative_to(root).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(rel, len(rank))

    items.sort(key=key)


@pytest.fixture(scope="session", autouse=True)
def _own_cache_dir(tmp_path_factory):
    """Tests compute the planner's surrogate tables themselves, never read the user's."""
    # under pytest-xdist the workers share one folder (the base temp's parent is common to
    # them): a table computed by one is read by the other; writes are atomic (os.replace)
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if base.name.startswith("popen-gw") else base
    (shared / "ioplan-cache").mkdir(exist_ok=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("IOPLAN_CACHE_DIR", str(shared / "ioplan-cache"))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def small_phantom():
    """A coarse (4 mm) phantom: fast, still holds every structure large enough to see."""
    return generate_phantom(PhantomConfig(spacing_mm=4.0, seed=3))


@pytest.fixture(scope="session")
def small_case(small_phantom):
    return Case.from_phantom(small_phantom)


def load_validation_script(name: str):
    """A script of the repository's ``validation/`` folder as a module (not in the package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "validation" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_cli(capsys, *args):
    """Run ``ioplan ARGS`` in-process; returns ``(exit code, stdout, stderr)``."""
    from ioplan.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    """A user error: exit code 2 and one line ``error: ...`` naming each fragment."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def write_test_dicom_seg(sources, masks, labels, path):
    """A binary DICOM-SEG of ``masks`` (frames x rows x cols x segments) over ``sources``,
    written with highdicom directly (independent of ioplan's own SEG writer)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algo = hd.AlgorithmIdentificationSequence(
        name="test", version="1", family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=label,
            segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=codes.cid7166.ConnectiveTissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo,
        )
        for i, label in enumerate(labels)
    ]
    hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    ).save_as(path)
    return path


def liver_freeze(probe: str, spacing_mm: float):
    """One cryoprobe's 10-min freeze in perfused liver, 25 mm margin (grid studies)."""
    from ioplan.devices import applicator
    from ioplan.physics import CryoProtocol, SimulationConfig, simulate

    return simulate(SimulationConfig(
        applicator(probe), protocol=CryoProtocol.parse("freeze:600"), tissue="liver",
        spacing_mm=spacing_mm, margin_mm=25.0,
    ))  # fmt: skip


def liver_k_of_t(table, material: int):
    """k(T) of ``material`` by phase (W/m/K): liquid, mushy, frozen (an independent recount)."""
    tl, ts = float(table.liquidus_c[material]), float(table.solidus_c[material])

    def k_of(t: float) -> float:
        if t >= tl:
            return float(table.k_w_m_k[material])
        if t <= ts:
            return float(table.k_frozen_w_m_k[material])
        return float(table.k_mushy_w_m_k[material])

    return k_of, (ts, tl)


def flipped_copy(vol, axes=(1, 2)):
    """The same image stored with the array ``axes`` reversed, built by hand (independent of
    ioplan's orientation code): direction columns negated, origin moved to the opposite
    corner. The default, axes y and x, is how a RAS NIfTI stores an LPS image."""
    import numpy as np

    from ioplan.imaging import Grid, Volume

    g = vol.grid
    d = g.direction_matrix.copy()
    origin = np.asarray(g.origin_mm, float)
    arr = np.asarray(vol.array)
    for j in axes:
        origin = origin + d[:, j] * g.spacing_mm[j] * (g.shape[j] - 1)
        arr = np.flip(arr, j)
        d[:, j] = -d[:, j]
    return Volume(arr.copy(), Grid(arr.shape, g.spacing_mm, tuple(origin), tuple(map(tuple, d))))


def permuted_copy(vol, order=(2, 0, 1)):
    """The array axes permuted; the direction columns and spacings follow, the origin (voxel
    (0, 0, 0)) is unchanged."""
    import numpy as np

    from ioplan.imaging import Grid, Volume

    g = vol.grid
    d = g.direction_matrix[:, list(order)]
    arr = np.transpose(np.asarray(vol.array), order).copy()
    sp = tuple(g.spacing_mm[i] for i in order)
    return Volume(arr, Grid(arr.shape, sp, g.origin_mm, tuple(map(tuple, d))))


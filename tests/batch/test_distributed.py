"""A scheduler and workers started as separate processes on 127.0.0.1 (``dask scheduler``,
``dask worker``): the same numbers as a local cluster, and a killed worker loses nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from test_uncertainty import _point_tumour_model

from ioplan.batch import UncertaintySpec, dask_client, run_uncertainty


def _dask(*args: str, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip


def _stop(procs: list[subprocess.Popen]) -> None:
    """Workers first, then the scheduler; SIGKILL what has not left within 5 s."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


@pytest.fixture
def cluster(tmp_path):
    """``(address, worker processes)``: a scheduler and two one-thread workers, no nanny."""
    sched_file = tmp_path / "scheduler.json"
    log = (tmp_path / "dask.log").open("w")
    procs = [_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                   "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file),
                   log=log)]  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not sched_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sched_file.is_file(), (tmp_path / "dask.log").read_text()
        time.sleep(0.2)  # the file is written whole before the scheduler listens
        address = json.loads(sched_file.read_text())["address"]
        workers = [
            _dask("worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                  "--no-nanny", "--host", "127.0.0.1", "--no-dashboard", log=log)
            for _ in range(2)
        ]  # fmt: skip
        procs += workers
        with dask_client(address) as c:
            c.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        _stop(procs)
        log.close()
        for p in procs:  # nothing left behind
            assert not psutil.pid_exists(p.pid) or psutil.Process(p.pid).status() == "zombie"


def test_separate_processes_give_the_local_numbers(cluster):
    address, _ = cluster
    model = _point_tumour_model(3.0, n=7)
    spec = UncertaintySpec(placement_error_mm=2.5, angle_error_deg=3.0)
    with dask_client(address) as c:
        remote = run_uncertainty(model, spec, samples=16, seed=9, client=c)
    with dask_client(workers=1) as c:
        local = run_uncertainty(model, spec, samples=16, seed=9, client=c)
    assert remote.scheduler == address and remote.workers == 2
    assert remote.per_sample_coverage == local.per_sample_coverage
    assert np.array_equal(np.asarray(remote.map.array), np.asarray(local.map.array))
    assert remote.first_order == local.first_order


def test_a_batch_survives_a_killed_worker(cluster, tmp_path):
    """Kill a worker when the first case's row is written: every case still gets its row."""
    import threading

    from test_cohort import _sphere_case

    from ioplan.batch import BatchOptions, run_batch

    address, workers = cluster
    cases = tmp_path / "cases"
    for i in range(8):  # about 1 s each (90^3 voxels)
        _sphere_case(0.0, 10.0 + 0.5 * i, cases / f"c{i}", n=90)
    out = tmp_path / "out"
    rows_at_kill: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = list((out / "cases").glob("*.json")) if (out / "cases").is_dir() else []
            if done:
                rows_at_kill.append(len(done))
                workers[0].send_signal(signal.SIGKILL)
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=killer)
    watcher.start()
    with dask_client(address) as c:
        doc = run_batch(BatchOptions(action="margin"), cases, out, client=c)
    watcher.join()
    assert rows_at_kill and rows_at_kill[0] < 8  # killed mid-run
    assert workers[0].wait(timeout=10) == -signal.SIGKILL
    assert (doc["cases"], doc["ok"], doc["workers"]) == (8, 8, 1)
    # each case's own figure: the margin of ball 10 + 0.5 i around a 5 mm ball, +- 1 voxel
    for i, r in enumerate(doc["rows"]):
        assert r["minimal_margin_mm"] == pytest.approx(5.0 + 0.5 * i, abs=1.0)


def test_batch_command_on_the_scheduler_gives_the_local_rows(cluster, capsys, tmp_path):
    """`ioplan batch margin --scheduler ADDRESS`: the rows of a local run, case for case."""
    from test_cohort import _sphere_case

    from conftest import run_cli

    address, _ = cluster
    cases = tmp_path / "cases"
    _sphere_case(0.0, 9.0, cases / "c1")
    _sphere_case(1.0, 10.0, cases / "c2")
    code, out, err = run_cli(capsys, "batch", "margin", cases, "--out", tmp_path / "remote",
                             "--scheduler", address, "--json")  # fmt: skip
    assert code == 0, err
    remote = json.loads(out)
    code, out, err = run_cli(capsys, "batch", "margin", cases, "--out", tmp_path / "local",
                             "--workers", 1, "--json")  # fmt: skip
    assert code == 0, err
    local = json.loads(out)
    assert (remote["scheduler"], remote["workers"]) == (address, 2)
    assert remote["ok"] == 2

    def figures(doc):
        return [{k: v for k, v in r.items() if k != "runtime_s"} for r in doc["rows"]]

    assert figures(remote) == figures(local)


def test_the_shared_data_survives_the_death_of_the_worker_holding_it(cluster):
    """run_tasks' shared data is a task's result: when the worker that holds it is killed
    (chosen by asking the scheduler who has it), the data is computed again elsewhere and
    every task still returns ``sum(shared) + item`` (recount here). Session 42: with a plain
    scatter (no task to recompute it from) the remaining tasks failed "already forgotten";
    test_a_batch_survives_a_killed_worker caught it when its victim happened to hold it."""
    import os

    from ioplan.batch._cluster import run_tasks

    address, workers = cluster
    shared = np.arange(1000, dtype=np.int64)

    def fn(data, item):  # local: pickled by value for the worker processes
        time.sleep(0.3)
        return int(data.sum()) + item

    killed: list[int] = []
    with dask_client(address) as c:
        pids = c.run(os.getpid)  # worker address -> pid

        def on_result(i, value):
            if killed:
                return
            owners = [w for k, ws in c.who_has().items() if "-shared-" in str(k) for w in ws]
            assert owners, c.who_has()
            victim = next(p for p in workers if p.pid == pids[owners[0]])
            victim.send_signal(signal.SIGKILL)
            killed.append(victim.pid)

        out = run_tasks(c, fn, list(range(8)), shared=shared, on_result=on_result)
    assert len(killed) == 1
    assert out == [int(shared.sum()) + i for i in range(8)]


def test_tasks_with_shared_data_run_on_every_worker():
    """Six one-second tasks on a local cluster of two one-thread workers: both workers run
    some (the pids they return are recounted here). Session 54: the shared task and the tasks
    had one key prefix, Dask put them in one task group, and every task ran on the worker that
    held the shared result while the other sat idle (this test then saw one pid)."""
    import os

    from ioplan.batch._cluster import run_tasks

    def fn(data, item):  # local: pickled by value for the worker processes
        time.sleep(1.0)
        return os.getpid()

    with dask_client(workers=2) as c:
        pids = run_tasks(c, fn, list(range(6)), shared={"rows": list(range(100))})
    assert len(set(pids)) == 2, pids

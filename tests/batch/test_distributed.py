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

from ioplan.batch import UncertaintySpec, dask_client, run_tasks, run_uncertainty


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


def test_a_killed_worker_loses_no_task(cluster):
    """Kill one worker process mid-run: Dask runs its tasks again on the other."""
    address, workers = cluster

    def slow_square(shared, item: int) -> int:  # local: sent by value (tests/ is not importable)
        time.sleep(0.4)
        return item * item + shared

    items = list(range(12))
    seen: list[int] = []
    killed_at: list[int] = []

    def on_result(i: int, _r) -> None:
        seen.append(i)
        if len(seen) == 2:  # both workers are busy with the next ones
            killed_at.append(len(seen))
            workers[1].send_signal(signal.SIGKILL)

    with dask_client(address) as c:
        out = run_tasks(c, slow_square, items, shared=7, on_result=on_result)
        alive = len(c.scheduler_info()["workers"])
    assert killed_at == [2]  # the kill came with 10 of 12 tasks left
    assert workers[1].wait(timeout=10) == -signal.SIGKILL
    assert out == [i * i + 7 for i in items]
    assert alive == 1


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

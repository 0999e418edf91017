"""The Dask client: a local cluster by default, a running scheduler by address."""

from __future__ import annotations

import logging
import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ioplan.errors import InputError

__all__ = ["check_cluster_options", "check_scheduler_address", "dask_client", "run_tasks"]

_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+(:\d{1,5})?/?$|^[\w.\-]+:\d{1,5}$")


def check_scheduler_address(address: str | None) -> str | None:
    """``address`` if it looks like a Dask scheduler's (``tcp://host:port``), else an error."""
    if address is None:
        return None
    address = address.strip()
    if not _ADDRESS.match(address):
        raise InputError(
            f"--scheduler must be an address like tcp://10.0.0.5:8786, got {address!r}"
        )
    return address


def check_cluster_options(workers: int | None, scheduler: str | None) -> str | None:
    """The command-line ``--workers`` and ``--scheduler`` checked together; the address.

    ``--workers`` sizes a local cluster (1-1024 processes), so it is refused with a
    scheduler's address, which names a running one.
    """
    if workers is not None and not 1 <= workers <= 1024:
        raise InputError(f"--workers must be 1-1024, got {workers}")
    if workers is not None and scheduler is not None:
        raise InputError("--workers sizes the local cluster: leave it out with --scheduler")
    return check_scheduler_address(scheduler)


@contextmanager
def dask_client(scheduler: str | None = None, *, workers: int | None = None,
                memory_limit: str | int = "auto") -> Iterator[Any]:  # fmt: skip
    """A ``dask.distributed.Client``, closed (with its cluster) on exit.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:port``). None: a ``LocalCluster``
        of worker processes, one per core (``workers``), one thread each, on free
        ports, without dashboard, its logs kept to errors.
    workers : int, optional
        Workers of the local cluster (default: the number of cores).
    memory_limit : str or int
        Memory bound per local worker (Dask's ``memory_limit``; "auto": the machine's
        memory shared among the workers). Dask spills, pauses, then restarts a worker
        over it.
    """
    from dask.distributed import Client, LocalCluster

    scheduler = check_scheduler_address(scheduler)
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s", set_as_default=False)
        except OSError as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        with client:
            yield client
        return
    n = int(workers or os.cpu_count() or 1)
    if not 1 <= n <= 1024:
        raise InputError(f"workers must be 1-1024, got {n}")
    # each worker's compiled kernels get its share of the cores: numba's default (every
    # core in every process) oversubscribes them, and the engine's parallel loops then
    # wait on each other (2 workers on 2 cores ran each sample 13x slower than 1 worker)
    per = max(1, (os.cpu_count() or 1) // n)
    if os.environ.get("NUMBA_NUM_THREADS", "").isdigit():
        per = max(1, min(per, int(os.environ["NUMBA_NUM_THREADS"])))
    threads = {
        k: str(per) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    }
    with _workers_ignore_ctrl_c():  # the processes start here and keep SIGINT ignored
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            env=threads,
            processes=True,
            dashboard_address=None,
            # no dashboard; its plain HTTP server (health routes) on a free port, not 8787
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            host="127.0.0.1",
            scheduler_port=0,
            silence_logs=logging.ERROR,
            memory_limit=memory_limit,
        )
    with cluster, Client(cluster, set_as_default=False) as client:
        yield client


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Ignore SIGINT while the local cluster's processes start, so that they inherit it.

    Ctrl-C in a terminal reaches every process of the foreground group: each worker then
    printed its own KeyboardInterrupt traceback while the command itself said
    "interrupted" and closed the cluster. An ignored signal stays ignored across the
    workers' start (POSIX exec; Python installs its handler only over the default), so
    only the command hears it and shuts them down. Only the main thread may set handlers:
    elsewhere (a web job) nothing changes.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def describe(client) -> tuple[str, int]:
    """``(scheduler, workers)``: "local" or the scheduler's address, and its worker count."""
    # a direct query: scheduler_info()'s cache is sometimes the totals-only form, whose
    # "workers" is empty (distributed 2026.8: seen once after a worker was killed)
    workers = len(client.nthreads())
    cluster = getattr(client, "cluster", None)
    return ("local" if cluster is not None else str(client.scheduler.address), workers)


def _same(x: Any) -> Any:
    """The shared data, as a task's result (recomputable where a scatter is not)."""
    return x


def run_tasks(client, fn: Callable, items: Sequence, *, shared: Any = None,
              progress: Callable[[int, int], None] | None = None,
              on_result: Callable[[int, Any], None] | None = None) -> list:  # fmt: skip
    """``[fn(shared, item) for item in items]`` on the cluster, in the order of ``items``.

    ``shared`` is sent to the cluster once, as the argument of one task that returns it,
    not with every task; each worker fetches that task's result when its first task needs
    it. Not ``scatter``: scattered data has no task to recompute it from, so when the one
    worker holding it dies every task still to run fails ("already forgotten", seen in
    tests/batch/test_distributed.py, session 42); and not ``scatter(broadcast=True)``: the
    scheduler's replication then fights the active memory manager's replica reduction and
    the scatter can hang (tests/batch/test_cohort.py, session 41; dask/distributed issue
    4907, "Dask hangs indefinitely on unit test during client.scatter"). A task's argument
    is kept by the scheduler, so a lost copy is computed again.
    Tasks whose worker dies are run again elsewhere (Dask's ``allowed-failures``).
    ``progress(done, total)`` is called as tasks finish, ``on_result(index, result)`` too
    (in the order they finish).
    """
    from dask.distributed import as_completed

    total = len(items)
    if total == 0:
        return []
    # keys unique to this run (never mistaken for another's). The shared task and the tasks
    # need different prefixes: Dask groups tasks by the key's leading words (dask.utils.
    # key_split drops the hex run id), and with one group "ioplan" for both, the tasks were
    # no longer "root-ish" (their group depended on itself), were placed by data locality on
    # the one worker holding the shared result, and the instant shared task's duration made
    # stealing them look worthless: every task ran on one worker (session 54: a 2-worker
    # cross-validation kept one worker idle for 15 min)
    run = uuid.uuid4().hex[:12]
    handle = None
    if shared is not None:
        with warnings.catch_warnings():
            # "large object in the task graph": intended, it is sent once
            warnings.simplefilter("ignore", UserWarning)
            handle = client.submit(_same, shared, pure=False, key=f"ioplan-shared-{run}")
    futures = [
        client.submit(fn, handle, item, pure=False, key=f"ioplan-task-{run}-{i}")
        for i, item in enumerate(items)
    ]
    index = {f.key: i for i, f in enumerate(futures)}
    out: list = [None] * total
    done = 0
    for fut in as_completed(futures, loop=client.loop):
        i = index[fut.key]
        out[i] = fut.result()
        fut.release()
        done += 1
        if on_result is not None:
            on_result(i, out[i])
        if progress is not None:
            progress(done, total)
    return out

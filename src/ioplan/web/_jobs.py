"""Background jobs: long work (a full simulation) in a worker thread, followed and cancelled.

A job runs one function with a ``progress(fraction, message)`` callback. The callback is
also where a cancelled job stops: once :meth:`JobManager.cancel` has been called, the next
progress report raises :class:`JobCancelled` inside the worker, which unwinds the library
call (the engine reports its simulated time after every block of steps). One worker runs
at a time (the engine uses every core); the others wait in the queue.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ioplan.errors import IoplanError

__all__ = ["Job", "JobCancelled", "JobManager"]

#: Job states, in the order a job goes through them.
STATES = ("queued", "running", "done", "failed", "cancelled")


class JobCancelled(Exception):
    """Raised inside a job's worker by its progress callback once the job is cancelled."""


@dataclass
class Job:
    """One background job; ``version`` grows with every change (the event stream's cursor)."""

    id: str
    kind: str
    case: str
    state: str = "queued"
    progress: float = 0.0
    message: str = ""
    result: dict[str, Any] | None = None
    error: str | None = None
    created_s: float = field(default_factory=time.time)
    finished_s: float | None = None
    version: int = 0
    cancel_requested: bool = False
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The job's JSON document (``GET /api/jobs/{id}``)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "case": self.case,
            "state": self.state,
            "progress": round(self.progress, 4),
            "message": self.message,
            "result": self.result,
            "error": self.error,
            "files": sorted(self.files),
        }


class JobManager:
    """Runs jobs one at a time in a worker thread; keeps the last ``keep`` finished ones."""

    def __init__(self, *, keep: int = 50, describe: Callable[[Exception], str] | None = None):
        #: turns a user error into the job's one-line ``error`` (the app drops server paths)
        self.describe = describe or (lambda exc: " ".join(str(exc).split()))
        self._jobs: dict[str, Job] = {}
        self._cond = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ioplan-job")
        self._keep = keep

    def submit(self, kind: str, case: str, work: Callable[..., dict[str, Any]]) -> Job:
        """Queue ``work(job, progress)``; its return value becomes the job's result."""
        job = Job(id=uuid.uuid4().hex[:16], kind=kind, case=case)
        with self._cond:
            self._jobs[job.id] = job
            self._prune()
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        with self._cond:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Ask a job to stop; a queued job is cancelled at once. Returns the job or None."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.state == "queued":
                self._set(job, state="cancelled", message="cancelled before it started")
                job.finished_s = time.time()
            elif job.state == "running":
                job.cancel_requested = True
                self._set(job, message="cancelling")
            return job

    def wait(self, job: Job, version: int, timeout_s: float) -> int:
        """Block until ``job.version`` exceeds ``version`` (or ``timeout_s``); return it."""
        with self._cond:
            self._cond.wait_for(lambda: job.version > version, timeout=timeout_s)
            return job.version

    def snapshot(self, job: Job) -> dict[str, Any]:
        """The job's document, read under the lock."""
        with self._cond:
            return job.to_dict()

    def documents(self) -> list[dict[str, Any]]:
        """Every job's document, newest first."""
        with self._cond:
            return [j.to_dict() for j in sorted(self._jobs.values(), key=lambda j: -j.created_s)]

    def shutdown(self) -> None:
        """Cancel what runs, drop what waits, and stop the worker."""
        with self._cond:
            for job in self._jobs.values():
                if job.state in ("queued", "running"):
                    job.cancel_requested = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- internals -----------------------------------------------------------------------
    def _set(self, job: Job, **changes: Any) -> None:
        for k, v in changes.items():
            setattr(job, k, v)
        job.version += 1
        self._cond.notify_all()

    def _prune(self) -> None:
        done = [j for j in self._jobs.values() if j.finished_s is not None]
        for j in sorted(done, key=lambda j: j.finished_s)[: max(0, len(done) - self._keep)]:
            del self._jobs[j.id]

    def _run(self, job: Job, work) -> None:
        with self._cond:
            if job.state != "queued" or job.cancel_requested:
                if job.state == "queued":
                    self._set(job, state="cancelled")
                return
            self._set(job, state="running", message="started")

        def progress(fraction: float, message: str = "") -> None:
            with self._cond:
                if job.cancel_requested:
                    raise JobCancelled
                frac = min(1.0, max(job.progress, float(fraction)))
                if frac - job.progress >= 0.01 or message != job.message:
                    self._set(job, progress=frac, message=message)

        try:
            result = work(job, progress)
        except JobCancelled:
            outcome = {"state": "cancelled", "message": "cancelled"}
        except IoplanError as exc:
            outcome = {"state": "failed", "error": self.describe(exc)}
        except Exception as exc:  # a bug: the job says so, the server goes on
            outcome = {"state": "failed", "error": f"internal error: {type(exc).__name__}"}
        else:
            outcome = {"state": "done", "progress": 1.0, "message": "done", "result": result}
        with self._cond:
            job.finished_s = time.time()
            self._set(job, **outcome)

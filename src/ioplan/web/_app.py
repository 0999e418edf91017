"""The application: :func:`create_app` puts the routes, the guards and the services together."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ioplan import __version__
from ioplan.errors import InputError, IoplanError
from ioplan.web._cases import CaseNotFoundError, CaseStore
from ioplan.web._jobs import JobManager
from ioplan.web._security import GuardMiddleware, log

#: A command-line option in a message (``--power-w``), named as the request's field.
_WEB_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "STATIC_DIR", "Services", "create_app"]

#: The built viewer (``frontend/`` built by ``npm run build`` at install time).
STATIC_DIR = Path(__file__).parent / "static"
#: Largest request body accepted (MB): a 1 mm abdominal CT as NIfTI gzip is ~30-60 MB.
DEFAULT_MAX_UPLOAD_MB = 512.0
#: Previews kept on disk (the viewer fetches each one once).
PREVIEWS_KEPT = 50
#: Preview simulations kept in memory (by case, spacing and setting; a few MB each at 4 mm).
RESULTS_KEPT = 16


@dataclass
class Services:
    """What the routes share: the case store, the jobs, the previews, the settings."""

    store: CaseStore
    jobs: JobManager
    cache_dir: Path
    viewer_built: bool
    token: str | None = None
    _previews: OrderedDict[str, Path] = field(default_factory=OrderedDict)
    _preview_lock: threading.Lock = field(default_factory=threading.Lock)
    _results: dict[Any, Any] = field(default_factory=dict)

    # -- previews (interactive) ------------------------------------------------------------
    def preview(self, name: str, req) -> dict[str, Any]:
        """Run :func:`~ioplan.web._simulation.preview_zone` (one at a time) and keep its file."""
        from ioplan.web._simulation import preview_zone

        case = self.store.load(name)
        pid = uuid.uuid4().hex[:16]
        out = self.cache_dir / "previews" / f"{pid}.nii.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        with self._preview_lock:
            doc = preview_zone(case, req, out, cache=self._results)
            while len(self._results) > RESULTS_KEPT:
                self._results.pop(next(iter(self._results)))
            self._previews[pid] = out
            while len(self._previews) > PREVIEWS_KEPT:
                _, old = self._previews.popitem(last=False)
                old.unlink(missing_ok=True)
        return doc | {"id": pid, "zone_url": f"/api/previews/{pid}.nii.gz"}

    def preview_path(self, pid: str) -> Path:
        """The file of preview ``pid`` (only ids this server made)."""
        with self._preview_lock:
            path = self._previews.get(pid)
        if path is None or not path.is_file():
            raise CaseNotFoundError("no such preview (previews are kept for a while only)")
        return path

    # -- jobs ------------------------------------------------------------------------------
    def submit_simulation(self, name: str, req):
        """Queue a full simulation of ``req`` on case ``name`` (the case is checked now)."""
        from ioplan.imaging import Volume, write_nifti
        from ioplan.web._simulation import check_simulation, run_simulation

        check_simulation(self.store.load(name), req)  # bad input is refused now, not in the job

        def work(job, progress):
            case = self.store.load(name)
            doc, result = run_simulation(case, req, progress)
            out = self.cache_dir / "jobs" / f"{job.id}-zone.nii.gz"
            out.parent.mkdir(parents=True, exist_ok=True)
            write_nifti(Volume(result.zone_mask.astype("uint8"), result.grid), out, overwrite=True)
            job.files["zone"] = str(out)
            return doc

        return self.jobs.submit("simulate", name, work)

    def submit_plan(self, name: str, req):
        """Queue an inverse plan of case ``name`` written into ``CASE/plan`` (checked now)."""
        from ioplan.planning import (
            PLAN_FOLDER_ENTRIES,
            check_plan_request,
            check_replaceable,
            plan_ablation,
            write_plan,
        )

        case = self.store.load(name)
        cfg = req.config()
        out = self.store.folder(name) / "plan"
        check_replaceable(out, command="plan", names=PLAN_FOLDER_ENTRIES, overwrite=req.overwrite)
        check_plan_request(case, cfg, tumour_name="tumor", spacing_name="spacing_mm")

        def work(job, progress):
            def log(message: str) -> None:
                progress(job.progress, " ".join(str(message).split())[:200])

            def sim_time(t_s: float) -> None:
                progress(job.progress, job.message)  # where a cancelled job stops

            plan = plan_ablation(case, cfg, log=log, progress=sim_time)
            progress(0.95, "writing the plan")
            # checked again now: another job may have written a plan since this one was
            # queued (without overwrite, that plan is kept and this job fails)
            write_plan(plan, case, out, overwrite=req.overwrite)
            return plan.to_dict()

        return self.jobs.submit("plan", name, work)

    def list_jobs(self) -> list[dict[str, Any]]:
        """Every job's document without the result, newest first."""
        return [{k: v for k, v in d.items() if k != "result"} for d in self.jobs.documents()]

    # -- import ----------------------------------------------------------------------------
    def import_case(self, name, image, labels, label_map: str, modality: str) -> dict[str, Any]:
        """Save the uploads in a scratch folder, read them as ``import-case`` does, save."""
        from ioplan.anatomy import (
            case_from_images,
            check_case_name,
            lacks_body_outline,
            save_case,
            with_auto_labels,
        )
        from ioplan.web._api_cases import parse_label_table, renamed_upload_error, upload_name

        check_case_name(name)
        if name in self.store.names() or (self.store.root / name).exists():
            raise InputError(f"case {name} exists already (a case is never replaced)")
        table = parse_label_table(label_map)  # before any file is written
        scratch = Path(tempfile.mkdtemp(prefix="upload-", dir=self.cache_dir))
        shown: dict[Path, str] = {}  # scratch file -> the name the user gave it
        try:
            for what, up in (("image", image), ("labels", labels)):
                suffix = ".nii.gz" if (up.filename or "").endswith(".gz") else ".nii"
                path = scratch / f"{what}{suffix}"
                with path.open("wb") as f:
                    shutil.copyfileobj(up.file, f)
                shown[path] = upload_name(what, up.filename)
            paths = list(shown)
            case = case_from_images(
                paths[0], paths[1], table, label_map=None if table else label_map, name=name,
                modality=modality,
            )  # fmt: skip
            if lacks_body_outline(case):  # as import-case: the outline from the image
                case = with_auto_labels(case)
            save_case(case, self.store.root / name)
        except IoplanError as exc:  # named as uploaded, never by the scratch folder
            raise renamed_upload_error(exc, scratch, shown) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return self.store.summary(name)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _status_of(exc: IoplanError) -> int:
    if isinstance(exc, (CaseNotFoundError, FileNotFoundError, LookupError)):
        return 404
    if isinstance(exc, MemoryError):
        return 507
    return 400


def create_app(
    cases_dir: str | Path,
    token: str | None = None,
    *,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    cache_dir: str | Path | None = None,
    allowed_hosts: list[str] | None = None,
    registry_db: str | os.PathLike | None = None,
) -> FastAPI:
    """The ioplan web application over the case folders in ``cases_dir``.

    Parameters
    ----------
    cases_dir : path
        The folder whose case folders (``case.toml``) are served; nothing outside it is.
    token : str, optional
        When given, every request but ``/api/health`` and the static assets must carry it
        (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``).
    max_upload_mb : float
        Largest request body accepted (MB); larger ones get 413.
    cache_dir : path, optional
        Where the served NIfTI files are written (default: a temporary folder removed
        when the app shuts down).
    allowed_hosts : list of str, optional
        Host names the requests may name (their ``Host`` header); others get 400.
        Default: any.
    registry_db : str or path, optional
        The registry the dashboard reads (a SQLite file or ``postgresql://...``); default
        ``$IOPLAN_REGISTRY_DB``, else ``ioplan-registry.sqlite`` in the working folder, as
        ``ioplan registry``. Read only: the server never writes to it.

    Returns
    -------
    fastapi.FastAPI
        Errors are one-line JSON bodies ``{"error": "..."}``: 400 bad input, 401 no token,
        404 unknown case or file, 413 too large, 422 a malformed request, 500 a bug.
    """
    from contextlib import asynccontextmanager

    own_cache = cache_dir is None
    cache = Path(tempfile.mkdtemp(prefix="ioplan-web-")) if own_cache else Path(cache_dir)
    viewer_built = (STATIC_DIR / "viewer.js").is_file()
    svc = Services(
        store=CaseStore(cases_dir, cache / "volumes"),
        jobs=JobManager(),
        cache_dir=cache,
        viewer_built=viewer_built,
        token=token or None,
    )

    @asynccontextmanager
    async def lifespan(app):
        yield
        svc.jobs.shutdown()
        live = getattr(app.state, "ioplan_live", None)  # live monitoring sessions (_live.py)
        if live is not None:
            live.shutdown()
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)

    app = FastAPI(
        title="ioplan",
        version=__version__,
        description="Interventional oncology planning: cases, plans, simulations. "
        "Not for clinical use.",
        lifespan=lifespan,
        # Swagger and ReDoc pages load their scripts from a CDN: no network at run time
        docs_url=None,
        redoc_url=None,
    )
    app.state.ioplan = svc
    app.state.registry_db = str(registry_db) if registry_db else None

    def _relative(text: str) -> str:
        """Server folders left out of messages: paths are shown relative to the cases folder.

        The library names its options as the command line does (``--power-w``); a web
        client sends the request's fields (``power_w``), so those are named instead.
        """
        for folder in (svc.store.root, cache):
            text = text.replace(f"{folder}{os.sep}", "").replace(str(folder), ".")
        return _WEB_FLAG.sub(lambda m: m.group(1).replace("-", "_"), text)

    svc.jobs.describe = lambda exc: _relative(_one_line(exc))

    @app.exception_handler(IoplanError)
    async def _ioplan_error(request: Request, exc: IoplanError):
        return JSONResponse({"error": _relative(_one_line(exc))}, status_code=_status_of(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such page or route: {request.url.path[:200]}"
        return JSONResponse({"error": _one_line(message)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:3]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", ""))
        return JSONResponse({"error": _one_line("; ".join(parts) or "invalid request")},
                            status_code=422)  # fmt: skip

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.error("internal error: %s on %s", type(exc).__name__, request.url.path)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    from ioplan.web import _api_cases, _api_jobs, _live, _pages, _registry_web, _results

    app.include_router(_api_cases.router)
    app.include_router(_api_jobs.router)
    app.include_router(_results.router)
    app.include_router(_registry_web.router)
    app.include_router(_live.router)
    app.include_router(_pages.router)
    if viewer_built:
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    hosts = frozenset(allowed_hosts) if allowed_hosts is not None else None
    app.add_middleware(GuardMiddleware, token=svc.token,
                       max_body_bytes=int(max_upload_mb * 1e6), allowed_hosts=hosts)  # fmt: skip
    return app

"""The cases folder as the server sees it: names, documents and volumes, never a path outside.

Every name that reaches the file system is checked twice: it must be a pseudonymous case
identifier (:func:`ioplan.anatomy.check_case_name`: letters, digits and ``._-``, which
rules out ``/``, ``..`` as a whole name, and what looks like a patient's name or record
number), and the folder it names must resolve (symbolic links followed) to a direct child
of the cases folder. Volumes are served as NIfTI files that the server writes itself from
the arrays it read (:func:`ioplan.imaging.write_nifti`): a header never carries text from
the original file, and the cache is keyed by the source files' modification times.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.anatomy import case_info
from ioplan.errors import InputError, IoplanError

__all__ = [
    "CASE_VOLUMES",
    "ISOTHERMS_COLD_C",
    "ISOTHERMS_HEAT_C",
    "PLAN_VOLUMES",
    "CaseNotFoundError",
    "CaseStore",
    "case_info",
    "isotherm_contours",
]

#: Volumes of a case the server offers (fixed names: nothing else of the folder is reachable).
CASE_VOLUMES = ("image", "labels")
#: Volumes of a case's plan (``CASE/plan/``, as ``ioplan demo`` and ``ioplan plan`` write them).
PLAN_VOLUMES = ("zone", "margin_shell", "tmax", "tmin", "trajectories", "isotherms")
#: Isotherms drawn on the plan page for heat (maximum temperature reached, degC), the same
#: levels the engine reports (``ioplan simulate --json`` ``isotherms``). 50 degC: cell death
#: after 4-6 min; 60 degC: near-instantaneous protein coagulation (Goldberg SN, Gazelle GS,
#: Mueller PR. Thermal ablation therapy for focal malignancy. AJR 2000;174:323-331).
ISOTHERMS_HEAT_C = (50.0, 60.0)
#: Isotherms for cryoablation (minimum temperature reached, degC): 0 degC the ice ball's edge,
#: -20 degC and -40 degC the usual lethal isotherms (Gage AA, Baust J. Mechanisms of tissue
#: injury in cryosurgery. Cryobiology 1998;37:171-186).
ISOTHERMS_COLD_C = (0.0, -20.0, -40.0)
#: The files whose changes make a loaded case stale.
_CASE_FILES = ("case.toml", "image.nii.gz", "labels.nii.gz")
#: Where a case's plan lives inside its folder.
PLAN_FOLDER = "plan"


class CaseNotFoundError(IoplanError, LookupError):
    """No such case (or plan, or volume) in the cases folder."""


def _mtime_key(*paths: Path) -> str:
    """A cache key that changes whenever one of ``paths`` is rewritten."""
    parts = []
    for p in paths:
        try:
            st = p.stat()
            parts.append(f"{st.st_mtime_ns}-{st.st_size}")
        except OSError:
            parts.append("0")
    return "_".join(parts)


class CaseStore:
    """The case folders under ``root``: list, load (a small cache), documents, volumes.

    Parameters
    ----------
    root : path
        The cases folder: each direct child holding ``case.toml`` is a case, named by its
        folder. A ``root`` that is itself a case folder serves that one case.
    cache_dir : path
        Where the served NIfTI files are written (the server's own temporary folder).
    max_loaded : int
        Cases kept in memory at once.
    """

    def __init__(self, root: str | Path, cache_dir: str | Path, *, max_loaded: int = 2) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise InputError(f"--cases {root}: no such folder")
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._single = (self.root / "case.toml").is_file()
        self._loaded: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._max_loaded = max_loaded
        self._lock = threading.RLock()
        #: documents by (kind, name, modification key): read again only when a file changes
        self._docs: dict[tuple[str, str, str], dict[str, Any]] = {}

    # -- names and folders ---------------------------------------------------------------
    def names(self) -> list[str]:
        """The case names, sorted; folders whose names look like identifiers are left out."""
        if self._single:
            return [self.root.name] if _valid_name(self.root.name) else []
        out = []
        for child in sorted(self.root.iterdir()):
            try:
                self.folder(child.name)  # the checks of a request: name, inside, case.toml
            except CaseNotFoundError:
                continue
            out.append(child.name)
        return out

    def folder(self, name: str) -> Path:
        """The folder of case ``name``; refuses anything that is not a case under ``root``."""
        if not _valid_name(name):
            raise CaseNotFoundError(f"no case named {_quoted(name)}")
        if self._single:
            if name != self.root.name:
                raise CaseNotFoundError(f"no case named {_quoted(name)}")
            return self.root
        folder = (self.root / name).resolve()
        if folder.parent != self.root or not (folder / "case.toml").is_file():
            raise CaseNotFoundError(f"no case named {_quoted(name)}")
        return folder

    def _inside(self, folder: Path, path: Path) -> Path:
        """``path`` resolved, if it lies inside the case ``folder`` (links followed)."""
        real = path.resolve()
        if folder != real and folder not in real.parents:
            raise CaseNotFoundError(f"{path.name}: not inside the case folder")
        return real

    # -- documents -------------------------------------------------------------------------
    def summary(self, name: str) -> dict[str, Any]:
        """A cheap description for the list (read from ``case.toml``, no volume loaded)."""
        folder = self.folder(name)
        try:
            meta = tomllib.loads((folder / "case.toml").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            meta = {}
        tumors = meta.get("tumors", [])
        return {
            "name": name,
            "modality": str(meta.get("modality", "CT")),
            "tumors": len(tumors) if isinstance(tumors, list) else 0,
            "has_plan": (folder / PLAN_FOLDER / "plan.json").is_file(),
        }

    def load(self, name: str):
        """The :class:`ioplan.anatomy.Case` named ``name`` (re-read when its files change)."""
        from ioplan.anatomy import load_case

        folder = self.folder(name)
        key = _mtime_key(*(folder / f for f in _CASE_FILES))
        with self._lock:
            hit = self._loaded.get(name)
            if hit is not None and hit[0] == key:
                self._loaded.move_to_end(name)
                return hit[1]
            case = load_case(folder)
            self._loaded[name] = (key, case)
            while len(self._loaded) > self._max_loaded:
                self._loaded.popitem(last=False)
            return case

    def info(self, name: str) -> dict[str, Any]:
        """The ``ioplan info --json`` document of case ``name`` (kept until its files change)."""
        folder = self.folder(name)
        key = ("info", name, _mtime_key(*(folder / f for f in _CASE_FILES)))
        with self._lock:
            doc = self._docs.get(key)
        if doc is None:
            doc = case_info(self.load(name))
            self._keep(key, doc)
        return doc

    def plan(self, name: str) -> dict[str, Any]:
        """The case's ``plan/plan.json`` document."""
        import json

        folder = self.folder(name)
        path = folder / PLAN_FOLDER / "plan.json"
        if not path.is_file():
            raise CaseNotFoundError(f"case {name} has no plan (make one with ioplan plan)")
        path = self._inside(folder, path)
        key = ("plan", name, _mtime_key(path))
        with self._lock:
            doc = self._docs.get(key)
        if doc is None:
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                raise CaseNotFoundError(f"case {name}: plan.json cannot be read") from None
            # the folder the plan was made from is the server's own business (and a folder
            # name may name the patient): not sent to the browser
            doc.pop("case_path", None)
            self._keep(key, doc)
        return doc

    def _keep(self, key, doc) -> None:
        with self._lock:
            self._docs[key] = doc
            while len(self._docs) > 64:  # documents of files that changed since
                self._docs.pop(next(iter(self._docs)))

    # -- volumes ---------------------------------------------------------------------------
    def volume_path(self, name: str, kind: str) -> Path:
        """A NIfTI (gzip) of the case's ``image`` or ``labels``, written by the server."""
        if kind not in CASE_VOLUMES:
            raise CaseNotFoundError(f"no volume {_quoted(kind)} (one of {', '.join(CASE_VOLUMES)})")
        folder = self.folder(name)
        key = _mtime_key(*(folder / f for f in _CASE_FILES))

        def make():
            case = self.load(name)
            vol = case.image if kind == "image" else case.labels
            arr = np.asarray(vol.array)
            if kind == "image" and case.modality == "CT":
                arr = np.clip(np.rint(arr), -1024, 3071).astype(np.int16)  # HU, half the bytes
            elif kind == "labels":
                arr = arr.astype(np.uint8 if arr.max(initial=0) < 256 else np.uint16)
            else:
                arr = arr.astype(np.float32)  # MR: float32 is what the viewer draws
            return _volume(arr, vol.grid)

        return self._cached(name, f"{kind}-{key}", make)

    def plan_volume_path(self, name: str, kind: str) -> Path:
        """A NIfTI (gzip) of one of the plan's maps, or of its trajectories drawn as lines."""
        if kind not in PLAN_VOLUMES:
            raise CaseNotFoundError(
                f"no plan volume {_quoted(kind)} (one of {', '.join(PLAN_VOLUMES)})"
            )
        folder = self.folder(name)
        plan_dir = folder / PLAN_FOLDER
        cold = kind == "isotherms" and self.plan_is_cold(name)
        stem = {"trajectories": "zone", "isotherms": "tmin" if cold else "tmax"}.get(kind, kind)
        src = plan_dir / f"{stem}.nii.gz"
        if not src.is_file():
            raise CaseNotFoundError(f"case {name} has no plan volume {kind}")
        src = self._inside(folder, src)
        key = _mtime_key(src, plan_dir / "plan.json")

        def make():
            from ioplan.imaging import read_image

            vol = read_image(src)
            if kind == "trajectories":
                doc = self.plan(name)
                lines = [(a["entry_mm"], a["tip_mm"]) for a in doc.get("applicators", [])]
                return _volume(rasterise_lines(vol.grid, lines), vol.grid)
            if kind == "isotherms":
                levels = ISOTHERMS_COLD_C if cold else ISOTHERMS_HEAT_C
                return _volume(isotherm_contours(np.asarray(vol.array), levels, cold), vol.grid)
            arr = np.asarray(vol.array)
            if kind in ("zone", "margin_shell"):
                arr = (arr > 0).astype(np.uint8)
            else:
                arr = arr.astype(np.float32)
            return _volume(arr, vol.grid)

        return self._cached(name, f"plan-{kind}-{key}", make)

    def plan_is_cold(self, name: str) -> bool:
        """Whether the case's plan is a cryoablation (its isotherms are minimum temperatures)."""
        doc = self.plan(name)
        return (
            "cryo" in str(doc.get("modality", "")).lower()
            and (self.folder(name) / PLAN_FOLDER / "tmin.nii.gz").is_file()
        )

    def _cached(self, name: str, key: str, make) -> Path:
        path = self.cache_dir / name / f"{key}.nii.gz"
        with self._lock:
            if not path.is_file():
                from ioplan.imaging import write_nifti

                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.nii.gz")
                write_nifti(make(), tmp, overwrite=True)
                tmp.replace(path)
        return path


def _volume(arr: np.ndarray, grid):
    from ioplan.imaging import Volume

    return Volume(arr, grid)


def isotherm_contours(temperature_c: np.ndarray, levels_c, cold: bool) -> np.ndarray:
    """Isotherm surfaces as a ``uint8`` label map: value ``k`` (1, 2, ...) for ``levels_c[k-1]``.

    A voxel is on isotherm ``k`` when it reached that level (``T >= level``; for ``cold``,
    ``T <= level``) and one of its six face neighbours did not: a one-voxel-thick surface,
    which a slice shows as a contour line. Where two isotherms share a voxel the more
    extreme level wins. Non-finite temperatures count as not reached.
    """
    t = np.asarray(temperature_c, dtype=np.float64)
    out = np.zeros(t.shape, dtype=np.uint8)
    finite = np.isfinite(t)
    for k, level in enumerate(levels_c, start=1):
        inside = finite & ((t <= level) if cold else (t >= level))
        edge = np.zeros_like(inside)
        for axis in range(t.ndim):
            for shift in (1, -1):
                nb = np.roll(inside, shift, axis=axis)
                # the volume's border: a neighbour outside the grid counts as not reached
                idx = [slice(None)] * t.ndim
                idx[axis] = slice(0, 1) if shift == 1 else slice(-1, None)
                nb[tuple(idx)] = False
                edge |= inside & ~nb
        out[edge] = k
    return out


def rasterise_lines(grid, lines, *, value: int = 1) -> np.ndarray:
    """A ``uint8`` mask on ``grid`` with each segment ``(start_mm, end_mm)`` (LPS) drawn in it.

    Points every half voxel along each segment are rounded to the nearest voxel; points
    outside the grid are dropped.
    """
    mask = np.zeros(grid.shape, np.uint8)
    step = 0.5 * float(min(grid.spacing_mm))
    for a, b in lines:
        a, b = np.asarray(a, float), np.asarray(b, float)
        n = max(2, int(np.ceil(np.linalg.norm(b - a) / step)) + 1)
        pts = a[None, :] + np.linspace(0.0, 1.0, n)[:, None] * (b - a)[None, :]
        idx = np.rint(grid.lps_to_index(pts)).astype(int)
        ok = np.all((idx >= 0) & (idx < np.asarray(grid.shape)), axis=1)
        idx = idx[ok]
        mask[idx[:, 0], idx[:, 1], idx[:, 2]] = value
    return mask


def _valid_name(name: str) -> bool:
    from ioplan.anatomy import check_case_name

    try:
        check_case_name(name)
    except InputError:
        return False
    return True


def _quoted(name: str) -> str:
    """A name for an error message: short, printable, and never a full identifier-like string."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(name))[:64]
    return repr(text) if _valid_name(text) else "(refused name)"

"""What the result pages share: NIfTI files written once into the server's cache, numbers."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

from ioplan.web._cases import CaseNotFoundError

__all__ = ["cached_nifti", "fmt", "result_path"]

_lock = threading.Lock()
_TAG = re.compile(r"^[a-z]+(-[a-z]+)*-[0-9a-f]{16}$")


def result_path(svc, name: str, tag: str) -> Path:
    """``CACHE/results/NAME/TAG.nii.gz``: ``name`` a case of the store, ``tag`` checked."""
    svc.store.folder(name)  # a case name, inside the cases folder
    if not _TAG.match(tag):
        raise CaseNotFoundError("no such result volume")
    return svc.cache_dir / "results" / name / f"{tag}.nii.gz"


def cached_nifti(svc, name: str, tag: str, make) -> Path:
    """The file of ``tag``, written from ``make()`` (a Volume) the first time it is asked for."""
    path = result_path(svc, name, tag)
    with _lock:
        if not path.is_file():
            from ioplan.imaging import write_nifti

            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.nii.gz")
            write_nifti(make(), tmp, overwrite=True)
            tmp.replace(path)
    return path


def fmt(v: Any, spec: str = ".1f") -> str:
    """A number for a table; ``-`` for a missing one."""
    return "-" if v is None else format(v, spec)

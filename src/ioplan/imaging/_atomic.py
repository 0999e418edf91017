"""Output folders written whole or not at all, with a completion record.

A command writes into a temporary sibling of its output folder (same parent, so the
final rename stays on one file system) and renames it into place only when every
file is written. An interrupted command leaves the output folder as it was (absent,
or the older output) and removes its temporary folder; a crash that cannot clean up
leaves only hidden ``.NAME.partial-*`` or ``.NAME.new-*`` siblings. The last file written is the
completion record :data:`COMPLETION_RECORD` (after ``plan.json``): a folder holding it
was finished by ioplan.

``overwrite`` replaces the whole older output (so that none of its report, DICOM or
figures remain beside the new files), and only when that folder is an earlier output
of the same command: ioplan never deletes a folder that holds other things.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ioplan.errors import OutputExistsError
from ioplan.imaging._io import check_output_folder, check_writable, staged_output_folder

__all__ = [
    "COMPLETION_RECORD",
    "atomic_output_folder",
    "check_mergeable",
    "check_replaceable",
    "write_completion_record",
]

#: The file that marks a finished ioplan output folder (written last).
COMPLETION_RECORD = "ioplan-complete.json"


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _record(folder: Path) -> dict | None:
    try:
        doc = json.loads((folder / COMPLETION_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def check_replaceable(folder: str | Path, *, command: str, names: frozenset[str],
                      overwrite: bool, own_json: Callable[[dict], bool] | None = None,
                      ) -> Path:  # fmt: skip
    """Refuse an output folder this command may not write, before any work.

    The folder must be writable (:func:`ioplan.imaging.check_output_folder`), and so
    must its parent (the new output is renamed into place there). A folder that is
    not empty needs ``overwrite``, and is replaced only if it is an earlier output of
    ``command``: its completion record names the command and lists every entry, or
    (outputs older than the record) every entry is one of ``names`` and one of them is
    the command's JSON (a ``.json`` among ``names``; with ``own_json``, one whose content
    it accepts: a file of the user's that happens to share the name is not taken).

    Raises
    ------
    OutputExistsError
        The folder is not empty and ``overwrite`` is False, or it holds things that
        are not this command's output.
    OutputNotWritableError
        The folder or its parent cannot be written.
    """
    folder = check_output_folder(folder, overwrite=overwrite)
    check_writable(folder.absolute().parent)
    if not folder.is_dir():
        return folder
    entries = _entries(folder)
    if not entries:
        return folder
    rec = _record(folder)
    if rec is not None and rec.get("command") == command:
        allowed = set(rec.get("entries", ())) | {COMPLETION_RECORD}
    else:
        allowed = set(names)
        json_names = {n for n in names if n.endswith(".json")}
        found = entries & json_names
        if own_json is not None:
            found = {n for n in found if _json_is(folder / n, own_json)}
        if not found:
            # without a completion record only a folder holding the command's own JSON
            # (plan.json, biopsy.json, ...) passes for an older output: a report.html or
            # figures/ alone may well be the user's
            allowed = set()
    foreign = sorted(entries - allowed)
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise OutputExistsError(
            f"{folder} holds files that `ioplan {command}` did not write ({shown}): "
            "--overwrite replaces only an earlier output of this command; choose another "
            "output folder or move them"
        )
    return folder


def check_mergeable(folder: str | Path, *, command: str, own_json: str | tuple[str, ...],
                    overwrite: bool, accept: Callable[[dict], bool] | None = None,
                    ) -> Path:  # fmt: skip
    """Refuse an output folder that a merging command may not write into, before any work.

    For the commands whose ``--overwrite`` replaces their files by name and keeps the rest
    (margin, thermometry, validate's reports): a folder that is not empty needs
    ``overwrite`` and must be an earlier output of ``command``, known by its JSON (one of
    ``own_json``, whose content ``accept`` takes when given) or a completion record
    naming it. Another command's output or the user's own folder (a case, a plan) is
    refused: its files of the same names (``temperature.nii.gz`` of a simulation, a
    report) would be replaced.

    Raises
    ------
    OutputExistsError
        The folder is not empty and ``overwrite`` is False, or it is not an earlier
        output of ``command``.
    OutputNotWritableError
        The folder cannot be written.
    """
    folder = check_output_folder(folder, overwrite=overwrite)
    if not folder.is_dir() or not any(folder.iterdir()):
        return folder
    rec = _record(folder)
    if rec is not None and rec.get("command") == command:
        return folder
    names = (own_json,) if isinstance(own_json, str) else tuple(own_json)
    for name in names:
        path = folder / name
        if path.is_file() and (accept is None or _json_is(path, accept)):
            return folder
    entries = sorted(_entries(folder))
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise OutputExistsError(
        f"{folder} is not an earlier output of `ioplan {command}` (it holds {shown} and no "
        f"{' or '.join(names)} of it): --overwrite replaces only this command's own files; "
        "choose another output folder"
    )


def _json_is(path: Path, accept: Callable[[dict], bool]) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and bool(accept(doc))


def write_completion_record(folder: Path, command: str) -> None:
    """Write the completion record listing ``folder``'s entries (call it last)."""
    doc = {
        "command": command,
        "complete": True,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "entries": sorted(_entries(folder) - {COMPLETION_RECORD}),
    }
    (folder / COMPLETION_RECORD).write_text(json.dumps(doc, indent=2) + "\n")


@contextmanager
def atomic_output_folder(folder: str | Path, *, command: str, names: frozenset[str],
                         overwrite: bool, own_json: Callable[[dict], bool] | None = None,
                         ) -> Iterator[Path]:  # fmt: skip
    """Yield a temporary folder to write into; on success it replaces ``folder`` whole.

    Checks first (:func:`check_replaceable`). The new output is staged by
    :func:`ioplan.imaging.staged_output_folder` under a hidden sibling name (on any
    exception, an interruption included, it is removed and ``folder`` is left as it
    was). On success the completion record is written last, the older output (if
    any) is moved aside, the new one renamed into place, and the older one deleted.
    """
    folder = check_replaceable(folder, command=command, names=names, overwrite=overwrite,
                               own_json=own_json)  # fmt: skip
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    new = folder.parent / f".{folder.name}.new-{token}"
    try:
        with staged_output_folder(new, overwrite=False) as tmp:
            yield tmp
            write_completion_record(tmp, command)
        _swap_into_place(new, folder, folder.parent / f".{folder.name}.old-{token}")
    finally:
        if new.exists():
            shutil.rmtree(new, ignore_errors=True)


def _swap_into_place(new: Path, folder: Path, old: Path) -> None:
    """Rename ``new`` to ``folder``; an existing ``folder`` is moved to ``old``, then deleted."""
    if not folder.exists():
        os.rename(new, folder)
        return
    os.rename(folder, old)
    try:
        os.rename(new, folder)
    except BaseException:
        os.rename(old, folder)  # put the older output back
        raise
    shutil.rmtree(old, ignore_errors=True)

"""Points and lines in 3D Slicer's formats (``.mrk.json``, ``.fcsv``) and plain CSV.

Slicer writes markups in LPS (Slicer >= 4.11 default) or RAS; the file says which
(``coordinateSystem`` in ``.mrk.json``, ``# CoordinateSystem = LPS|RAS|0|1`` in ``.fcsv``,
where 0 means RAS and 1 LPS). Points are returned in patient LPS mm, the convention of
ioplan, whatever the file used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from ioplan.errors import FileFormatError, InputFileNotFoundError

__all__ = ["markups_lines", "read_points", "write_markups_lines"]

_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/main/Modules/Loadable/"
    "Markups/Resources/Schema/markups-schema-v1.0.3.json#"
)
Point = tuple[float, float, float]


def _to_lps(p: Sequence[float], system: str) -> Point:
    x, y, z = (float(v) for v in p)
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise ValueError("not finite")
    return (-x, -y, z) if system == "RAS" else (x, y, z)


def _mrk_json(path: Path, text: str) -> list[Point]:
    try:
        doc = json.loads(text)
        out = []
        for m in doc["markups"]:
            system = str(m.get("coordinateSystem", "LPS")).upper()
            if system not in ("LPS", "RAS"):
                raise ValueError(system)
            out += [_to_lps(p["position"], system) for p in m["controlPoints"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise FileFormatError(f"{path}: not a 3D Slicer markups file") from None
    return out


def _fcsv(path: Path, lines: list[str]) -> list[Point]:
    system = "RAS"  # Slicer's .fcsv default before the header said otherwise
    out = []
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("#"):
            key, _, value = s[1:].partition("=")
            if key.strip().lower() == "coordinatesystem":
                v = value.strip().upper()
                system = {"0": "RAS", "1": "LPS"}.get(v, v)
                if system not in ("LPS", "RAS"):
                    raise FileFormatError(f"{path}, line {i}: unknown coordinate system {v!r}")
            continue
        if not s:
            continue
        try:
            out.append(_to_lps(s.split(",")[1:4], system))
        except (ValueError, TypeError):
            raise FileFormatError(f"{path}, line {i}: expected id,x,y,z,... in mm") from None
    return out


def _csv(path: Path, lines: list[str]) -> list[Point]:
    out = []
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#") or s[0].isalpha():
            continue  # blank, comment or header line
        parts = s.split(",")
        try:
            if len(parts) < 3:
                raise ValueError(s)
            out.append(_to_lps(parts[:3], "LPS"))
        except ValueError:
            raise FileFormatError(f"{path}, line {i}: expected x,y,z in LPS mm") from None
    return out


def read_points(path: str | Path) -> list[Point]:
    r"""Points from a Slicer ``.mrk.json`` or ``.fcsv`` file, or a CSV of ``x,y,z`` (LPS mm).

    Parameters
    ----------
    path : str or Path
        ``*.json`` (Slicer markups, LPS or RAS), ``*.fcsv`` (Slicer fiducials, LPS or
        RAS by its header), anything else: CSV with ``x,y,z`` in patient LPS mm per line
        (lines starting with a letter or ``#`` are skipped).

    Returns
    -------
    list of (x, y, z)
        Patient LPS coordinates in mm, in file order.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f.fcsv"
    >>> _ = p.write_text("# CoordinateSystem = RAS\nF-1,10,20,30,0,0,0,1,1,1,0,a,,\n")
    >>> read_points(p)
    [(-10.0, -20.0, 30.0)]
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"point file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: not a text file") from None
    if path.suffix.lower() == ".json":
        pts = _mrk_json(path, text)
    elif path.suffix.lower() == ".fcsv":
        pts = _fcsv(path, text.splitlines())
    else:
        pts = _csv(path, text.splitlines())
    if not pts:
        raise FileFormatError(f"{path}: holds no point")
    return pts


def markups_lines(lines: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> dict:
    """Slicer markups JSON of straight lines ``(name, start_lps_mm, end_lps_mm)``.

    Each line becomes a locked ``Line`` markup in LPS mm whose two control points are
    labelled ``entry i`` and ``tip i`` (the planner's applicator paths).
    """
    marks = []
    for i, (name, start, end) in enumerate(lines):
        marks.append(
            {
                "type": "Line",
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "locked": True,
                "labelFormat": f"{name} %N",
                "controlPoints": [
                    {"id": "1", "label": f"entry {i + 1}", "position": list(start)},
                    {"id": "2", "label": f"tip {i + 1}", "position": list(end)},
                ],
            }
        )
    return {"@schema": _SCHEMA, "markups": marks}


def write_markups_lines(
    lines: Sequence[tuple[str, Sequence[float], Sequence[float]]], path: str | Path
) -> Path:
    """Write :func:`markups_lines` to ``path`` (a ``.mrk.json`` file); returns the path."""
    path = Path(path)
    path.write_text(json.dumps(markups_lines(lines), indent=2) + "\n")
    return path

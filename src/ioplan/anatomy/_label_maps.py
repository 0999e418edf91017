"""Class maps of other tools: what each value of their label maps means for ioplan.

A :class:`ClassMap` names the values of a label map (``{value: class name}``) and says which
ioplan :class:`~ioplan.anatomy.Label` each class is (``targets``). Classes with no ioplan
meaning are kept under their own names as extra classes of the case (:class:`ExtraClass`),
avoided by needle paths unless the map gives them the role ``"pass"``.

Built in: TotalSegmentator's "total" (CT) and "total_mr" (MR) tasks
(``data/totalsegmentator.toml``, with the source commit). Any other tool: a TOML or JSON
file of ``name = value`` pairs, or ``[classes]`` ``value = "name"``.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ioplan.anatomy._labels import Label, label_from_name
from ioplan.errors import FileFormatError, InputError, InputFileNotFoundError

__all__ = [
    "EXTRA_ROLES",
    "LABEL_MAP_NAMES",
    "ClassMap",
    "ExtraClass",
    "class_map",
    "clean_class_name",
    "ioplan_label_for",
    "read_class_file",
    "totalsegmentator_map",
]

#: Roles of extra classes: ``"avoid"`` (a needle keeps its safety distance) or ``"pass"``.
EXTRA_ROLES = ("avoid", "pass")
#: Built-in map names accepted by ``--label-map``.
LABEL_MAP_NAMES = ("totalsegmentator", "totalsegmentator-ct", "totalsegmentator-mr")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_MAX_VALUE = 65535
# spellings of ioplan labels that other tools use
_SYNONYMS = {"tumour": "tumor", "inferior_vena_cava": "ivc", "vertebrae": "vertebra"}


@dataclass(frozen=True)
class ExtraClass:
    """A structure with no ioplan label, kept under its own name.

    Attributes
    ----------
    name : str
        Its name (lower case, letters, digits, ``_.-``).
    value : int
        Its value in the case's labels file (100-255).
    role : {"avoid", "pass"}
        ``"avoid"``: needle paths keep the safety distance from it.
    source : str
        Where it came from: ``"labels"`` (a segmentation), ``"auto"``, ``"user"``.
    classes : tuple of str
        The source classes merged into it.
    """

    name: str
    value: int
    role: str = "avoid"
    source: str = "labels"
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in EXTRA_ROLES:
            raise InputError(f"role of {self.name!r} must be avoid or pass, got {self.role!r}")

    def to_dict(self) -> dict[str, Any]:
        """The ``[[extra_classes]]`` entry of ``case.toml``."""
        return {
            "name": self.name,
            "value": self.value,
            "role": self.role,
            "source": self.source,
            "classes": list(self.classes),
        }


@dataclass(frozen=True)
class ClassMap:
    """What the values of a label map mean.

    Attributes
    ----------
    name : str
        ``"totalsegmentator total"``, ``"file NAME"``, ``"--label"``, ...
    classes : dict of int to str
        Value -> class name (empty: the segmentation names its own segments).
    targets : dict of str to str
        Class name -> ioplan label name, for classes the map translates.
    roles : dict of str to str
        Class name -> role of an extra class, where not ``"avoid"``.
    source : dict
        Provenance (repository and commit of a built-in map, or the file).
    """

    name: str
    classes: dict[int, str] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)


def clean_class_name(name: str, where: str) -> str:
    """A class name as kept in a case: lower case, spaces as ``_``; refused if odd."""
    n = re.sub(r"[\s/]+", "_", str(name).strip().lower())
    if not _NAME.match(n):
        raise FileFormatError(
            f"{where}: class name {name!r} must be letters, digits and _ . - (at most 64)"
        )
    return n


def ioplan_label_for(name: str, cmap: ClassMap | None = None) -> Label | None:
    """The ioplan label a class name means, or None (an extra class).

    Names are compared without case. Without a map, or when the map does not name it: an
    ioplan label or a common spelling of one (``tumour``, ``inferior_vena_cava``), a
    numbered tumour or lesion as segment editors name them (``Tumor 1``, ``lesion_2``), a
    side before or after a paired organ (``Right kidney``, ``lung_left``), and
    TotalSegmentator's own class names (``kidney_left``, ``vertebrae_L1``,
    ``portal_vein_and_splenic_vein``: a folder of its masks names each file so).

    Examples
    --------
    >>> [ioplan_label_for(n).name for n in ("Tumor_1", "lesion", "right_kidney",
    ...                                     "vertebrae_L1", "portal_vein_and_splenic_vein")]
    ['TUMOR', 'TUMOR', 'KIDNEY', 'VERTEBRA', 'PORTAL_VEIN']
    >>> ioplan_label_for("autochthon_left") is None
    True
    """
    low = str(name).lower()
    if cmap is not None:
        targets = {k.lower(): v for k, v in cmap.targets.items()}
        if low in targets:
            return label_from_name(targets[low])
    for key in _spellings(low):
        try:
            lbl = label_from_name(_SYNONYMS.get(key, key))
        except InputError:
            continue
        if lbl != Label.BACKGROUND:
            return lbl
    known = _totalsegmentator_targets()
    return label_from_name(known[low]) if low in known else None


def _spellings(low: str) -> list[str]:
    """``low`` and the forms a segment editor gives it (number, side and "lesion" removed)."""
    out = [low]
    base = re.sub(r"[_.-]?\d+$", "", low)  # "tumor_1", "lesion2"
    if base in ("tumor", "tumour", "lesion", "lesions", "tumors", "tumours"):
        out.append("tumor")
    side = re.sub(r"^(right|left)[_.-]|[_.-](right|left)$", "", low)
    if side != low:
        out.append(side)
    return out


@cache
def _totalsegmentator_targets() -> dict[str, str]:
    """TotalSegmentator's class names (both tasks, lower case) -> ioplan label names."""
    return {k.lower(): str(v) for k, v in _totalsegmentator_table()["labels"].items()}


@cache
def _totalsegmentator_table() -> dict[str, Any]:
    text = resources.files("ioplan.anatomy").joinpath("data/totalsegmentator.toml").read_text()
    return tomllib.loads(text)


def totalsegmentator_map(task: str = "total") -> ClassMap:
    """TotalSegmentator's class map ``task`` ("total" for CT, "total_mr" for MR).

    Examples
    --------
    >>> m = totalsegmentator_map("total")
    >>> m.classes[5], m.targets["liver"], m.targets["rib_left_1"]
    ('liver', 'liver', 'rib')
    >>> len(m.classes), len(totalsegmentator_map("total_mr").classes)
    (117, 50)
    """
    doc = _totalsegmentator_table()
    if task not in ("total", "total_mr"):
        raise InputError(f"TotalSegmentator task must be total or total_mr, got {task!r}")
    classes = {int(k): str(v) for k, v in doc[task]["classes"].items()}
    names = set(classes.values())
    targets = {k: str(v) for k, v in doc["labels"].items() if k in names}
    roles = {k: str(v) for k, v in doc.get("roles", {}).items() if k in names}
    return ClassMap(
        f"totalsegmentator {task}", classes, targets, roles, {**doc["source"], "task": task}
    )


def class_map(spec: str | Path, *, modality: str = "CT") -> ClassMap:
    """The class map ``--label-map`` names: a built-in name or a TOML/JSON file.

    ``"totalsegmentator"`` picks "total" for CT and "total_mr" for MR;
    ``"totalsegmentator-ct"`` and ``"totalsegmentator-mr"`` pick one.
    """
    s = str(spec).strip()
    if s.lower() in LABEL_MAP_NAMES:
        task = {"totalsegmentator-ct": "total", "totalsegmentator-mr": "total_mr"}.get(
            s.lower(), "total_mr" if modality == "MR" else "total"
        )
        return totalsegmentator_map(task)
    path = Path(s)
    if not s.lower().endswith((".toml", ".json")) and not path.is_file():
        raise InputError(
            f"unknown --label-map {s!r}: use {', '.join(LABEL_MAP_NAMES)}, or a .toml/.json "
            "file of name = value pairs"
        )
    if not path.is_file():
        raise InputFileNotFoundError(f"--label-map {path}: no such file")
    return read_class_file(path)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise FileFormatError(f"name {k!r} is given twice")
        seen[k] = v
    return seen


def _class_value(value: Any) -> int:
    """A label value as an integer, -1 when it is not one (5.5, 1e400, true, "five")."""
    if isinstance(value, bool):
        return -1
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else -1
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return -1


def read_class_file(path: str | Path) -> ClassMap:
    """A user's class file: ``name = value`` pairs, or ``[classes]`` with ``value = "name"``.

    TOML or JSON (by the suffix). An optional ``[roles]`` table gives extra classes the role
    ``"pass"``. Duplicate values or names are refused.
    """
    path = Path(path)
    where = f"--label-map {path}"
    try:
        text = path.read_text()
        if path.suffix.lower() == ".json":
            doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        else:
            doc = tomllib.loads(text)
    except FileFormatError as exc:
        raise FileFormatError(f"{where}: {exc}") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{where}: not valid {path.suffix[1:].upper()} ({exc})") from None
    if not isinstance(doc, dict):
        raise FileFormatError(f"{where}: must be a table of name = value pairs")
    roles_doc = doc.pop("roles", {})
    if "classes" in doc:
        table = doc.pop("classes")
        if doc or not isinstance(table, dict):
            raise FileFormatError(f'{where}: [classes] holds value = "name" pairs, nothing else')
        pairs = [(name, value) for value, name in table.items()]
    else:
        pairs = list(doc.items())
    classes: dict[int, str] = {}
    owner: dict[str, int] = {}
    for name, value in pairs:
        v = _class_value(value)
        if not isinstance(name, str) or not 1 <= v <= _MAX_VALUE:
            raise FileFormatError(
                f"{where}: {name!r} = {value!r}: values must be integers 1-{_MAX_VALUE}"
            )
        n = clean_class_name(name, where)
        if v in classes:
            raise FileFormatError(f"{where}: value {v} is given to both {classes[v]!r} and {n!r}")
        if n in owner:
            raise FileFormatError(f"{where}: name {n!r} is given to both {owner[n]} and {v}")
        classes[v] = n
        owner[n] = v
    if not classes:
        raise FileFormatError(f"{where}: names no class")
    if not isinstance(roles_doc, dict) or any(r not in EXTRA_ROLES for r in roles_doc.values()):
        raise FileFormatError(f"{where}: [roles] values must be avoid or pass")
    roles = {clean_class_name(k, where): str(v) for k, v in roles_doc.items()}
    return ClassMap(f"file {path.name}", classes, {}, roles, {"file": path.name})

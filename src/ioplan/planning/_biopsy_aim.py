"""Why a biopsy aims where it does: ``viable_target.aim`` and ``aim_reason`` of biopsy.json.

:func:`ioplan.planning.plan_biopsy` aims at the lesion's deepest point, or, over a
necrotic centre, at points of the viable rim. Over a necrosis the throw ends at its aim
point, a quarter throw beyond it, or is centred on it: the first of these (nearest the
skin) whose throw passes the biopsy's rules. A solid lesion's throw is centred on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ioplan.planning._biopsy import ViableTarget

__all__ = ["aim_record"]


def aim_record(
    vt: ViableTarget, shift_mm: float, throw_mm: float, refused: str | None = None
) -> dict[str, str]:
    """``aim`` (where in the lesion) and ``aim_reason`` (why, in one sentence).

    Parameters
    ----------
    vt : ViableTarget
        The lesion's viable/necrosis split (:func:`ioplan.planning.viable_target`).
    shift_mm : float
        How far (mm) the end of the throw (the fired tip) lies beyond the aim point along
        the needle: 0, a quarter throw, or half a throw (the throw centred on the point).
    throw_mm : float
        The gun's throw (mm).
    refused : str, optional
        Why the placement one step nearer the skin was refused on the chosen path (a
        biopsy rule, e.g. "throw leaves the viable lesion"); None if there was none.

    Returns
    -------
    dict
        ``{"aim": "enhancing rim" | "lesion centre", "aim_reason": str}``.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> solid = SimpleNamespace(necrosis=np.zeros(3, bool), necrotic_fraction=0.0,
    ...                         method="no necrotic centre: one intensity class")
    >>> rec = aim_record(solid, 10.0, 20.0)
    >>> rec["aim"], rec["aim_reason"][:56]
    ('lesion centre', 'no necrotic centre (one intensity class): the whole lesi')
    """
    throw = f"{throw_mm:g} mm throw"
    if not vt.necrosis.any():
        why = str(vt.method).removeprefix("no necrotic centre: ")
        return {
            "aim": "lesion centre",
            "aim_reason": f"no necrotic centre ({why}): the whole lesion is viable, so the "
            f"{throw} is centred on its deepest point (the aim point), {shift_mm:g} mm "
            "either side",
        }
    if abs(shift_mm) < 1e-9:
        placed = "ends at the aim point"
    elif abs(shift_mm - 0.5 * throw_mm) < 1e-9:
        placed = "is centred on the aim point"
    else:
        placed = f"ends {shift_mm:g} mm (a quarter throw) beyond the aim point"
    if refused:
        placed += f" (one nearer the skin was refused: {refused})"
    return {
        "aim": "enhancing rim",
        "aim_reason": f"necrotic centre ({100 * vt.necrotic_fraction:.0f} % of the lesion; "
        "a core of necrosis is non-diagnostic): aimed at the viable rim, with the whole "
        f"{throw} in viable lesion; the throw {placed}",
    }

"""The lumped microwave pattern's backward spread, widened as the tissue by the feed dries.

As the tissue around a microwave antenna's feed dries, the heating creeps back along the
shaft (the computed field shows it, ``validation/maxwell.md``; the "comet tail" of a
detuned antenna whose currents run back on the outer conductor). The lumped pattern
(:func:`ioplan.physics.microwave_source`) widens its Gaussian axial profile behind the
feed by ``g = (sigma_near(37) / sigma_near(T))^q``, at most :data:`MW_BACKWARD_SPREAD_MAX`.
"""

from __future__ import annotations

import math

import numpy as np

#: The most the lumped pattern's backward spread may grow by drying by the feed (a factor):
#: an ioplan bound that keeps the pattern within the fixed cylinder it is cut at (4 of its
#: widest spreads behind the feed). The fits reach it only at the strongest drying
#: (sigma / sigma37 about 0.6 with an exponent of 2).
MW_BACKWARD_SPREAD_MAX = 3.0
#: The backward spread's growth is applied in steps of this in ln g (0.5 %).
SPREAD_STEP = 0.005


def widened_weights(w0: np.ndarray, back: np.ndarray, log_back: np.ndarray, memo: dict,
                    dried: float, exponent: float) -> np.ndarray:  # fmt: skip
    """The pattern's weights with the spread behind the feed grown by ``dried^exponent``.

    ``dried``: sigma_near(37) / sigma_near(T) (>= 1 as the tissue dries); ``back``: the
    pattern's voxels behind the feed, ``log_back`` the log of their Gaussian profile. The
    growth goes in steps of :data:`SPREAD_STEP` (the zones move < 0.05 mm), so that once
    the tissue by the feed settles the widened weights kept in ``memo`` are reused instead
    of recomputed each update.
    """
    g = min(MW_BACKWARD_SPREAD_MAX, max(1.0, dried) ** exponent)
    step = round(math.log(g) / SPREAD_STEP)
    if step <= 0:
        return w0
    kept_step, wide = memo.get("wide", (0, None))
    if kept_step != step:
        g = math.exp(step * SPREAD_STEP)
        wide = w0.copy()
        wide[back] *= np.exp(log_back * (1.0 / (g * g) - 1.0))
        memo["wide"] = (step, wide)  # one assignment: step and weights agree
    return wide

"""Robustness of an ablation plan to applicator placement error, by Monte Carlo.

Model
-----
Each applicator ``i`` has a needle from its skin entry point ``E_i`` to its tip
``T_i`` (LPS mm) and a zone part, a boolean mask on the planning grid: the
ablation zone this applicator makes. In practice the needle lands off its plan,
and the part moves rigidly with it:

1. a tilt ``R_i`` about the skin entry: a rotation by the rotation vector
   ``w = a v1 + b v2`` (radians), with ``v1, v2`` an orthonormal pair
   perpendicular to the needle axis ``u = (T - E) / |T - E|`` and ``a, b``
   drawn from ``N(0, (angle / sqrt 2)^2)``, so that the RMS tilt
   ``sqrt(E|w|^2)`` is ``angle`` (no spin about the needle's own axis);
2. then a translation ``e_i ~ N(0, (tip / sqrt 3)^2 I_3)`` (mm), so that the
   RMS length of the tip error is ``tip``.

A point ``x`` of the nominal part goes to ``x' = E + R (x - E) + e``. A target
point ``p`` is covered in a sample when, for some applicator, the inverse
transformed point ``R^T (p - E - e) + E`` falls in that applicator's part
(nearest voxel; a point outside the grid is not covered). Only the target's
voxel centres are transformed: no image is resampled.

A sample is *complete* when every tumour point (tumour voxels inside the
target) is covered and at least ``goal_fraction`` of the target points are.
The robust coverage is the fraction of complete samples, with a Wilson score
95 % interval. The nominal plan (zero error) is reported separately; it is not
one of the samples.

Random numbers: ``np.random.default_rng(seed).standard_normal((samples,
n_applicators, 5))`` is drawn once, up front (sample-major, applicator-minor);
columns 0-2 are the tip error ``(x, y, z)`` in units of ``tip / sqrt 3`` and
columns 3-4 the tilt components ``(a, b)`` in units of ``angle / sqrt 2``. The
same seed gives the same numbers whatever ``chunk`` is, and whatever the error
magnitudes are (a zero angle still consumes its draws).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ioplan.errors import InputError
from ioplan.imaging import Grid

__all__ = ["PlacementError", "robust_coverage"]

#: Two-sided 95 % standard normal quantile (Wilson interval).
_Z95 = 1.959963984540054

#: One-sentence statement of the model, recorded in the result.
MODEL = (
    "Each applicator's zone part moves rigidly with its needle: a tilt about the skin "
    "entry (two perpendicular components, each N(0, (angle/sqrt2)^2)) then a tip "
    "translation N(0, (tip/sqrt3)^2 I3); a target voxel centre is covered when its "
    "inverse-transformed position falls in some applicator's part (nearest voxel)."
)


@dataclass(frozen=True)
class PlacementError:
    """Applicator placement error, the Monte Carlo sample count and its seed.

    Parameters
    ----------
    tip_mm : float
        RMS length of the 3-D tip error in mm, 0 to 20. Each axis has standard
        deviation ``tip_mm / sqrt(3)``.
    angle_deg : float
        RMS tilt of the needle axis in degrees, 0 to 30, about the skin entry.
        Each of the two perpendicular components has standard deviation
        ``angle_deg / sqrt(2)``.
    samples : int
        Number of Monte Carlo samples, 10 to 100000.
    seed : int
        Seed of :func:`numpy.random.default_rng`.

    Examples
    --------
    >>> PlacementError(tip_mm=3.0).samples
    200
    """

    tip_mm: float = 2.0
    angle_deg: float = 3.0
    samples: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        tip = _number(self.tip_mm, "tip_mm")
        if not 0.0 <= tip <= 20.0:
            raise InputError(f"tip_mm must be 0 to 20 mm, got {self.tip_mm!r}")
        angle = _number(self.angle_deg, "angle_deg")
        if not 0.0 <= angle <= 30.0:
            raise InputError(f"angle_deg must be 0 to 30 degrees, got {self.angle_deg!r}")
        samples = _integer(self.samples, "samples")
        if not 10 <= samples <= 100_000:
            raise InputError(f"samples must be 10 to 100000, got {self.samples!r}")
        seed = _integer(self.seed, "seed")
        if seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "tip_mm", tip)
        object.__setattr__(self, "angle_deg", angle)
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "seed", seed)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{name} must be finite, got {value!r}")
    return x


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _mask(value: Any, grid: Grid, name: str) -> np.ndarray:
    m = np.asarray(value)
    if m.shape != grid.shape:
        raise InputError(f"{name} must have the grid's shape {grid.shape}, got {m.shape}")
    return m.astype(bool, copy=False)


def _perpendicular_basis(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors ``v1, v2`` with ``(v1, v2, u)`` orthonormal."""
    helper = np.eye(3)[int(np.argmin(np.abs(u)))]
    v1 = np.cross(u, helper)
    v1 /= np.linalg.norm(v1)
    return v1, np.cross(u, v1)


def _rotations(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` from rotation vectors ``(..., 3)``, rad (Rodrigues)."""
    theta = np.linalg.norm(rotvec, axis=-1)
    safe = np.where(theta > 0.0, theta, 1.0)
    k = rotvec / safe[..., None]
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    cross = np.stack(
        [np.stack([zero, -kz, ky], -1), np.stack([kz, zero, -kx], -1),
         np.stack([-ky, kx, zero], -1)],
        axis=-2,
    )  # fmt: skip
    s = np.sin(theta)[..., None, None]
    c = (1.0 - np.cos(theta))[..., None, None]
    return np.eye(3) + s * cross + c * (cross @ cross)


def _coverage(
    points: np.ndarray,
    flat_parts: list[np.ndarray],
    entries: np.ndarray,
    rot: np.ndarray,
    shift: np.ndarray,
    grid: Grid,
) -> np.ndarray:
    """Which points each sample covers, ``(S, N)`` bool.

    ``rot`` is ``(S, A, 3, 3)``, ``shift`` ``(S, A, 3)`` in mm, ``entries``
    ``(A, 3)`` and ``points`` ``(N, 3)`` in LPS mm.
    """
    shape = np.asarray(grid.shape)
    covered = np.zeros((rot.shape[0], points.shape[0]), dtype=bool)
    for i, part in enumerate(flat_parts):
        # Row-vector form of R^T (p - E - e) + E is (p - E - e) @ R + E.
        rel = points[None, :, :] - (entries[i] + shift[:, i, :])[:, None, :]
        q = rel @ rot[:, i] + entries[i]
        idx = np.rint(grid.lps_to_index(q)).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < shape), axis=-1)
        np.clip(idx, 0, shape - 1, out=idx)
        flat = np.ravel_multi_index((idx[..., 0], idx[..., 1], idx[..., 2]), grid.shape)
        covered |= inside & part[flat]
    return covered


def _wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval of a binomial proportion ``k / n``."""
    p = k / n
    z2 = _Z95 * _Z95
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = _Z95 * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def robust_coverage(
    parts: Sequence[np.ndarray],
    needles: Sequence[tuple[Sequence[float], Sequence[float]]],
    grid: Grid,
    tumour: np.ndarray,
    target: np.ndarray,
    error: PlacementError = PlacementError(),
    *,
    goal_fraction: float = 0.99,
    chunk: int = 32,
) -> dict[str, Any]:
    """Probability that a plan still covers the tumour and its margin under placement error.

    See the module docstring for the model.

    Parameters
    ----------
    parts : sequence of ndarray of bool, each of shape ``grid.shape``
        One mask per applicator: the zone this applicator makes, which moves
        with its needle.
    needles : sequence of ``(tip_mm, entry_mm)``
        Per applicator, the tip and the skin entry point, each ``(x, y, z)`` in
        LPS mm. The tilt pivots about the entry.
    grid : Grid
        Geometry of every mask.
    tumour : ndarray of bool, shape ``grid.shape``
        The tumour; its voxels inside ``target`` must all be covered.
    target : ndarray of bool, shape ``grid.shape``
        Tumour plus margin shell to cover (it may exclude vessel lumen). Only
        its voxel centres are evaluated.
    error : PlacementError
        Tip and angle errors, the sample count and the seed.
    goal_fraction : float
        Fraction of the target points, 0 to 1, that a complete sample covers.
    chunk : int
        Samples evaluated at once (memory ``~ 50 * chunk * n_target`` bytes);
        the result does not depend on it.

    Returns
    -------
    dict
        JSON-ready: ``robust_coverage`` (probability, 4 decimals), ``ci95``
        (Wilson ``[lo, hi]``), ``samples``, ``complete_samples``,
        ``placement_error_mm``, ``angle_error_deg``, ``seed``,
        ``goal_fraction``, ``nominal_complete``,
        ``nominal_target_coverage_percent``, ``mean_target_coverage_percent``,
        ``p5_target_coverage_percent``, ``mean_tumour_coverage_percent``,
        ``per_sample_target_coverage_percent``,
        ``per_sample_tumour_coverage_percent`` (lists, 0.01 %), ``model``
        (one sentence) and ``runtime_s``.

    Raises
    ------
    ioplan.errors.InputError
        No parts, a count of needles that differs, a mask of the wrong shape,
        an empty tumour or target, a tumour outside the target, a needle of
        zero length or a ``goal_fraction`` outside 0 to 1.

    Examples
    --------
    >>> g = Grid((21, 21, 21))
    >>> zz, yy, xx = np.indices(g.shape) - 10
    >>> ball = lambda r: zz**2 + yy**2 + xx**2 <= r * r
    >>> out = robust_coverage([ball(9)], [((10, 10, 10), (10, 10, 150))], g, ball(4),
    ...                       ball(5), PlacementError(tip_mm=0.0, angle_deg=0.0, samples=10))
    >>> out["robust_coverage"], out["nominal_complete"]
    (1.0, True)
    """
    t0 = time.perf_counter()
    if not isinstance(error, PlacementError):
        raise InputError(f"error must be a PlacementError, got {type(error).__name__}")
    if len(parts) == 0:
        raise InputError("parts must hold at least one applicator's zone, got none")
    if len(needles) != len(parts):
        raise InputError(f"needles must hold one per part ({len(parts)}), got {len(needles)}")
    goal = _number(goal_fraction, "goal_fraction")
    if not 0.0 <= goal <= 1.0:
        raise InputError(f"goal_fraction must be 0 to 1, got {goal_fraction!r}")
    chunk = _integer(chunk, "chunk")
    if chunk < 1:
        raise InputError(f"chunk must be a positive integer, got {chunk!r}")
    flat_parts = [_mask(p, grid, f"parts[{i}]").ravel() for i, p in enumerate(parts)]
    tumour_m = _mask(tumour, grid, "tumour")
    target_m = _mask(target, grid, "target")
    if not tumour_m.any():
        raise InputError("tumour must hold at least one voxel, got an empty mask")
    if not target_m.any():
        raise InputError("target must hold at least one voxel, got an empty mask")

    tips = np.empty((len(parts), 3))
    entries = np.empty((len(parts), 3))
    for i, needle in enumerate(needles):
        try:
            tip, entry = needle
            tips[i] = np.asarray(tip, dtype=float).reshape(3)
            entries[i] = np.asarray(entry, dtype=float).reshape(3)
        except (TypeError, ValueError):
            raise InputError(
                f"needles[{i}] must be (tip_mm, entry_mm), two (x, y, z), got {needle!r}"
            ) from None
    if not np.all(np.isfinite(tips)) or not np.all(np.isfinite(entries)):
        raise InputError("needles must hold finite coordinates")
    lengths = np.linalg.norm(tips - entries, axis=1)
    if np.any(lengths <= 0.0):
        i = int(np.argmin(lengths))
        raise InputError(f"needles[{i}] has its tip at its entry (zero length)")

    index = np.argwhere(target_m)
    points = grid.index_to_lps(index)
    is_tumour = tumour_m[tuple(index.T)]
    n_tumour = int(is_tumour.sum())
    if n_tumour == 0:
        raise InputError("tumour must overlap the target; no tumour voxel is in the target")
    n_target = points.shape[0]

    # All draws up front, sample-major then applicator-minor: chunking cannot change them.
    n_s, n_a = error.samples, len(parts)
    draws = np.random.default_rng(error.seed).standard_normal((n_s, n_a, 5))
    shift = draws[..., :3] * (error.tip_mm / math.sqrt(3.0))
    tilt = draws[..., 3:] * (math.radians(error.angle_deg) / math.sqrt(2.0))
    axes = (tips - entries) / lengths[:, None]
    basis = np.stack([np.stack(_perpendicular_basis(u)) for u in axes])  # (A, 2, 3)
    rotvec = np.einsum("sak,akj->saj", tilt, basis)

    def fractions(rot: np.ndarray, sh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cov = _coverage(points, flat_parts, entries, rot, sh, grid)
        n_cov_target = cov.sum(axis=1)
        n_cov_tumour = (cov & is_tumour).sum(axis=1)
        return n_cov_target, n_cov_tumour

    nom_target, nom_tumour = fractions(np.broadcast_to(np.eye(3), (1, n_a, 3, 3)),
                                       np.zeros((1, n_a, 3)))  # fmt: skip
    cov_target = np.empty(n_s, dtype=np.int64)
    cov_tumour = np.empty(n_s, dtype=np.int64)
    for s0 in range(0, n_s, chunk):
        s1 = min(n_s, s0 + chunk)
        cov_target[s0:s1], cov_tumour[s0:s1] = fractions(_rotations(rotvec[s0:s1]), shift[s0:s1])

    # Compare counts, not floats: goal 0.99 of 100 points is 99 points.
    need = goal * n_target - 1e-9 * n_target

    def complete(n_t: np.ndarray, n_u: np.ndarray) -> np.ndarray:
        return (n_u == n_tumour) & (n_t >= need)

    ok = complete(cov_target, cov_tumour)
    k = int(ok.sum())
    lo, hi = _wilson(k, n_s)
    target_pct = 100.0 * cov_target / n_target
    tumour_pct = 100.0 * cov_tumour / n_tumour
    return {
        "robust_coverage": round(k / n_s, 4),
        "ci95": [round(lo, 4), round(hi, 4)],
        "samples": n_s,
        "complete_samples": k,
        "placement_error_mm": error.tip_mm,
        "angle_error_deg": error.angle_deg,
        "seed": error.seed,
        "goal_fraction": goal,
        "nominal_complete": bool(complete(nom_target, nom_tumour)[0]),
        "nominal_target_coverage_percent": round(100.0 * float(nom_target[0]) / n_target, 2),
        "mean_target_coverage_percent": round(float(target_pct.mean()), 2),
        "p5_target_coverage_percent": round(float(np.percentile(target_pct, 5.0)), 2),
        "mean_tumour_coverage_percent": round(float(tumour_pct.mean()), 2),
        "per_sample_target_coverage_percent": [round(float(v), 2) for v in target_pct],
        "per_sample_tumour_coverage_percent": [round(float(v), 2) for v in tumour_pct],
        "model": MODEL,
        "runtime_s": round(time.perf_counter() - t0, 3),
    }

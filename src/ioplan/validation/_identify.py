"""How well a microwave calibration determines each of its parameters (identifiability).

A fit gives one value per parameter; this says how far each could move before the fit got
measurably worse. At the stored fit the errors (predicted minus published, mm, as the fit
weighs them: :func:`ioplan.validation._calibrate.fit_errors`) are differentiated by central
finite differences in the logarithm of each parameter (the scale the fit searches on), and
the local linear (Gauss-Newton) approximation of least squares gives the covariance
``s^2 (J^T J)^-1`` with ``s^2`` the residual variance ``sum e^2 / (n - p)`` (Bates & Watts,
*Nonlinear Regression Analysis and Its Applications*, Wiley 1988, section 2.3). A parameter
whose 95 % interval spans more than a factor of 2 either way, or which is nearly collinear
with others, is one the rows do not pin down: a candidate to fix instead of fitting
(issue 19: "as few, physically meaningful parameters per device as possible").

The approximation is local: it reads the curvature of the cost at the fit, not its global
shape, and the fit's soft bound on the largest error (session 57) is left out (it adds to
the cost only for rows beyond the bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ioplan.devices import Applicator
from ioplan.errors import InputError
from ioplan.validation._calibrate import fit_errors, free_parameters
from ioplan.validation._zones import ZoneRow

__all__ = ["IDENTIFIED_FACTOR", "Identifiability", "parameter_identifiability"]

#: A parameter counts as identified when its 95 % interval lies within this factor of its
#: value either way (2: the interval is narrower than from half to twice the value).
IDENTIFIED_FACTOR = 2.0
#: Two-sided 95 % normal quantile.
_Z95 = 1.959964


@dataclass(frozen=True)
class Identifiability:
    """Local sensitivity and uncertainty of a fitted parameter set (see the module)."""

    device: str
    parameters: tuple[str, ...]
    values: dict[str, float]
    #: d(error, mm) / d(ln parameter): one row per weighed error, one column per parameter
    jacobian_mm: np.ndarray
    errors_mm: np.ndarray
    residual_sd_mm: float
    #: standard error of ln(parameter); inf where the rows do not constrain it at all
    standard_error_log: dict[str, float]
    correlation: np.ndarray
    singular_values: np.ndarray
    #: the parameter combination the rows constrain least (unit vector in ln-parameter)
    weakest_direction: dict[str, float]
    evaluations: int
    spacing_mm: float
    rows: int

    @property
    def condition_number(self) -> float:
        s = self.singular_values
        return float(s[0] / s[-1]) if s[-1] > 0 else math.inf

    def interval_95(self, name: str) -> tuple[float, float]:
        """The parameter's approximate 95 % interval (multiplicative, from the log scale)."""
        se, v = self.standard_error_log[name], self.values[name]
        if not math.isfinite(se):
            return (0.0, math.inf)
        f = math.exp(_Z95 * se)
        return (v / f, v * f)

    def identified(self, name: str) -> bool:
        se = self.standard_error_log[name]
        return math.isfinite(se) and math.exp(_Z95 * se) < IDENTIFIED_FACTOR

    def sensitivity_mm_per_10_percent(self, name: str) -> float:
        """Root mean square change of the errors (mm) when the parameter grows by 10 %."""
        j = self.jacobian_mm[:, self.parameters.index(name)]
        return float(math.log(1.1) * math.sqrt(float(np.mean(j * j))))

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return round(float(x), 4) if math.isfinite(x) else None

        out: dict[str, Any] = {
            "device": self.device,
            "spacing_mm": self.spacing_mm,
            "rows": self.rows,
            "errors_weighed": int(self.errors_mm.size),
            "evaluations": self.evaluations,
            "residual_sd_mm": num(self.residual_sd_mm),
            "condition_number": num(self.condition_number),
            "identified_factor": IDENTIFIED_FACTOR,
            "parameters": {},
            "correlation": {
                a: {b: num(self.correlation[i, j]) for j, b in enumerate(self.parameters)}
                for i, a in enumerate(self.parameters)
            },
            "weakest_direction": {k: num(v) for k, v in self.weakest_direction.items()},
        }
        for name in self.parameters:
            lo, hi = self.interval_95(name)
            out["parameters"][name] = {
                "value": num(self.values[name]),
                "standard_error_log": num(self.standard_error_log[name]),
                "interval_95": [num(lo), num(hi)],
                "identified": self.identified(name),
                "sensitivity_mm_per_10_percent": num(self.sensitivity_mm_per_10_percent(name)),
            }
        return out


def parameter_identifiability(
    app: Applicator,
    rows: Sequence[ZoneRow],
    *,
    spacing_mm: float = 1.0,
    step_log: float = 0.05,
    initial_temperature_c: float | None = None,
    log: Callable[[str], None] | None = None,
    fixed: Sequence[str] = (),
) -> Identifiability:
    """Sensitivity and Gauss-Newton uncertainty of ``app``'s fitted parameters on ``rows``.

    ``step_log`` is the finite-difference step in ln(parameter) (0.05: +-5 %); at a bound
    the difference is one-sided. Costs 2 x (number of parameters) + 1 model evaluations.
    ``fixed`` names parameters the fit held rather than fitted (the calibration record's
    ``fixed_parameters``): they are left out, as they are not estimated from the rows.
    """
    if app.modality != "mw":
        raise InputError(f"{app.id} is {app.modality}; only microwave antennas are fitted here")
    if not (math.isfinite(step_log) and 0.001 <= step_log <= 0.5):
        raise InputError(f"step_log must be 0.001-0.5, got {step_log!r}")
    rows = [r for r in rows if r.device == app.id]
    params = free_parameters(app, fixed)
    names = tuple(params)
    if len(rows) < 3:
        raise InputError(f"{app.id}: need at least 3 published rows")
    values = {k: float(getattr(app, k)) for k in names}
    for k, (lo, hi) in params.items():
        if not lo <= values[k] <= hi:
            raise InputError(f"{app.id}: {k} = {values[k]:g} is outside its bounds {lo:g}-{hi:g}")

    n_eval = 0

    def errors_at(vals: dict[str, float]) -> np.ndarray:
        nonlocal n_eval
        n_eval += 1
        if log is not None:
            log(f"[{n_eval}/{2 * len(names) + 1}] " + ", ".join(
                f"{k} {v:.4g}" for k, v in vals.items()))  # fmt: skip
        return fit_errors(replace(app, **vals), rows, spacing_mm, initial_temperature_c)

    e0 = errors_at(values)
    jac = np.zeros((e0.size, len(names)))
    for j, k in enumerate(names):
        lo, hi = params[k]
        up = min(values[k] * math.exp(step_log), hi)
        down = max(values[k] * math.exp(-step_log), lo)
        e_up = errors_at({**values, k: up}) if up > values[k] else e0
        e_down = errors_at({**values, k: down}) if down < values[k] else e0
        jac[:, j] = (e_up - e_down) / (math.log(up) - math.log(down))

    n, p = jac.shape
    dof = max(n - p, 1)
    s2 = float(np.sum(e0 * e0)) / dof
    _u, sv, vt = np.linalg.svd(jac, full_matrices=False)
    tol = sv[0] * max(n, p) * np.finfo(float).eps if sv.size and sv[0] > 0 else 0.0
    inv_s2 = np.where(sv > tol, 1.0 / np.where(sv > tol, sv, 1.0) ** 2, np.inf)
    # cov = s2 V diag(1/sv^2) V^T; a null direction (sv = 0) makes every parameter it
    # touches unconstrained (inf)
    with np.errstate(invalid="ignore"):
        cov = s2 * np.einsum("ik,k,jk->ij", vt.T, np.where(np.isfinite(inv_s2), inv_s2, 0.0),
                             vt.T)  # fmt: skip
    free = ~np.isfinite(inv_s2)
    touched = np.any(np.abs(vt[free]) > 1e-9, axis=0) if free.any() else np.zeros(p, bool)
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    se[touched] = np.inf
    d = np.where(se > 0, se, 1.0)
    corr = cov / np.outer(d, d)
    corr[touched, :] = np.nan
    corr[:, touched] = np.nan
    np.fill_diagonal(corr, 1.0)
    weakest = vt[-1] * (1.0 if vt[-1][np.argmax(np.abs(vt[-1]))] > 0 else -1.0)
    return Identifiability(
        device=app.id,
        parameters=names,
        values=values,
        jacobian_mm=jac,
        errors_mm=e0,
        residual_sd_mm=math.sqrt(s2),
        standard_error_log={k: float(se[j]) for j, k in enumerate(names)},
        correlation=corr,
        singular_values=np.where(sv > tol, sv, 0.0),
        weakest_direction={k: float(weakest[j]) for j, k in enumerate(names)},
        evaluations=n_eval,
        spacing_mm=spacing_mm,
        rows=len(rows),
    )

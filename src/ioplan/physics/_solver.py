"""The bioheat solver: problem and state dataclasses, the pure step, and the time loop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ioplan.errors import InputError
from ioplan.imaging import Grid
from ioplan.physics import _kernel, _perfusion, _subvoxel
from ioplan.physics._damage import (
    ARRHENIUS_A_PER_S,
    ARRHENIUS_EA_J_MOL,
    arrhenius_log_constants,
    rate_integral_table,
)
from ioplan.physics._kernel import (
    damage_cpu,
    damage_gpu,
    energy_from_theta,
    fast_coefficients,
    interface_faces,
    pack_properties,
    perfusion_flags,
    prepare_source,
    step_cpu,
    step_gpu,
    theta_from_energy,
    uniform_mask,
)
from ioplan.physics._materials import BOUNDARY_ID, MaterialTable
from ioplan.physics._perfusion import perfusion_share_cpu, perfusion_share_gpu
from ioplan.physics._subvoxel import Surfaces, check_surfaces, cut_cpu, cut_gpu

__all__ = [
    "DAMAGE_INTERVAL_S",
    "SOURCE_UPDATE_S",
    "Source",
    "ThermalProblem",
    "ThermalState",
    "init_state",
    "integrate",
    "run",
    "stable_time_step",
    "step",
]


#: How often (s of simulated time) the time loop integrates thermal damage, extremes and
#: perfusion shutdown; exact for a temperature linear in time in between. Chosen by
#: measurement (bench/engine.py, ``accuracy``): between every step and every 10 s, the
#: 10-min microwave zone changes by -0.2 % in volume (0.02 mm in radius), an RF zone at
#: 1.5 mm by -0.8 %, a cryo zone not at all.
DAMAGE_INTERVAL_S = 10.0
#: How often (s) the time loop re-evaluates a source that does not say (``Source.update_s``).
SOURCE_UPDATE_S = 5.0
#: CUDA threads per block (x, y, z) on a device, and on numba's simulator, which starts one
#: Python thread per CUDA thread and runs the blocks in turn: small blocks waste fewer idle
#: threads on the tests' small grids (2.7 times fewer on 4 x 8 x 12). The kernels index by
#: cuda.grid and share nothing within a block, so the shape changes only the speed.
THREADS_DEVICE, THREADS_SIMULATOR = (32, 4, 2), (4, 4, 4)


@dataclass(frozen=True, eq=False)
class ThermalProblem:
    """What is simulated: grid, materials, fixed temperatures, physics switches.

    Attributes
    ----------
    grid : Grid
        The (cropped) simulation grid; spacing in mm.
    material : ndarray of uint8, shape ``grid.shape``
        Material id per voxel (label values for tissue). The outer layer is
        set to the far boundary (body temperature) by :func:`init_state`.
    materials : MaterialTable
        Properties per material id.
    blood_temperature_c : float
        Arterial blood temperature in the Pennes term.
    body_temperature_c : float
        Initial temperature and far-boundary temperature.
    surfaces : Surfaces, optional
        Applicator surfaces below the voxel size (:mod:`ioplan.physics._subvoxel`): the
        cut faces of free voxels next to a cylinder held at a fixed group's temperature.
    boundary_material : int
        Material of the outer voxel layer: the far boundary at body
        temperature by default; a material with zero conductivity makes an
        insulated boundary.
    constant_properties : bool
        Switch off phase change, temperature-dependent conductivity and
        perfusion shutdown (verification against analytic solutions).
    perfusion_stop_c : float
        Perfusion stops below this temperature (frozen tissue).
    arrhenius_a_per_s, arrhenius_ea_j_mol : float
        Arrhenius damage parameters A (1/s) and Ea (J/mol); default liver, from the
        tissue table (:data:`ioplan.physics.ARRHENIUS_A_PER_S`).
    dtype : str
        ``"float32"`` (fast) or ``"float64"`` (verification) state arrays.
    """

    grid: Grid
    material: np.ndarray
    materials: MaterialTable
    blood_temperature_c: float = 37.0
    body_temperature_c: float = 37.0
    constant_properties: bool = False
    perfusion_stop_c: float = -2.0
    arrhenius_a_per_s: float = ARRHENIUS_A_PER_S
    arrhenius_ea_j_mol: float = ARRHENIUS_EA_J_MOL
    dtype: str = "float32"
    boundary_material: int = BOUNDARY_ID
    surfaces: Surfaces | None = field(default=None, repr=False)
    packed: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        mat = np.asarray(self.material)
        if mat.shape != self.grid.shape:
            raise InputError(f"material shape {mat.shape} does not match grid {self.grid.shape}")
        if min(self.grid.shape) < 3:
            raise InputError(f"the grid needs at least 3 voxels per axis, got {self.grid.shape}")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be float32 or float64, got {self.dtype!r}")
        for name in ("blood_temperature_c", "body_temperature_c"):
            v = getattr(self, name)
            if not np.isfinite(v) or not 20.0 <= v <= 45.0:
                raise InputError(f"{name} must be 20-45 degC, got {v}")
        m = np.ascontiguousarray(mat.astype(np.uint8))
        bm = int(self.boundary_material)
        m[0, :, :] = m[-1, :, :] = bm
        m[:, 0, :] = m[:, -1, :] = bm
        m[:, :, 0] = m[:, :, -1] = bm
        object.__setattr__(self, "material", m)
        object.__setattr__(self, "packed", pack_properties(self.materials))
        if self.surfaces is not None:
            check_surfaces(self.surfaces, m, self.packed)

    @property
    def spacing_m(self) -> tuple[float, float, float]:
        """Voxel spacing ``(z, y, x)`` in metres."""
        return self.grid.spacing_m


@dataclass(frozen=True, eq=False)
class ThermalState:
    """The state after ``time_s`` seconds (arrays indexed ``(z, y, x)``).

    Attributes
    ----------
    energy_j_m3 : ndarray
        Enthalpy per volume from 37 °C.
    temperature_c : ndarray
        Temperature.
    omega : ndarray
        Arrhenius damage integral (>= 1: coagulated).
    cem43_min : ndarray
        Thermal dose, cumulative equivalent minutes at 43 °C.
    tmin_c, tmax_c : ndarray
        Lowest and highest temperature reached.
    """

    time_s: float
    energy_j_m3: np.ndarray
    temperature_c: np.ndarray
    omega: np.ndarray
    cem43_min: np.ndarray
    tmin_c: np.ndarray
    tmax_c: np.ndarray

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays in kernel order (E, T, omega, cem, tmin, tmax)."""
        return (
            self.energy_j_m3,
            self.temperature_c,
            self.omega,
            self.cem43_min,
            self.tmin_c,
            self.tmax_c,
        )


def init_state(problem: ThermalProblem, temperature_c: Any = None) -> ThermalState:
    """The state at t = 0: body temperature everywhere (or ``temperature_c``).

    Parameters
    ----------
    problem : ThermalProblem
        The problem (its dtype sets the arrays').
    temperature_c : float or ndarray, optional
        Initial temperature (degC), a scalar or an array of ``problem.grid.shape``; the
        outer layer (far boundary) is set to the body temperature.

    Returns
    -------
    ThermalState
        Enthalpy from the temperature, zero damage, ``tmin_c = tmax_c = temperature``.
    """
    dt = np.dtype(problem.dtype)
    t0 = problem.body_temperature_c if temperature_c is None else temperature_c
    t = np.empty(problem.grid.shape, dt)
    t[...] = t0
    if not np.all(np.isfinite(t)):
        raise InputError("initial temperature_c must be finite")
    t[problem.material == BOUNDARY_ID] = problem.body_temperature_c
    e = np.empty_like(t)
    energy_from_theta(t - dt.type(_kernel.T_REF), problem.material, problem.packed,
                      1 if problem.constant_properties else 0, e, np.empty_like(t))  # fmt: skip
    return ThermalState(0.0, e, t, np.zeros_like(t), np.zeros_like(t), t.copy(), t.copy())


def stable_time_step(
    problem: ThermalProblem, *, safety: float = 0.9, min_temperature_c: float | None = None
) -> float:
    """The largest stable explicit step (s), times ``safety``.

    Forward Euler on the 7-point stencil is stable when
    ``dt * sum_faces(G / d) + dt * b <= C`` for every voxel, with ``G`` the
    face conductance, ``C`` the (smallest) volumetric heat capacity and ``b``
    the perfusion coefficient. We bound it with the largest conductivity and
    wall coefficient and the smallest heat capacity of the materials present.
    Frozen tissue (7x the diffusivity) counts only if the lowest temperature
    the run can reach, ``min_temperature_c`` (default: unknown), is below the
    liquidus.

    Returns
    -------
    float
        Time step (s). Liver at 1 mm: about 1.2 s (ENGINE.md: dx^2 / (6 alpha)).
    """
    tab = problem.materials
    present = np.unique(problem.material)
    free = present[tab.fixed_group[present] < 0]
    if free.size == 0:
        raise InputError("no free voxels to simulate")
    k_max = float(
        np.max(
            np.concatenate([tab.k_w_m_k[free], tab.k_frozen_w_m_k[free], tab.k_mushy_w_m_k[free]])
        )
    )
    never_frozen = min_temperature_c is not None and min_temperature_c >= float(
        np.max(tab.liquidus_c[free])
    )
    if problem.constant_properties or never_frozen:
        k_max = float(np.max(tab.k_w_m_k[free]))
        c_min = float(np.min(tab.c_vol_j_m3_k[free]))
    else:
        c_min = float(
            np.min(np.concatenate([tab.c_vol_j_m3_k[free], tab.c_vol_frozen_j_m3_k[free]]))
        )
    fixed = present[tab.fixed_group[present] >= 0]
    h_max = float(np.max(tab.wall_h_w_m2_k[fixed], initial=0.0))
    k_fixed = float(np.max(tab.k_w_m_k[fixed], initial=0.0))
    rate = 0.0
    for d in problem.spacing_m:
        # largest face conductance per area: tissue-tissue (harmonic mean <= k_max / d
        # between equal conductors, and <= 2 min(k) / d in general), or a vessel wall
        g = 2.0 * k_max * k_fixed / (d * (k_max + k_fixed)) if k_fixed > k_max else k_max / d
        if h_max > 0:
            g = max(g, 1.0 / (0.5 * d / k_max + 1.0 / h_max))
        rate += 2.0 * g / d  # two faces per axis
    rate += float(np.max(tab.perfusion_w_m3_k[free]))
    return safety * c_min / rate


def _group_array(groups: Any, body_c: float) -> np.ndarray:
    g = np.asarray(groups if groups is not None else [body_c], dtype=np.float64).reshape(-1)
    if g.size == 0:
        g = np.array([body_c])
    return g


def _ln_a(problem: ThermalProblem) -> tuple[float, float]:
    return arrhenius_log_constants(problem.arrhenius_a_per_s, problem.arrhenius_ea_j_mol)


def step(
    problem: ThermalProblem,
    state: ThermalState,
    dt_s: float,
    *,
    source_w_m3: np.ndarray | None = None,
    group_temperatures_c: Any = None,
    backend: str = "cpu",
) -> ThermalState:
    """One explicit step of the Pennes bioheat equation: a pure function, a new state.

    Forward Euler on the enthalpy form ``dE/dt = div(k grad T) + w_b c_b (T_a - T) + Q``
    with ``T = T(E)`` piecewise linear (freezing, boiling), finite volumes on the
    7-point stencil; Arrhenius Omega and CEM43 by the midpoint rule over the step.

    Parameters
    ----------
    problem : ThermalProblem
        Grid, materials and switches.
    state : ThermalState
        The state at ``state.time_s``; not modified.
    dt_s : float
        Time step (s); stable when at most :func:`stable_time_step`.
    source_w_m3 : ndarray, optional
        Power density Q (W/m^3), shape ``problem.grid.shape`` (default zero).
    group_temperatures_c : sequence of float, optional
        Temperature (degC) of each fixed group (group 0: body/blood temperature).
    backend : {"cpu", "gpu"}
        ``"gpu"`` runs the CUDA kernel (or numba's simulator when
        ``NUMBA_ENABLE_CUDASIM=1``).

    Returns
    -------
    ThermalState
        The state at ``state.time_s + dt_s``.

    References
    ----------
    Pennes HH. J Appl Physiol 1948;1:93-122. DOI 10.1152/jappl.1948.1.2.93

    Examples
    --------
    A uniform 1 MW/m^3 in a block of liver without perfusion: after 1 s the centre has
    warmed by Q dt / (rho c) = 1e6 / (1079 x 3540) = 0.26 degC.

    >>> import numpy as np
    >>> from ioplan.anatomy import Label
    >>> from ioplan.imaging import Grid
    >>> from ioplan.physics import ThermalProblem, tissue_material_table
    >>> g = Grid((5, 5, 5), (2.0, 2.0, 2.0))
    >>> tab = tissue_material_table(perfusion_scale=0.0)
    >>> p = ThermalProblem(g, np.full(g.shape, Label.LIVER, np.uint8), tab, dtype="float64",
    ...                    constant_properties=True)
    >>> s1 = step(p, init_state(p), 1.0, source_w_m3=np.full(g.shape, 1e6))
    >>> round(float(s1.temperature_c[2, 2, 2]) - 37.0, 4)
    0.2618
    """
    runner = _Runner(problem, backend)
    out = runner.advance(state.arrays(), dt_s, 1, source_w_m3, group_temperatures_c)
    return ThermalState(state.time_s + dt_s, *out)


_GPU_CHECKED: dict[str, str | None] = {}


def _gpu_broken(problem: ThermalProblem) -> str | None:
    """None when the CUDA kernels compile and run here for the problem's dtype; else why.

    Once per process and dtype: two steps and a damage update of a 4^3 block of the
    problem's middle material through the GPU path. A CUDA installation that finds the
    device but cannot compile (a numba-cuda that misses an attribute of the installed
    numpy, say) then gives a one-line error instead of a traceback at the first launch.
    """
    dtype = str(np.dtype(problem.dtype))
    if dtype not in _GPU_CHECKED:
        try:
            m = int(problem.material.flat[problem.material.size // 2])
            g = Grid((4, 4, 4), (1.0, 1.0, 1.0))
            tiny = ThermalProblem(g, np.full(g.shape, m, np.uint8), problem.materials,
                                  dtype=dtype)  # fmt: skip
            r = _Runner(tiny, "gpu", damage_interval_s=0.01, check_gpu=False)
            r.advance(init_state(tiny).arrays(), 0.01, 2, None, None)
            _GPU_CHECKED[dtype] = None
        except Exception as exc:  # any failure of the device path is the reason
            _GPU_CHECKED[dtype] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return _GPU_CHECKED[dtype]


class _Runner:
    """Runs the kernels over a run's internal state (internal to the time loop).

    The kernels carry theta = T - 37 degC (:mod:`ioplan.physics._kernel`) between
    calls; :meth:`start` builds it from a state's arrays, :meth:`run` advances it,
    :meth:`temperature` gives the temperature for a source, :meth:`finish` flushes the
    damage and rebuilds the public arrays (the enthalpy from theta). Damage, extremes
    and perfusion shutdown are integrated every ``damage_interval_s`` seconds (and at
    :meth:`finish`), exactly for a temperature linear in time in between.
    """

    def __init__(self, problem: ThermalProblem, backend: str,
                 damage_interval_s: float = DAMAGE_INTERVAL_S, *,
                 check_gpu: bool = True) -> None:  # fmt: skip
        if backend not in ("cpu", "gpu"):
            raise InputError(f"backend must be 'cpu' or 'gpu', got {backend!r}")
        if backend == "gpu":
            from numba import cuda

            if not cuda.is_available():
                raise InputError("no CUDA GPU is available here; run without --gpu")
            if check_gpu:
                reason = _gpu_broken(problem)
                if reason is not None:
                    raise InputError(f"the CUDA kernels do not run here ({reason}); "
                                     "run without --gpu")  # fmt: skip
        self.problem = problem
        self.backend = backend
        _kernel.warm_up(problem.dtype)
        self.damage_interval_s = float(damage_interval_s)
        self.ln_a, self.ea_r = _ln_a(problem)
        self.rates = rate_integral_table(self.ln_a, self.ea_r)
        self.dz, self.dy, self.dx = problem.spacing_m
        self.uniform = uniform_mask(problem.material, problem.packed)
        P = problem.packed
        self.fidx, self.face_g, face_mat = interface_faces(
            problem.material, P, self.uniform, problem.spacing_m
        )
        self.face_inv_c = P[_kernel.INVC, face_mat]
        present = np.flatnonzero(np.bincount(problem.material.reshape(-1), minlength=256))
        free = present[P[_kernel.FIXED, present] < 0]
        # one free material (a block of tissue): the fast path needs no per-voxel look-up
        self.m_only = int(free[0]) if free.size == 1 else -1
        self.const = 1 if problem.constant_properties else 0
        if self.const:
            self.lo_th, self.hi_th = -np.inf, np.inf
        else:
            # the fast path's range: liquid for every material present, below boiling
            self.lo_th = float(np.max(P[_kernel.TL, present])) - _kernel.T_REF
            self.hi_th = float(np.min(P[_kernel.TV1, free], initial=np.inf)) - _kernel.T_REF
        cut = problem.surfaces if problem.surfaces is not None else Surfaces.empty()
        self.cut = (
            np.ascontiguousarray(cut.index, np.int64),
            np.ascontiguousarray(cut.coefficient_m2, np.float64),
            np.ascontiguousarray(cut.faces, np.uint8),
            np.ascontiguousarray(cut.group, np.int32),
        )
        self.general_updates = 0
        self.source_power_w = 0.0
        #: wall time (s) in the step kernel, the damage kernel and the source's preparation
        self.timings = {"kernel_s": 0.0, "damage_s": 0.0, "source_prepare_s": 0.0}
        self._dev: dict[str, Any] = {}
        self._pending_s = 0.0
        self._on_device = False

    # -- state ---------------------------------------------------------------------
    def start(self, arrays) -> None:
        """Take ``arrays`` (E, T, omega, cem, tmin, tmax) as the state to advance."""
        p = self.problem
        dtype = np.dtype(p.dtype)
        e, _, om, cem, tmin, tmax = (np.array(a, dtype, copy=True) for a in arrays)
        th = np.empty(p.grid.shape, dtype)
        theta_from_energy(np.ascontiguousarray(e), p.material, p.packed, self.const, th)
        perf = np.empty(p.grid.shape, np.uint8)
        perfusion_flags(p.material, p.packed, perf)
        perfusion_share_cpu(om, tmin, perf, p.material, p.packed, self.const,
                            float(p.perfusion_stop_c))  # fmt: skip
        self.arrays = {"th": th, "th2": th.copy(), "snap": th.copy(), "om": om, "cem": cem,
                       "tmin": tmin, "tmax": tmax, "perf": perf}  # fmt: skip
        self.qs = np.zeros(p.grid.shape, dtype)
        self._pending_s = 0.0
        self._on_device = False
        if self.backend == "gpu":
            self._to_device()

    def temperature(self) -> np.ndarray:
        """The current temperature (degC), a new array."""
        th = self._dev["th"].copy_to_host() if self._on_device else self.arrays["th"]
        return th + th.dtype.type(_kernel.T_REF)

    def finish(self) -> tuple[np.ndarray, ...]:
        """Flush the damage and return the state's arrays (E, T, omega, cem, tmin, tmax)."""
        self._damage()
        self._to_host()
        p = self.problem
        a = self.arrays
        dtype = np.dtype(p.dtype)
        e_out = np.empty(p.grid.shape, dtype)
        t_out = np.empty(p.grid.shape, dtype)
        energy_from_theta(a["th"], p.material, p.packed, self.const, e_out, t_out)
        return (e_out, t_out, a["om"].copy(), a["cem"].copy(), a["tmin"].copy(),
                a["tmax"].copy())  # fmt: skip

    # -- stepping ------------------------------------------------------------------
    def run(self, dt: float, n: int, source, groups) -> None:
        """Advance by ``n`` steps of ``dt`` with power density ``source`` (W/m^3 or None).

        :attr:`source_power_w` holds the source's power in free voxels (W) and
        :attr:`general_updates` counts the voxel updates that took the general
        (enthalpy) path.
        """
        p = self.problem
        tic = time.perf_counter()
        if source is None:
            self.qs[...] = 0
            power = 0.0
        else:
            q = np.asarray(source)
            if q.shape != p.grid.shape:
                raise InputError(f"source shape {q.shape} does not match grid {p.grid.shape}")
            power = prepare_source(np.ascontiguousarray(q), p.material, p.packed, float(dt),
                                   self.qs)  # fmt: skip
        self.source_power_w = float(power) * p.grid.voxel_volume_m3
        gt = _group_array(groups, p.body_temperature_c)
        a_fast, b_fast = fast_coefficients(
            p.packed, float(dt), min(self.dz, self.dy, self.dx), np.dtype(p.dtype)
        )
        c6 = np.ascontiguousarray(
            (float(dt) * self.face_g * self.face_inv_c[:, None]).astype(p.dtype)
        )
        if c6.shape[0] == 0:
            c6 = np.zeros((1, 6), p.dtype)
        scal = (
            float(dt), self.dz, self.dy, self.dx, float(p.blood_temperature_c), self.const,
            self.lo_th, self.hi_th,
        )  # fmt: skip
        self.timings["source_prepare_s"] += time.perf_counter() - tic
        if self.backend == "gpu":
            self._run_gpu(dt, n, gt, a_fast, b_fast, scal)
            return
        a = self.arrays
        for _ in range(n):
            tic = time.perf_counter()
            self.general_updates += step_cpu(
                a["th"], a["th2"], p.material, self.qs, a["perf"], self.uniform, a_fast, b_fast,
                self.fidx, c6, p.packed, gt, *scal, self.m_only,
            )  # fmt: skip
            if self.cut[0].size:
                cut_cpu(*self.cut, a["th"], a["th2"], p.material, self.qs, a["perf"], p.packed,
                        gt, *scal[:6])  # fmt: skip
                self.general_updates += self.cut[0].size
            self.timings["kernel_s"] += time.perf_counter() - tic
            a["th"], a["th2"] = a["th2"], a["th"]
            self._pending_s += dt
            if self._pending_s >= self.damage_interval_s * (1 - 1e-9):
                self._damage()

    def _damage(self) -> None:
        if self._pending_s <= 0:
            return
        tic = time.perf_counter()
        p = self.problem
        stop = (self.const, float(p.perfusion_stop_c))
        if self._on_device:
            d = self._dev
            damage_gpu[self._blocks, self._threads](
                d["th"], d["snap"], d["om"], d["cem"], d["tmin"], d["tmax"], d["perf"],
                d["mat"], d["P"], self._pending_s, self.ln_a, self.ea_r, d["rates"],
            )  # fmt: skip
            perfusion_share_gpu[self._blocks, self._threads](
                d["om"], d["tmin"], d["perf"], d["mat"], d["P"], *stop)
        else:
            a = self.arrays
            damage_cpu(a["th"], a["snap"], a["om"], a["cem"], a["tmin"], a["tmax"], a["perf"],
                       p.material, p.packed, self._pending_s, self.ln_a, self.ea_r,
                       self.rates)  # fmt: skip
            perfusion_share_cpu(a["om"], a["tmin"], a["perf"], p.material, p.packed, *stop)
        self._pending_s = 0.0
        self.timings["damage_s"] += time.perf_counter() - tic

    # -- GPU -----------------------------------------------------------------------
    def _to_device(self) -> None:
        from numba import cuda

        p = self.problem
        d = {k: cuda.to_device(v) for k, v in self.arrays.items()}
        d.update(mat=cuda.to_device(p.material), P=cuda.to_device(p.packed),
                 uni=cuda.to_device(self.uniform), rates=cuda.to_device(self.rates),
                 qs=cuda.to_device(self.qs))  # fmt: skip
        d["cut"] = tuple(cuda.to_device(c) for c in self.cut)
        self._dev = d
        nz, ny, nx = p.grid.shape
        from numba import config

        self._threads = THREADS_SIMULATOR if config.ENABLE_CUDASIM else THREADS_DEVICE
        self._blocks = tuple(
            -(-n_ // t_) for n_, t_ in zip((nx, ny, nz), self._threads, strict=True)
        )
        self._on_device = True

    def _to_host(self) -> None:
        if self._on_device:
            for k in self.arrays:
                self.arrays[k] = self._dev[k].copy_to_host()

    def _run_gpu(self, dt, n, gt, a_fast, b_fast, scal) -> None:
        from numba import cuda

        d = self._dev
        d["qs"].copy_to_device(self.qs)
        d_gt, d_a, d_b = (cuda.to_device(x) for x in (gt, a_fast, b_fast))
        tic = time.perf_counter()
        damage_before = self.timings["damage_s"]
        for _ in range(n):
            step_gpu[self._blocks, self._threads](
                d["th"], d["th2"], d["mat"], d["qs"], d["perf"], d["uni"], d_a, d_b, d["P"],
                d_gt, *scal,
            )  # fmt: skip
            n_cut = self.cut[0].size
            if n_cut:
                cut_gpu[-(-n_cut // 128), 128](
                    *d["cut"], d["th"], d["th2"], d["mat"], d["qs"], d["perf"], d["P"], d_gt,
                    *scal[:6],
                )  # fmt: skip
            d["th"], d["th2"] = d["th2"], d["th"]
            self._pending_s += dt
            if self._pending_s >= self.damage_interval_s * (1 - 1e-9):
                self._damage()
        # the launches are asynchronous: the steps' time is the loop's until the device is
        # done, less the damage launches' (host) time counted in damage_s
        cuda.synchronize()
        spent = time.perf_counter() - tic - (self.timings["damage_s"] - damage_before)
        self.timings["kernel_s"] += max(0.0, spent)

    def advance(self, arrays, dt, n, source, groups):
        """Advance ``arrays`` (E, T, omega, cem, tmin, tmax) by ``n`` steps of ``dt``."""
        self.start(arrays)
        self.run(dt, n, source, groups)
        return self.finish()


@dataclass(frozen=True)
class Source:
    """A heat source as a pair of pure functions over a frozen state.

    Like jax-md's integrators (``init_fn``, ``step_fn``), the source keeps nothing
    between calls: what it carries (a solved field, a preconditioner, a generator's
    state) lives in the state it returns, which the time loop hands back on the next
    call.

    Attributes
    ----------
    init : callable
        ``init(problem) -> state``: the source's state before the first step.
    step : callable
        ``step(state, temperature_c, time_s) -> (power_density_w_m3, state)``: the power
        density (W/m^3, ndarray of ``problem.grid.shape``, or None for none) to apply
        from ``time_s`` on, given the temperature field (degC) then, and the new state.
        It must not modify ``state``.
    fixed_temperatures : callable, optional
        ``fixed_temperatures(state, time_s) -> sequence of float``: the temperatures
        (degC) of the fixed groups (group 0: body), for sources that drive them (a
        cryoprobe). None: the time loop's ``group_temperatures``.
    update_s : float, optional
        How often (s) the source wants to be re-evaluated; None: the time loop's
        default (:data:`SOURCE_UPDATE_S`).
    takes_interval : bool
        True: the time loop calls ``step(state, temperature_c, time_s, interval_s)``,
        with the time (s) the returned power density will be held (a source that must
        not put more energy into a voxel than it can take in that time: RF in boiling
        tissue).
    next_event_s : callable, optional
        ``next_event_s(state) -> float``: the time (s) of the source's next scheduled
        change (the end of a generator's pulse), inf or nan for none. The time loop then
        ends the interval that holds it on the first step at or after it, so the source
        is re-evaluated then, not up to a whole interval later (a read interval that
        does not divide a 15 s pulse lengthened it by up to 4 s, differently on every
        grid).

    Examples
    --------
    A constant power density, as a pair (``init`` returns no state):

    >>> import numpy as np
    >>> q = np.zeros((3, 3, 3))
    >>> src = Source(init=lambda problem: None, step=lambda st, t, time_s: (q, st))
    >>> src.step(src.init(None), None, 0.0)[0] is q
    True
    """

    init: Callable[[ThermalProblem], Any]
    step: Callable[..., tuple[np.ndarray | None, Any]]
    fixed_temperatures: Callable[[Any, float], Any] | None = None
    update_s: float | None = None
    takes_interval: bool = False
    next_event_s: Callable[[Any], float] | None = None


def _until_event(n: int, event_in_s: float, dt: float) -> int:
    """How many of an interval's ``n`` steps to run before an event ``event_in_s`` s ahead.

    The interval ends on the first step at or after the event (all ``n`` steps if the
    event lies beyond them).

    >>> _until_event(4, 5.0, 1.1), _until_event(4, 9.0, 1.1), _until_event(4, 0.0, 1.1)
    (4, 4, 4)
    >>> _until_event(8, 5.0, 1.1)
    5
    """
    if not (np.isfinite(event_in_s) and event_in_s > 1e-9 * dt):
        return n
    return max(1, min(n, math.ceil(event_in_s / dt - 1e-9)))


def run(
    problem: ThermalProblem,
    duration_s: float,
    *,
    dt_s: float | None = None,
    source: Source | Callable[[ThermalState], np.ndarray | None] | np.ndarray | None = None,
    source_update_s: float | None = None,
    group_temperatures: Callable[[float], Any] | Any = None,
    state: ThermalState | None = None,
    backend: str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> tuple[ThermalState, dict[str, float]]:
    """Integrate the bioheat equation for ``duration_s`` seconds.

    The time loop around :func:`step`: the largest stable step (or ``dt_s``), the
    source re-evaluated every ``source_update_s`` seconds, fixed groups followed in
    time, progress reported, the result checked for a physical temperature range.

    Parameters
    ----------
    problem : ThermalProblem
        Grid, materials and physics switches.
    duration_s : float
        Simulated time (s), >= 0.
    dt_s : float, optional
        Time step (s); default :func:`stable_time_step`. Larger than the stable step
        is refused. The step is shortened so that a whole number of steps fits.
    source : Source, callable, ndarray or None
        Power density (W/m^3) on the grid, shape ``problem.grid.shape``: a map, a
        function of the :class:`ThermalState` returning one (or None), or a
        :class:`Source` pair (its state starts from ``source.init(problem)``; use
        :func:`integrate` to carry it over between calls).
    source_update_s : float, optional
        How often the source is re-evaluated (s): default the :class:`Source`'s own
        ``update_s``, else :data:`SOURCE_UPDATE_S`.
    group_temperatures : callable or sequence of float, optional
        Temperatures (degC) of the fixed groups (group 0: the far boundary and blood
        vessels), or a function of time returning them.
    state : ThermalState, optional
        Where to start (default :func:`init_state`).
    backend : {"cpu", "gpu"}
        Kernel to run.
    progress : callable, optional
        Called with the simulated time (s) after each chunk.

    Returns
    -------
    state : ThermalState
        The final state.
    stats : dict
        ``steps``, ``dt_s`` (s), ``runtime_s`` (s), ``voxel_updates_per_s`` and
        ``energy_deposited_j`` (J, the source's power in free voxels times time).

    Raises
    ------
    InputError
        A negative duration, an unstable step, or a temperature that left -200 to
        500 degC (too much power for the model or grid).

    References
    ----------
    Pennes HH. Analysis of tissue and arterial blood temperatures in the resting human
    forearm. J Appl Physiol 1948;1:93-122. DOI 10.1152/jappl.1948.1.2.93

    Examples
    --------
    One watt in one voxel of a 1 mm block of liver for 10 s:

    >>> import numpy as np
    >>> from ioplan.anatomy import Label
    >>> from ioplan.imaging import Grid
    >>> from ioplan.physics import ThermalProblem, tissue_material_table
    >>> g = Grid((9, 9, 9), (1.0, 1.0, 1.0))
    >>> liver = np.full(g.shape, Label.LIVER, np.uint8)
    >>> p = ThermalProblem(g, liver, tissue_material_table())
    >>> q = np.zeros(g.shape)
    >>> q[4, 4, 4] = 1.0 / g.voxel_volume_m3
    >>> final, stats = run(p, 10.0, source=q)
    >>> round(stats["energy_deposited_j"], 6)
    10.0
    >>> bool(final.temperature_c[4, 4, 4] > 40.0)
    True
    """
    src_state = source.init(problem) if isinstance(source, Source) else None
    final, _, stats = integrate(
        problem, duration_s, dt_s=dt_s, source=source, source_state=src_state,
        source_update_s=source_update_s, group_temperatures=group_temperatures, state=state,
        backend=backend, progress=progress,
    )  # fmt: skip
    return final, stats


def integrate(
    problem: ThermalProblem,
    duration_s: float,
    *,
    dt_s: float | None = None,
    source: Source | Callable[[ThermalState], np.ndarray | None] | np.ndarray | None = None,
    source_state: Any = None,
    source_update_s: float | None = None,
    group_temperatures: Callable[[float], Any] | Any = None,
    state: ThermalState | None = None,
    backend: str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> tuple[ThermalState, Any, dict[str, float]]:
    """:func:`run`, carrying a :class:`Source`'s state in and out.

    Returns ``(state, source_state, stats)``: pass ``source_state`` to the next call
    to continue the same source (e.g. running from snapshot to snapshot).
    """
    if not np.isfinite(duration_s) or duration_s < 0:
        raise InputError(f"duration_s must be >= 0, got {duration_s}")
    st = state if state is not None else init_state(problem)
    pair = source if isinstance(source, Source) else None
    driven = pair is not None and pair.fixed_temperatures is not None

    def groups_at(t: float) -> Any:
        """The fixed groups' temperatures at time ``t`` (the source's, if it drives them)."""
        if driven:
            return pair.fixed_temperatures(source_state, t)  # the source's current state
        return group_temperatures(t) if callable(group_temperatures) else group_temperatures

    follow = driven or callable(group_temperatures)
    # the lowest temperature the run can reach: initial state or a fixed group
    samples = np.linspace(0.0, max(duration_s, 0.0), 50)
    if follow:
        lows = [float(np.min(_group_array(groups_at(st.time_s + t), 37.0))) for t in samples]
    else:
        lows = [float(np.min(_group_array(group_temperatures, problem.body_temperature_c)))]
    t_low = min([float(np.min(st.temperature_c)), *lows])
    if driven:
        # a source that drives its groups from the tissue's state (a cryoprobe at its
        # cooling-power limit) can go colder than the samples above, taken at its
        # initial state: assume it can freeze the tissue
        t_low = min(t_low, float(np.min(problem.materials.solidus_c)) - 1.0)
    dt_max = stable_time_step(problem, min_temperature_c=t_low)
    dt = dt_max if dt_s is None else float(dt_s)
    if not np.isfinite(dt) or dt <= 0:
        raise InputError(f"dt_s must be > 0, got {dt_s}")
    if dt > dt_max / 0.9 * 1.0000001:
        raise InputError(f"dt_s {dt} exceeds the stable step {dt_max / 0.9:.4g} s")
    n_total = math.ceil(duration_s / dt - 1e-9) if duration_s > 0 else 0
    if n_total:
        dt = duration_s / n_total
    if source_update_s is None:
        own = pair.update_s if pair is not None else None
        source_update_s = own if own else SOURCE_UPDATE_S
    if not np.isfinite(source_update_s) or source_update_s <= 0:
        raise InputError(f"source_update_s must be > 0, got {source_update_s}")
    chunk = max(1, round(source_update_s / dt))
    if follow:
        # probe temperatures change within seconds: follow them at least every second
        chunk = min(chunk, max(1, round(1.0 / dt)))
    _kernel.warm_up(problem.dtype)  # load the compiled kernels before the clock starts
    _perfusion.warm_up(str(np.dtype(problem.dtype)))
    if problem.surfaces is not None and problem.surfaces.size:
        _subvoxel.warm_up(problem.dtype)
    t0 = time.perf_counter()
    runner = _Runner(problem, backend)
    runner.start(st.arrays())
    energy = 0.0
    t_now = st.time_s
    done = 0
    source_s = 0.0
    while done < n_total:
        n = min(chunk, n_total - done)
        tic = time.perf_counter()
        if pair is not None and pair.next_event_s is not None:
            # an event already scheduled (a pulse under way) ends this interval
            n = _until_event(n, pair.next_event_s(source_state) - t_now, dt)
        if pair is not None:
            if pair.takes_interval:
                q, source_state = pair.step(source_state, runner.temperature(), t_now, n * dt)
            else:
                q, source_state = pair.step(source_state, runner.temperature(), t_now)
        elif callable(source):
            q = source(ThermalState(t_now, *runner.finish()))
        else:
            q = source
        source_s += time.perf_counter() - tic
        if pair is not None and pair.next_event_s is not None:
            # an event the step itself scheduled (a pulse that begins now); the source
            # was told the longer interval, but its output here is the pulse's own
            n = _until_event(n, pair.next_event_s(source_state) - t_now, dt)
        t_mid = t_now + 0.5 * n * dt
        groups = groups_at(t_mid)
        runner.run(dt, n, q, groups)
        energy += runner.source_power_w * dt * n
        done += n
        t_now = st.time_s + done * dt
        if progress is not None:
            progress(t_now)
    arrays = runner.finish()
    runtime = time.perf_counter() - t0
    final = ThermalState(t_now, *arrays)
    t_fin = final.temperature_c
    if not np.all(np.isfinite(t_fin)) or float(np.max(t_fin)) > 500 or float(np.min(t_fin)) < -200:
        raise InputError(
            "temperature left the physical range (-200 to 500 degC): the power is too high "
            "for this model or grid"
        )
    interior = max(0, int(np.prod([s - 2 for s in problem.grid.shape])))
    stats = {
        "steps": float(n_total),
        "dt_s": dt,
        "runtime_s": runtime,
        "voxel_updates_per_s": interior * n_total / runtime if runtime > 0 else 0.0,
        "energy_deposited_j": energy,
        "kernel_s": runner.timings["kernel_s"],
        "damage_s": runner.timings["damage_s"],
        "source_s": source_s + runner.timings["source_prepare_s"],
        "general_updates": float(runner.general_updates),
    }
    return final, source_state, stats

"""A plan's uncertainty: Monte Carlo over placement, perfusion and properties, on Dask.

Each sample perturbs every applicator (tilt about the skin entry, then tip translation;
:mod:`ioplan.batch._montecarlo`), the perfusion and the property factor, makes the
ablation zone with a *zone model* and measures the tumour + margin coverage. The
engine model (:class:`EngineZoneModel`) runs the full simulation; the sphere model
(:class:`SphereZoneModel`: a ball of known radius around each tip) is the analytic
reference the tests compare with a chi distribution, through the same code path.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.batch._cluster import describe, run_tasks
from ioplan.batch._montecarlo import (
    UncertaintySpec,
    first_order_indices,
    lognormal_factor,
    perturb_needle,
    sample_draws,
    wilson_interval,
)
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume
from ioplan.planning import zone_with_shaft

__all__ = [
    "UNCERTAINTY_FOLDER_ENTRIES",
    "EngineZoneModel",
    "Needle",
    "SphereZoneModel",
    "UncertaintyResult",
    "engine_model_from_plan",
    "run_uncertainty",
    "write_uncertainty",
]

UNCERTAINTY_SCHEMA_VERSION = 1
UNCERTAINTY_FOLDER_ENTRIES = frozenset(
    {"coverage_probability.nii.gz", "uncertainty.json", "figures"}
)
#: the planner's standard cryo protocol and lethal isotherm (planning/_surrogate.py)
_CRYO_PROTOCOL = "freeze:600,thaw:300,freeze:600"


@dataclass(frozen=True)
class Needle:
    """One applicator as planned: tip and skin entry (LPS mm), direction, setting."""

    tip_mm: tuple[float, float, float]
    direction: tuple[float, float, float]
    entry_mm: tuple[float, float, float] | None = None
    power_w: float | None = None
    duration_s: float | None = None
    protocol: str | None = None


def _target_masks(grid: Grid, tumour: np.ndarray, margin_mm: float) -> np.ndarray:
    dist = ndimage.distance_transform_edt(~tumour, sampling=grid.spacing_mm)
    return dist <= margin_mm


@dataclass(frozen=True)
class SphereZoneModel:
    """Analytic reference: the zone is the voxels within ``radius_mm`` of a perturbed tip.

    No engine, no perfusion or property effect: with a point tumour at the nominal tip
    the complete-coverage probability is ``P(|e| <= R)``, a chi distribution (3 dof) in
    ``|e| sqrt 3 / tip``.
    """

    grid: Grid
    tumour: np.ndarray = field(repr=False)
    target: np.ndarray = field(repr=False)
    needles: tuple[Needle, ...]
    radius_mm: float

    def zone(self, needles: list[tuple[np.ndarray, np.ndarray]], perfusion_factor: float,
             property_factor: float) -> np.ndarray:  # fmt: skip
        idx = np.indices(self.grid.shape).reshape(3, -1).T
        pts = self.grid.index_to_lps(idx)
        z = np.zeros(len(pts), bool)
        for tip, _ in needles:
            z |= np.linalg.norm(pts - tip, axis=1) <= self.radius_mm
        return z.reshape(self.grid.shape)


@dataclass(frozen=True)
class EngineZoneModel:
    """The full simulation of the plan's applicators on the case (``ioplan.physics``).

    Sequential delivery: one run per applicator, zones joined; simultaneous: one run.
    The perfusion factor scales the organ's tissue-table perfusion, applied to every
    tissue (``perfusion_per_s``; None when its CV is 0: the tissue table, as planned).
    The property factor scales the delivered power (device output and tissue absorption
    together; the engine's public API cannot vary a case's tissue table), and for a
    cryoprobe its calibrated cooling power per probe (the gas flow it gets; a probe without
    one, held at its temperature, ignores it). The applicator's own voxels count as ablated
    where the zone surrounds them, as the planner counts them.
    """

    case: Any = field(repr=False)
    applicator_id: str
    needles: tuple[Needle, ...]
    spacing_mm: float
    delivery: str
    base_perfusion_1_per_s: float | None
    tumour: np.ndarray = field(repr=False)
    target: np.ndarray = field(repr=False)

    @property
    def grid(self) -> Grid:
        return self.case.labels.grid

    def zone(self, needles: list[tuple[np.ndarray, np.ndarray]], perfusion_factor: float,
             property_factor: float) -> np.ndarray:  # fmt: skip
        from ioplan.devices import applicator, calibration_record
        from ioplan.imaging import resample
        from ioplan.physics import CryoProtocol, Placement, SimulationConfig, simulate

        app = applicator(self.applicator_id)
        perf = None
        if self.base_perfusion_1_per_s is not None:
            perf = min(0.1, self.base_perfusion_1_per_s * perfusion_factor)

        def setting(nd: Needle) -> dict[str, Any]:
            if app.modality == "cryo":
                proto = nd.protocol if isinstance(nd.protocol, str) else _CRYO_PROTOCOL
                kw = {"protocol": CryoProtocol.parse(proto)}
                q = (calibration_record(app.id) or {}).get("cooling_power_w")
                if q is not None and math.isfinite(float(q)):
                    kw["cryo_cooling_power_w"] = float(q) * property_factor
                return kw
            return {"power_w": min(300.0, float(nd.power_w) * property_factor),
                    "duration_s": float(nd.duration_s)}  # fmt: skip

        def place(tip, d) -> dict[str, Any]:
            return {"tip_mm": tuple(map(float, tip)), "direction": tuple(map(float, d))}

        groups = (
            [[i] for i in range(len(needles))]
            if self.delivery == "sequential" or len(needles) == 1
            else [list(range(len(needles)))]
        )
        g = self.grid
        out = np.zeros(g.shape, bool)
        for grp in groups:
            kw = setting(self.needles[grp[0]])
            if len(grp) == 1:
                kw |= place(*needles[grp[0]])
            else:
                kw["placements"] = tuple(
                    Placement(**place(*needles[i])) for i in grp
                )  # fmt: skip
            cfg = SimulationConfig(applicator=app, case=self.case, spacing_mm=self.spacing_mm,
                                   tissue=None, perfusion_per_s=perf, **kw)  # fmt: skip
            res = simulate(cfg)
            z = resample(Volume(res.zone_mask.astype(np.uint8), res.grid), g,
                         interpolation="nearest")  # fmt: skip
            out |= np.asarray(z.array) > 0
        return zone_with_shaft(out, g, app.diameter_mm, self.spacing_mm, needles)


def _input_names(n: int) -> list[str]:
    names = []
    for i in range(1, n + 1):
        names += [f"applicator{i}_tip_{a}_mm" for a in "xyz"]
        names += [f"applicator{i}_tilt_a_deg", f"applicator{i}_tilt_b_deg"]
    return [*names, "perfusion_factor", "property_factor"]


def _sample(model, item: tuple[int, int, int, UncertaintySpec, float]) -> dict[str, Any]:
    """One Monte Carlo sample (runs on a worker): its inputs, zone and coverage."""
    index, seed, samples, spec, goal_fraction = item
    t0 = time.perf_counter()
    needle_z, factor_z = sample_draws(seed, index, samples, len(model.needles))
    placed = [
        perturb_needle(nd.tip_mm, nd.direction, nd.entry_mm, needle_z[i], spec)
        for i, nd in enumerate(model.needles)
    ]
    perf = lognormal_factor(float(factor_z[0]), spec.perfusion_cv)
    prop = lognormal_factor(float(factor_z[1]), spec.property_cv)
    zone = model.zone(placed, perf, prop)
    target_cov = float(zone[model.target].mean())
    tumour_all = bool(zone[model.tumour].all())
    inputs = []
    for i in range(len(model.needles)):
        inputs += list(needle_z[i, :3] * spec.placement_error_mm / math.sqrt(3))
        inputs += list(needle_z[i, 3:] * spec.angle_error_deg / math.sqrt(2))
    return {
        "index": index,
        "zone_bits": np.packbits(zone.ravel()),
        "coverage": target_cov,
        "complete": tumour_all and target_cov >= goal_fraction,
        "inputs": [*inputs, perf, prop],
        "runtime_s": time.perf_counter() - t0,
    }


#: Fewest samples whose first-order indices are ranked as dominant factors: the given-data
#: estimator bins the samples into about sqrt(n) groups, and below 10 groups of 10 its
#: noise is as large as the indices (ioplan's floor; Plischke et al. 2013 show the
#: estimator converging over hundreds of samples).
MIN_SENSITIVITY_SAMPLES = 100


@dataclass(frozen=True)
class UncertaintyResult:
    """The sweep's outcome (JSON: :meth:`to_dict`, keys named in issue 23 are a contract)."""

    coverage_probability: float
    interval_95: tuple[float, float]
    per_sample_coverage: tuple[float, ...]
    per_sample_complete: tuple[bool, ...]
    first_order: dict[str, float]
    samples: int
    seed: int
    scheduler: str
    workers: int
    runtime_s: float
    spec: UncertaintySpec
    goal_fraction: float
    sample_runtime_s: float
    map: Volume | None = field(default=None, repr=False, compare=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def sensitivity_reliable(self) -> tuple[bool, str]:
        """Whether the first-order indices can be read, and why not.

        First-order indices sum to at most 1; the given-data estimator's noise makes them
        sum to more with few samples (e.g. 2.6 over 17 inputs from 8 samples). Below
        :data:`MIN_SENSITIVITY_SAMPLES`, or when they sum past 1.1, they are flagged.
        """
        total = float(sum(self.first_order.values()))
        if self.samples < MIN_SENSITIVITY_SAMPLES or total > 1.1:
            return False, (
                f"not reliable with {self.samples} samples (the first-order indices sum to "
                f"{total:.2f}; they cannot exceed 1): run at least {MIN_SENSITIVITY_SAMPLES} "
                "samples to rank the factors"
            )
        return True, ""

    def to_dict(self) -> dict[str, Any]:
        ranked = sorted(self.first_order.items(), key=lambda kv: -kv[1])
        reliable, why = self.sensitivity_reliable()
        return {
            "schema_version": UNCERTAINTY_SCHEMA_VERSION,
            "coverage_probability": self.coverage_probability,
            "coverage_probability_interval_95": list(self.interval_95),
            "interval_method": "Wilson score",
            "complete_coverage": (
                "every tumour voxel and at least "
                f"{100 * self.goal_fraction:g} % of the tumour + margin voxels in the zone"
            ),
            "per_sample_coverage": [round(c, 6) for c in self.per_sample_coverage],
            "per_sample_complete": list(self.per_sample_complete),
            "mean_coverage": float(np.mean(self.per_sample_coverage)),
            "mean_coverage_percent": round(100.0 * float(np.mean(self.per_sample_coverage)), 3),
            "dominant_factors": [
                {"input": k, "first_order_index": round(v, 4)} for k, v in ranked[:5] if v > 0
            ],
            "sensitivity": {
                "method": "first-order Sobol index from given data (correlation ratio over "
                "equal-count bins, bias-adjusted; Plischke et al. 2013, "
                "doi:10.1016/j.ejor.2012.11.047)",
                "output": "per-sample tumour + margin coverage fraction",
                "first_order": {k: round(v, 4) for k, v in self.first_order.items()},
                "sum_first_order": round(float(sum(self.first_order.values())), 4),
                "reliable": reliable,
                **({"note": why} if why else {}),
            },
            "error_model": {
                "placement_error_mm": self.spec.placement_error_mm,
                "placement": "RMS length of the 3-D tip error; each axis N(0, (tip/sqrt3)^2)",
                "angle_error_deg": self.spec.angle_error_deg,
                "angle": "RMS tilt about the skin entry; two components N(0, (angle/sqrt2)^2)",
                "perfusion_cv": self.spec.perfusion_cv,
                "property_cv": self.spec.property_cv,
                "factors": "lognormal, mean 1",
                "seeds": "numpy SeedSequence(seed).spawn(samples): one child per sample",
            },
            "samples": self.samples,
            "seed": self.seed,
            "scheduler": self.scheduler,
            "workers": self.workers,
            "runtime_s": round(self.runtime_s, 3),
            "samples_per_minute": round(60 * self.samples / max(self.runtime_s, 1e-9), 2),
            "mean_sample_runtime_s": round(self.sample_runtime_s, 4),
            "progress": {"done": len(self.per_sample_coverage), "total": self.samples},
        } | self.extra


def run_uncertainty(model, spec: UncertaintySpec, *, samples: int, seed: int, client,
                    goal_fraction: float | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    extra: dict[str, Any] | None = None) -> UncertaintyResult:  # fmt: skip
    """The Monte Carlo sweep of ``model`` on the Dask ``client``.

    ``model`` is sent to the workers once; each task is one sample. The per-voxel
    coverage probability is the count of zones over each voxel divided by ``samples``
    (integer sums: the same bits whatever the order samples finish in).
    """
    from ioplan.planning import GOAL_MARGIN_COVERAGE_PERCENT

    if not 1 <= samples <= 100000:
        raise InputError(f"--samples must be 1-100000, got {samples}")
    if not 0 <= seed < 2**63:
        raise InputError(f"--seed must be 0 or more, got {seed}")
    goal = GOAL_MARGIN_COVERAGE_PERCENT / 100 if goal_fraction is None else goal_fraction
    t0 = time.perf_counter()
    shape = model.grid.shape
    counts = np.zeros(int(np.prod(shape)), np.int64)

    def gather(_i: int, r: dict[str, Any]) -> None:
        counts[:] += np.unpackbits(r.pop("zone_bits"), count=counts.size)

    items = [(i, seed, samples, spec, goal) for i in range(samples)]
    rows = run_tasks(client, _sample, items, shared=model, progress=progress, on_result=gather)
    scheduler, workers = describe(client)
    cov = tuple(r["coverage"] for r in rows)
    complete = tuple(bool(r["complete"]) for r in rows)
    k = sum(complete)
    x = np.asarray([r["inputs"] for r in rows], float)
    s1 = first_order_indices(x, np.asarray(cov))
    names = _input_names(len(model.needles))
    prob = (counts / samples).reshape(shape).astype(np.float32)
    return UncertaintyResult(
        coverage_probability=k / samples,
        interval_95=wilson_interval(k, samples),
        per_sample_coverage=cov,
        per_sample_complete=complete,
        first_order=dict(zip(names, (float(v) for v in s1), strict=True)),
        samples=samples,
        seed=seed,
        scheduler=scheduler,
        workers=workers,
        runtime_s=time.perf_counter() - t0,
        spec=spec,
        goal_fraction=goal,
        sample_runtime_s=float(np.mean([r["runtime_s"] for r in rows])),
        map=Volume(prob, model.grid),
        extra=dict(extra or {}),
    )


def _plan_doc(plan_dir: Path) -> dict[str, Any]:
    path = Path(plan_dir) / "plan.json"
    if not path.is_file():
        raise InputError(f"PLAN_DIR {plan_dir} has no plan.json (see `ioplan plan`)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable plan ({exc})") from None
    apps = doc.get("applicators") if isinstance(doc, dict) else None
    if not apps:
        raise InputError(f"{path}: the plan has no applicators")
    if not isinstance(apps, list) or not all(isinstance(a, dict) for a in apps):
        raise InputError(f"{path}: 'applicators' must be a list of objects")
    return doc


def _check_setting(where: str, name: str, value: Any, high: float) -> None:
    """A plan's power (W) or duration (s): none, or a number in (0, high]."""
    if value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and 0 < value <= high):
        raise InputError(f"{where}: an applicator's {name} must be in (0, {high:g}], got {value!r}")


def _check_same_tumour(doc: dict, case, tumour: np.ndarray, plan_dir, case_dir) -> None:
    """Refuse a case whose tumour is not the one the plan was made for.

    plan.json keeps the tumour's centre (``target_mm``) and diameter; another patient's
    case (or another tumour) lies elsewhere or differs in size. Allowed: the centre within
    a quarter of the diameter (at least 5 mm) and the equivalent diameter within 25 %
    (voxelisation at the plan's voxel size moves neither by more than a voxel).
    """
    centre, diameter = doc.get("target_mm"), doc.get("tumour_diameter_mm")
    if not isinstance(centre, list) or not isinstance(diameter, int | float) or diameter <= 0:
        return  # an older plan.json: nothing to compare with
    g = case.labels.grid
    here = g.index_to_lps(np.argwhere(tumour)).mean(axis=0)
    volume_mm3 = float(tumour.sum()) * g.voxel_volume_ml * 1000.0
    d_here = 2.0 * (3.0 * volume_mm3 / (4.0 * np.pi)) ** (1 / 3)
    off = float(np.linalg.norm(here - np.asarray(centre, float)))
    if off > max(5.0, 0.25 * diameter) or abs(d_here - diameter) > 0.25 * diameter:
        raise InputError(
            f"{case_dir}: its tumour ({d_here:.0f} mm, centre {off:.0f} mm from the plan's) is "
            f"not the one {plan_dir}/plan.json was made for ({diameter:.0f} mm): give the "
            "case the plan was made for"
        )


def engine_model_from_plan(
    plan_dir: str | Path,
    case_dir: str | Path | None = None,
    *,
    spacing_mm: float | None = None,
    perfusion_varies: bool = True,
) -> tuple[EngineZoneModel, dict]:
    """The engine model of a plan folder, and what it was made from (for the JSON).

    ``case_dir``: the case the plan was made for (default: plan.json's ``case_path`` or
    ``case``). ``spacing_mm``: the engine's voxel size (default the plan's; only coarser).
    """
    from ioplan.anatomy import load_case, organ_of
    from ioplan.imaging import resample_to_spacing
    from ioplan.planning import tumour_mask
    from ioplan.tissue import organ_tissues, tissue

    doc = _plan_doc(Path(plan_dir))
    if case_dir is None:
        case_dir = doc.get("case_path") or doc.get("case")
        if not isinstance(case_dir, str):
            raise InputError(f"{plan_dir}/plan.json does not name its case: give --case CASE_DIR")
        if not Path(case_dir).is_absolute():
            case_dir = Path(plan_dir) / case_dir
    plan_spacing = float(doc.get("simulation", {}).get("spacing_mm") or 2.0)
    if spacing_mm is None:
        spacing_mm = plan_spacing
    elif not plan_spacing <= spacing_mm <= 5.0:
        raise InputError(
            f"--spacing-mm must be {plan_spacing:g}-5 mm (the plan's or coarser), got {spacing_mm}"
        )
    needles = []
    ids = set()
    for a in doc["applicators"]:
        try:
            needles.append(Needle(
                # unrounded where the plan has it: zero error reproduces the verified zone
                tip_mm=tuple(float(v) for v in a.get("tip_mm_exact", a["tip_mm"])),
                direction=tuple(float(v) for v in a.get("direction_exact", a["direction"])),
                entry_mm=tuple(float(v) for v in a["entry_mm"]) if a.get("entry_mm") else None,
                power_w=a.get("power_w"), duration_s=a.get("duration_s"),
                protocol=a.get("protocol") if isinstance(a.get("protocol"), str) else None,
            ))  # fmt: skip
            ids.add(str(a["id"]))
        except KeyError as exc:
            raise InputError(f"{plan_dir}/plan.json: an applicator lacks {exc}") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"{plan_dir}/plan.json: an applicator has a bad value ({exc})"
                             ) from None  # fmt: skip
        # checked here, not by the first sample on a worker (a remote traceback)
        _check_setting(f"{plan_dir}/plan.json", "power_w", needles[-1].power_w, 300.0)
        _check_setting(f"{plan_dir}/plan.json", "duration_s", needles[-1].duration_s, 3600.0)
        if needles[-1].protocol is not None:
            from ioplan.physics import CryoProtocol

            CryoProtocol.parse(needles[-1].protocol)
    if len(ids) != 1:
        raise InputError(f"{plan_dir}/plan.json: applicators of several kinds {sorted(ids)}")
    case = load_case(case_dir)
    iso = (plan_spacing,) * 3
    if not np.allclose(case.labels.grid.spacing_mm, iso):  # as the planner resampled it
        from dataclasses import replace

        case = replace(
            case,
            image=resample_to_spacing(case.image, iso, interpolation="linear"),
            labels=resample_to_spacing(case.labels, iso, interpolation="nearest"),
        )
    organ = organ_of(case, doc.get("organ"))
    tumour, _ = tumour_mask(case, int(doc.get("tumour_index", 0)), organ)
    _check_same_tumour(doc, case, tumour, plan_dir, case_dir)
    margin = float(doc.get("margin_mm", 5.0))
    # the planner's target: the tumour plus its margin in parenchyma, without the lumen of
    # large vessels (the shell through vessels and outside the organ was counted, so even
    # a sample without any error covered less than the plan's verification said)
    from ioplan.planning import target_points

    target = target_points(case, tumour, margin, float(case.labels.grid.spacing_mm[0])).target
    host = organ_tissues(organ)["parenchyma"]
    base = tissue(host).perfusion_1_per_s if perfusion_varies else None
    model = EngineZoneModel(
        case=case, applicator_id=ids.pop(), needles=tuple(needles), spacing_mm=spacing_mm,
        delivery=str(doc.get("delivery", "sequential")), base_perfusion_1_per_s=base,
        tumour=tumour, target=target,
    )  # fmt: skip
    info = {
        "plan": str(plan_dir),
        "applicators": len(needles),
        "margin_mm": margin,
        "spacing_mm": spacing_mm,
        "plan_spacing_mm": plan_spacing,
        "organ": organ,
        "perfusion_model": (
            f"{host} tissue-table perfusion ({base:g} 1/s) x factor, every tissue"
            if base is not None
            else "tissue table (as planned)"
        ),
        "property_model": "delivered power x factor (device output and absorption); "
        "cryoprobes: not varied",
        "nominal_coverage_percent": doc.get("margin_coverage_percent"),
    }
    return model, info


def write_uncertainty(result: UncertaintyResult, out: str | Path, *,
                      overwrite: bool = False) -> dict[str, Any]:  # fmt: skip
    """Write ``coverage_probability.nii.gz`` and ``uncertainty.json`` into ``out``, whole."""
    from ioplan.imaging import atomic_output_folder, write_nifti

    doc = result.to_dict()
    with atomic_output_folder(out, command="uncertainty", names=UNCERTAINTY_FOLDER_ENTRIES,
                              overwrite=overwrite) as tmp:  # fmt: skip
        write_nifti(result.map, tmp / "coverage_probability.nii.gz", overwrite=True)
        (tmp / "uncertainty.json").write_text(json.dumps(doc, indent=2) + "\n")
        if result.map is not None:
            from ioplan.report import save_probability_figure

            lo, hi = result.interval_95
            save_probability_figure(
                result.map, tmp / "figures" / "coverage_probability.png",
                title=f"complete coverage probability {result.coverage_probability:.3f} "
                f"(95 % CI {lo:.3f}-{hi:.3f}), {result.samples} samples",
            )  # fmt: skip
    return doc

"""Applicator placement and energy, verified by full simulation: the :class:`Plan`.

:func:`plan_ablation` runs the inverse planner, in named steps:

1. The request's cheap checks, the planning grid, the target (the tumour plus its margin
   in parenchyma, without the lumen of vessels >= 3 mm).
2. Candidates (:mod:`ioplan.planning._candidates`): aim points x feasible paths x tip
   shifts x settings of the applicator's zone surrogate (cryo: parallel probe arrays),
   each with a predicted zone corrected for heat sinks.
3. The search (:mod:`ioplan.planning._inverse`): the fewest applicators that cover the
   target by integer programming (:mod:`ioplan.planning._setcover`), simulated in full on
   the case (perfusion, the heat sink of the case's vessels), corrected and chosen again
   where the verified zone misses, then an alternative for robustness to placement error
   (:mod:`ioplan.planning._robust`).
4. The plan: coverage, margin and risk of the best verified set (never of a prediction),
   the perivascular report, why each applicator is there, and what would help if the
   goal is not met.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ioplan.anatomy import Case
from ioplan.devices import Applicator, applicator, chart_comparison
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, resample_to_spacing
from ioplan.planning._candidates import (
    CandidateSet,
    heat_sink_prior,
    make_candidates,
    planner_settings,
    target_points,
)
from ioplan.planning._checks import (
    ANISOTROPY_LIMIT,
    MARGIN_RANGE_MM,
    PROTECT_RANGE_MM,
    SPACING_RANGE_MM,
    check_in_range,
    check_plan_request,
)
from ioplan.planning._inverse import Verification, applicator_covers, delivery_for, search
from ioplan.planning._metrics import MARGIN_METHOD, margin_on_case_grid, tumour_mask
from ioplan.planning._organ_rules import (
    default_margin_mm,
    organ_findings,
    planning_organ,
    surrogate_tissue,
)
from ioplan.planning._surrogate import (
    CRYO_MIN_SPACING_MM,
    CRYO_PROTOCOL,
    MAX_CRYOPROBES,
    zone_table,
)
from ioplan.planning._trajectories import Trajectory, TrajectoryConfig, forbidden_groups

__all__ = [
    "DEFAULT_APPLICATOR",
    "GOAL",
    "GOAL_MARGIN_COVERAGE_PERCENT",
    "PLAN_SCHEMA_VERSION",
    "Plan",
    "PlanConfig",
    "plan_ablation",
]

PLAN_SCHEMA_VERSION = 1
#: Share of the tumour plus its margin the zone must cover for the plan to meet its goal (%).
GOAL_MARGIN_COVERAGE_PERCENT = 99.0
#: A plan's goal, as recorded in plan.json (``goal_met``, ``covered``).
GOAL = (
    f"the verified zone covers at least {GOAL_MARGIN_COVERAGE_PERCENT:g} % of the tumour plus "
    "its margin, with no lethal damage to a protected structure nor within protect_mm of it"
)
#: Default applicator per modality.
DEFAULT_APPLICATOR = {"mwa": "covidien-emprint", "rfa": "cooled-rf-3cm", "cryo": "cryo-2.4mm"}
#: Margins by histology (mm): 5 mm (HCC; Laimer et al. 2020, ACCLAIM), 10 mm for colorectal
#: metastases (Wang et al., CVIR 2013: 2-year LTP-free 26/46/74/80 % for 0/1-5/6-10/11-15 mm);
#: shared/validation/README.md section 8.
DEFAULT_MARGIN_MM = {"colorectal_metastasis": 10.0}


@dataclass(frozen=True)
class PlanConfig:
    """What the plan must achieve and how hard to search."""

    modality: str = "mwa"
    applicator_id: str | None = None
    margin_mm: float | None = None
    protect_mm: float = 3.0
    tumour_index: int = 0
    spacing_mm: float = 2.0
    trajectories: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    max_candidates: int = 3
    seed: int = 0
    #: most applicators (default: the modality's, planning/data/planner.toml)
    max_applicators: int | None = None
    #: "sequential" or "simultaneous" (default: the modality's, planner.toml)
    delivery: str | None = None
    #: placement error sampled for robust_coverage: tip (RMS mm), tilt (RMS degrees)
    placement_error_mm: float = 2.0
    angle_error_deg: float = 3.0
    robust_samples: int = 200
    #: seconds of search (selection and verification) after which no new verification
    #: starts: the best verified plan so far is reported, and plan.json says so
    time_budget_s: float | None = None
    #: the tumour's organ (liver, lung, kidney, bone; None: the case's, else inferred from
    #: the labels around the tumour, else the liver): its rules (planning._organ_rules)
    organ: str | None = None

    def __post_init__(self) -> None:
        if self.modality not in DEFAULT_APPLICATOR:
            raise InputError(f"modality must be mwa, rfa or cryo, got {self.modality!r}")
        if self.margin_mm is not None:
            check_in_range(self.margin_mm, *MARGIN_RANGE_MM, "margin")
        check_in_range(self.protect_mm, *PROTECT_RANGE_MM, "protect distance")
        check_in_range(self.spacing_mm, *SPACING_RANGE_MM, "planning spacing")
        if self.tumour_index < 0:
            raise InputError(f"tumour index must be 0 or more, got {self.tumour_index}")
        if not 1 <= self.max_candidates <= 50:
            raise InputError(f"max_candidates must be 1-50, got {self.max_candidates}")
        if self.max_applicators is not None and not 1 <= self.max_applicators <= 8:
            raise InputError(f"max applicators must be 1-8, got {self.max_applicators}")
        if self.delivery not in (None, "sequential", "simultaneous"):
            raise InputError(f"delivery must be sequential or simultaneous, got {self.delivery!r}")
        check_in_range(self.placement_error_mm, 0.0, 20.0, "placement error")
        check_in_range(self.angle_error_deg, 0.0, 30.0, "angle error")
        if not 10 <= self.robust_samples <= 100000:
            raise InputError(f"robust samples must be 10-100000, got {self.robust_samples}")
        if self.time_budget_s is not None:
            check_in_range(self.time_budget_s, 0.0, 3600.0, "--time-budget-s", unit="s")
        if self.organ is not None:
            from ioplan.anatomy import check_organ
            from ioplan.planning._organ_rules import PLANNED_ORGANS

            organ = check_organ(self.organ)
            if organ not in PLANNED_ORGANS:
                raise InputError(
                    f"organ must be one of {', '.join(PLANNED_ORGANS)}, got {self.organ!r}"
                )
            object.__setattr__(self, "organ", organ)

    def max_applicators_for(self, delivery: str | None = None) -> int:
        """The most applicators this plan may use (more when delivered one after another)."""
        from ioplan.planning._candidates import planner_settings

        st = planner_settings()["applicators"]
        table = st["max_sequential"] if delivery == "sequential" else st["max"]
        return self.max_applicators or int(table.get(self.modality, st["max"][self.modality]))

    def time_budget_for(self, tumour_diameter_mm: float) -> float:
        """Seconds of search: the configured budget, or by tumour size (planner.toml)."""
        from ioplan.planning._candidates import planner_settings

        if self.time_budget_s is not None:
            return float(self.time_budget_s)
        tb = planner_settings()["verification"]
        big = tumour_diameter_mm > float(tb["large_tumour_mm"])
        return float(tb["time_budget_large_s"] if big else tb["time_budget_s"])

    def applicator(self) -> Applicator:
        """The applicator used (the modality's default unless given).

        Under MR guidance the device must be labelled MR Conditional at the field strength
        (``trajectories.field_t``; :func:`ioplan.devices.check_mr_guidance` refuses others
        with the reason); without ``applicator_id`` the catalogue's first MR Conditional
        device of the modality at that field is taken.
        """
        from ioplan.devices import check_mr_guidance, mr_conditional_applicators

        want = {"mwa": "mw", "rfa": "rf", "cryo": "cryo"}[self.modality]
        mr = self.trajectories.modality == "MR"
        field_t = self.trajectories.field_t
        if mr and self.applicator_id is None:
            found = mr_conditional_applicators(want, field_t)
            if not found:
                raise InputError(
                    f"no {self.modality} applicator of the catalogue is labelled MR Conditional "
                    f"at {field_t:g} T (see `ioplan applicators --json`, mr_conditional)"
                )
            app = found[0]
        else:
            app = applicator(self.applicator_id or DEFAULT_APPLICATOR[self.modality])
        if app.modality != want:
            raise InputError(f"{app.id} is a {app.modality} applicator, not {self.modality}")
        if app.electrodes > 1:  # (the planner places single applicators and measures each
            # zone on its axis; a cluster failed after the search with an internal message)
            raise InputError(f"{app.id} is a cluster of {app.electrodes} electrodes; the "
                             "planner places single applicators: choose one (`ioplan "
                             "applicators`)")  # fmt: skip
        if mr:
            check_mr_guidance(app, field_t)
        return app


@dataclass(frozen=True)
class Plan:
    """A verified treatment plan (JSON: :meth:`to_dict`, schema :data:`PLAN_SCHEMA_VERSION`)."""

    modality: str
    applicators: tuple[dict[str, Any], ...]
    margin_mm: float
    coverage_percent: float
    margin_coverage_percent: float
    minimal_margin_mm: float
    ablated_liver_ml: float
    zone_volume_ml: float
    at_risk: tuple[dict[str, Any], ...]
    covered: bool
    target_mm: tuple[float, float, float]
    tumour_diameter_mm: float
    histology: str
    verified_by_simulation: bool
    simulation: dict[str, Any]
    surrogate: dict[str, Any]
    rejected_trajectories: tuple[dict[str, Any], ...]
    accepted_trajectories: int
    suggestions: tuple[str, ...]
    runtime_s: float
    seed: int
    software_version: str
    notes: tuple[str, ...] = ()
    tumour_index: int = 0
    #: LPS point (mm) of the tumour surface where the margin is smallest (None: no zone)
    minimal_margin_point_mm: tuple[float, float, float] | None = None
    protect_mm: float = 3.0
    #: how far (mm) the verified zone reaches past the scanned range on each patient side
    #: (``{"superior": 6.0}``; empty: the zone lies inside the image); there the edge
    #: slices were continued, and the zone's metrics count only its part inside the image
    extends_past_scan_mm: dict[str, float] = field(default_factory=dict)
    #: the zone's volume past the scanned range (mL), not in ``zone_volume_ml``
    zone_past_scan_ml: float = 0.0
    #: how many candidates (path x tip depth x setting) the optimiser considered
    candidates_considered: int = 0
    #: what they were made of (aim points, paths, tip shifts, settings) and the prediction
    candidates: dict[str, Any] = field(default_factory=dict)
    #: every full simulation of a chosen set, in order, with what changed before it
    verification_runs: tuple[dict[str, Any], ...] = ()
    #: the tumour surface near vessels >= 3 mm and how the verified zone treats it
    perivascular: dict[str, Any] = field(default_factory=dict)
    #: probability (0-1) that the plan still covers under placement error (None: not met)
    robust_coverage: float | None = None
    robustness: dict[str, Any] = field(default_factory=dict)
    #: "sequential" (one applicator after the other) or "simultaneous"
    delivery: str = "sequential"
    optimiser: dict[str, Any] = field(default_factory=dict)
    #: the tumour's organ and its rules' findings (lung: pleural crossings, aerated lung
    #: traversed, pneumothorax risk; kidney: bowel distance, cryo ice margin and isotherms;
    #: temperature limits of the structures that have them)
    organ: str = "liver"
    organ_rules: dict[str, Any] = field(default_factory=dict)
    #: normal parenchyma of the tumour's organ in the zone (mL; the liver's for the liver)
    ablated_host_ml: float | None = None
    #: treatment selection's findings for this case (ioplan.planning.select_treatment)
    selection: dict[str, Any] = field(default_factory=dict)
    #: the image guidance planned for: {"imaging": "CT" | "MR", "field_t": T under MR}
    guidance: dict[str, Any] = field(default_factory=dict)
    zone: Volume | None = field(default=None, repr=False, compare=False)
    tmax: Volume | None = field(default=None, repr=False, compare=False)
    tmin: Volume | None = field(default=None, repr=False, compare=False)

    @property
    def goal_met(self) -> bool:
        """Whether the plan reaches its goal (see :data:`GOAL`): the same as ``covered``."""
        return bool(self.covered)

    def to_dict(self) -> dict[str, Any]:
        """The ``plan.json`` document (keys named in the issue are a contract).

        Non-finite numbers (a minimal margin with no zone at all) become ``null``.
        """
        d = asdict(self)
        for k in ("zone", "tmax", "tmin"):
            d.pop(k)
        d["schema_version"] = PLAN_SCHEMA_VERSION
        for k in ("applicators", "at_risk", "rejected_trajectories", "suggestions", "notes",
                  "verification_runs"):  # fmt: skip
            d[k] = list(d[k])
        d["target_mm"] = [round(v, 2) for v in self.target_mm]
        for k in (
            "coverage_percent",
            "margin_coverage_percent",
            "minimal_margin_mm",
            "ablated_liver_ml",
            "zone_volume_ml",
            "runtime_s",
        ):
            d[k] = round(d[k], 3) if math.isfinite(d[k]) else None
        if self.ablated_host_ml is not None:
            d["ablated_host_ml"] = round(self.ablated_host_ml, 3)
        if self.minimal_margin_point_mm is not None:
            d["minimal_margin_point_mm"] = [round(v, 2) for v in self.minimal_margin_point_mm]
        d["minimal_margin_method"] = MARGIN_METHOD
        for k in ("pleural_crossings", "lung_path_mm", "pneumothorax_risk"):
            if k in self.organ_rules:  # lung plans: named at the top (issue 21)
                d[k] = self.organ_rules[k]
        d["goal_met"] = self.goal_met
        d["goal"] = {
            "description": GOAL,
            "margin_coverage_percent_at_least": GOAL_MARGIN_COVERAGE_PERCENT,
            "margin_mm": self.margin_mm,
            "protect_mm": self.protect_mm,
        }
        # the margin-confirmation criterion (ioplan margin, the web's margin page): the
        # minimal ablative margin at least the set margin (Ahmed et al., Radiology 2014);
        # stricter than the goal's 99 % of the tumour plus margin, and said beside it
        mm = self.minimal_margin_mm
        d["technical_success_by_minimal_margin"] = bool(math.isfinite(mm) and mm >= self.margin_mm)
        return d


def _past_scan_notes(settings: dict[str, Any], notes: list[str]) -> tuple[dict, dict, list]:
    """The simulation domain's and the zone's reach past the scanned range (mm per side).

    A case whose scan range is short (a slab of slices) is simulated with its edge
    slices continued outward; the engine's warnings about it become the plan's notes
    (the zone's when it reaches past the scan, else the domain's). Returns the domain's
    reach, the zone's reach and the notes added.
    """
    domain = dict(settings.get("extends_past_scan_mm", {}))
    zone = dict(settings.get("zone_extends_past_scan_mm", {}))
    added = [
        w
        for w in settings.get("warnings", [])
        if ("past the scanned range" in w and (("ablation zone" in w) == bool(zone)))
        or "coarse for a" in w  # a cryoprobe under-resolved at the plan's voxel size
    ]
    if zone:
        added.append(
            "coverage, margin and zone volume count only the part of the zone inside the "
            "image; a scan covering the whole zone would confirm the plan"
        )
    notes.extend(added)
    return domain, zone, added


def _isotropic(case: Case, spacing_mm: float) -> Case:
    """``case`` resampled to cubic voxels of ``spacing_mm`` over the same extent."""
    iso = (spacing_mm,) * 3
    image = resample_to_spacing(case.image, iso, interpolation="linear")
    labels = resample_to_spacing(case.labels, iso, interpolation="nearest")
    extra = case.extra_labels  # structures with no ioplan label (avoided): on the same grid
    if extra is not None:
        extra = resample_to_spacing(extra, iso, interpolation="nearest")
    return replace(case, image=image, labels=labels, extra_labels=extra)


@dataclass(frozen=True)
class _Target:
    """The tumour to treat, on the planning grid."""

    mask: np.ndarray
    centre_mm: np.ndarray
    diameter_mm: float
    histology: str
    margin_mm: float


def _planning_case(case: Case, cfg: PlanConfig, notes: list[str]) -> Case:
    """The case on the grid the plan is made on (resampled when very anisotropic)."""
    sp = np.asarray(case.labels.grid.spacing_mm)
    if sp.max() / sp.min() <= ANISOTROPY_LIMIT:
        return case
    notes.append(
        f"the case's voxels ({' x '.join(f'{v:g}' for v in sp[::-1])} mm, x y z) are very "
        "anisotropic: "
        f"it was resampled to {cfg.spacing_mm:g} mm isotropic voxels for planning (image "
        "linear, labels nearest neighbour); the plan's maps are on that grid"
    )
    return _isotropic(case, cfg.spacing_mm)


def _target(case: Case, cfg: PlanConfig, organ: str = "liver") -> _Target:
    """The tumour's mask, centre, equivalent diameter, histology and the margin to reach."""
    mask, rec = tumour_mask(case, cfg.tumour_index, organ)
    g = case.labels.grid
    histology = str(rec.get("histology", "unknown"))
    if cfg.margin_mm is not None:
        margin = cfg.margin_mm
    elif organ == "liver":
        margin = DEFAULT_MARGIN_MM.get(histology, 5.0)
    else:
        margin = default_margin_mm(organ, histology, cfg.modality)
    centre = g.index_to_lps(np.argwhere(mask).mean(axis=0))
    diam = 2.0 * (3.0 * float(mask.sum()) * g.voxel_volume_ml * 1e3 / (4.0 * math.pi)) ** (1 / 3)
    return _Target(mask, centre, diam, histology, margin)


def _shaft_radius_mm(app: Applicator, spacing_mm: float, g: Grid) -> float:
    """Radius (mm) around a shaft whose voxels hold the applicator, not tissue.

    In the engine's maps: the shaft, its voxel on the simulation grid, and one case voxel
    more (the temperature maps are interpolated linearly onto the case grid).
    """
    return max(0.5 * app.diameter_mm, 0.71 * spacing_mm) + max(max(g.spacing_mm), spacing_mm)


def _selection(case: Case, organ: str) -> dict[str, Any]:
    """Treatment selection's findings for the case (by organ where selection has rules)."""
    from ioplan.planning._select import select_treatment

    try:
        sel = select_treatment(case, organ=organ)
    except InputError as exc:
        return {"error": str(exc)}
    return sel.to_dict()


def _blocked_summary(trajs: list[Trajectory]) -> str:
    """The structures that block most paths, with their counts."""
    counts: dict[str, int] = {}
    for t in trajs:
        for r in t.reasons:
            key = r.split(" (")[0].split(" at (")[0]
            key = key.split("mm from ")[-1] if "mm from " in key else key
            counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} ({v})" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:4])


def _merged_settings(runs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """The runs' reach past the scan (largest per side) and their warnings, as one run's."""
    out: dict[str, Any] = {"warnings": []}
    for key in ("extends_past_scan_mm", "zone_extends_past_scan_mm"):
        merged: dict[str, float] = {}
        for r in runs:
            for side, mm in r.get(key, {}).items():
                merged[side] = max(merged.get(side, 0.0), float(mm))
        if merged:
            out[key] = merged
    for r in runs:
        out["warnings"].extend(w for w in r.get("warnings", []) if w not in out["warnings"])
    return out


def _robustness_record(rob: dict[str, Any] | None) -> dict[str, Any]:
    """The robustness estimate without its per-sample lists.

    Adds the probability that the whole tumour (its margin aside) stays covered.
    """
    if not rob:
        return {}
    out = {k: val for k, val in rob.items() if not k.startswith("per_sample")}
    tum = rob.get("per_sample_tumour_coverage_percent") or []
    if tum:
        out["tumour_coverage_probability"] = round(
            sum(1 for x in tum if x >= 100.0 - 1e-9) / len(tum), 4
        )
    return out


def _unreached(v: Verification, tp, grid: Grid) -> list[str]:
    """The tumour voxels the best verified zone missed, and how many lie against a vessel."""
    missed = tp.tumour & ~v.zone
    n = int(missed.sum())
    if n == 0:
        return []
    ml = n * grid.voxel_volume_ml
    text = f"{n} tumour voxels ({ml:.2f} mL) stay outside the best verified zone"
    if tp.lumen.any():
        from scipy import ndimage

        from ioplan.planning._candidates import grid_box

        box = grid_box(grid, [missed], 5.0)
        dist = ndimage.distance_transform_edt(~tp.lumen[box], sampling=grid.spacing_mm)
        near = int(np.count_nonzero(dist[missed[box]] <= 2.0 * max(grid.spacing_mm)))
        if near:
            text += (
                f"; {near} of them lie against the wall of a vessel >= 3 mm (within "
                f"{2 * max(grid.spacing_mm):g} mm), where the flowing blood keeps the tissue "
                "below a lethal dose (heat sink): an applicator right beside the vessel, "
                "cryoablation, or irreversible electroporation, or a combination with TACE"
            )
    return [text]


def _why_not(v: Verification, cs: CandidateSet, res, n_max: int, delivery: str) -> list[str]:
    """Why no candidate set was predicted to cover (the anatomy's limits), if none was."""
    if v.ok or any(x.get("predicted_goal") for x in res.optimiser.get("solves", [])):
        return []
    probes = np.array([cs.probes(c) for c in range(cs.n)])
    parts = [
        f"no set of up to {n_max} applicators on the {len(cs.trajectories)} feasible paths "
        "(to the target's aim points) was predicted to cover the target"
    ]
    if (probes > 1).any() and not cs.safe[probes > 1].any():
        parts.append("parallel probe arrays break the safety distance on every path")
    if delivery == "simultaneous":
        parts.append("applicators used together must keep their shafts apart")
    return [
        "; ".join(parts) + ": a different approach (another entry, hydrodissection or "
        "displacement of the structure in the way), another modality, or TACE/TARE"
    ]


#: Cryo arrays computed past the smallest whose zone alone spans the target: an array's
#: cross-section is not round (two probes make an oval; the row's width is its widest), and
#: arrays on several paths may combine, so two larger ones stay candidates.
CRYO_ARRAYS_PAST_COVER = 2


def _candidate_rows(app: Applicator, spacing_mm: float, n_max: int, tissue: str = "liver",
                    target_extent_mm: float = math.inf) -> tuple[tuple, ...]:  # fmt: skip
    """The surrogate rows the candidates use.

    MW and RF: one applicator per candidate (several candidates make a plan). Cryo: ice
    balls of probes 1.5 cm apart merge, and the -40 degC zone of an array is much wider
    than the union of single probes' zones; so a cryo candidate is a parallel array of
    1 to ``n_max`` probes (the surrogate's array rows); a plan may combine arrays and
    single probes on independent paths, at most ``n_max`` probes in all. Arrays larger
    than :data:`CRYO_ARRAYS_PAST_COVER` past the first whose zone (length and width) spans
    ``target_extent_mm`` are not computed: they would only freeze more beyond the target.
    A setting that makes no zone (a single cryoprobe in well-perfused kidney reaches no
    -40 degC on 3 mm voxels) covers nothing and is left out.
    """
    if app.modality != "cryo":
        table = zone_table(app, spacing_mm, tissue)
        return tuple(r for r in table if r[2] > 0 and r[3] > 0 and r[5] == 1)
    rows, spans = [], None
    for n in range(1, n_max + 1):
        r = zone_table(app, spacing_mm, tissue, max_probes=n)[-1]
        if r[2] > 0 and r[3] > 0:
            rows.append(r)
        if spans is None and min(r[2], r[3]) >= target_extent_mm:
            spans = n
        if spans is not None and n >= spans + CRYO_ARRAYS_PAST_COVER:
            break
    return tuple(rows)


def _suggestions(v: Verification, app: Applicator, target: _Target, n_max: int,
                 runs: int) -> list[str]:  # fmt: skip
    """What would help a plan that misses its goal (nothing for one that meets it)."""
    if v.ok:
        return []
    m, n = v.metrics, len(v.tips)
    out = []
    if (m["margin_coverage_percent"] < GOAL_MARGIN_COVERAGE_PERCENT
            or m["tumour_voxels_covered_percent"] < 100.0):  # fmt: skip
        more = (
            f"more applicators (--max-applicators; {n_max} allowed, {n} used), "
            if n >= n_max and not (app.modality == "cryo" and n_max >= MAX_CRYOPROBES)
            else ""
        )
        out.append(
            f"after {runs} verified run(s) the best zone covers "
            f"{m['tumour_voxels_covered_percent']:.1f} % of the tumour and "
            f"{m['margin_coverage_percent']:.1f} % of the tumour plus its {target.margin_mm:g} mm "
            f"margin: consider {more}another device, a smaller margin only if the histology "
            "allows it, or combining ablation with TACE/TARE"
        )
    if target.diameter_mm > 30.0:
        out.append(
            f"the tumour is {target.diameter_mm:.0f} mm: ablation is mostly used up to 30 mm (up "
            "to 50 mm with several probes); radioembolization or surgery may suit it better"
        )
    for r in m["at_risk"]:
        if r["lethal_damage"] or r["within_protect_distance"]:
            out.append(
                f"{r['structure']} is {r['closest_distance_mm']:.1f} mm from the zone: "
                "hydrodissection, a different path, or cryoablation"
            )
    return out


def _applicator_records(
    app: Applicator, cs: CandidateSet, v: Verification, covers: list[dict[str, Any]]
) -> tuple[dict, ...]:
    """Each applicator's entry, tip, direction, setting, path and why it is there.

    A parallel cryo array gives one record per probe, each on its own parallel path.
    """
    out = []
    for i, (tip, d, c) in enumerate(zip(v.tips, v.directions, v.owners, strict=True)):
        tr = cs.trajectory(c)
        p, t, length, width, _offset, n = cs.setting_of(c)
        depth = float(np.linalg.norm(cs.tip_mm[c] - np.asarray(tr.entry_mm)))
        entry = tip - depth * d
        out.append(
            {
                "id": app.id,
                "tip_mm": [round(float(x), 2) for x in tip],
                "entry_mm": [round(float(x), 2) for x in entry],
                "direction": [round(float(x), 5) for x in d],
                # the same geometry unrounded: what the verification ran (a re-run from
                # plan.json, e.g. ``ioplan uncertainty`` at zero error, reproduces its zone)
                "tip_mm_exact": [float(x) for x in tip],
                "direction_exact": [float(x) for x in d],
                "power_w": p,
                "duration_s": t,
                "protocol": CRYO_PROTOCOL if app.modality == "cryo" else None,
                "path_length_mm": round(tr.length_mm, 1),
                "insertion_depth_mm": round(depth, 1),
                "trajectory": tr.to_dict(),
                "trajectory_id": cs.trajectory_id(c),
                "array": int(n),
                "aim_mm": [round(float(x), 2) for x in cs.placement_centre_mm[cs.placement[c]]],
                "zone_shift_mm": float(cs.depth_shift_mm[c]),
                "predicted_length_mm": round(length, 1),
                "predicted_width_mm": round(width, 1),
                "covers": covers[i],
            }
            # the manufacturer's chart at this setting (one antenna, ex vivo), to compare
            | ({"chart": chart_comparison(app, p, t)} if app.modality == "mw" and n == 1 else {})
        )
    return tuple(out)


def _predicted_fit(cs: CandidateSet, v: Verification) -> float:
    """Largest normalised radius of the target points in the nearest chosen ellipsoid.

    At most 1: the union of the predicted zones holds every target point.
    """
    qs = []
    for c in v.selected:
        _, _, length, width, _, _ = cs.setting_of(c)
        pl = cs.placement[c]
        qs.append(np.hypot(cs.along[pl] / (0.5 * length), cs.radial[pl] / (0.5 * width)))
    return float(np.min(np.asarray(qs), axis=0).max())


def plan_ablation(
    case: Case,
    cfg: PlanConfig | None = None,
    *,
    log: Callable[[str], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> Plan:
    """Plan a thermal ablation of one tumour of ``case`` and verify it by simulation.

    The inverse planner (:mod:`ioplan.planning._inverse`): the cheap checks
    (:func:`~ioplan.planning.check_plan_request`); the planning grid; the target (the
    tumour and its margin in parenchyma, without the lumen of vessels >= 3 mm); the
    candidates (aim points x feasible paths x tip shifts x settings, each with its
    surrogate zone corrected for heat sinks); the fewest applicators that cover the
    target by integer programming, then the least normal liver and time; full
    simulation of the chosen set on the case, corrected and chosen again where it
    misses (up to a bound); robustness to placement error; the perivascular report.

    Parameters
    ----------
    case : Case
        Image and label map (:class:`ioplan.anatomy.Label` values), LPS mm.
    cfg : PlanConfig, optional
        Modality, applicator, ablative margin (mm; default 5, 10 for colorectal
        metastases), protect distance (mm), tumour index, simulation voxel size
        (1-4 mm), path constraints, most applicators, delivery, placement error.

    log : callable, optional
        Receives one line of text per step.
    progress : callable, optional
        Receives the simulations' progress (simulated seconds).

    Returns
    -------
    Plan
        Applicators (entry and tip in LPS mm, power in W, time in s, path id and what
        each covers), coverage of the tumour and of the tumour plus margin (%), minimal
        ablative margin (mm, :func:`ioplan.assessment.measure_margin`), normal liver
        ablated (mL), structures at risk, ``covered`` / ``goal_met``, the verification
        runs, the perivascular report, robust coverage, and the zone, Tmax and Tmin maps.

    Raises
    ------
    InputError
        Bad configuration, no or no such tumour, a tumour outside the liver, not
        enough memory, or no feasible needle path.

    Notes
    -----
    The surrogate only ranks candidates; coverage, margin and risk come from full
    simulations. Margins by histology: Laimer et al., Eur Radiol 2020,
    doi:10.1007/s00330-019-06609-7 (HCC, 5 mm); Wang et al., Cardiovasc Intervent Radiol
    2013, doi:10.1007/s00270-012-0377-1 (colorectal metastases, 10 mm). Optimisation in
    the manner of Baegert et al. 2007 (paths), Ren et al., IEEE JBHI 2014 (overlapping
    ablations by integer programming).
    """
    from ioplan import __version__
    from ioplan.planning._perivascular import perivascular_report
    from ioplan.planning._robust import PlacementError

    cfg = cfg or PlanConfig()
    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    organ = planning_organ(case, cfg.organ)
    # the organ travels with the case (target, candidates, metrics) and the path rules
    case = replace(case, organ=organ)
    cfg = replace(cfg, organ=organ, trajectories=replace(cfg.trajectories, organ=organ))
    check_plan_request(case, cfg)
    app = cfg.applicator()
    if cfg.trajectories.modality == "MR":  # the needle artefact of this device's shaft
        cfg = replace(cfg, trajectories=replace(
            cfg.trajectories, needle_material=app.mr_material or cfg.trajectories.needle_material,
            needle_diameter_mm=app.diameter_mm))  # fmt: skip
    notes: list[str] = []
    given = case
    case = _planning_case(case, cfg, notes)
    for note in notes:
        say(note)
    target = _target(case, cfg, organ)
    say(
        f"tumour: {target.diameter_mm:.0f} mm ({target.histology}, {organ}), margin "
        f"{target.margin_mm:g} mm"
    )
    g = case.labels.grid
    tp = target_points(case, target.mask, target.margin_mm, cfg.spacing_mm)
    delivery = delivery_for(cfg.modality, cfg.delivery)
    n_max = cfg.max_applicators_for(delivery)
    pts = np.asarray(tp.points_mm, float).reshape(-1, 3)
    extent_mm = (2.0 * float(np.linalg.norm(pts - pts.mean(axis=0), axis=1).max())
                 if len(pts) else math.inf)  # fmt: skip
    rows = _candidate_rows(app, cfg.spacing_mm, n_max, surrogate_tissue(organ), extent_mm)
    if not rows:
        raise InputError(f"{app.id} makes no ablation zone in {organ} at any setting it has")
    n_select = n_max  # applicators (probes), an array counting as its probes
    dmaps = forbidden_groups(case, cfg.trajectories)
    cs, examined = make_candidates(
        case, app, tp, rows, k_max=min(n_max, 3), protect_mm=cfg.protect_mm,
        trajectories=cfg.trajectories, distance_maps=dmaps, seed=cfg.seed,
    )  # fmt: skip
    n_dir = cfg.trajectories.n_directions
    centre_paths = examined[:n_dir]
    if cs.n == 0:
        blocked = _blocked_summary(examined) or (
            "nothing named: no path was examined (does the image reach the body surface? a "
            "case with no skin or fat label needs --auto-labels at import)")  # fmt: skip
        raise InputError(f"no feasible needle path to the tumour; blocked by: {blocked}")
    say(
        f"candidates: {cs.n} ({len(cs.trajectories)} paths to {len(cs.aims_mm)} aim points, "
        f"{len(rows)} settings; {int(cs.safe.sum())} predicted clear of protected structures)"
    )
    sim_spacing = cfg.spacing_mm
    if app.modality == "cryo" and cfg.spacing_mm < CRYO_MIN_SPACING_MM:
        sim_spacing = CRYO_MIN_SPACING_MM
        notes.append(
            f"cryo zones are verified on {sim_spacing:g} mm voxels (the surrogate's): a double "
            f"freeze on {cfg.spacing_mm:g} mm voxels costs about ten times as much; there the "
            "-40 degC zone is about 1 mm wider and the ice edge within 0.4 mm of those on 1 mm "
            "voxels (one probe, perfused liver: validation/convergence.md)"
        )
    error = PlacementError(cfg.placement_error_mm, cfg.angle_error_deg, cfg.robust_samples,
                           cfg.seed)  # fmt: skip
    if not cs.safe.any():
        notes.append(
            "every candidate's predicted zone reaches within the protect distance of "
            "a protected structure; the best coverage is verified and its risk shown"
        )
        cs = replace(cs, safe=np.ones(cs.n, bool), clearance_mm=np.full(cs.n, np.inf))

    def more(aims: np.ndarray) -> CandidateSet:
        return make_candidates(
            case, app, tp, rows, k_max=min(n_max, 3), protect_mm=cfg.protect_mm,
            trajectories=cfg.trajectories, distance_maps=dmaps, seed=cfg.seed, aims=aims,
        )[0]  # fmt: skip

    res = search(case, app, cs, tp, delivery=delivery, max_selected=n_select,
                 spacing_mm=sim_spacing, margin_mm=target.margin_mm,
                 protect_mm=cfg.protect_mm, error=error,
                 time_budget_s=cfg.time_budget_for(target.diameter_mm),
                 # the default budget is a speed aim, not a limit the user set: a plan that
                 # has not met its goal still gets its rounds on a loaded machine
                 min_rounds=(int(planner_settings()["verification"]["min_rounds"])
                             if cfg.time_budget_s is None else 1),
                 say=say, progress=progress, more=more)  # fmt: skip
    if res.best is None:
        raise InputError("no candidate applicator placement could be selected for this tumour")
    v = res.best
    cs = res.candidates if res.candidates is not None else cs
    if res.optimiser.get("stopped") and not v.ok:
        notes.append(f"{res.optimiser['stopped']}; a larger budget may find a plan that covers")
    m = v.metrics
    if case is not given:  # resampled: the margin against the tumour as it was segmented
        m, note = margin_on_case_grid(m, given, v.zone, g, cfg.tumour_index, organ,
                                      target.margin_mm)  # fmt: skip
        if note:
            notes.append(note)
            say(note)
    lab = np.asarray(case.labels.array)
    peri = perivascular_report(tp.tumour, lab, g, zone=v.zone, within_mm=5.0,
                               margin_mm=target.margin_mm)  # fmt: skip
    covers = applicator_covers(v, tp, case)
    past = _past_scan_notes(_merged_settings(v.settings), notes)
    for c in v.selected:
        tr = cs.trajectory(c)
        if tr.unimaged_mm > 0:  # the path search continued the edge slices beyond the image
            notes.append(
                f"a needle path runs {tr.unimaged_mm:.0f} mm outside the scanned image, where "
                "the anatomy is assumed from the edge slices, not imaged: review the path on an "
                "image that covers it"
            )
            say(notes[-1])
            break
    for note in past[2]:
        say(note)
    first = cs.setting_of(v.selected[0])
    organ_rec, organ_suggestions, organ_notes = organ_findings(
        organ, labels=lab, grid=g, tumour=tp.tumour, zone=v.zone, tmax=v.tmax, tmin=v.tmin,
        modality=cfg.modality,
        trajectories=[cs.trajectory(c) for c in dict.fromkeys(v.owners)], at_risk=m["at_risk"],
        shafts=list(zip(v.tips, v.directions, strict=True)),
        shaft_radius_mm=_shaft_radius_mm(app, sim_spacing, g),
    )  # fmt: skip
    notes.extend(organ_notes)
    for note in organ_notes:
        say(note)
    return Plan(
        modality=cfg.modality,
        applicators=_applicator_records(app, cs, v, covers),
        margin_mm=target.margin_mm,
        coverage_percent=m["coverage_percent"],
        margin_coverage_percent=m["margin_coverage_percent"],
        minimal_margin_mm=m["minimal_margin_mm"],
        ablated_liver_ml=m["ablated_liver_ml"],
        ablated_host_ml=m["ablated_host_ml"],
        zone_volume_ml=m["zone_volume_ml"],
        at_risk=m["at_risk"],
        covered=bool(v.ok),
        target_mm=tuple(float(x) for x in target.centre_mm),
        tumour_diameter_mm=target.diameter_mm,
        histology=target.histology,
        verified_by_simulation=True,
        simulation={
            "spacing_mm": sim_spacing,
            "grid_shape": list(v.grid_shapes[0]),
            "perfusion": "in vivo (tissue table), shut down where coagulated",
            "heat_sink": "vessels >= 3 mm from the label map at blood temperature",
            "delivery": delivery,
            "runs": len(v.grid_shapes),
            "runtime_s": round(v.runtime_s, 2),
            "max_temperature_c": round(v.max_temperature_c, 2),
            "tried": list(res.runs),
            "not_tried": [],
        }
        | ({"extends_past_scan_mm": past[0]} if past[0] else {}),
        surrogate={
            "kind": "calibrated zone ellipsoid from block simulations (perfused liver), "
            "corrected for heat sinks near vessels >= 3 mm and by the verification runs",
            "rows": len(rows),
            "predicted_fit": round(_predicted_fit(cs, v), 3),
            "predicted_length_mm": round(first[2], 2),
            "predicted_width_mm": round(first[3], 2),
        },
        rejected_trajectories=tuple(t.to_dict() for t in centre_paths if not t.accepted),
        accepted_trajectories=sum(t.accepted for t in centre_paths),
        suggestions=tuple(
            _suggestions(v, app, target, n_max, len(res.runs))
            + _why_not(v, cs, res, n_max, delivery)
            + _unreached(v, tp, case.labels.grid)
            + organ_suggestions
        ),
        notes=tuple(notes),
        tumour_index=cfg.tumour_index,
        minimal_margin_point_mm=m["minimal_margin_point_mm"],
        protect_mm=cfg.protect_mm,
        extends_past_scan_mm=past[1],
        zone_past_scan_ml=float(sum(s.get("zone_past_scan_ml", 0.0) for s in v.settings)),
        candidates_considered=cs.n,
        candidates={
            "aim_points": len(cs.aims_mm),
            "paths": len(cs.trajectories),
            "paths_examined": len(examined),
            "zone_shifts_mm": sorted({float(x) for x in cs.depth_shift_mm}),
            "settings": len(rows),
            "predicted_safe": int(cs.safe.sum()),
            "max_applicators": n_max,
            "target_points": len(tp.points_mm),
            "heat_sink_prior_points": int(np.count_nonzero(heat_sink_prior(tp))),
        },
        verification_runs=res.runs,
        perivascular=peri,
        robust_coverage=(v.robust or {}).get("robust_coverage"),
        robustness=_robustness_record(v.robust),
        delivery=delivery,
        optimiser=res.optimiser,
        organ=organ,
        organ_rules=organ_rec,
        guidance={"imaging": cfg.trajectories.modality}
        | ({"field_t": cfg.trajectories.field_t} if cfg.trajectories.modality == "MR" else {}),
        selection=_selection(case, organ),
        runtime_s=time.perf_counter() - t0,
        seed=cfg.seed,
        software_version=__version__,
        zone=Volume(v.zone.astype(np.uint8), g),
        tmax=Volume(v.tmax.astype(np.float32), g),
        tmin=Volume(v.tmin.astype(np.float32), g),
    )

"""What one simulation returns: :class:`SimulationResult` and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ioplan.imaging import Grid
from ioplan.physics._solver import ThermalState
from ioplan.physics._zone import ZoneMetrics

__all__ = ["RESULT_SCHEMA_VERSION", "SimulationResult"]

RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Zone, isotherms, extremes, energy and timing of one simulation, plus its final state."""

    zone: ZoneMetrics
    isotherms: dict[str, ZoneMetrics]
    max_temperature_c: float
    min_temperature_c: float
    energy_j: float
    runtime_s: float
    voxel_updates_per_s: float
    steps: int
    dt_s: float
    grid: Grid
    state: ThermalState = field(repr=False)
    zone_mask: np.ndarray = field(repr=False)
    applicator: str = ""
    modality: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    tissue_used: dict[str, float | str] | None = None
    snapshots: dict[str, ZoneMetrics] = field(default_factory=dict)
    #: at each snapshot time, a field that is >= 0 exactly inside the zone (ln Omega for
    #: heat, lethal temperature minus the minimum temperature for cryo), for sub-voxel sizing
    snapshot_fields: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: the temperature field (degC) at each snapshot time, on ``grid``
    snapshot_temperatures_c: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: at each snapshot time: the energy the source has put into the tissue so far (J) and
    #: the highest temperature any tissue voxel has reached so far (degC)
    snapshot_energy_j: dict[str, float] = field(default_factory=dict)
    snapshot_max_temperature_c: dict[str, float] = field(default_factory=dict)
    #: where the run's time went (s): ``kernel_s`` (heat equation steps), ``damage_s``
    #: (damage, extremes, perfusion), ``source_s`` (heat source), and ``general_updates``
    #: (voxel updates that took the general enthalpy path)
    engine: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``ioplan simulate --json`` (keys are never renamed)."""
        doc: dict[str, Any] = {
            "schema_version": RESULT_SCHEMA_VERSION,
            "applicator": self.applicator,
            "modality": self.modality,
            "zone": self.zone.to_dict(),
            "isotherms": {k: v.to_dict() for k, v in self.isotherms.items()},
            "max_temperature_c": round(self.max_temperature_c, 3),
            "min_temperature_c": round(self.min_temperature_c, 3),
            "energy_j": round(self.energy_j, 3),
            "runtime_s": round(self.runtime_s, 4),
            "voxel_updates_per_s": round(self.voxel_updates_per_s, 1),
            "steps": self.steps,
            "dt_s": round(self.dt_s, 6),
            "grid": self.grid.to_dict(),
            "settings": self.settings,
            "warnings": list(self.settings.get("warnings", [])),
        }
        if self.tissue_used is not None:
            doc["tissue"] = self.tissue_used
        if self.snapshots:
            doc["snapshots"] = {k: v.to_dict() for k, v in self.snapshots.items()}
            for k, snap in doc["snapshots"].items():
                if k in self.snapshot_energy_j:
                    snap["energy_j"] = round(self.snapshot_energy_j[k], 3)
                    snap["max_temperature_c"] = round(self.snapshot_max_temperature_c[k], 3)
        if self.engine:
            doc["engine"] = {k: round(float(v), 4) for k, v in self.engine.items()}
        return doc

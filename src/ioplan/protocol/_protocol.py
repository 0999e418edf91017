"""The MR-guided procedure protocol: steps, team, sequences, thermometry, devices, artefact.

:func:`build_protocol` assembles the document from the data files (each value with its
source: ``protocol/data/*.toml``), ioplan's constants (thermal dose threshold, PRF
constants, alert temperature), the catalogue's MR conditions and the needle-artefact model;
:func:`write_protocol` writes ``protocol.json`` and ``protocol.html`` atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ioplan import __version__
from ioplan.devices import (
    Applicator,
    applicator,
    check_mr_guidance,
    mr_conditional_applicators,
)
from ioplan.errors import InputError
from ioplan.imaging import atomic_output_folder, check_replaceable
from ioplan.monitoring import prf_constants
from ioplan.physics import CEM43_NECROSIS_MIN
from ioplan.planning import (
    ARTEFACT_ANCHOR,
    ARTEFACT_HIDE_FRACTION,
    ARTEFACT_SEQUENCES,
    B0_AXIS_LPS,
    NEEDLE_SUSCEPTIBILITY_PPM,
    needle_artefact_table,
)
from ioplan.protocol._html import protocol_html
from ioplan.protocol._thermometry import (
    TISSUES,
    ThermometryPlan,
    _data,
    field_key,
    thermometry_plan,
)

__all__ = [
    "MODALITIES",
    "PROTOCOL_FILES",
    "PROTOCOL_SCHEMA_VERSION",
    "Protocol",
    "ProtocolConfig",
    "build_protocol",
    "check_protocol_output",
    "write_protocol",
]

PROTOCOL_SCHEMA_VERSION = 1
#: Protocol modalities and the catalogue modality of their devices.
MODALITIES = {"mwa": "mw", "rfa": "rf", "cryo": "cryo"}
#: What ``ioplan protocol`` writes into its output folder.
PROTOCOL_FILES = frozenset({"protocol.json", "protocol.html"})


@dataclass(frozen=True)
class ProtocolConfig:
    """What the protocol is for (validated on construction, before any work).

    Attributes
    ----------
    modality : str
        ``mwa``, ``rfa`` or ``cryo``.
    field_t : float
        1.5 or 3 (T).
    guidance : str
        ``mr`` (the only guidance this protocol covers).
    applicator_id : str
        A catalogue device (empty: every MR Conditional device of the modality at the field).
    tissue : str
        The target's tissue (T2* and T1 for thermometry): one of :data:`TISSUES`.
    """

    modality: str
    field_t: float
    guidance: str = "mr"
    applicator_id: str = ""
    tissue: str = "liver"

    def __post_init__(self) -> None:
        if self.guidance.lower() != "mr":
            raise InputError(
                f"--guidance must be mr (an MR-guided protocol), got {self.guidance!r}"
            )
        object.__setattr__(self, "guidance", "mr")
        if self.modality not in MODALITIES:
            raise InputError(f"--modality must be mwa, rfa or cryo, got {self.modality!r}")
        field_key(self.field_t)
        if self.tissue not in TISSUES:
            raise InputError(f"--tissue must be one of {', '.join(TISSUES)}, got {self.tissue!r}")
        if self.applicator_id:
            self.devices()  # refuse a device of another modality or not MR Conditional

    def devices(self) -> list[Applicator]:
        """The protocol's devices: the one named (checked for MR guidance) or all that fit."""
        want = MODALITIES[self.modality]
        if not self.applicator_id:
            return mr_conditional_applicators(want, self.field_t)
        app = applicator(self.applicator_id)
        if app.modality != want:
            raise InputError(
                f"--applicator {app.id} is a {app.modality} device, not for --modality "
                f"{self.modality}"
            )
        check_mr_guidance(app, self.field_t)
        return [app]


@dataclass(frozen=True)
class Protocol:
    """The protocol document (JSON: :meth:`to_dict`; keys named in issue 22 are a contract)."""

    config: ProtocolConfig
    steps: tuple[dict[str, Any], ...]
    sequences: tuple[dict[str, Any], ...]
    thermometry: ThermometryPlan
    devices: tuple[dict[str, Any], ...]
    needle_artefact: dict[str, Any]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``protocol.json``."""
        c = self.config
        return {
            "schema_version": PROTOCOL_SCHEMA_VERSION,
            "software_version": __version__,
            "modality": c.modality,
            "guidance": c.guidance,
            "field_t": c.field_t,
            "tissue": c.tissue,
            "applicator": c.applicator_id or None,
            "steps": list(self.steps),
            "sequences": list(self.sequences),
            "thermometry": self.thermometry.to_dict(),
            "devices": list(self.devices),
            "needle_artefact": self.needle_artefact,
            "notes": list(self.notes),
        }


def _sequences(cfg: ProtocolConfig, th: ThermometryPlan) -> list[dict[str, Any]]:
    key = field_key(cfg.field_t)
    out = []
    for s in _data("sequences.toml")["sequence"]:
        if cfg.modality not in s["modalities"]:
            continue
        rec: dict[str, Any] = {"name": s["name"], "purpose": s["purpose"], "stage": s["stage"]}
        sources = {}
        for p in ("te_ms", "tr_ms", "flip_deg", "resolution_mm"):
            rec[p] = s[p][key]
            sources[p] = s[p]["source"]
        rec["sources"] = sources
        out.append(rec)
    therm = {
        "name": "PRF thermometry, 2D spoiled GRE",
        "purpose": "temperature and thermal dose during energy delivery (PRF shift)"
        + ("; in the unfrozen tissue around the ice" if cfg.modality == "cryo" else ""),
        "stage": "thermometry",
        "te_ms": round(th.te_ms, 2),
        "tr_ms": round(th.tr_ms, 2),
        "flip_deg": round(th.flip_deg, 1),
        "resolution_mm": th.resolution_mm,
        "sources": {
            "te_ms": th.sources["te_rule"] + f"; TE limited by {th.te_limited_by}",
            "tr_ms": th.sources["tr_overhead_ms"],
            "flip_deg": th.sources["flip_deg"] + " (" + th.sources["t1_ms"] + ")",
            "resolution_mm": th.sources["resolution_mm"],
        },
    }
    stages = [r["stage"] for r in out]
    at = stages.index("confirmation") if "confirmation" in stages else len(out)
    out.insert(at, therm)
    return out


def _steps(cfg: ProtocolConfig, th: ThermometryPlan) -> list[dict[str, Any]]:
    values = {
        "cem43_min": f"{CEM43_NECROSIS_MIN:g}",
        "alert_c": f"{prf_constants()['alert_temperature_c']:g}",
        "field_t": f"{cfg.field_t:g}",
        "te_ms": f"{th.te_ms:g}",
        "precision_c": f"{th.expected_precision_c:.2f}",
    }
    return [
        {
            "id": s["id"],
            "title": s["title"],
            "text": s["text"].format(**values),
            "source": s["source"],
        }
        for s in _data("steps.toml")["step"]
        if cfg.modality in s["modalities"]
    ]


def _artefact(cfg: ProtocolConfig, devices: list[Applicator]) -> tuple[dict[str, Any], list]:
    notes = []
    if devices:
        app = devices[0]
        material, diameter, what = app.mr_material, app.diameter_mm, app.id
    else:
        material, diameter, what = "", 1.5, "a 17 G (1.5 mm) needle"
    if not material:
        notes.append(f"needle artefact: the shaft material of {what} is not recorded; "
                     "titanium assumed")  # fmt: skip
        material = "titanium"
    return {
        "device": what,
        "material": material,
        "diameter_mm": diameter,
        "field_t": cfg.field_t,
        "b0_axis_lps": list(B0_AXIS_LPS),
        "model": "W = D max(1, K s_seq sqrt(|dchi|/|dchi_ref| B0/B0_ref) sin(angle to B0)): "
        "the void of a long cylinder (Schenck 1996); parallel to B0 the smallest (Lewin 1996, "
        "Ladd 1996)",
        "anchor": ARTEFACT_ANCHOR,
        "sequence_factors": ARTEFACT_SEQUENCES,
        "susceptibility_ppm": NEEDLE_SUSCEPTIBILITY_PPM,
        "hides_target_when_wider_than_fraction_of_target": ARTEFACT_HIDE_FRACTION,
        "rows": needle_artefact_table(
            material=material, diameter_mm=diameter, fields_t=(cfg.field_t,)
        ),
    }, notes


def _device_record(app: Applicator) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "modality": app.modality,
        "diameter_mm": app.diameter_mm,
        "mr_conditional": app.mr_conditional,
        "mr_fields_t": list(app.mr_fields_t),
        "mr_material": app.mr_material or None,
        "mr_conditions": app.mr_conditions,
        "source": app.source,
    }


def build_protocol(cfg: ProtocolConfig) -> Protocol:
    """The protocol document for ``cfg`` (no files written)."""
    th = thermometry_plan(cfg.tissue, cfg.field_t)
    devices = cfg.devices()
    notes = []
    if not devices:
        notes.append(
            f"no device of the catalogue is labelled MR Conditional for {cfg.modality} at "
            f"{cfg.field_t:g} T: add one (an applicator file with mr_conditional, "
            "mr_fields_t and mr_conditions) before an MR-guided procedure"
        )
    artefact, more = _artefact(cfg, devices)
    notes.extend(more)
    if th.te_limited_by != "T2*":
        notes.append(
            f"thermometry TE {th.te_ms:g} ms is shorter than the {cfg.tissue}'s T2* "
            f"({th.t2star_ms:g} ms) to keep frames short ({th.te_limited_by} ms)"
        )
    return Protocol(
        config=cfg,
        steps=tuple(_steps(cfg, th)),
        sequences=tuple(_sequences(cfg, th)),
        thermometry=th,
        devices=tuple(_device_record(a) for a in devices),
        needle_artefact=artefact,
        notes=tuple(notes),
    )


def write_protocol(protocol: Protocol, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``protocol.json`` and ``protocol.html`` into ``out`` (atomically)."""
    doc = protocol.to_dict()
    with atomic_output_folder(out, command="protocol", names=PROTOCOL_FILES,
                              overwrite=overwrite) as tmp:  # fmt: skip
        (tmp / "protocol.json").write_text(json.dumps(doc, indent=2) + "\n")
        (tmp / "protocol.html").write_text(protocol_html(doc))
    return Path(out)


def check_protocol_output(out: str | Path, *, overwrite: bool) -> Path:
    """Refuse an output folder ``ioplan protocol`` may not write (before any work)."""
    return check_replaceable(out, command="protocol", names=PROTOCOL_FILES, overwrite=overwrite)

"""RF ablation generators: output limits and control, a frozen object and a pure step.

Impedance pulsing (Cool-tip), ramp and roll-off (LeVeen), target temperature (RITA).

The parameter sets of real generators (with sources) are in
``ioplan/devices/data/rf_generators.toml``; :meth:`RfGenerator.from_catalogue` reads one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ioplan.errors import InputError

__all__ = ["RF_MODES", "GeneratorState", "RfGenerator", "rf_generator_step"]

#: Generator modes: an ideal constant-power source (verification), the device's own
#: impedance control (pulsing / roll-off), or target-temperature control.
RF_MODES = ("power", "impedance", "temperature")


@dataclass(frozen=True)
class RfGenerator:
    """An RF generator: power limits and control, as the common ablation generators do.

    ``mode="power"``: an ideal constant-power source (no hardware limits; for
    verification). ``mode="impedance"``: the device's own control. The output starts at
    ``start_power_w`` (None: ``power_w``) and ramps by ``ramp_w_per_min`` up to
    ``power_w``; when the impedance rises ``rolloff_ohm`` above its baseline (the
    lowest impedance so far, or the first one: ``baseline``), the output drops to
    ``pulse_power_w`` for ``pause_s`` (a pulse, Cool-tip; a roll-off, LeVeen), then
    resumes at ``resume_fraction`` times the level it had. ``mode="temperature"``: the
    output is ``level * clip((target_temperature_c - T_probe) / band_k, 0, 1)`` (a
    proportional controller, RITA class) and no roll-off. In the ``impedance`` and
    ``temperature`` modes the output is also limited by the hardware:
    ``P <= max_current_a^2 Z`` and ``P <= max_voltage_v^2 / Z``.

    Attributes
    ----------
    power_w : float
        Set (maximum) power (W).
    mode : {"power", "impedance", "temperature"}
        Control mode.
    rolloff_ohm : float
        Impedance rise above the baseline that triggers a pulse (ohm).
    pause_s : float
        Length of a pulse (s).
    pulse_power_w : float
        Output during a pulse (W); 0: off.
    resume_fraction : float
        After a pulse, the level resumes at this fraction of the level before it.
    start_power_w : float or None
        Output at t = 0 (W); None: ``power_w`` (constant start).
    ramp_w_per_min : float
        Increase of the level per minute (W/min) until ``power_w``.
    max_current_a, max_voltage_v : float
        Hardware limits (A rms, V rms); inf: none.
    target_temperature_c, band_k : float
        Temperature mode: target at the probe (degC) and proportional band (K).
    baseline : {"initial", "minimum"}
        Baseline impedance: the first or the lowest so far.
    name : str
        The parameter set's name (``rf_generators.toml``), empty for ad-hoc settings.

    Examples
    --------
    A scripted impedance curve: 10 ohm above the baseline at 10 s, a 15 s pulse, and the
    power back at 25 s.

    >>> gen = RfGenerator(200.0, "impedance", rolloff_ohm=10.0, pause_s=15.0, baseline="minimum")
    >>> st, powers = GeneratorState(), []
    >>> for t, z in [(0, 80.0), (5, 75.0), (10, 86.0), (15, 80.0), (20, 78.0), (25, 78.0)]:
    ...     p, st = rf_generator_step(gen, st, float(t), z)
    ...     powers.append(p)
    >>> powers, st.pulses, st.energy_until(30.0)
    ([200.0, 200.0, 0.0, 0.0, 0.0, 200.0], 1, 3000.0)
    """

    power_w: float
    mode: str = "power"
    rolloff_ohm: float = 20.0
    pause_s: float = 15.0
    pulse_power_w: float = 0.0
    resume_fraction: float = 1.0
    start_power_w: float | None = None
    ramp_w_per_min: float = 0.0
    max_current_a: float = math.inf
    max_voltage_v: float = math.inf
    target_temperature_c: float = 105.0
    band_k: float = 5.0
    baseline: str = "initial"
    name: str = ""

    def __post_init__(self) -> None:
        if self.mode not in RF_MODES:
            raise InputError(
                f"RF mode must be 'power', 'impedance' or 'temperature', got {self.mode!r}"
            )
        if self.baseline not in ("minimum", "initial"):
            raise InputError(f"RF baseline must be 'minimum' or 'initial', got {self.baseline!r}")
        checks = {
            "power_w": (self.power_w, 0.0, 1000.0),
            "rolloff_ohm": (self.rolloff_ohm, 0.0, 1e4),
            "pause_s": (self.pause_s, 0.0, 600.0),
            "pulse_power_w": (self.pulse_power_w, 0.0, 1000.0),
            "resume_fraction": (self.resume_fraction, 0.0, 1.0),
            "ramp_w_per_min": (self.ramp_w_per_min, 0.0, 1000.0),
            "band_k": (self.band_k, 1e-3, 100.0),
            "target_temperature_c": (self.target_temperature_c, 37.0, 150.0),
        }
        if self.start_power_w is not None:
            checks["start_power_w"] = (self.start_power_w, 0.0, 1000.0)
        for name, (v, lo, hi) in checks.items():
            if not (isinstance(v, int | float) and np.isfinite(v) and lo <= v <= hi):
                raise InputError(f"RF generator {name} must be {lo:g}-{hi:g}, got {v!r}")
        for name in ("max_current_a", "max_voltage_v"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and v > 0):
                raise InputError(f"RF generator {name} must be > 0 (inf: no limit), got {v!r}")

    @classmethod
    def from_catalogue(cls, name: str, power_w: float, mode: str = "impedance") -> RfGenerator:
        """The parameter set ``name`` of ``rf_generators.toml`` at the set power ``power_w``.

        The set power is capped at the generator's maximum (``max_power_w``).
        """
        from ioplan.devices import rf_generator_record

        rec = rf_generator_record(name)
        values = {k: v for k, v in rec.items() if k in cls.__dataclass_fields__}
        values.pop("power_w", None)
        values.pop("name", None)
        cap = float(rec.get("max_power_w", math.inf))
        if "mode" in rec and mode == "impedance":
            mode = rec["mode"]  # the device's own control (impedance or temperature)
        values["mode"] = mode
        return cls(power_w=min(float(power_w), cap), name=name, **values)


@dataclass(frozen=True)
class GeneratorState:
    """What a generator remembers between calls (all times in s, powers in W, ohm).

    ``times_s``, ``impedance_ohm`` and ``power_w`` log every call (the impedance curve);
    ``energy_j`` is the energy delivered up to ``last_time_s`` (the output is held between
    calls).
    """

    baseline_ohm: float = math.inf
    initial_ohm: float = math.nan
    level_w: float = math.nan
    pause_until_s: float = -math.inf
    pulses: int = 0
    energy_j: float = 0.0
    last_time_s: float = math.nan
    last_power_w: float = 0.0
    times_s: tuple[float, ...] = ()
    impedance_ohm: tuple[float, ...] = ()
    power_w: tuple[float, ...] = ()

    def energy_until(self, time_s: float) -> float:
        """Energy (J) delivered up to ``time_s`` (the last output held since the last call)."""
        if not np.isfinite(self.last_time_s):
            return 0.0
        return self.energy_j + self.last_power_w * max(time_s - self.last_time_s, 0.0)


def rf_generator_step(
    gen: RfGenerator,
    state: GeneratorState,
    time_s: float,
    impedance_ohm: float,
    probe_temperature_c: float = math.nan,
) -> tuple[float, GeneratorState]:
    """The generator's output (W) from ``time_s`` on, given the load impedance then.

    A pure function: the state is not modified. See :class:`RfGenerator` for the logic.

    Parameters
    ----------
    gen : RfGenerator
        Settings.
    state : GeneratorState
        The state returned by the previous call (``GeneratorState()`` at first).
    time_s : float
        Time (s), not before the previous call's.
    impedance_ohm : float
        Load impedance (ohm) measured now.
    probe_temperature_c : float
        Temperature at the probe's sensor (degC), temperature mode only.

    Returns
    -------
    power_w : float
        Output power (W), held until the next call.
    state : GeneratorState
        The new state.
    """
    z = float(impedance_ohm)
    t = float(time_s)
    energy = state.energy_until(t)
    # the ramp runs while the output is on: not during a pulse
    on_since = max(state.last_time_s, state.pause_until_s)
    dt = max(t - on_since, 0.0) if np.isfinite(state.last_time_s) else 0.0
    initial = z if not np.isfinite(state.initial_ohm) else state.initial_ohm
    baseline = min(state.baseline_ohm, z) if gen.baseline == "minimum" else initial
    if not np.isfinite(state.level_w):
        level = gen.power_w if gen.start_power_w is None else min(gen.start_power_w, gen.power_w)
    else:
        level = min(gen.power_w, state.level_w + gen.ramp_w_per_min * dt / 60.0)
    pause_until, pulses = state.pause_until_s, state.pulses
    if gen.mode == "power":
        power = gen.power_w
    elif gen.mode == "temperature":
        frac = (gen.target_temperature_c - probe_temperature_c) / gen.band_k
        power = level * float(np.clip(frac, 0.0, 1.0)) if np.isfinite(frac) else level
    elif t < pause_until:
        power = gen.pulse_power_w
        level = state.level_w  # no ramp during a pulse
    elif z > baseline + gen.rolloff_ohm:
        pulses += 1
        pause_until = t + gen.pause_s
        level = gen.resume_fraction * level
        power = gen.pulse_power_w
    else:
        power = level
    if gen.mode != "power" and z > 0 and np.isfinite(z):
        power = min(power, gen.max_current_a**2 * z, gen.max_voltage_v**2 / z)
    new = GeneratorState(
        baseline_ohm=baseline, initial_ohm=initial, level_w=level, pause_until_s=pause_until,
        pulses=pulses, energy_j=energy, last_time_s=t, last_power_w=power,
        times_s=(*state.times_s, t), impedance_ohm=(*state.impedance_ohm, z),
        power_w=(*state.power_w, power),
    )  # fmt: skip
    return power, new

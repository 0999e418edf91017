"""``ThermometryConfig`` validates its own fields, so that every caller gets the checks.

(monitoring/_prf.py belongs to the physics engineer in issue 15, with the damage
module it now shares; its config tests live here for that reason.)
Defect: ``--alert-c -400`` was accepted silently.
"""

from __future__ import annotations

import pytest

from ioplan.errors import InputError
from ioplan.monitoring import ThermometryConfig

_OK = dict(b0_t=3.0, te_ms=10.0)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("alert_temperature_c", -400.0, "alert temperature"),
        ("alert_temperature_c", 36.9, "alert temperature"),
        ("alert_temperature_c", 101.0, "alert temperature"),
        ("alert_temperature_c", float("nan"), "alert temperature"),
        ("b0_t", 0.0, "B0"),
        ("b0_t", -3.0, "B0"),
        ("te_ms", 0.0, "TE"),
        ("te_ms", float("inf"), "TE"),
        ("baseline_frames", 0, "baseline frames"),
        ("baseline_frames", 2.5, "baseline frames"),
        ("baseline_frames", True, "baseline frames"),
        ("drift_order", 3, "drift order"),
        ("drift_order", -2, "drift order"),
        ("baseline_temperature_c", -300.0, "baseline temperature"),
        ("alpha_ppm_per_c", 0.01, "alpha"),
        ("snr_threshold", -1.0, "SNR"),
        ("necrosis_cem43_min", 0.0, "necrosis"),
        ("necrosis_cem43_min", float("nan"), "necrosis"),
    ],
)
def test_nonsense_is_refused(field, value, fragment):
    with pytest.raises(InputError, match=fragment) as info:
        ThermometryConfig(**{**_OK, field: value})
    assert str(value) in str(info.value)  # the message names the value received


@pytest.mark.parametrize(
    ("field", "value"),
    [("alert_temperature_c", 37.0), ("alert_temperature_c", 100.0), ("drift_order", -1),
     ("drift_order", 2), ("baseline_frames", 1), ("alpha_ppm_per_c", -0.0094),
     ("snr_threshold", 0.0), ("baseline_temperature_c", 20.0)],
)  # fmt: skip
def test_limits_are_accepted(field, value):
    assert getattr(ThermometryConfig(**{**_OK, field: value}), field) == value

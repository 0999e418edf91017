"""Microwave antennas' field-model fields in the catalogue (issue 19)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ioplan.devices import COAX_CABLES, MW_MODELS, applicator, list_applicators
from ioplan.errors import InputError
from ioplan.physics import antenna_geometry

FIELD_DEVICES = ("covidien-emprint", "amica", "angiodynamics-acculis")


@pytest.mark.parametrize("device", FIELD_DEVICES)
def test_charted_antennas_have_a_field_model_within_their_diameter(device):
    # the lumped pattern stays the default (it fits the charts better today:
    # validation/maxwell.md); the field model is one option away
    app = replace(applicator(device), mw_model="field")
    geo = antenna_geometry(app)
    # the modelled antenna is exactly as thick as the published applicator
    assert geo.catheter_radius_mm == pytest.approx(0.5 * app.diameter_mm)
    assert geo.outer_radius_mm == COAX_CABLES[app.cable][2]
    assert 0.0 < app.feed_efficiency <= 1.0
    assert 2.0 <= app.slot_to_short_mm <= 20.0  # the calibration's bounds


def test_lumped_model_is_the_default():
    for app in list_applicators():
        if app.modality == "mw":
            assert app.mw_model == "lumped", app.id
    assert set(MW_MODELS) == {"lumped", "field"}


def test_bad_field_settings_are_refused():
    app = replace(applicator("covidien-emprint"), mw_model="field")
    with pytest.raises(InputError, match="mw_model"):
        replace(app, mw_model="fdtd")
    with pytest.raises(InputError, match="cable"):
        replace(app, cable="RG-58")
    with pytest.raises(InputError, match="no room"):
        replace(app, diameter_mm=1.2)

"""The MR-guided procedure protocol (issue 22): thermometry arithmetic recomputed from the
data files and the PRF physics, the document's content and its sources.
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources

import pytest

from ioplan.errors import InputError
from ioplan.physics import CEM43_NECROSIS_MIN
from ioplan.protocol import ProtocolConfig, build_protocol, prf_precision_c, thermometry_plan

# PRF physics restated, not read from ioplan: gamma_p/2pi (CODATA 2018) and the water PRF
# coefficient -0.01 ppm/degC (Ishihara 1995; Rieke & Butts Pauly 2008)
GAMMA_RAD_PER_S_T = 2 * math.pi * 42.577478518e6
ALPHA_PER_C = 0.01e-6


def _sigma(b0_t, te_ms, snr, n):
    return math.sqrt(1 + 1 / n) / (ALPHA_PER_C * GAMMA_RAD_PER_S_T * b0_t * te_ms * 1e-3 * snr)


def _data():
    text = resources.files("ioplan.protocol").joinpath("data/thermometry.toml").read_text()
    return tomllib.loads(text)


def test_precision_formula_matches_the_published_example():
    # shared/validation/README.md section 6: 3 T, TE 10 ms, SNR 20 -> about 0.6-0.9 degC
    # (the single-frame formula; with a long baseline sqrt(1 + 1/N) -> 1)
    s = prf_precision_c(field_t=3.0, te_ms=10.0, snr=20.0, baseline_frames=1000)
    assert 0.6 <= s <= 0.9
    assert s == pytest.approx(_sigma(3.0, 10.0, 20.0, 1000), rel=1e-6)
    # precision improves as 1/(B0 TE SNR): doubling each halves sigma
    base = prf_precision_c(field_t=1.5, te_ms=10.0, snr=20.0, baseline_frames=5)
    assert prf_precision_c(field_t=3.0, te_ms=10.0, snr=20.0, baseline_frames=5) == (
        pytest.approx(base / 2, rel=1e-9)
    )
    assert prf_precision_c(field_t=1.5, te_ms=20.0, snr=40.0, baseline_frames=5) == (
        pytest.approx(base / 4, rel=1e-9)
    )


@pytest.mark.parametrize(("tissue", "field_t"), [("liver", 1.5), ("liver", 3.0), ("kidney", 3.0)])
def test_te_snr_and_precision_recomputed(tissue, field_t):
    data = _data()
    key = f"{field_t:g}"
    t2s = data["tissues"][tissue]["t2star_ms"][key]
    t1 = data["tissues"][tissue]["t1_ms"][key]
    te = min(t2s, data["te_max_ms"]["value"])  # TE near T2*, capped by frame time
    tr = te + data["tr_overhead_ms"]["value"]
    snr = data["snr_1p5t_te0"]["value"] * (field_t / 1.5) * math.exp(-te / t2s)
    n = data["baseline_frames"]["value"]
    th = thermometry_plan(tissue, field_t)
    assert th.te_ms == pytest.approx(te)
    assert th.tr_ms == pytest.approx(tr)
    assert th.snr == pytest.approx(snr, rel=1e-12)
    assert th.flip_deg == pytest.approx(math.degrees(math.acos(math.exp(-tr / t1))))  # Ernst
    assert th.expected_precision_c == pytest.approx(_sigma(field_t, te, snr, n), rel=1e-9)
    # the JSON carries the same numbers (rounded for reading: 3 decimals)
    d = th.to_dict()
    assert d["expected_precision_c"] == pytest.approx(_sigma(field_t, te, snr, n), abs=5e-4)
    assert d["snr"] == pytest.approx(snr, abs=5e-3)


def test_te_at_t2star_maximises_the_phase_snr():
    """TE exp(-TE/T2*) (the temperature-to-noise ratio) peaks at TE = T2*: the rule's basis.

    Liver at 3 T is not capped, so its TE is T2* and nearby TEs give a worse precision.
    """
    th = thermometry_plan("liver", 3.0)
    assert th.te_limited_by == "T2*" and th.te_ms == th.t2star_ms
    snr0 = th.snr * math.exp(th.te_ms / th.t2star_ms)
    for te in (0.5 * th.te_ms, 0.8 * th.te_ms, 1.25 * th.te_ms, 2 * th.te_ms):
        worse = _sigma(3.0, te, snr0 * math.exp(-te / th.t2star_ms), th.baseline_frames)
        assert worse > th.expected_precision_c


def test_mwa_protocol_content():
    doc = build_protocol(ProtocolConfig(modality="mwa", field_t=1.5)).to_dict()
    for k in ("steps", "sequences", "thermometry", "devices"):
        assert k in doc
    ids = [s["id"] for s in doc["steps"]]
    for want in (
        "patient_selection",
        "mr_safety_screening",
        "team_and_roles",
        "room_and_equipment",
        "anaesthesia_and_breathing",
        "planning_imaging",
        "needle_guidance",
        "thermometry",
        "confirmation_imaging",
        "stopping_rules",
        "post_procedure",
    ):
        assert want in ids
    assert "ice_ball_imaging" not in ids
    team = next(s for s in doc["steps"] if s["id"] == "team_and_roles")["text"]
    for role in (
        "Interventional radiologist",
        "Anaesthetist",
        "Hepatologist / oncologist",
        "MR technologist",
    ):
        assert role in team
    stop = next(s for s in doc["steps"] if s["id"] == "stopping_rules")
    # Sapareto & Dewey 1984: 240 CEM43 minutes, the threshold ioplan.physics uses
    assert CEM43_NECROSIS_MIN == 240.0 and "CEM43 >= 240 min" in stop["text"]
    assert "Sapareto" in stop["source"]
    for s in doc["steps"]:
        assert s["source"] and "{" not in s["text"], s["id"]
    for s in doc["sequences"]:
        for k in ("name", "purpose", "te_ms", "tr_ms", "flip_deg", "resolution_mm"):
            assert k in s
        assert isinstance(s["te_ms"], float) and isinstance(s["tr_ms"], float)
        assert 0 < s["te_ms"] < s["tr_ms"], s["name"]
        assert set(s["sources"]) == {"te_ms", "tr_ms", "flip_deg", "resolution_mm"}
        assert all(s["sources"].values()), s["name"]
    names = " ".join(s["name"] for s in doc["sequences"])
    assert "balanced SSFP" in names and "PRF thermometry" in names
    # the Dixon opposed-phase TE from the fat-water shift: 1 / (2 x 3.4 ppm x 42.58 MHz x B0)
    dixon = next(s for s in doc["sequences"] if "Dixon" in s["name"])
    assert dixon["te_ms"] == pytest.approx(1e3 / (2 * 3.4e-6 * 42.577e6 * 1.5), abs=0.01)
    therm = doc["thermometry"]
    assert {"te_ms", "snr", "expected_precision_c"} <= set(therm)
    # the thermometry sequence is the thermometry block's
    prf = next(s for s in doc["sequences"] if s["stage"] == "thermometry")
    assert prf["te_ms"] == therm["te_ms"]
    assert [d["id"] for d in doc["devices"]] == ["mr-mw-1.5t"]
    assert doc["devices"][0]["mr_conditions"].startswith("MR Conditional at 1.5 T")
    art = doc["needle_artefact"]
    assert art["b0_axis_lps"] == [0.0, 0.0, 1.0] and art["rows"]


def test_cryo_protocol_at_3t():
    doc = build_protocol(ProtocolConfig(modality="cryo", field_t=3.0)).to_dict()
    ids = [s["id"] for s in doc["steps"]]
    assert "ice_ball_imaging" in ids and "stopping_rules_cryo" in ids
    assert "stopping_rules" not in ids
    names = " ".join(s["name"] for s in doc["sequences"])
    assert "UTE" in names and "ice ball" in names
    assert [d["id"] for d in doc["devices"]] == ["icerod-1.5-mri"]
    art = doc["needle_artefact"]
    assert art["material"] == "inconel" and art["field_t"] == 3.0
    par = [r["width_mm"] for r in art["rows"] if r["angle_to_b0_deg"] == 0.0]
    perp = [r["width_mm"] for r in art["rows"] if r["angle_to_b0_deg"] == 90.0]
    assert min(perp) > max(par) == pytest.approx(1.5)


def test_bad_requests_are_refused():
    with pytest.raises(InputError, match=r"--field-t must be 1\.5 or 3"):
        ProtocolConfig(modality="mwa", field_t=2.0)
    with pytest.raises(InputError, match="--modality"):
        ProtocolConfig(modality="hifu", field_t=1.5)
    with pytest.raises(InputError, match="--guidance must be mr"):
        ProtocolConfig(modality="mwa", field_t=1.5, guidance="ct")
    with pytest.raises(InputError, match="--tissue"):
        ProtocolConfig(modality="mwa", field_t=1.5, tissue="brain")
    with pytest.raises(InputError, match="not for --modality mwa"):
        ProtocolConfig(modality="mwa", field_t=1.5, applicator_id="icerod-1.5-mri")
    with pytest.raises(InputError, match="not MR Conditional"):
        ProtocolConfig(modality="mwa", field_t=1.5, applicator_id="neuwave-pr")
    # no MR Conditional RF device in the catalogue: the document says so, nothing invented
    doc = build_protocol(ProtocolConfig(modality="rfa", field_t=1.5))
    assert doc.devices == () and any("no device" in n for n in doc.notes)

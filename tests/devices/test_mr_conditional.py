"""MR conditionality in the catalogue (issue 22): recorded per device with its source,
printed by `ioplan applicators --json`, and non-MR devices refused for MR guidance.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from ioplan.devices import (
    applicator,
    check_mr_guidance,
    list_applicators,
    load_applicator_file,
    mr_conditional_applicators,
)
from ioplan.errors import InputError


def test_applicators_json_has_mr_keys(capsys):
    code, out, _ = run_cli(capsys, "applicators", "--json")
    assert code == 0
    recs = json.loads(out)
    assert len(recs) == len(list_applicators())
    for r in recs:
        assert r["mr_conditional"] in (True, False, None), r["id"]
        # every device says why, with its source or the reason it is unknown
        assert isinstance(r["mr_conditions"], str) and len(r["mr_conditions"]) > 40, r["id"]
    by_id = {r["id"]: r for r in recs}
    # the CT/US antennas the issue names are not MR Conditional; generic classes unknown
    assert by_id["covidien-emprint"]["mr_conditional"] is False
    assert by_id["neuwave-pr"]["mr_conditional"] is False
    assert by_id["generic-mw-2450"]["mr_conditional"] is None
    # MR Conditional devices state fields and cite a source (a DOI, a paper or the maker)
    cond = [r for r in recs if r["mr_conditional"] is True]
    assert {r["modality"] for r in cond} == {"mw", "cryo"}
    for r in cond:
        assert r["mr_fields_t"], r["id"]
        assert any(k in r["mr_conditions"] for k in ("DOI", "et al", "manufacturer")), r["id"]


def test_applicators_table_has_an_mr_column(capsys):
    code, out, _ = run_cli(capsys, "applicators")
    assert code == 0 and "MR" in out and "unknown" in out


def test_non_mr_devices_are_refused_with_the_reason():
    with pytest.raises(InputError, match=r"not MR Conditional.*ultrasound- and CT-guided"):
        check_mr_guidance(applicator("covidien-emprint"), 1.5)
    with pytest.raises(InputError, match="unknown MR conditionality"):
        check_mr_guidance(applicator("cryo-1.5mm"), 3.0)
    with pytest.raises(InputError, match=r"only at 1\.5 T, not at 3 T"):
        check_mr_guidance(applicator("mr-mw-1.5t"), 3.0)
    check_mr_guidance(applicator("mr-mw-1.5t"), 1.5)
    for f in (1.5, 3.0):
        check_mr_guidance(applicator("icerod-1.5-mri"), f)


def test_mr_conditional_selection():
    assert [a.id for a in mr_conditional_applicators("cryo", 3.0)] == ["icerod-1.5-mri"]
    assert [a.id for a in mr_conditional_applicators("mw", 1.5)] == ["mr-mw-1.5t"]
    assert mr_conditional_applicators("mw", 3.0) == []
    assert mr_conditional_applicators("rf") == []
    # every selected device passes the refusal check; every other one is refused
    for a in list_applicators():
        ok = a in mr_conditional_applicators(a.modality, 1.5)
        if ok:
            check_mr_guidance(a, 1.5)
        else:
            with pytest.raises(InputError):
                check_mr_guidance(a, 1.5)


def test_user_files_follow_the_same_rules(tmp_path):
    base = {"id": "my-probe", "name": "x", "modality": "cryo", "diameter_mm": 1.5,
            "source": "s", "model_source": "m"}  # fmt: skip
    p = tmp_path / "a.json"
    p.write_text(json.dumps({**base, "mr_conditional": True}))
    with pytest.raises(InputError, match="needs mr_fields_t and mr_conditions"):
        load_applicator_file(p)
    p.write_text(json.dumps({**base, "mr_conditional": "yes"}))
    with pytest.raises(InputError, match="mr_conditional must be"):
        load_applicator_file(p)
    p.write_text(json.dumps({**base, "mr_conditional": False, "mr_fields_t": [1.5]}))
    with pytest.raises(InputError, match="only for MR Conditional"):
        load_applicator_file(p)
    p.write_text(json.dumps({**base, "mr_material": "copper"}))
    with pytest.raises(InputError, match="mr_material"):
        load_applicator_file(p)
    ok = {**base, "mr_conditional": True, "mr_fields_t": [3], "mr_conditions": "IFU rev A"}
    p.write_text(json.dumps(ok))
    app = load_applicator_file(p)
    assert app.mr_fields_t == (3.0,)
    check_mr_guidance(app, 3.0)

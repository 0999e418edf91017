"""The shared report pieces: escaping, the page skeleton, atomic writes, orientation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ioplan.imaging import Grid, Volume, axial_volume, signed_permutation
from ioplan.report import page, table, write_page


def _reoriented(vol: Volume, perm, flips) -> Volume:
    """The same physical image stored with permuted and flipped array axes (independent
    construction: the affine is changed column by column, the array by numpy)."""
    g = vol.grid
    arr = np.transpose(np.asarray(vol.array), perm)
    d = g.direction_matrix[:, list(perm)]
    sp = np.asarray(g.spacing_mm)[list(perm)]
    origin = np.asarray(g.origin_mm, float)
    for j, f in enumerate(flips):
        if f:
            origin = origin + d[:, j] * sp[j] * (arr.shape[j] - 1)
            arr = np.flip(arr, j)
            d[:, j] = -d[:, j]
    return Volume(arr, Grid(arr.shape, tuple(sp), tuple(origin), tuple(map(tuple, d))))


@pytest.mark.parametrize(
    ("perm", "flips"),
    list(itertools.product([(0, 1, 2), (2, 1, 0), (1, 0, 2), (2, 0, 1)],
                           [(False, False, False), (True, False, True), (False, True, True)])),
)  # fmt: skip
def test_axial_volume_undoes_flips_and_permutations_exactly(perm, flips):
    rng = np.random.default_rng(1)
    ref = Volume(rng.random((5, 6, 7)), Grid((5, 6, 7), (3.0, 2.0, 1.0), (10.0, -20.0, 30.0)))
    out = axial_volume(_reoriented(ref, perm, flips))
    assert out.grid.mismatch(ref.grid) is None
    assert np.array_equal(out.array, ref.array)  # exact: no interpolation


def test_ras_nifti_like_grid_is_recognised():
    # array (z, y, x) of a RAS file: x towards patient right (-L), y anterior (-P)
    g = Grid((4, 4, 4), direction=((0, 0, -1), (0, -1, 0), (1, 0, 0)))
    assert signed_permutation(g) == ((2, 1, 0), (False, True, True))
    c, s = np.cos(0.3), np.sin(0.3)  # an oblique grid is not a permutation
    assert signed_permutation(Grid((4, 4, 4), direction=((0, c, -s), (0, s, c), (1, 0, 0)))) is None


def test_values_are_escaped_and_page_has_the_disclaimer(tmp_path):
    html_text = page("<b>x</b>", table(["name"], [["<script>alert(1)</script>"]]))
    assert "<script>" not in html_text and "&lt;script&gt;" in html_text
    assert "&lt;b&gt;x&lt;/b&gt;" in html_text
    assert "not for clinical use" in html_text


def test_write_page_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old")

    def interrupted(src, dst):
        raise KeyboardInterrupt  # Ctrl-C between writing and renaming

    monkeypatch.setattr("ioplan.report._html.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_page(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"  # the old page is intact
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary left
    write_page(target, "new")
    assert target.read_text() == "new"


def test_case_overview_says_where_each_structure_came_from(tmp_path, small_case):
    from dataclasses import replace

    from ioplan.report import write_case_overview

    sources = {"liver": {"source": "labels"}, "fat": {"source": "auto"}}
    case = replace(small_case, structures=sources)
    text = write_case_overview(case, tmp_path).read_text()
    rows = {r.split("</td>")[0].split(">")[-1]: r for r in text.split("<tr>")[2:]}
    assert "<td>auto</td>" in rows["fat"] and "<td>labels</td>" in rows["liver"]


def test_validation_time_course_figure_only_for_settings_with_several_times(tmp_path):
    """The time-course figure draws settings with two or more times; with none it is not
    written and the report says nothing of it."""
    from ioplan.report._validation import _time_course, write_validation_report
    from ioplan.validation import ZonePrediction, ZoneRow, summarise

    def pred(power, t, length, width):
        row = ZoneRow("covidien-emprint", 2450.0, power, t, length, width, 11.0)
        return ZonePrediction(row, length + 1.0, width - 1.0, 11.0, length, width, 2.0,
                              20.0, energy_absorbed_j=0.5 * power * t,
                              max_temperature_c=80.0)  # fmt: skip

    single = [pred(45.0, 150.0, 24, 23), pred(100.0, 150.0, 35, 30)]
    assert _time_course(single, tmp_path / "a.png") is False
    assert not (tmp_path / "a.png").exists()
    several = [*single, pred(45.0, 600.0, 29, 29)]
    assert _time_course(several, tmp_path / "b.png") is True
    assert (tmp_path / "b.png").stat().st_size > 0
    index = write_validation_report(tmp_path / "r", several, summarise(several), title="t")
    html = index.read_text()
    assert "figures/time_course.png" in html and "absorbed %" in html
    index = write_validation_report(tmp_path / "s", single, summarise(single), title="t")
    assert "time_course" not in index.read_text()

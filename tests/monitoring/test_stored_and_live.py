"""The library behind `ioplan thermometry` and `ioplan monitor`.

thermometry_from_series (acquisition from headers and overrides, masks), the staged
writing of the maps (nothing half-written, stale maps of an earlier run removed, other
files kept), the checks of SeriesOptions and HeatSource made before any series is read,
live_summary against a hand computation, and monitor_live on a folder.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ioplan.errors import InputError, InputFileNotFoundError, OutputExistsError
from ioplan.imaging import Grid, read_image, read_nifti_series, write_nifti_series
from ioplan.monitoring import (
    THERMOMETRY_FILES,
    ComplexSeries,
    FrameResult,
    HeatSource,
    ScannerConfig,
    SeriesOptions,
    ThermometryConfig,
    ThermometryResult,
    gaussian_heating,
    live_summary,
    monitor_live,
    synthetic_frames,
    thermometry_from_series,
    write_thermometry_outputs,
)

SHAPE = (2, 16, 16)
SP = 2.0


def _series(b0_t=3.0, te_ms=10.0, times=None):
    t = np.arange(4.0) if times is None else np.asarray(times)
    temp = gaussian_heating(SHAPE, SP, t, peak_rise_c=20.0, tau_s=3.0)
    z = synthetic_frames(temp, t, ScannerConfig(spacing_mm=SP, snr=100, seed=2))
    return ComplexSeries(z, Grid(SHAPE, (SP,) * 3), t, b0_t, te_ms, {"format": "test"})


def _result(with_ice: bool, summary: dict) -> ThermometryResult:
    """A result with known maps (values chosen, not computed), for the writer."""
    g = Grid(SHAPE, (SP,) * 3)
    rng = np.random.default_rng(0)
    ice = np.zeros(SHAPE, bool)
    ice[:, 6:9, 6:9] = True
    return ThermometryResult(
        grid=g, frame_s=2.5, temperature_c=rng.normal(40, 2, (3, *SHAPE)).astype(np.float32),
        cem43=rng.uniform(0, 500, SHAPE), necrosis=ice.copy(),
        uncertainty_c=np.full(SHAPE, 0.5), valid=np.ones(SHAPE, bool),
        frame_times_s=[2.5, 5.0, 7.5], ice=ice if with_ice else None,
        lethal_core=ice if with_ice else None, summary=summary,
    )  # fmt: skip


# -- thermometry_from_series -----------------------------------------------------------------


def test_acquisition_from_headers_and_overrides():
    r = thermometry_from_series(_series(), SeriesOptions(baseline_frames=1))
    acq = r.summary["acquisition"]
    assert (acq["b0_t"], acq["te_ms"], acq["b0_from"], acq["te_from"]) == (
        3.0, 10.0, "header", "header")  # fmt: skip
    assert acq["format"] == "test"  # how the series was read is kept
    assert r.summary["notes"] == []
    assert r.frame_times_s == [1.0, 2.0, 3.0] and r.frame_s == 1.0
    # --b0-t equal to the header's: no note; a different TE: a note, and it is used
    r2 = thermometry_from_series(_series(), SeriesOptions(b0_t=3.0, te_ms=20.0))
    assert r2.summary["notes"] == ["--te-ms 20 overrides the header's TE of 10 ms"]
    assert r2.summary["acquisition"]["te_from"] == "command line"
    # rad_per_c is proportional to TE: twice the TE, twice the phase per degree
    assert r2.summary["rad_per_c"] == pytest.approx(2 * r.summary["rad_per_c"], rel=1e-12)
    # --frame-s replaces the headers' times: frame k at k * 2.5 s
    r3 = thermometry_from_series(_series(), SeriesOptions(frame_s=2.5))
    assert r3.frame_times_s == [2.5, 5.0, 7.5] and r3.frame_s == 2.5
    assert r3.summary["acquisition"]["frame_times"] == "--frame-s"


def test_missing_acquisition_values_name_their_options():
    with pytest.raises(InputError, match=r"TE \(--te-ms\) is needed"):
        thermometry_from_series(_series(te_ms=None))
    with pytest.raises(InputError, match=r"B0 \(--b0-t\) and TE \(--te-ms\) are needed"):
        thermometry_from_series(_series(b0_t=None, te_ms=None))
    s = _series()
    no_times = ComplexSeries(s.frames, s.grid, None, 3.0, 10.0)
    with pytest.raises(InputError, match="pass --frame-s"):
        thermometry_from_series(no_times)


def test_masks_as_arrays_are_checked():
    ref = np.zeros(SHAPE, np.uint8)
    ref[:, 2:14, 2:14] = 1
    ref[:, 5:11, 5:11] = 0
    with pytest.raises(InputError, match="shape"):
        thermometry_from_series(_series(), SeriesOptions(drift_order=0, reference=ref[:, :8]))
    with pytest.raises(InputError, match="empty"):
        thermometry_from_series(_series(), SeriesOptions(protected=np.zeros(SHAPE)))
    ct = np.random.default_rng(0).normal(0, 300, SHAPE)
    with pytest.raises(InputError, match="not a mask"):
        thermometry_from_series(_series(), SeriesOptions(protected=ct))
    r = thermometry_from_series(_series(), SeriesOptions(drift_order=0, reference=ref))
    assert r.summary["frames"] == 3


# -- checks made before the series is read ---------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frame_s": 0.0}, "--frame-s"),
        ({"frame_s": math.inf}, "--frame-s"),
        ({"frame_s": 4000.0}, "3600"),
        ({"b0_t": math.nan}, "--b0-t"),
        ({"te_ms": 0.1}, "TE"),
        ({"baseline_frames": 0}, "baseline frames"),
        ({"drift_order": 1}, "--reference"),
        ({"referenceless": True}, "--reference"),
        ({"probes_lps": ((0.0, 0.0),)}, "--probe"),
    ],
)
def test_series_options_are_checked_when_made(kwargs, match):
    with pytest.raises(InputError, match=match):
        SeriesOptions(**kwargs)


def test_missing_mask_file_is_found_before_the_series_is_read(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="--planned-zone"):
        SeriesOptions(planned_zone=tmp_path / "none.nii.gz")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"end_s": None}, "--end-s"),
        ({"end_s": 5.0, "heat_on_s": 10.0}, "after --heat-on-s"),
        ({"end_s": math.nan}, "--end-s"),
        ({"end_s": 60.0, "power_w": 30.0}, "go with --applicator"),
        ({"end_s": 60.0, "applicator_id": "x", "power_w": 30.0}, "--direction"),
        ({"end_s": 60.0, "applicator_id": "nope", "power_w": 30.0, "direction": (0, 0, 1)},
         "unknown applicator"),
        ({"end_s": 60.0, "applicator_id": "nope", "power_w": 0.0, "direction": (0, 0, 1)},
         "--power-w"),
    ],
)  # fmt: skip
def test_heat_source_is_checked_when_made(kwargs, match):
    with pytest.raises(InputError, match=match):
        HeatSource(tip_lps=(0.0, 0.0, 0.0), **kwargs)


# -- writing the maps --------------------------------------------------------------------------


def test_outputs_round_trip_and_stale_maps_are_removed(tmp_path):
    out = tmp_path / "maps"
    first = _result(True, {"run": 1})
    write_thermometry_outputs(first, out)
    assert {p.name for p in out.iterdir()} == set(THERMOMETRY_FILES)
    frames, _, dt = read_nifti_series(out / "temperature.nii.gz", what="temperature")
    np.testing.assert_array_equal(frames, first.temperature_c)  # float32 written as is
    assert dt == pytest.approx(2.5)
    cem = np.asarray(read_image(out / "cem43.nii.gz").array)
    np.testing.assert_allclose(cem, first.cem43, rtol=1e-6)  # stored as float32
    (out / "notes.txt").write_text("the user's")
    with pytest.raises(OutputExistsError):
        write_thermometry_outputs(_result(False, {"run": 2}), out)
    write_thermometry_outputs(_result(False, {"run": 2}), out, overwrite=True)
    names = {p.name for p in out.iterdir()}
    # the ice maps of the first (cryo) run are gone; the user's file stays
    assert names == set(THERMOMETRY_FILES) - {"ice.nii.gz", "lethal_minus40.nii.gz"} | {"notes.txt"}
    assert json.loads((out / "thermometry.json").read_text()) == {"run": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps"]  # no staging left


def test_overwrite_does_not_replace_a_simulations_maps(tmp_path):
    """``--overwrite`` into another command's folder (a simulation's, whose
    temperature.nii.gz and cem43.nii.gz share the names): refused, every file as it was
    (sweep of session 51)."""
    out = tmp_path / "sim"
    out.mkdir()
    mine = {"result.json": b'{"zone": {}}', "temperature.nii.gz": b"sim", "cem43.nii.gz": b"s"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    with pytest.raises(OutputExistsError, match="not an earlier output of `ioplan thermometry`"):
        write_thermometry_outputs(_result(False, {"run": 1}), out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == mine


def test_an_interrupted_write_leaves_the_earlier_output(tmp_path, monkeypatch):
    out = tmp_path / "maps"
    write_thermometry_outputs(_result(False, {"run": 1}), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import ioplan.imaging

    def broken(*_a, **_k):
        raise KeyboardInterrupt  # the user presses Ctrl-C during the writing

    monkeypatch.setattr(ioplan.imaging, "write_nifti", broken)
    with pytest.raises(KeyboardInterrupt):
        write_thermometry_outputs(_result(False, {"run": 2}), out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps"]


# -- live ----------------------------------------------------------------------------------------


def _frame(i, tmax, nec, ms, alerts=()):
    z = np.zeros((1, 1, 1))
    return FrameResult(i, float(i), z, z, z > 0, tmax, nec, -1, list(alerts), ms)


def test_live_summary_against_a_hand_computation():
    rs = [_frame(1, 50.0, 0.1, 4.0), _frame(2, 62.5, 0.3, 2.0, [{"frame": 2}]),
          _frame(3, 55.0, 0.4, 3.0)]  # fmt: skip
    s = live_summary(rs, ["note"])
    # max over frames 62.5; necrosis at the last frame 0.4; median of 4, 2, 3 ms = 3
    assert s == {"frames": 3, "max_temperature_c": 62.5, "necrosis_volume_ml": 0.4,
                 "ms_per_frame": 3.0, "alerts": [{"frame": 2}], "notes": ["note"]}  # fmt: skip
    empty = live_summary([], [])
    assert empty["frames"] == 0 and math.isnan(empty["max_temperature_c"])


def test_monitor_live_on_a_folder_calls_back_for_every_frame(tmp_path):
    s = _series()
    for i, f in enumerate(s.frames):
        write_nifti_series(np.abs(f)[None], s.grid, tmp_path / f"{i:04d}_magnitude.nii.gz")
        write_nifti_series(np.angle(f)[None], s.grid, tmp_path / f"{i:04d}_phase.nii.gz")
    seen = []
    cfg = ThermometryConfig(b0_t=3.0, te_ms=10.0, baseline_frames=1)
    summary = monitor_live(cfg, folder=tmp_path, igtl_port=0, idle_timeout_s=0.05,
                           on_frame=lambda f, r: seen.append((f.index, r is None)))  # fmt: skip
    # 4 frames, the first one the baseline (no result), 3 measured
    assert seen == [(0, True), (1, False), (2, False), (3, False)]
    assert summary["frames"] == 3
    with pytest.raises(InputError, match="give one input"):
        monitor_live(cfg, folder=tmp_path, demo={}, igtl_port=0)

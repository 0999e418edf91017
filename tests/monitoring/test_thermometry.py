"""MR thermometry: PRF formula, wrapped phases, exact thermal dose, accuracy on the
synthetic scanner with drift and motion, alerts, bad input, `ioplan thermometry`.

References: the PRF relation and noise formula of shared/validation/README.md section 6
(Rieke & Butts Pauly 2008), CEM43 closed forms (Sapareto & Dewey 1984), numerical
quadrature as an independent check of the dose integrals.
"""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pytest

from ioplan.cli import main
from ioplan.errors import InputError
from ioplan.imaging import Grid, write_nifti_series
from ioplan.monitoring import (
    ScannerConfig,
    Thermometry,
    ThermometryConfig,
    arrhenius_increment,
    cem43_increment,
    engine_temperatures,
    gaussian_heating,
    synthetic_frames,
)


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_prf_constant_and_noise_match_the_reference_example():
    """alpha gamma B0 TE at 3 T, TE 10 ms, -0.01 ppm/degC = -0.0803 rad/degC; the noise
    example of the README (SNR 20 -> sigma_T 0.6-0.9 degC) follows from 1/(|a g B0 TE| SNR)."""
    cfg = ThermometryConfig(b0_t=3.0, te_ms=10.0)
    hand = -0.01e-6 * 2 * math.pi * 42.577478518e6 * 3.0 * 10e-3
    assert cfg.rad_per_c == pytest.approx(hand, rel=1e-12)
    sigma_t = 1.0 / (abs(cfg.rad_per_c) * 20.0)
    assert 0.6 <= sigma_t <= 0.9


def test_phase_difference_is_taken_from_the_complex_product():
    """Baseline phase near +pi, heating pushes it past pi: a difference of wrapped phases
    would jump by 2 pi (about 78 degC); the complex product gives the true 0.2 rad."""
    cfg = ThermometryConfig(b0_t=3.0, te_ms=10.0, snr_threshold=0.0)
    th = Thermometry(cfg, noise_sigma=0.01)
    base = np.full((1, 4, 4), np.exp(1j * 3.1), np.complex64)
    th.add(base, 0.0)
    r = th.add(base * np.exp(1j * 0.2), 1.0)
    assert np.allclose(r.temperature_c, 37.0 + 0.2 / cfg.rad_per_c, atol=1e-4)


def test_cem43_increment_is_exact_for_linear_temperature():
    # constant 43 degC for 60 s: 1 CEM43 minute
    assert cem43_increment(np.array(43.0), np.array(43.0), 60.0) == pytest.approx(1.0)
    # 43 -> 47 over 60 s: integral of 2^(T-43) dt = 60 (2^4 - 1) / (4 ln 2) s
    exact = 60.0 * 15.0 / (4.0 * math.log(2.0)) / 60.0
    assert cem43_increment(np.array(43.0), np.array(47.0), 60.0) == pytest.approx(exact, 1e-12)
    # a line crossing 43 degC (40 -> 46), against a fine midpoint sum of the two-slope rate
    t = 40.0 + 6.0 * (np.arange(200000) + 0.5) / 200000
    rate = np.where(t >= 43, 0.5, 0.25) ** (43 - t)
    assert cem43_increment(np.array(40.0), np.array(46.0), 30.0) == pytest.approx(
        rate.mean() * 30.0 / 60.0, rel=1e-6
    )


def test_arrhenius_increment_matches_fine_quadrature():
    from ioplan.tissue import arrhenius_parameters

    p = arrhenius_parameters()
    t = 50.0 + 20.0 * (np.arange(100000) + 0.5) / 100000
    rate = p["frequency_factor_1_per_s"] * np.exp(
        -p["activation_energy_j_mol"] / (p["gas_constant_j_mol_k"] * (t + 273.15))
    )
    # 5-point Gauss-Legendre on a 20 degC line: the integrand spans 2.5 decades
    assert arrhenius_increment(np.array(50.0), np.array(70.0), 10.0) == pytest.approx(
        rate.mean() * 10.0, rel=1e-3
    )


def _scenario(motion_mm, drift, shape=(4, 64, 64), sp=1.5, nb=12, heat_s=60):
    times = np.arange(0, nb + heat_s, 1.0)
    temp = gaussian_heating(shape, sp, times, heat_from_s=nb, peak_rise_c=45.0, width_mm=7.0,
                            tau_s=25.0)  # fmt: skip
    frames = synthetic_frames(
        temp, times, ScannerConfig(snr=50.0, drift_rad_per_s=drift, motion_mm=motion_mm,
                                   spacing_mm=sp, seed=2)
    )  # fmt: skip
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * sp for n in shape], indexing="ij")
    ref = np.hypot(grids[1], grids[2]) > 25.0
    return times, temp, frames, ref, sp


@pytest.mark.slow  # 72 synthetic frames with motion (ndimage.shift), run twice: > 5 s
def test_accuracy_with_drift_and_motion_and_their_corrections():
    """The issue's goal: 3 T, TE 10 ms, SNR 50, with drift and respiratory motion and the
    matching corrections on: RMSE <= 1 degC in the heated region where the magnitude is
    above the noise mask, and the dose-derived necrosis volume within 10 % of the truth
    (the truth's dose from the true temperatures with the same exact integral)."""
    times, temp, frames, ref, sp = _scenario(motion_mm=3.0, drift=0.02)
    cfg = ThermometryConfig(b0_t=3.0, te_ms=10.0, baseline_frames=12, multi_baseline=True,
                            drift_order=1)  # fmt: skip
    th = Thermometry(cfg, voxel_ml=sp**3 / 1000, reference=ref)
    truth_cem = np.zeros(temp.shape[1:])
    worst = 0.0
    for i, (t, f) in enumerate(zip(times, frames, strict=True)):
        r = th.add(f, float(t))
        if i:
            truth_cem += cem43_increment(temp[i - 1], temp[i], 1.0)
        if r is None:
            continue
        heated = (temp[i] > 42.0) & r.valid
        if heated.any():
            rmse = float(np.sqrt(np.mean((r.temperature_c[heated] - temp[i][heated]) ** 2)))
            worst = max(worst, rmse)
    assert worst <= 1.0
    true_ml = float((truth_cem >= 240).sum()) * sp**3 / 1000
    assert r.necrosis_volume_ml == pytest.approx(true_ml, rel=0.10)
    # without the motion correction the same data is far off: the test can fail
    cfg2 = ThermometryConfig(b0_t=3.0, te_ms=10.0, baseline_frames=12, drift_order=1)
    th2 = Thermometry(cfg2, voxel_ml=sp**3 / 1000, reference=ref)
    errs = []
    for i, (t, f) in enumerate(zip(times, frames, strict=True)):
        r2 = th2.add(f, float(t))
        if r2 is not None:
            heated = (temp[i] > 42.0) & r2.valid
            if heated.any():
                errs.append(np.sqrt(np.mean((r2.temperature_c[heated] - temp[i][heated]) ** 2)))
    assert max(errs) > 2.0


def test_alerts_and_bad_input():
    times, temp, frames, _, _ = _scenario(motion_mm=0.0, drift=0.0, heat_s=20)
    prot = np.zeros(temp.shape[1:], bool)
    prot[:, 30:34, 30:34] = True  # at the hot spot
    th = Thermometry(ThermometryConfig(b0_t=3.0, te_ms=10.0, baseline_frames=12,
                                       alert_temperature_c=45.0), protected=prot)  # fmt: skip
    alerts = []
    for t, f in zip(times, frames, strict=True):
        r = th.add(f, float(t))
        if r is not None:
            alerts += r.alerts
    assert alerts and alerts[0]["temperature_c"] > 45.0
    first = alerts[0]["frame"]
    # the true temperature in the structure passes 45 degC at about that frame (noise 0.3)
    true_first = int(np.argmax(temp[:, prot].max(axis=1) > 45.0))
    assert abs(first - true_first) <= 1
    with pytest.raises(InputError, match="out of order"):
        th.add(frames[-1], 1000.0, index=3)
    with pytest.raises(InputError, match="has shape"):
        th.add(frames[-1][:, :10], 1000.0)
    r = th.add(frames[-1], 1000.0, index=th.last_index + 3)
    assert any("dropped" in n for n in th.notes)
    with pytest.raises(InputError, match="B0"):
        ThermometryConfig(b0_t=None, te_ms=10.0)


def test_thermometry_cli_contract_files_and_vendor_scaling(tmp_path, capsys):
    times, temp, frames, _, sp = _scenario(motion_mm=0.0, drift=0.0, heat_s=30)
    g = Grid(frames.shape[1:], (sp,) * 3)
    write_nifti_series(np.abs(frames), g, tmp_path / "m.nii.gz", frame_s=1.0)
    write_nifti_series(np.angle(frames), g, tmp_path / "p.nii.gz", frame_s=1.0)
    code, out, err = _run(
        capsys, "thermometry", "--magnitude", str(tmp_path / "m.nii.gz"), "--phase",
        str(tmp_path / "p.nii.gz"), "--b0-t", "3", "--te-ms", "10", "--baseline-frames", "12",
        "--out", str(tmp_path / "o"), "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert {"frames", "max_temperature_c", "necrosis_volume_ml", "ms_per_frame", "alerts"} <= set(
        doc
    )
    assert doc["frames"] == len(times) - 12
    # the peak: 37 + 45 (1 - exp(-30/25)) at the centre voxel's distance from the true peak
    assert doc["max_temperature_c"] == pytest.approx(float(temp[-1].max()), abs=1.5)
    for f in ("temperature.nii.gz", "cem43.nii.gz", "necrosis.nii.gz", "uncertainty.nii.gz"):
        assert (tmp_path / "o" / f).is_file()
    # Overlap with a planned zone on another grid: the necrosis itself, padded by 3 voxels
    # (origin moved back), gives Dice 1; its half with x below the centre covers 100 % of
    # that half and leaves the rest of the necrosis outside the plan.
    from ioplan.imaging import Volume, read_image, write_nifti

    nec = np.asarray(read_image(tmp_path / "o" / "necrosis.nii.gz").array) > 0
    assert nec.sum() > 20
    padded = np.pad(nec, 3).astype(np.uint8)
    g_pad = Grid(padded.shape, g.spacing_mm, tuple(np.asarray(g.origin_mm) - 3 * sp))
    write_nifti(Volume(padded, g_pad), tmp_path / "plan.nii.gz")
    half = nec.copy()
    half[..., nec.shape[2] // 2 :] = False
    write_nifti(Volume(half.astype(np.uint8), g), tmp_path / "half.nii.gz")
    base_args = ["thermometry", "--magnitude", str(tmp_path / "m.nii.gz"), "--phase",
                 str(tmp_path / "p.nii.gz"), "--b0-t", "3", "--te-ms", "10",
                 "--baseline-frames", "12", "--json"]  # fmt: skip
    code, out, err = _run(capsys, *base_args, "--planned-zone", str(tmp_path / "plan.nii.gz"))
    assert code == 0, err
    ov = json.loads(out)["planned_zone"]
    assert ov["dice"] == 1.0 and ov["planned_covered_percent"] == 100.0
    code, out, err = _run(capsys, *base_args, "--planned-zone", str(tmp_path / "half.nii.gz"))
    ov = json.loads(out)["planned_zone"]
    vox = sp**3 / 1000.0
    assert ov["planned_covered_percent"] == 100.0
    assert ov["outside_plan_ml"] == pytest.approx((nec.sum() - half.sum()) * vox, abs=1e-4)
    # Siemens 12-bit phase (-4096..4095 for -pi..pi) with --phase-scale siemens
    write_nifti_series(np.round(np.angle(frames) * 4096 / math.pi), g, tmp_path / "s.nii.gz",
                       frame_s=1.0)  # fmt: skip
    code, out, err = _run(
        capsys, "thermometry", "--magnitude", str(tmp_path / "m.nii.gz"), "--phase",
        str(tmp_path / "s.nii.gz"), "--b0-t", "3", "--te-ms", "10", "--baseline-frames", "12",
        "--phase-scale", "siemens", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["max_temperature_c"] == pytest.approx(
        doc["max_temperature_c"], abs=0.2
    )
    # ... and the same file read as radians is refused: outside -pi..pi
    code, out, err = _run(
        capsys, "thermometry", "--magnitude", str(tmp_path / "m.nii.gz"), "--phase",
        str(tmp_path / "s.nii.gz"), "--b0-t", "3", "--te-ms", "10",
    )  # fmt: skip
    assert code == 2 and "outside -pi..pi" in err
    # ... and radians read as Siemens or milliradians (every phase / 1000 or so, the
    # heating gone: was exit 0 with max 37 degC) are refused
    for scale in ("siemens", "milliradians"):
        code, out, err = _run(
            capsys, *base_args[:-1], "--phase-scale", scale,
        )  # fmt: skip
        assert code == 2 and "radians already" in err and err.count("\n") == 1
    code, out, err = _run(capsys, "thermometry", "--magnitude", str(tmp_path / "m.nii.gz"),
                          "--phase", str(tmp_path / "p.nii.gz"), "--te-ms", "10")  # fmt: skip
    assert code == 2 and "B0" in err


def test_running_dose_matches_the_dose_integrals():
    """A noiseless voxel heated along a known line of temperatures, frame by frame: the
    session's CEM43 and Arrhenius sums equal the exact per-interval integrals (Arrhenius in
    the live loop uses 3-point Gauss-Legendre on the engine's rate table: 1e-3)."""
    cfg = ThermometryConfig(b0_t=3.0, te_ms=10.0, snr_threshold=0.0)
    th = Thermometry(cfg, noise_sigma=1e-3)
    base = np.ones((1, 2, 2), np.complex64)
    th.add(base, 0.0)
    temps = [37.0, 45.0, 52.0, 60.0, 58.0, 49.0]
    for k, t_c in enumerate(temps[1:], start=1):
        th.add(base * np.exp(1j * cfg.rad_per_c * (t_c - 37.0)), float(2 * k))
    pairs = list(itertools.pairwise(temps))
    cem = sum(cem43_increment(np.array(a), np.array(b), 2.0) for a, b in pairs)
    om = sum(arrhenius_increment(np.array(a), np.array(b), 2.0) for a, b in pairs)
    assert th.cem43[0, 0, 0] == pytest.approx(float(cem), rel=1e-6)
    assert th.omega[0, 0, 0] == pytest.approx(float(om), rel=1e-3)
    assert th.tmax[0, 0, 0] == pytest.approx(60.0, abs=1e-3)


def test_openigtlink_loopback_both_ways_and_a_client_that_leaves():
    """A real pyigtl scanner server streams IMAGE frames (magnitude, phase); ioplan reads
    them as a client, and serves the maps to a second client (3D Slicer's role), which
    disconnects mid-stream: processing goes on and every later frame is still measured."""
    import socket
    import threading
    import time

    import pyigtl

    from ioplan.monitoring._live import demo_scanner, igtl_frames, run_live

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    scanner, _ = demo_scanner(free_port(), frames=12, baseline=3, interval_s=0.1)
    out = pyigtl.OpenIGTLinkServer(port=free_port())
    got = []

    def slicer():
        c = pyigtl.OpenIGTLinkClient(port=out.port)
        t = time.time()
        while time.time() - t < 0.8:
            got.extend(m.device_name for m in c.get_latest_messages())
            time.sleep(0.05)
        c.stop()

    threading.Thread(target=slicer, daemon=True).start()
    client = pyigtl.OpenIGTLinkClient(port=scanner.port)
    th = Thermometry(ThermometryConfig(b0_t=3.0, te_ms=10.0, baseline_frames=3))
    try:
        res = run_live(igtl_frames(client, idle_timeout_s=1.5, first_wait_s=10), th, server=out)
    finally:
        for c in (client, scanner, out):
            c.stop()
    # the stream sends 15 frames, 3 baseline; the latest-message queue may merge one
    assert len(res) >= 11
    assert {"ioplan_temperature", "ioplan_cem43", "ioplan_necrosis"} <= set(got)
    # still measuring after the client left: the demo's peak after 12 s of heating is
    # 37 + 40 (1 - exp(-12/30)) = 50.2 degC at the centre (the voxels straddle it)
    assert res[-1].max_temperature_c > 45.0


def test_monitor_cli_from_a_folder(tmp_path, capsys):
    from ioplan.imaging import write_nifti_series

    _, temp, frames, _, sp = _scenario(motion_mm=0.0, drift=0.0, heat_s=10)
    g = Grid(frames.shape[1:], (sp,) * 3)
    for i, f in enumerate(frames):
        write_nifti_series(np.abs(f)[None], g, tmp_path / f"{i:04d}_magnitude.nii.gz")
        write_nifti_series(np.angle(f)[None], g, tmp_path / f"{i:04d}_phase.nii.gz")
    args = ["--folder", str(tmp_path), "--baseline-frames", "12", "--igtl-port", "0"]
    code, out, err = _run(capsys, "monitor", *args, "--idle-timeout-s", "0.5", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["frames"] == len(frames) - 12
    assert doc["max_temperature_c"] == pytest.approx(float(temp[-1].max()), abs=1.5)


@pytest.mark.slow  # a 15-min engine freeze (isotherm depths): > 5 s
def test_ice_ball_segmentation_growth_and_lethal_core():
    """A cylindrical signal void (radius 10 mm, 40 mm long) around a probe: the segmented
    ice has the cylinder's volume (within its voxel surface), its growth rate follows two
    frames, and the engine places the -40 degC isotherm inside the edge at about the
    published depth: 'about 1 cm inside the 0 degC edge' (PMC4850244, shared/validation
    README section 3); 3 mm tolerance for a 2 mm engine grid and 'about'."""
    from ioplan.assessment import measure_margin
    from ioplan.imaging import Volume
    from ioplan.monitoring import isotherm_depths, measure_ice

    g = Grid((30, 40, 40), (2.0, 1.0, 1.0))
    z, y, x = g.axis_coordinates_mm()
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    base = np.ones(g.shape)
    probe_x, probe_y = 20.0, 20.0
    r = np.hypot(xx - probe_x, yy - probe_y)
    length = (zz >= 10) & (zz <= 50)
    probes = np.array([[15, 20, 20]])

    def frame(radius):
        mag = np.where((r <= radius) & length, 0.02, 1.0)
        return mag + np.random.default_rng(0).normal(0, 0.02, g.shape)

    first = measure_ice(frame(8.0), base, g, probes)
    ice = measure_ice(frame(10.0), base, g, probes, previous=first, dt_s=60.0)
    exact = ((r <= 10.0) & length).sum() * g.voxel_volume_ml
    assert ice.volume_ml == pytest.approx(exact, rel=0.02)
    assert ice.growth_ml_per_min == pytest.approx(ice.volume_ml - first.volume_ml, rel=1e-9)
    assert ice.edge_depth_at_probes_mm == pytest.approx(10.0, abs=1.0)
    assert 0 < ice.depth_20_mm < ice.depth_40_mm < ice.edge_depth_at_probes_mm
    # the published depth is in body-temperature gel: the engine's table without perfusion
    # (in perfused liver, 0.018 1/s since session 42, the -40 degC isotherm lies 3.6 mm
    # inside the edge of a smaller ball; no published in vivo figure to hold it to)
    mature = isotherm_depths(perfusion_per_s=0.0)[-1]
    assert mature[2] == pytest.approx(10.0, abs=3.0)
    # margin of the lethal core around a 6 mm tumour on the probe: the core's radius is the
    # ice radius less the -40 depth; MAM = that minus 3 mm (sub-voxel measure)
    tumour = ((r <= 3.0) & (zz >= 26) & (zz <= 34)).astype(np.uint8)
    res = measure_margin(Volume(tumour, g), Volume(ice.core_40.astype(np.uint8), g))
    # the core is a distance threshold on 1 x 1 x 2 mm voxels: +-1 voxel, and the tumour's
    # own voxel surface: 1.5 mm
    expected = (10.0 - ice.depth_40_mm) - 3.0
    assert res.minimal_margin_mm == pytest.approx(expected, abs=1.5)


def test_no_signal_void_no_ice():
    """A frame with the baseline's signal everywhere (a heating series, or a probe not yet
    freezing) has no ice ball: volume 0, no lethal core, and no isotherm depths taken
    from the engine's table; the probes alone are not ice (sweep, session 51: 0.02 mL and
    a -40 degC depth of 3.9 mm were reported on a heating series)."""
    from ioplan.monitoring import measure_ice

    g = Grid((10, 12, 12), (2.0, 2.0, 2.0))
    base = np.ones(g.shape)
    frame = base + np.random.default_rng(1).normal(0, 0.02, g.shape)
    probes = np.array([[5, 6, 6], [5, 3, 3]])
    ice = measure_ice(frame, base, g, probes)
    assert ice.volume_ml == 0.0 and not ice.mask.any() and not ice.core_40.any()
    assert ice.to_dict()["minus40_depth_mm"] == 0.0 and ice.equivalent_diameter_mm == 0.0
    # one void voxel beside a probe: that is ice, with the probe's voxel
    frame[5, 6, 7] = 0.0
    ice = measure_ice(frame, base, g, probes)
    assert ice.mask.sum() == 2 and ice.mask[5, 6, 6] and ice.mask[5, 6, 7]


def test_thermometry_cli_follows_a_growing_ice_ball(tmp_path, capsys):
    """Frames whose signal vanishes in a cylinder growing from 4 to 12 mm around a probe:
    the CLI reports the last ice volume (the cylinder's within 5 %: voxel surface) and a
    positive growth rate, writes the ice and lethal-core maps, and leaves the PRF
    temperatures inside the ice out (no signal there)."""
    sp = 1.5
    shape = (6, 48, 48)
    g = Grid(shape, (sp,) * 3)
    n_base, n = 4, 10
    times = np.arange(n_base + n, dtype=float)
    temp = np.full((len(times), *shape), 37.0)
    frames = synthetic_frames(temp, times, ScannerConfig(snr=50, spacing_mm=sp, seed=3))
    _, y, x = g.axis_coordinates_mm()
    rr = np.hypot(*np.meshgrid(y - y.mean(), x - x.mean(), indexing="ij"))[None].repeat(6, 0)
    radii = [0.0] * n_base + list(np.linspace(4.0, 12.0, n))
    for i, rad in enumerate(radii):
        frames[i][rr <= rad] *= 0.02
    write_nifti_series(np.abs(frames), g, tmp_path / "m.nii.gz", frame_s=1.0)
    write_nifti_series(np.angle(frames), g, tmp_path / "p.nii.gz", frame_s=1.0)
    tip = g.index_to_lps([2.5, 23.5, 23.5])
    code, out, err = _run(
        capsys, "thermometry", "--magnitude", str(tmp_path / "m.nii.gz"), "--phase",
        str(tmp_path / "p.nii.gz"), "--b0-t", "3", "--te-ms", "10", "--baseline-frames",
        str(n_base), "--probe", ",".join(f"{v:.3f}" for v in tip), "--out",
        str(tmp_path / "o"), "--json",
    )  # fmt: skip
    assert code == 0, err
    ice = json.loads(out)["ice"]
    exact = float((rr <= 12.0).sum()) * g.voxel_volume_ml
    assert ice["volume_ml"] == pytest.approx(exact, rel=0.05)
    assert ice["growth_ml_per_min"] > 0
    assert (tmp_path / "o" / "ice.nii.gz").is_file()
    assert (tmp_path / "o" / "lethal_minus40.nii.gz").is_file()


def test_model_learns_power_and_perfusion_and_predicts_the_final_zone():
    """Thermometry of a heating that follows the Pennes point-source model (6 W, perfusion
    0.004 1/s; the engine is verified against this Green's function): fitted on the first
    100 s of a 300 s treatment, the model recovers the parameters (5 %: SNR-50 noise) and
    predicts the final necrosis volume within 10 % of the truth, inside its own 5-95 %
    band widened by one voxel layer's share."""
    from ioplan.monitoring import pennes_point_rise, predict_zone
    from ioplan.monitoring._learn import _final_volume

    shape, sp = (5, 40, 40), 1.5
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * sp for n in shape], indexing="ij")
    r = np.sqrt(sum(g * g for g in grids))
    p_true, w_true, t_on, t_end = 6.0, 0.004, 10.0, 300.0
    times = np.arange(0, t_end + 1, 5.0)
    temp = np.stack([37 + pennes_point_rise(r, t, p_true, w_true, t_on_s=t_on) for t in times])
    frames = synthetic_frames(temp, times, ScannerConfig(snr=50, spacing_mm=sp))
    th = Thermometry(ThermometryConfig(b0_t=3, te_ms=10, baseline_frames=2), voxel_ml=sp**3 / 1e3)
    meas, tt = [], []
    for t, f in zip(times, frames, strict=True):
        res = th.add(f, float(t))
        if res is not None and t <= 100:
            meas.append(res.temperature_c)
            tt.append(float(t))
    pred = predict_zone(meas, tt, r, t_on_s=t_on, end_time_s=t_end, voxel_ml=sp**3 / 1e3,
                        valid=res.valid, n_draws=20)  # fmt: skip
    assert pred.power_w == pytest.approx(p_true, rel=0.05)
    assert pred.perfusion_1_per_s == pytest.approx(w_true, rel=0.05)
    truth = _final_volume(r, sp**3 / 1e3, p_true, w_true, t_on, t_end, 37.0)
    assert pred.necrosis_volume_ml == pytest.approx(truth, rel=0.10)
    assert pred.necrosis_volume_p5_ml <= pred.necrosis_volume_ml <= pred.necrosis_volume_p95_ml
    with pytest.raises(InputError, match="after the last frame"):
        predict_zone(meas, tt, r, t_on_s=t_on, end_time_s=50.0, voxel_ml=1.0)


def test_thermometry_cli_prediction(tmp_path, capsys):
    """`--source/--heat-on-s/--end-s` add the learned model's prediction to the JSON."""
    from ioplan.monitoring import pennes_point_rise

    shape, sp = (3, 32, 32), 1.5
    g = Grid(shape, (sp,) * 3)
    src = g.index_to_lps([1, 15.5, 15.5])
    r = np.linalg.norm(g.voxel_centres_lps() - src, axis=-1)
    times = np.arange(0, 81, 5.0)
    temp = np.stack([37 + pennes_point_rise(r, t, 6.0, 0.004, t_on_s=10) for t in times])
    frames = synthetic_frames(temp, times, ScannerConfig(snr=50, spacing_mm=sp))
    write_nifti_series(np.abs(frames), g, tmp_path / "m.nii.gz", frame_s=5.0)
    write_nifti_series(np.angle(frames), g, tmp_path / "p.nii.gz", frame_s=5.0)
    code, out, err = _run(
        capsys, "thermometry", "--magnitude", str(tmp_path / "m.nii.gz"), "--phase",
        str(tmp_path / "p.nii.gz"), "--b0-t", "3", "--te-ms", "10", "--baseline-frames", "2",
        "--source", ",".join(f"{v:.4f}" for v in src), "--heat-on-s", "10", "--end-s", "240",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    pred = json.loads(out)["prediction"]
    assert pred["power_w"] == pytest.approx(6.0, rel=0.05)
    assert pred["residual_rms_c"] < 1.0  # the model fits: residual at the noise level


def test_referenceless_thermometry_needs_no_baseline_phase():
    """Rieke 2004: a quadratic background field plus a drift that changes it in time,
    fitted per frame in an unheated ring (20-32 mm from a 5 mm-wide hot spot, where the
    rise is below 0.01 degC): RMSE <= 1 degC in the heated region, as with a baseline."""
    shape, sp = (2, 64, 64), 1.5
    times = np.arange(0, 40, 1.0)
    temp = gaussian_heating(shape, sp, times, heat_from_s=2, peak_rise_c=30.0, width_mm=5.0)
    frames = synthetic_frames(temp, times, ScannerConfig(snr=50, drift_rad_per_s=0.05,
                                                         spacing_mm=sp, seed=4))  # fmt: skip
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * sp for n in shape], indexing="ij")
    rr = np.hypot(grids[1], grids[2])
    ring = (rr >= 20.0) & (rr <= 32.0)
    cfg = ThermometryConfig(b0_t=3.0, te_ms=10.0, baseline_frames=2, referenceless=True)
    th = Thermometry(cfg, reference=ring)
    worst = 0.0
    for i, (t, f) in enumerate(zip(times, frames, strict=True)):
        r = th.add(f, float(t))
        if r is None:
            continue
        heated = (temp[i] > 42.0) & r.valid
        if heated.any():
            err = np.sqrt(np.mean((r.temperature_c[heated] - temp[i][heated]) ** 2))
            worst = max(worst, float(err))
    assert worst <= 1.0


def test_fused_motion_and_drift_path_matches_scipy_shift_and_lstsq():
    """The fused per-frame kernel (baseline match, drift removal, motion shift, unwrap)
    against an independent reference built here: the drift as ``np.linalg.lstsq`` of the
    phase in the reference voxels on the order-1 polynomial, the motion compensation as
    ``scipy.ndimage.shift`` (order 1, mode "nearest") of cos and sin of the corrected
    phase by minus the matched baseline's displacement, and temporal unwrapping by the
    wrapped step from the previous frame. Same float32 frames in both: 1e-4 degC leaves
    room for float rounding (1e-6 rad is 1.2e-5 degC) and nothing more."""
    from scipy import ndimage

    times, _, frames, ref, sp = _scenario(motion_mm=3.0, drift=0.02, heat_s=12)
    cfg = ThermometryConfig(b0_t=3.0, te_ms=10.0, baseline_frames=12, multi_baseline=True,
                            drift_order=1)  # fmt: skip
    th = Thermometry(cfg, voxel_ml=sp**3 / 1000, reference=ref)
    shape = frames.shape[1:]
    coords = np.stack(np.meshgrid(*[np.arange(n) / (n - 1) for n in shape], indexing="ij"))
    design = np.concatenate([np.ones((1, *shape)), coords]).reshape(4, -1).T
    last = None
    shifted_frames = 0
    for t, f in zip(times, frames, strict=True):
        r = th.add(f, float(t))
        if r is None:
            continue
        valid = r.valid
        base = th.baselines[r.baseline_used]
        dphi = np.angle(f * np.conj(base)).astype(np.float64)
        use = (ref & valid).ravel()
        coef, *_ = np.linalg.lstsq(design[use], dphi.ravel()[use], rcond=None)
        dphi = dphi - (design @ coef).reshape(shape)
        sh = -np.asarray(th._shifts[r.baseline_used], float)
        if np.any(sh):
            shifted_frames += 1
            cos = ndimage.shift(np.cos(dphi), sh, order=1, mode="nearest")
            dphi = np.angle(cos + 1j * ndimage.shift(np.sin(dphi), sh, order=1, mode="nearest"))
        if last is None:
            dphi = np.angle(np.exp(1j * dphi))  # the first frame: wrapped to -pi..pi
        else:
            dphi = last + (dphi - last + np.pi) % (2 * np.pi) - np.pi
        expected = np.where(valid, 37.0 + dphi / cfg.rad_per_c, 37.0)
        assert np.abs(r.temperature_c - expected)[valid].max() < 1e-4
        last = dphi
    assert shifted_frames >= 3  # the motion path was exercised


def test_demo_live_plays_the_synthetic_scanner_through_the_live_loop(capsys):
    """`ioplan demo --modality mwa --live`: every frame the scanner streams is processed
    (none lost: the kernels are loaded before the stream starts), and the peak matches
    the scanner's truth: 37 + 40 (1 - exp(-5/30)) degC at the centre after 5 s of heating,
    within 1.5 degC (the maximum over voxels of noise 0.29 degC per voxel)."""
    code, out, err = _run(capsys, "demo", "--modality", "mwa", "--live", "--live-frames", "6",
                          "--baseline-frames", "3", "--interval-s", "0.1", "--igtl-port", "0",
                          "--json")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["frames"] == 6 and doc["notes"] == []
    truth = gaussian_heating((4, 64, 64), 1.5, [8.0], heat_from_s=3.0)[0].max()
    assert doc["max_temperature_c"] == pytest.approx(float(truth), abs=1.5)
    code, _, err = _run(capsys, "demo", "--modality", "cryo", "--live", "--igtl-port", "0")
    assert code == 2 and "--live plays a heating series" in err


def test_dropped_openigtlink_frame_is_detected_from_its_index():
    """The scanner leaves frame 6 out; the frame index in each IMAGE's metadata shows the
    gap: the loop says so and carries on (the dose spans the gap linearly)."""
    import pyigtl

    from ioplan.monitoring import warm_up
    from ioplan.monitoring._live import demo_scanner, igtl_frames, run_live

    warm_up()
    scanner, _ = demo_scanner(0, frames=6, baseline=3, interval_s=0.1, drop=frozenset({6}))
    client = pyigtl.OpenIGTLinkClient(port=scanner.port)
    th = Thermometry(ThermometryConfig(b0_t=3.0, te_ms=10.0, baseline_frames=3))
    try:
        res = run_live(igtl_frames(client, idle_timeout_s=1.0, first_wait_s=10, notes=th.notes),
                       th)  # fmt: skip
    finally:
        client.stop()
        scanner.stop()
    # 0.1 s between frames, about 5 ms to process one: pyigtl's latest-message queue
    # merges none in practice, but a loaded machine may lose one more: then it is said too
    got = [r.index for r in res]
    assert 6 not in got and 8 in got and len(got) >= 4
    said = set()
    for note in th.notes:
        m = re.fullmatch(r"frames? (\d+)(?:-(\d+))? (?:was|were) dropped; carried on", note)
        assert m is not None, note
        said |= set(range(int(m[1]), int(m[2] or m[1]) + 1))
    assert said == set(range(3, 9)) - set(got)  # every lost frame reported, frame 6 first
    # times from the message timestamps, 1 s apart in scan time, gaps included
    for a, b in itertools.pairwise(res):
        assert b.time_s - a.time_s == pytest.approx(b.index - a.index, abs=1e-6)


def test_engine_temperatures_on_the_runs_own_grid_are_its_snapshots():
    """Placed where the block has it (tip at the origin, axis along -z), the image grid being
    the run's own, every voxel samples itself: the frames are the snapshots exactly, and a
    frame before the heat is switched on is body temperature. Turned about the axis by 180
    degrees (the direction flipped twice is the same axis), still the same."""
    from ioplan.devices import applicator
    from ioplan.physics import SimulationConfig, simulate

    res = simulate(SimulationConfig(
        applicator=applicator("generic-mw-2450"), power_w=40.0, duration_s=30.0,
        spacing_mm=3.0, snapshot_times_s=(15.0, 30.0),
    ))  # fmt: skip
    tip = tuple(res.settings["tips_mm"][0])
    assert np.allclose(tip, 0.0)
    temp = engine_temperatures(res, [0.0, 20.0, 35.0], 5.0, res.grid, tip, (0.0, 0.0, -1.0))
    assert temp.shape == (3, *res.grid.shape)
    assert np.all(temp[0] == 37.0)
    assert np.allclose(temp[1], res.snapshot_temperatures_c["15"], atol=1e-5)
    assert np.allclose(temp[2], res.snapshot_temperatures_c["30"], atol=1e-5)


@pytest.mark.slow  # engine runs for the fit and the final zone: > 5 s
def test_engine_learns_power_and_perfusion_from_thermometry(tmp_path, capsys):
    """The full engine as the learned model (``--applicator``): a microwave heating made
    with the engine at 80 % of the nominal 100 W and perfusion 0.012 1/s, on a finer grid
    (1.5 mm) than the fit's (2 mm), imaged by the synthetic scanner (3 T, TE 10 ms, SNR 50)
    through an oblique antenna for 90 s of a 290 s treatment (the README's case, made by
    validation/thermometry_engine.py). Measured: power 85.3 W, perfusion 0.0135 1/s, final
    zone 17.75 vs 18.59 mL before session 38's catheter wall, 82.0 W, 0.0125 1/s, 18.10 vs
    18.83 mL after it (mostly the grid mismatch); the tolerances are about twice the larger
    errors (power 12 %, perfusion 25 %, volume 10 %)."""
    from ioplan.devices import applicator
    from ioplan.physics import SimulationConfig, simulate

    app = applicator("covidien-emprint")
    tip = np.array([10.0, -20.0, 30.0])
    d = np.array([0.3, 0.2, -1.0]) / np.linalg.norm([0.3, 0.2, -1.0])
    t_on, t_end = 10.0, 300.0
    times = np.arange(0.0, 100.1, 5.0)  # 5 s frames: the phase follows the heating
    rel = [float(t - t_on) for t in times if t > t_on]
    truth = simulate(SimulationConfig(
        applicator=app, power_w=80.0, duration_s=t_end - t_on, spacing_mm=1.5, margin_mm=35,
        perfusion_per_s=0.012, snapshot_times_s=tuple(rel),
    ))  # fmt: skip
    g = Grid((8, 28, 28), (2.0, 2.0, 2.0), tuple(tip - [27.0, 27.0, 7.0]))
    temp = engine_temperatures(truth, times, t_on, g, tip, d)
    frames = synthetic_frames(temp, times, ScannerConfig(snr=50, spacing_mm=2.0, seed=3))
    write_nifti_series(np.abs(frames), g, tmp_path / "m.nii.gz", frame_s=5.0)
    write_nifti_series(np.angle(frames), g, tmp_path / "p.nii.gz", frame_s=5.0)
    args = [
        "thermometry", "--magnitude", str(tmp_path / "m.nii.gz"), "--phase",
        str(tmp_path / "p.nii.gz"), "--b0-t", "3", "--te-ms", "10", "--baseline-frames", "2",
        "--source", ",".join(f"{v:.4f}" for v in tip), "--heat-on-s", "10", "--end-s", "300",
        "--applicator", app.id, "--power-w", "100", "--json",
    ]  # fmt: skip
    code, _, err = _run(capsys, *args)
    assert code == 2 and "--direction" in err  # the axis is needed
    code, out, err = _run(capsys, *args, "--direction", ",".join(f"{v:.5f}" for v in d))
    assert code == 0, err
    pred = json.loads(out)["prediction"]
    assert pred["model"] == "engine" and pred["frames_used"] >= 3
    assert pred["power_w"] == pytest.approx(80.0, rel=0.12)
    assert pred["perfusion_1_per_s"] == pytest.approx(0.012, rel=0.25)
    assert pred["necrosis_volume_ml"] == pytest.approx(truth.zone.volume_ml, rel=0.10)
    assert pred["residual_rms_c"] < 1.5  # near the thermometry noise (~0.6 degC here)


def test_phase_scale_auto_reads_a_converted_siemens_series_as_radians():
    """A SIEMENS header over phases already in radians (a converted series) is read as
    radians by ``auto``, and refused with an explicit ``siemens`` (the scale would shrink
    every phase 1300-fold)."""
    from ioplan.monitoring._series import phase_to_radians

    rad = np.linspace(-3.1, 3.1, 12).reshape(3, 4)
    planes = [(rad, rad, 1.0, 0.0)]
    out, used = phase_to_radians(planes, "auto", "SIEMENS", "test")
    assert used == "radians" and np.array_equal(out[0], rad)
    with pytest.raises(InputError, match="radians already"):
        phase_to_radians(planes, "siemens", "SIEMENS", "test")
    # genuine 12-bit integers under a SIEMENS header are still read as Siemens
    stored = np.round((rad + math.pi) * 2048 / math.pi)
    out, used = phase_to_radians([(stored, stored, 1.0, 0.0)], "auto", "SIEMENS", "test")
    assert used == "siemens"
    # (stored - 2048) pi / 2048 recovers the phase within half a 12-bit step
    assert np.max(np.abs(out[0] - rad)) <= math.pi / 2048

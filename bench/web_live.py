"""Live monitoring benchmark: frames/s and frame-arrival-to-display latency in a browser.

Starts `ioplan serve` in its own process on a free loopback port (an empty cases folder),
opens its live page in Debian's Chromium, headless (selenium), and plays the synthetic
scanner at several frame rates (`--intervals`: wall-clock seconds between frames; 0 is
as fast as the server can go). For each rate the page measures, per frame:

- arrival -> display: from the frame's message arriving in the page to the frame on screen
  (the next animation frame after the draw), `performance.now()`;
- server -> display: from the frame's arrival in the server (its `received_s` stamp) to
  the same moment, on the machine's clock (server and browser share it on loopback);

and the frames/s the page received. Prints a table, writes bench/results/web_live.json
and .md.

Usage: python bench/web_live.py [--frames 100] [--intervals 1 0.2 0.1 0.05 0]
       [--out bench/results/web_live.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import machine, write_result
from web_load import free_port, start_server


def open_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        raise SystemExit("needs chromium and chromium-driver (scripts/install-chromium.sh)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1400,1000"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


def wait_for(driver, script: str, timeout_s: float):
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {script!r}")


#: Issue 20's goal: under 200 ms from a frame's arrival to its display (p95, both clocks).
#: Measured here, on an otherwise idle machine; the suite only bounds it loosely
#: (tests/web/test_live_browser.py), since it runs beside other tests on every core.
LATENCY_GOAL_MS = 200.0


def stats(values) -> dict[str, float]:
    a = np.asarray(values, float)
    return {
        "n": int(a.size),
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p95_ms": round(float(np.percentile(a, 95)), 1),
        "max_ms": round(float(a.max()), 1),
    }


def run_rate(driver, url: str, frames: int, interval_s: float, baseline: int) -> dict:
    """One session at one rate, in a freshly loaded page; the page's own measurements."""
    driver.get(f"{url}/live")
    wait_for(driver, "return window.ioplan && window.ioplan.state.ready", 60)
    for key, value in (("frames", frames), ("interval_s", interval_s),
                       ("baseline_frames", baseline)):  # fmt: skip
        driver.execute_script(
            "document.getElementById(arguments[0]).value = arguments[1]", f"set-{key}", str(value)
        )
    driver.find_element("id", "start").click()
    # done, and every frame's latency recorded: the page records it in an animation frame
    # after the draw, which can come after the session's end event (a frame short, under load)
    wait_for(
        driver,
        "const s = window.ioplan.state; return s.done && s.latencies.length >= s.frames",
        60 + frames * (interval_s + 0.5),
    )
    st = driver.execute_script("return window.ioplan.state")
    if st["error"] or st["sessionState"] != "done":
        raise SystemExit(f"session ended {st['sessionState']}: {st['error']}")
    arrivals = np.asarray(st["arrivals"], float)
    span_s = (arrivals[-1] - arrivals[0]) / 1000.0
    session = driver.execute_script(
        "return fetch('/api/live/sessions/' + window.ioplan.state.session).then(r => r.json())"
    )
    return {
        "interval_s": interval_s,
        "frames": st["frames"],
        "drawn": st["drawn"],
        "frames_per_s": round((len(arrivals) - 1) / span_s, 1) if span_s > 0 else None,
        "arrival_to_display": stats(st["latencies"]),
        "server_to_display": stats(st["e2e"]),
        "server_ms_per_frame": session["summary"]["ms_per_frame"],
        "page_p95_ms": st["p95"],
        "within_goal": bool(
            max(stats(st["latencies"])["p95_ms"], stats(st["e2e"])["p95_ms"]) < LATENCY_GOAL_MS
        ),
    }


def markdown(doc) -> str:
    lines = [
        "# Live monitoring benchmark",
        "",
        f"`{doc['command']}`: the synthetic scanner's frames (4 x 64 x 64 voxels; one "
        f"64 x 64 slice of temperature and CEM43 sent, float32) through `ioplan serve` "
        f"(own process) to its live page in headless Chromium, {doc['frames']} frames per "
        f"rate, {doc['machine']['cpu_count']} cores. Latency: from the frame's message "
        "arriving in the page (or the frame arriving in the server) to the frame on screen "
        "(the next animation frame after the draw).",
        "",
        "| interval (s) | frames/s | drawn | arrival->display p50 / p95 / max (ms) "
        f"| server->display p50 / p95 / max (ms) | server ms/frame "
        f"| p95 < {LATENCY_GOAL_MS:g} ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in doc["rates"]:
        a, s = r["arrival_to_display"], r["server_to_display"]
        lines.append(
            f"| {r['interval_s']:g} | {r['frames_per_s']} | {r['drawn']}/{r['frames']} | "
            f"{a['p50_ms']} / {a['p95_ms']} / {a['max_ms']} | "
            f"{s['p50_ms']} / {s['p95_ms']} / {s['max_ms']} | {r['server_ms_per_frame']} | "
            f"{'yes' if r.get('within_goal') else 'no'} |"
        )
    lines += [
        "",
        "Frames that arrive within one animation frame are drawn together (the newest is "
        "shown; each counts its own latency). Load average of the machine after the run: "
        f"{', '.join(map(str, doc['load_average']))} (other work shares the cores).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--baseline", type=int, default=5)
    ap.add_argument("--intervals", type=float, nargs="+", default=[1.0, 0.2, 0.1, 0.05, 0.0])
    ap.add_argument("--out", default="bench/results/web_live.json")
    args = ap.parse_args(argv)
    if args.frames < 2 or args.baseline < 0 or args.baseline >= args.frames:
        ap.error(f"--frames must be >= 2 and --baseline 0 to frames - 1, got {args.frames} "
                 f"and {args.baseline}")  # fmt: skip
    if not all(np.isfinite(i) and 0.0 <= i <= 10.0 for i in args.intervals):
        ap.error(f"--intervals must be 0-10 s each, got {args.intervals}")
    tmp = tempfile.TemporaryDirectory()
    port = free_port()
    proc = start_server(Path(tmp.name), port)
    driver = open_browser()
    try:
        url = f"http://127.0.0.1:{port}"
        rates = [run_rate(driver, url, args.frames, i, args.baseline) for i in args.intervals]
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=30)
        tmp.cleanup()
    doc = {
        "command": " ".join(
            ["python bench/web_live.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "frames": args.frames,
        "baseline_frames": args.baseline,
        "latency_goal_ms": LATENCY_GOAL_MS,
        "rates": rates,
        "machine": machine(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    print(markdown(doc))
    write_result(doc, args.out)
    Path(args.out).with_suffix(".md").write_text(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Screenshots of the web workspace for the README: ``python docs/screenshots.py``.

Makes the demo case at 4 mm and a synthetic registry in a temporary folder, serves them with
``ioplan serve``'s app (uvicorn in a thread), opens each page in Debian's headless Chromium
(selenium) and saves ``docs/images/web_<page>.png``. Needs chromium, chromium-driver and the
built viewer (as the browser tests do); about a minute on two cores.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "images"


def _server(cases: Path, registry: Path):
    import uvicorn

    from ioplan.web import create_app

    app = create_app(cases, registry_db=registry)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return srv, f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                "--ignore-gpu-blocklist", "--disable-background-networking",
                "--no-first-run", "--window-size=1500,950"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def _wait(driver, script: str, timeout_s: float = 120.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        if driver.execute_script(script):
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out: {script}")


def main() -> None:
    """Make the demo and registry, serve them, save one screenshot per page."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", nargs="*", default=["plan", "margin", "sirt", "live", "registry"])
    args = ap.parse_args()
    from ioplan.planning import PlanConfig, demo_case, plan_ablation, write_demo
    from ioplan.registry import run_demo

    tmp = Path(tempfile.mkdtemp(prefix="ioplan-shots-"))
    try:
        case, info = demo_case(spacing_mm=4.0)
        plan = plan_ablation(case, PlanConfig(spacing_mm=4.0, robust_samples=10))
        write_demo(case, info, plan, tmp / "cases" / "demo")
        registry = tmp / "registry.sqlite"
        run_demo(tmp / "registry-csv", str(registry))
        srv, base = _server(tmp / "cases", registry)
        driver = _browser()
        ready = "return window.ioplan && (window.ioplan.state.ready || window.ioplan.state.error)"
        urls = {
            "plan": "/cases/demo/plan",
            "margin": "/cases/demo/margin",
            "sirt": "/cases/demo/sirt",
            "live": "/live",
            "registry": "/registry",
        }
        for page in args.pages:
            driver.get(base + urls[page])
            _wait(driver, ready)
            if page == "live":
                for key, value in (("frames", 25), ("interval_s", 0.1), ("baseline_frames", 3)):
                    driver.execute_script(
                        "document.getElementById(arguments[0]).value = arguments[1]",
                        f"set-{key}", str(value),
                    )  # fmt: skip
                driver.find_element("id", "start").click()
                _wait(driver, "return window.ioplan.state.done")
            time.sleep(1.5)
            OUT.mkdir(exist_ok=True)
            driver.save_screenshot(str(OUT / f"web_{page}.png"))
            print(f"docs/images/web_{page}.png")
        driver.quit()
        srv.should_exit = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""What the browser tests share: Chromium and its driver, an app served in a thread, waits.

Debian's Chromium, headless, driven by selenium (WebGL 2 on the CPU through SwiftShader, as
NiiVue needs). The tests skip with the reason when Chromium, its driver or the page's bundle
is missing (``scripts/install-chromium.sh``; npm at install time).
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from ioplan.web import STATIC_DIR

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def needs_browser(bundle: str) -> list:
    """``pytestmark`` for a browser test of the page whose script is ``static/<bundle>``."""
    return [
        pytest.mark.skipif(
            CHROMIUM is None or DRIVER is None,
            reason="browser tests need Debian's chromium and chromium-driver "
            "(bash scripts/install-chromium.sh)",
        ),
        pytest.mark.skipif(
            not (STATIC_DIR / bundle).is_file(),
            reason=f"the page script {bundle} is not built (npm was missing at install time)",
        ),
    ]


def serve(app):
    """Serve ``app`` with uvicorn in a thread; yield ``http://127.0.0.1:PORT``, then stop."""
    import uvicorn

    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    t0 = time.time()
    while not srv.started:
        assert time.time() - t0 < 30, "uvicorn did not start"
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def chromium(window: tuple[int, int] = (1000, 700)):
    """A headless Chromium driven by selenium; nothing leaves the machine.

    ``window``: its size in pixels. SwiftShader renders on the CPU, so the canvas's size is
    most of a page's drawing time (1000 x 700 draws the plan page in two thirds of the time
    of 1400 x 900).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu-sandbox",
        "--use-angle=swiftshader",  # WebGL 2 on the CPU (NiiVue needs it)
        "--enable-unsafe-swiftshader",
        "--ignore-gpu-blocklist",
        "--disable-background-networking",  # no connection leaves the machine
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--window-size={window[0]},{window[1]}",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def wait_for(driver, script: str, timeout_s: float = 60.0):
    """The first truthy value of ``script`` in the page; fails with the page's state."""
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    state = driver.execute_script("return window.ioplan && window.ioplan.state")
    raise AssertionError(f"timed out waiting for {script!r}; page state {state}")

"""The registry dashboard in a real browser: Debian's Chromium, headless, driven by selenium.

The app reads a synthetic registry (60 patients) and is served by uvicorn on a free loopback
port, in a thread of the test process. The checks: the page's script draws the survival and
incidence curves as SVG step paths (one vertical step per distinct event time of the curve's
JSON, monotone), the censoring ticks and the numbers at risk, in the curves' colours on
screen, and the server's tables are there. Skipped, with the reason, when Chromium, its
driver or the built script is missing (``scripts/install-chromium.sh``; npm at install).
"""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest

from ioplan.web import create_app
from web.browser_support import needs_browser, serve

pytestmark = needs_browser("registry.js")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``http://127.0.0.1:PORT`` of the app over the demo registry, served in a thread."""
    from ioplan.registry import run_demo

    root = tmp_path_factory.mktemp("registry-browser")
    run_demo(root / "csv", root / "reg.sqlite", seed=7, n_patients=60)
    (root / "cases").mkdir()
    app = create_app(root / "cases", cache_dir=root / "cache")
    app.state.registry_db = str(root / "reg.sqlite")  # what create_app's registry option sets
    yield from serve(app)


def _open(driver, url: str) -> dict:
    driver.get(url)
    t0 = time.time()
    while time.time() - t0 < 30:
        state = driver.execute_script("return window.ioplan && window.ioplan.state")
        if state and state.get("ready"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"the page script did not finish: {state}")


def _steps(d: str) -> list[tuple[str, float]]:
    """The commands of a step path ``M x y H x V y ...`` as (letter, value) pairs."""
    return [(c, float(v)) for c, v in re.findall(r"([HV])(-?[\d.]+)", d)]


def test_page_draws_the_survival_and_incidence_curves(server, browser):
    state = _open(browser, f"{server}/registry")
    assert state["error"] is None and state["missing"] is None
    assert state["curves"] == 4  # overall and LTP-free survival, LTP and distant incidence
    curves = browser.execute_script("return window.ioplan.cfg.curves")
    for figure, shape in (("survival", -1), ("incidence", +1)):
        for c in curves[figure]["curves"]:
            d = browser.find_element(
                "css selector", f'path.step[data-curve="{c["key"]}"]'
            ).get_attribute("d")
            assert d.startswith("M"), d[:40]
            vs = [v for cmd, v in _steps(d) if cmd == "V"]
            hs = [v for cmd, v in _steps(d) if cmd == "H"]
            # one vertical step per change of the curve's value (the events)
            changes = int(np.sum(np.diff(c["estimate"]) != 0))
            assert len(vs) == len(c["estimate"]) - 1 and changes >= 3, (c["key"], changes)
            assert np.all(np.diff(hs) >= 0)  # time runs right
            # survival falls (SVG y grows downwards), incidence rises
            ys = np.array([float(d[1:].split("H")[0].split()[1]), *vs])  # M x y, then V y
            assert np.all(shape * np.diff(ys) <= 1e-9), c["key"]
            assert np.sum(np.diff(ys) != 0) == changes
    # censoring ticks of the survival curves, one per censoring time
    for c in curves["survival"]["curves"]:
        ticks = browser.find_elements("css selector", f'g[data-curve="{c["key"]}"] g.censored line')
        assert len(ticks) == len(c["censored_months"]) > 0
    # numbers at risk under the axis: the curve's counts at the axis ticks
    row = browser.find_element("css selector", 'g.at-risk[data-curve="os"]')
    numbers = [t.text for t in row.find_elements("css selector", "text")][1:]
    assert numbers == [str(n) for n in curves["survival"]["curves"][0]["at_risk"]]


def test_curves_are_on_screen_and_the_tables_are_there(server, browser):
    from PIL import Image

    _open(browser, f"{server}/registry")
    png = browser.find_element("id", "survival-figure").screenshot_as_png
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    # the overall survival line (#4ea1ff) and the LTP-free line (#ff9f40) in pixels
    for colour in ((0x4E, 0xA1, 0xFF), (0xFF, 0x9F, 0x40)):
        near = (np.abs(rgb - np.array(colour)).sum(axis=-1) < 40).sum()
        assert near > 200, (colour, near)
    rows = browser.find_elements("css selector", "#technical-success tr")
    assert len(rows) == 4 and "technical success" in rows[1].text
    assert len(browser.find_elements("css selector", "#cox-ltp tr")) >= 4
    assert len(browser.find_elements("css selector", "#at-times tr")) == 5


def test_times_form_reloads_with_the_new_times(server, browser):
    _open(browser, f"{server}/registry")
    field = browser.find_element("css selector", "#times input[name=at_months]")
    field.clear()
    field.send_keys("6,24")
    browser.find_element("css selector", "#times button").click()
    t0 = time.time()
    while "at_months=6%2C24" not in browser.current_url and time.time() - t0 < 20:
        time.sleep(0.1)
    _open(browser, browser.current_url)
    header = browser.find_element("css selector", "#at-times tr").text
    assert "6 months" in header and "24 months" in header and "12 months" not in header

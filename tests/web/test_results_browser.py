"""The margin and SIRT pages in a real browser: Debian's Chromium, headless, via selenium.

As in ``test_browser.py``: uvicorn serves the app on a free loopback port in a thread, and
the checks count pixel colours in screenshots of the viewer's canvas (an overlay shown,
then hidden). Skipped, with the reason, when Chromium, its driver or the built pages are
missing (``scripts/install-chromium.sh``; npm at install time).
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

from ioplan.web import create_app
from web.browser_support import needs_browser, serve, wait_for

pytestmark = needs_browser("results.js")


@pytest.fixture(scope="module")
def server(cases_dir, tmp_path_factory):
    """``http://127.0.0.1:PORT`` of the app, served by uvicorn in a thread."""
    app = create_app(cases_dir, cache_dir=tmp_path_factory.mktemp("results-browser-cache"))
    yield from serve(app)


def _open(driver, url: str) -> None:
    driver.get(url)
    wait_for(
        driver, "return window.ioplan && (window.ioplan.state.ready || window.ioplan.state.error)"
    )
    assert driver.execute_script("return window.ioplan.state.error") is None


def _canvas(driver) -> np.ndarray:
    """The viewer canvas as an RGB array (after the next frame is drawn)."""
    from PIL import Image

    driver.execute_script("window.ioplan.nv.drawScene()")
    time.sleep(0.3)
    png = driver.find_element("id", "gl").screenshot_as_png
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _with_and_without(driver, index: int) -> tuple[np.ndarray, np.ndarray]:
    """The canvas with volume ``index`` shown, then hidden (opacity 0), then restored."""
    shown = _canvas(driver)
    opacity = driver.execute_script(f"return window.ioplan.nv.volumes[{index}].opacity")
    driver.execute_script(f"window.ioplan.nv.setOpacity({index}, 0)")
    hidden = _canvas(driver)
    driver.execute_script(f"window.ioplan.nv.setOpacity({index}, {opacity})")
    return shown, hidden


def test_margin_page_colours_the_tumour_surface(server, browser, client):
    doc = client.get("/api/cases/demo/margin").json()
    _open(browser, f"{server}/cases/demo/margin")
    # volumes: CT, zone, tumour surface by margin class (drawn opaque)
    shown, hidden = _with_and_without(browser, 2)
    changed = np.abs(shown - hidden).sum(axis=-1) > 60
    px = shown[changed]
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    # 0-5 mm, #ff2020: red-dominant rather than pure red, because single 4 mm surface
    # voxels are interpolated with their neighbours on screen (measured: about
    # (180, 90, 110) where the 0-5 mm band is one voxel thick); no other class is
    # red-dominant (purple #aa00aa has r = b, the zone #3388ff and the CT have r <= b)
    red = (r > 150) & (r > g + 60) & (r > b + 50)
    yellow = (r > 180) & (g > 180) & (b < 90)  # 5-10 mm, #ffff00
    cyan = (r < 90) & (g > 180) & (b > 180)  # the closest point, #00ffff
    # the demo's surface is about half 0-5 mm and half 5-10 mm (surface_fraction)
    assert doc["surface_fraction"]["0to5"] > 20 and doc["surface_fraction"]["5to10"] > 20
    assert red.sum() > 20 and yellow.sum() > 20, (red.sum(), yellow.sum(), changed.sum())
    # the crosshair starts at the closest point: its marker is in the slices shown
    assert cyan.sum() > 3, cyan.sum()
    # the closest point is the one given in the page's settings (the document's)
    cfg = browser.execute_script("return window.ioplan.cfg")
    assert cfg["closest_point_mm"] == doc["closest_point_mm"]


def test_sirt_page_draws_the_dvh_and_the_dose(server, browser, client):
    doc = client.post("/api/cases/demo/sirt", json={}).json()
    _open(browser, f"{server}/cases/demo/sirt")
    paths = browser.execute_script(
        "return [...document.querySelectorAll('#dvh path.curve')].map("
        "p => [p.dataset.structure, p.getAttribute('d')])"
    )
    assert sorted(s for s, _ in paths) == sorted(doc["structures"])
    height = int(browser.find_element("id", "dvh").get_attribute("height"))
    for _, d in paths:
        pts = np.array([[float(v) for v in p.split(",")] for p in d[1:].split("L")])
        assert len(pts) == len(doc["dvh"]["dose_gy"])
        # drawn from the top (100 % at 0 Gy) and never rising (SVG y grows downwards)
        assert pts[0, 1] < 0.2 * height and np.all(np.diff(pts[:, 1]) >= -1e-6)
        assert np.all(np.diff(pts[:, 0]) > 0)
    # the dose overlay ("jet": blue low, red high; the scale tops at the tumour's D50):
    # the slices start at the tumour, so the liver shows blue and the tumour red
    shown, hidden = _with_and_without(browser, 1)
    changed = np.abs(shown - hidden).sum(axis=-1) > 60
    r, b = shown[..., 0], shown[..., 2]
    blue, red = changed & (b > r + 60), changed & (r > b + 60)
    t, liver = doc["structures"]["tumor"], doc["structures"]["normal_liver"]
    assert t["volume_ml"] < 0.05 * liver["volume_ml"]  # the tumour: a small part of the liver
    assert t["mean_gy"] > 2 * liver["mean_gy"]  # and the hot part (T/N 4)
    assert blue.sum() > 2000 and red.sum() > 100, (blue.sum(), red.sum(), changed.sum())
    assert blue.sum() > red.sum()

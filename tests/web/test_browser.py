"""The viewer in a real browser: Debian's Chromium, headless, driven by selenium.

The pages are served by uvicorn on a free loopback port, in a thread of the test process.
The checks count pixel colours in screenshots of the viewer's canvas (the CT is grey, the
labels and the plan's overlays are coloured), and change an applicator's power and tip in
the page to see the edited zone follow. Skipped, with the reason, when Chromium, its driver
or the built viewer is missing (``scripts/install-chromium.sh``; npm at install time).
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from ioplan.web import create_app
from web.browser_support import needs_browser, serve, wait_for

pytestmark = needs_browser("viewer.js")


@pytest.fixture(scope="module")
def server(cases_dir, tmp_path_factory):
    """``http://127.0.0.1:PORT`` of the app, served by uvicorn in a thread."""
    app = create_app(cases_dir, cache_dir=tmp_path_factory.mktemp("browser-cache"))
    yield from serve(app)


def _canvas(driver) -> np.ndarray:
    """The viewer canvas as an RGB array: the frame drawn now, read back in the same task.

    ``toDataURL`` right after ``drawScene`` reads the WebGL drawing buffer before the page
    composites it (valid without ``preserveDrawingBuffer``): the pixels an element
    screenshot shows on a device-pixel ratio of 1, without the screenshot's round trip
    through the compositor (0.3 s wait + about 0.9 s per screenshot with software GL).
    """
    import base64

    from PIL import Image

    url = driver.execute_script(
        "window.ioplan.nv.drawScene(); return document.getElementById('gl').toDataURL();"
    )
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _open(driver, url: str) -> None:
    driver.get(url)
    wait_for(
        driver, "return window.ioplan && (window.ioplan.state.ready || window.ioplan.state.error)"
    )
    assert driver.execute_script("return window.ioplan.state.error") is None


def _overlay_pixels(driver, index: int, shown=None) -> tuple[int, np.ndarray]:
    """Pixels the volume ``index`` colours: the canvas with it, then without it.

    Returns the number of pixels that change by more than 60 (sum over R, G, B) and the mean
    colour change (with minus without) over them. ``shown``: the canvas as it is now, where
    the caller has it (each frame takes about a second of software GL).
    """
    shown = _canvas(driver) if shown is None else shown
    opacity = driver.execute_script(f"return window.ioplan.nv.volumes[{index}].opacity")
    driver.execute_script(f"window.ioplan.nv.setOpacity({index}, 0)")
    hidden = _canvas(driver)
    driver.execute_script(f"window.ioplan.nv.setOpacity({index}, {opacity})")
    diff = shown - hidden
    changed = np.abs(diff).sum(axis=-1) > 60
    return int(changed.sum()), diff[changed].mean(axis=0) if changed.any() else np.zeros(3)


def _grey(rgb):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (abs(r - g) < 10) & (abs(g - b) < 10) & (r > 40) & (r < 235)


def test_case_page_shows_the_ct_and_its_labels(server, browser):
    _open(browser, f"{server}/cases/demo")
    labelled = _canvas(browser)
    # the labels (45 % over the CT) colour the body: many strongly coloured pixels
    coloured = ((labelled.max(axis=-1) - labelled.min(axis=-1)) > 40).mean()
    assert coloured > 0.15, coloured
    # without them, the CT alone: grey pixels where the coloured ones were
    browser.execute_script("window.ioplan.nv.setOpacity(1, 0)")
    ct = _canvas(browser)
    # most of the pixels the labels coloured are grey CT (0.68 at 1000 x 700, 0.71 at
    # 1400 x 900; the rest: air, fat and bone outside the grey band); independent of how
    # much of the canvas the page's layout gives the body
    was_coloured = (labelled.max(axis=-1) - labelled.min(axis=-1)) > 40
    assert _grey(ct)[was_coloured].mean() > 0.6, _grey(ct)[was_coloured].mean()
    assert _grey(ct).mean() > 0.15, _grey(ct).mean()
    assert ((ct.max(axis=-1) - ct.min(axis=-1)) > 40).mean() < 0.05  # crosshair, text only
    # a window preset changes the image (the lung window: soft tissue brighter)
    browser.find_element("css selector", 'button[data-window="1500,-600"]').click()
    assert np.abs(_canvas(browser) - ct).mean() > 1.0


def test_plan_page_shows_the_zone_and_follows_the_edits(server, browser):
    _open(browser, f"{server}/cases/demo/plan")
    before = _canvas(browser)  # the page as opened (each overlay below is put back)
    assert _grey(before).mean() > 0.05  # the CT around the overlays
    # volumes: image, labels, margin shell, zone, needles; the zone (#ff3333) makes its
    # pixels redder: red up, green and blue down
    n, change = _overlay_pixels(browser, 3, before)
    assert n > 300, n
    assert change[0] > 0 > change[1] and change[2] < 0, change
    # the isotherm contours (volume 5: 50 degC #ff9900, 60 degC #ffffff) are drawn, and the
    # page's checkbox hides them: lines, so fewer pixels than the zone, but some
    n_iso, _ = _overlay_pixels(browser, 5, before)
    assert 20 < n_iso, n_iso
    browser.find_element("id", "show-isotherms").click()
    assert browser.execute_script("return window.ioplan.nv.volumes[5].opacity") == 0
    assert np.abs(_canvas(browser) - before).sum(axis=-1).astype(bool).sum() > 20
    browser.find_element("id", "show-isotherms").click()

    def edit(values, previews):
        """Set the first applicator's fields (one change event each, within the page's
        300 ms debounce: one preview) and wait for the ``previews``-th engine zone."""
        for key, value in values.items():
            browser.execute_script(
                "const el = document.querySelector(arguments[0]); el.value = arguments[1];"
                "el.dispatchEvent(new Event('change', {bubbles: true}));",
                f'input[data-i="0"][data-key="{key}"]',
                str(value),
            )
        wait_for(browser, f"return window.ioplan.state.previews >= {previews}", 120)
        assert browser.execute_script("return window.ioplan.state.error") is None
        return browser.execute_script("return window.ioplan.state.lastPreview")

    # 3 min instead of the plan's time: each engine preview simulates the whole protocol on
    # 4 mm voxels, and three of them at the plan's 10 min took most of this test's 48 s
    low = edit({"duration_s": 180, "power_w": 20}, 1)
    # the manufacturer chart's estimate came first (instant), the engine's zone replaced it
    assert browser.execute_script("return window.ioplan.state.charts") >= 1
    assert browser.execute_script("return window.ioplan.state.lastChart.method") == "chart"
    assert low["method"] == "engine"
    assert low["results"][0]["settings"]["duration_s"] == 180
    preview = "return window.ioplan.nv.volumes.length - 1"
    low_px, change = _overlay_pixels(browser, browser.execute_script(preview))
    assert change[1] < 0, change  # the edited zone (#ff00ff): less green
    app0 = browser.execute_script("return window.ioplan.state.applicators[0]")
    tip, entry = list(app0["tip_mm"]), list(app0["entry_mm"])
    high = edit({"power_w": 120}, 2)
    high_px, _ = _overlay_pixels(browser, browser.execute_script(preview))
    assert low["results"][0]["settings"]["power_w"] == 20
    assert high["zone_volume_ml"] > low["zone_volume_ml"]
    assert high_px > low_px > 0
    # dragging the tip and moving the entry point: the zone is simulated at the new tip,
    # along the new entry -> tip direction (the needle tilts)
    tip[0] += 6.0
    entry[1] += 20.0
    moved = edit({"tip0": tip[0], "entry1": entry[1]}, 3)
    got_set = moved["results"][0]["settings"]
    assert got_set["tips_mm"][0][0] == pytest.approx(tip[0], abs=1e-3)
    d = np.subtract(tip, entry)
    d /= np.linalg.norm(d)
    got = got_set["directions"][0]
    # unit vectors from the same two points: equal to float rounding of the JSON (1e-6)
    np.testing.assert_allclose(got, d, atol=1e-6)
    assert np.linalg.norm(np.subtract(got, high["results"][0]["settings"]["directions"][0])) > 0.05

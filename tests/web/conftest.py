"""Fixtures of the web tests: a cases folder holding the demo case (4 mm) and its plan."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cases_dir(tmp_path_factory):
    """``ioplan demo`` at 4 mm (the real planner, written by ``write_demo``), as ``demo/``.

    About 15-25 s on two cores (the planner's zone table and its verification runs), made
    once per session; every web test and the browser tests share it.
    """
    import fcntl
    import shutil

    from ioplan.planning import PlanConfig, demo_case, plan_ablation, write_demo

    # Under pytest-xdist the workers share the base temp's parent: the first worker plans
    # the demo there (under a lock), the others wait and copy it; each worker's tests then
    # use their own copy (nothing one worker's tests write reaches another's).
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if base.name.startswith("popen-gw") else base
    made = shared / "web-demo-case"
    with (shared / "web-demo-case.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (made / "demo" / "plan" / "plan.json").is_file():
            case, info = demo_case(spacing_mm=4.0)
            # The planner's default time budget (45 s): a short one made the plan depend
            # on the machine's speed (stop 33's CI: a 5 s budget ended after one round, with
            # a one-applicator zone leaving the tumour 2 mm outside; 10.6 s to cover here).
            plan = plan_ablation(case, PlanConfig(spacing_mm=4.0, robust_samples=10))
            # the margin and dose tests assume a plan that covers its target: every tumour
            # voxel, and the tumour's surface no more than a quarter voxel (1 mm) outside
            # the zone's sub-voxel surface (session 40's refit: -0.04 mm where the tumour
            # touches the zone's edge; stop 33's failure was 2 mm outside)
            assert plan.covered and plan.minimal_margin_mm > -1.0, (
                plan.coverage_percent,
                plan.minimal_margin_mm,
                plan.notes,
            )
            shutil.rmtree(made, ignore_errors=True)
            write_demo(case, info, plan, made / "demo")
    root = tmp_path_factory.mktemp("cases")
    shutil.copytree(made / "demo", root / "demo", symlinks=True)
    return root


@pytest.fixture(scope="session")
def app(cases_dir, tmp_path_factory):
    from ioplan.web import create_app

    return create_app(cases_dir, cache_dir=tmp_path_factory.mktemp("web-cache"))


@pytest.fixture(scope="session")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def read_events(client, url: str, *, headers=None, stop=None) -> list[tuple[str, dict]]:
    """The (event, document) pairs of a server-sent event stream, up to its ``end`` event.

    ``stop(events)`` may end the reading earlier (e.g. after some frames).
    """
    import json

    out: list[tuple[str, dict]] = []
    with client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, r.status_code
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((kind, json.loads(line[6:])))
                if kind == "end" or (stop is not None and stop(out)):
                    break
    return out


def assert_error(response, status: int, *fragments: str) -> None:
    """A refused request: the status and a one-line JSON body ``{"error": ...}``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert list(body) == ["error"], body
    assert isinstance(body["error"], str) and body["error"], body
    assert "\n" not in body["error"] and "Traceback" not in body["error"], body
    for f in fragments:
        assert f in body["error"], (f, body)


@pytest.fixture(scope="module")
def browser(request):
    """A headless Chromium for one browser test module (``browser_support.chromium``), of the
    window size the module names in ``BROWSER_WINDOW`` (default 1000 x 700)."""
    from web.browser_support import chromium

    driver = chromium(getattr(request.module, "BROWSER_WINDOW", (1000, 700)))
    yield driver
    driver.quit()

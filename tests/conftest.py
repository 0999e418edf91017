"""Shared fixtures: a small phantom case generated once per test session."""

from __future__ import annotations

import pytest

from ioplan.anatomy import Case, PhantomConfig, generate_phantom


@pytest.fixture(scope="session", autouse=True)
def _own_cache_dir(tmp_path_factory):
    """Tests compute the planner's surrogate tables themselves, never read the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("IOPLAN_CACHE_DIR", str(tmp_path_factory.mktemp("ioplan-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def small_phantom():
    """A coarse (4 mm) phantom: fast, still holds every structure large enough to see."""
    return generate_phantom(PhantomConfig(spacing_mm=4.0, seed=3))


@pytest.fixture(scope="session")
def small_case(small_phantom):
    return Case.from_phantom(small_phantom)

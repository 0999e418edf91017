"""Shared fixtures: a small phantom case generated once per test session."""

from __future__ import annotations

import pytest

from ioplan.anatomy import Case, PhantomConfig, generate_phantom


@pytest.fixture(scope="session")
def small_phantom():
    """A coarse (4 mm) phantom: fast, still holds every structure large enough to see."""
    return generate_phantom(PhantomConfig(spacing_mm=4.0, seed=3))


@pytest.fixture(scope="session")
def small_case(small_phantom):
    return Case.from_phantom(small_phantom)

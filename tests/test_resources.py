"""ioplan.resources: refusing what cannot fit, and only that."""

from __future__ import annotations

import pytest

from ioplan import resources
from ioplan.errors import InputError

GIB = 1024**3


@pytest.fixture
def machine(monkeypatch):
    """A 16 GiB machine whose free memory the test sets (no cgroup limit)."""

    def set_free(free_gib: float):
        info = {"MemTotal": 16 * GIB, "MemAvailable": int(free_gib * GIB)}
        monkeypatch.setattr(resources, "_meminfo", lambda: info)
        monkeypatch.setattr(resources, "_cgroup_limit", lambda: None)

    return set_free


def test_a_busy_moment_does_not_refuse_a_small_case(machine):
    machine(0.01)  # other programs took nearly everything for a moment
    resources.check_memory(2 * GIB, "a small grid")  # well under half the machine: allowed


def test_more_than_the_machine_is_refused_with_the_figures(machine):
    machine(15)
    with pytest.raises(InputError, match=r"about 40\.0 GiB.*coarser"):
        resources.check_memory(40 * GIB, "a 0.25 mm grid", hint="use a coarser --spacing-mm")


def test_a_container_limit_counts(machine, monkeypatch):
    machine(15)
    monkeypatch.setattr(resources, "_cgroup_limit", lambda: 4 * GIB)
    with pytest.raises(InputError):
        resources.check_memory(6 * GIB, "a grid")  # fits the machine, not the container

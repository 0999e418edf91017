"""Machine resources: refuse work that cannot fit in memory before allocating it.

A voxel grid grows with the cube of the inverse spacing; a careless option (a 0.25 mm
grid with a 100 mm margin) asks for tens of GiB. Commands estimate what they will
allocate and call :func:`check_memory` first, so that the user gets a one-line error
in a second instead of a crash after minutes.
"""

from __future__ import annotations

import os

from ioplan.errors import InputError

__all__ = ["available_memory_bytes", "check_memory"]

_GIB = 1024**3


def _meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in bytes (empty where there is none)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def available_memory_bytes() -> int | None:
    """Memory a command may count on, in bytes, or None where it cannot be known.

    The larger of what is free now (``MemAvailable``) and half of the machine's memory:
    other programs come and go (a busy test run must not make a small case fail), while
    an allocation beyond half the machine is refused whatever is free. A cgroup limit
    (containers) lower than that is taken into account.
    """
    info = _meminfo()
    avail, total = info.get("MemAvailable"), info.get("MemTotal")
    if avail is None or total is None:
        try:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    usable = max(avail, total // 2)
    limit = _cgroup_limit()
    return min(usable, limit) if limit is not None else usable


def check_memory(bytes_needed: float, what: str, *, hint: str = "", fraction: float = 0.8) -> None:
    """Raise :class:`~ioplan.errors.InputError` when ``bytes_needed`` exceeds the memory.

    Parameters
    ----------
    bytes_needed : float
        Estimated peak allocation in bytes.
    what : str
        What would be allocated, for the message (e.g. ``"a 812 x 812 x 812 grid"``).
    hint : str
        What the user can change (e.g. ``"use a coarser --spacing-mm"``).
    fraction : float
        Share of the available memory one command may take (default 0.8).

    Examples
    --------
    >>> check_memory(1e3, "a small grid")  # fits: returns None
    >>> try:
    ...     check_memory(1e30, "a huge grid", hint="use a coarser --spacing-mm")
    ... except InputError as exc:
    ...     print(str(exc).split(" needs")[0], "refused")
    a huge grid refused
    """
    avail = available_memory_bytes()
    if avail is None or bytes_needed <= fraction * avail:
        return
    msg = (
        f"{what} needs about {bytes_needed / _GIB:.1f} GiB of memory, more than the "
        f"{fraction * avail / _GIB:.1f} GiB this machine can give"
    )
    raise InputError(msg + (f"; {hint}" if hint else ""))

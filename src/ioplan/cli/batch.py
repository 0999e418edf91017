"""``ioplan batch``: (the command registers itself on ``app`` when written)."""

from __future__ import annotations

from ioplan.cli._common import app  # noqa: F401

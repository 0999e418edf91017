"""Live monitoring: thermometry frames streamed to the page, with alerts."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()

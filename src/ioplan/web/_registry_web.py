"""The registry dashboard: outcome report API route and its page."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()

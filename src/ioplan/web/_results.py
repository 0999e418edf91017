"""Margin confirmation and SIRT dose (with DVH): the API routes and their pages."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()

"""The HTTP API: one module per area, each with a `setup(app)` that adds its routes."""

from __future__ import annotations

from aiohttp import web

from aggregator.api import auth, runs
from aggregator.api.common import api_middleware

__all__ = ["api_middleware", "setup"]


def setup(app: web.Application) -> None:
    for area in (auth, runs):
        area.setup(app)

"""The web research assistant (``matloop serve``): chat, campaigns, runs and 3D structures."""

from __future__ import annotations

from matloop.app.web.app import create_app

__all__ = ["create_app"]

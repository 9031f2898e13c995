"""matloop: from a materials question to a grounded discovery report."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

"""Typed agent tools (see :mod:`matloop.tools.base`); :func:`registry.build_toolbox` builds
them for a campaign or chat session."""

from __future__ import annotations

from pydantic import BaseModel


def result_models() -> list[type[BaseModel]]:
    """Every result model of the tools (checkpoints may hold them)."""
    from matloop.tools import base, campaign, generation, materials, retrieval, runner, surrogates

    found: list[type[BaseModel]] = []
    for module in (base, materials, generation, retrieval, surrogates, runner, campaign):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel) and \
                    value.__module__ == module.__name__ and value not in found:
                found.append(value)
    return found

"""Every prompt in one place: a system prompt per role (``<role>.md``) and task templates
(``tasks/<role>.<task>.md``) with named ``$placeholders``, loaded with importlib.resources.

    system("critic")                                   # the critic's system prompt
    task("critic.plan", plan=..., tools=..., remaining_evaluations=...)

A template rendered without one of its placeholders raises ``KeyError`` naming it, so a
template and the code that fills it cannot drift apart silently.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

ROLES = ("scientist", "planner", "critic", "assistant", "reporter", "chat")


@cache
def _read(name: str) -> str:
    return resources.files("matloop.prompts").joinpath(name).read_text(encoding="utf-8")


def system(role: str) -> str:
    """The system prompt of a role.

    Raises:
        ValueError: Unknown role (the valid ones are listed).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
    return _read(f"{role}.md")


def placeholders(name: str) -> set[str]:
    """The placeholders a task template expects."""
    pattern = Template(_read(f"tasks/{name}.md")).pattern
    return {m.group("named") or m.group("braced")
            for m in pattern.finditer(_read(f"tasks/{name}.md"))
            if m.group("named") or m.group("braced")}


def task(name: str, **values: object) -> str:
    """A task template with its placeholders filled.

    Raises:
        KeyError: A placeholder the template uses was not given.
        FileNotFoundError: No template of that name.
    """
    text = Template(_read(f"tasks/{name}.md")).substitute(
        {k: "" if v is None else str(v) for k, v in values.items()})
    return text.strip()

"""Shared terminal output of the command-line tools: errors and progress bars."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from matloop.errors import MatloopError

#: Messages and progress go to stderr; results go to stdout.
console = Console(stderr=True)


def fail(exc: MatloopError) -> NoReturn:
    """Print a user-facing error with what to do, then exit with status 2 (no traceback).

    Errors are printed even with ``--quiet``.
    """
    console.quiet = False
    console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    if exc.hint:
        console.print(f"[yellow]what to do:[/] {escape(exc.hint)}", soft_wrap=True)
    raise typer.Exit(code=2)


class StageBars:
    """A progress callback ``(label, done, total)`` drawing one bar per named stage."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        """Advance the bar of one stage (created on first use)."""
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[label], completed=done, total=total)


def progress_bars() -> Progress:
    """A rich Progress with description, bar, count and elapsed time, on stderr."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)

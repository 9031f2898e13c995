"""What every ``matloop`` command shares: the exit-code contract, turning failures into one
line plus what to do, crash logs, JSON output and the choices of enumerated options.

Exit codes (documented in the README and in ``matloop --help``):

=====  =============================================================================
0      done
1      a result to look at: something did not converge or could not be read, a campaign
       ended ``failed:``, ``budget_exhausted:`` or ``no_progress``, or found nothing usable
2      user error: bad arguments, bad input files, missing packages, damaged or unwritable
       files, invalid settings (one line saying what is wrong, one saying what to do)
3      internal error: a bug; the traceback is in ``<data dir>/logs/crash-<time>.log``
130    interrupted (Ctrl-C); campaigns can be resumed
=====  =============================================================================
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sqlite3
import sys
import tempfile
import time
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Any

import click
import typer
from pydantic import ValidationError
from rich.console import Console
from typer.core import TyperGroup

from matloop.console import console, fail
from matloop.errors import MatloopError
from matloop.runtime import scrub_text

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USER_ERROR = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = ("Exit codes: 0 done; 1 a result to look at (not converged, unreadable "
                   "inputs, a campaign that failed, ran out of budget or found nothing); 2 "
                   "user error (message and what to do); 3 internal error (traceback in "
                   "<data dir>/logs/crash-*.log); 130 interrupted.")

#: Exceptions typer turns into its own messages and exit codes (usage errors are exit 2). Typer
#: 0.29 ships its own copy of click, so both the copy's classes and click's are listed.
_TYPER_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__
                              if c.__name__ == "ClickException")
PASS_THROUGH: tuple[type[BaseException], ...] = (
    typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort,
    click.ClickException, _TYPER_CLICK_EXCEPTION)
_EXITS: tuple[type[BaseException], ...] = (typer.Exit, click.exceptions.Exit)

#: Results go to stdout (tables, JSON); messages and progress to stderr (``console``).
out = Console()


# -- choices of enumerated options -----------------------------------------------------------

class Scale(StrEnum):
    """Energy scale of the convex hull."""

    auto = "auto"
    mlip = "mlip"
    mp2020 = "mp2020"


class ReportFormat(StrEnum):
    """Report file formats."""

    html = "html"
    md = "md"
    json = "json"


class CsvScale(StrEnum):
    """Scale of formation energies in an imported CSV."""

    mp2020 = "mp2020"
    mp_legacy = "mp-legacy"


# -- failures ----------------------------------------------------------------------------------

def explain(exc: BaseException) -> MatloopError | None:
    """The user-facing form of an expected failure, or None for a bug.

    Expected: :class:`MatloopError`; damaged SQLite files; permission, disk and other
    operating-system errors; text that is not UTF-8; invalid values (pydantic validation).
    """
    if isinstance(exc, MatloopError):
        return exc
    if isinstance(exc, sqlite3.DatabaseError):
        return MatloopError(f"a database file is damaged or is not an SQLite database ({exc})",
                            hint="if it is a run's checkpoints.sqlite, start the campaign "
                                 "again; if it is in the data directory (evaluations.sqlite, "
                                 "references.sqlite), move it aside and it is rebuilt "
                                 "(see matloop config show for the data directory)")
    if isinstance(exc, PermissionError):
        where = f": {exc.filename}" if exc.filename else ""
        return MatloopError(f"permission denied{where}",
                            hint="check the permissions of that path, or choose another folder "
                                 "(--out, MATLOOP_DATA_DIR)")
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return MatloopError(f"{exc.strerror or type(exc).__name__}{where}",
                            hint="check the path, the free disk space and the permissions")
    if isinstance(exc, UnicodeError):
        return MatloopError(f"text that is not valid UTF-8 ({type(exc).__name__})",
                            hint="save files as UTF-8 and use a UTF-8 locale (LANG=C.UTF-8)")
    if isinstance(exc, ValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        where = ".".join(str(x) for x in first["loc"])
        return MatloopError(f"invalid value{f' for {where}' if where else ''}: {first['msg']}",
                            hint="see the command's --help for the allowed values")
    return None


def crash_log_dir() -> Path:
    """``<data dir>/logs`` (a temporary folder when the settings cannot be read)."""
    try:
        from matloop.config import get_settings

        return get_settings().logs_dir
    except MatloopError:
        return Path(tempfile.gettempdir()) / "matloop-logs"


def write_crash_log(exc: BaseException) -> Path:
    """Write the traceback (credentials scrubbed) with versions and the command; return the
    file's path."""
    from matloop import __version__

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    text = "".join(traceback.format_exception(exc))
    body = (f"matloop {__version__} crash at {stamp} UTC\n"
            f"command: {' '.join(sys.argv)}\n"
            f"python {platform.python_version()} on {platform.platform()}\n\n{text}")
    for folder in (crash_log_dir(), Path(tempfile.gettempdir()) / "matloop-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"crash-{stamp}-{os.getpid()}.log"
            path.write_text(scrub_text(body), encoding="utf-8")
            return path
        except OSError:
            continue
    raise OSError("no folder for the crash log")


def handle_failure(exc: BaseException) -> int:
    """Print what went wrong and return the exit code (2 expected, 3 internal, 130 Ctrl-C)."""
    if isinstance(exc, KeyboardInterrupt):
        console.print("[bold red]interrupted[/] (a campaign can be continued with --resume "
                      "<campaign id>)")
        return EXIT_INTERRUPTED
    user = explain(exc)
    if user is not None:
        try:
            fail(user)
        except _EXITS as done:
            return int(getattr(done, "exit_code", EXIT_USER_ERROR))
    log.debug("internal error", exc_info=exc)
    try:
        path: Path | str = write_crash_log(exc)
    except OSError:
        path = "(no crash log could be written)"
    console.quiet = False
    console.print(f"[bold red]internal error:[/] {type(exc).__name__}: "
                  f"{scrub_text(str(exc))[:300]}", soft_wrap=True, markup=False)
    console.print(f"[yellow]what to do:[/] this is a bug in matloop; the traceback is in "
                  f"{path} — please include it in a bug report", soft_wrap=True)
    return EXIT_INTERNAL


class MatloopGroup(TyperGroup):
    """The top-level command group: every subcommand's failures go through
    :func:`handle_failure`, so no traceback reaches the terminal."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; map failures onto the exit-code contract."""
        try:
            return super().invoke(ctx)
        except PASS_THROUGH:
            raise
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one place that maps every failure to an exit code
            raise typer.Exit(code=handle_failure(exc)) from None


# -- output ------------------------------------------------------------------------------------

def print_json(data: Any) -> None:
    """Machine-readable output on stdout (plain JSON, one document); pydantic models are
    dumped in JSON mode."""
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def interactive() -> bool:
    """Whether a person can answer questions (stdin is a terminal)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def check_finite_positive(value: float | None) -> float | None:
    """Option callback: a positive, finite number."""
    import math

    if value is not None and (not math.isfinite(value) or value <= 0):
        raise typer.BadParameter(f"{value} is not a positive finite number")
    return value


__all__ = ["EXIT_ATTENTION", "EXIT_CODES_HELP", "EXIT_INTERNAL", "EXIT_OK", "EXIT_USER_ERROR",
           "CsvScale", "MatloopGroup", "ReportFormat", "Scale", "check_finite_positive",
           "explain", "handle_failure", "interactive", "print_json", "write_crash_log"]

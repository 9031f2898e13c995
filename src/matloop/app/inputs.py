"""Checks every front end applies to a campaign's inputs before any work starts.

Each raises :class:`~matloop.errors.MatloopError` with what to do, so the command line, the
Python API and the web app refuse bad input the same way and leave no file behind.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

from matloop.errors import MatloopError
from matloop.graphs.context import RUN_ID_PATTERN
from matloop.schemas import QueryProblem


class QueryProblemsError(MatloopError):
    """The question has parts that cannot be read as asked; the campaign did not start.

    Attributes:
        problems: What is wrong, each with the question to ask and the assumption that going
            on anyway (``accept_assumptions=True``, ``--yes``) would make.
    """

    def __init__(self, problems: list[QueryProblem]) -> None:
        lines = "; ".join(p.message for p in problems)
        questions = " ".join(p.question for p in problems)
        super().__init__(f"the question cannot be answered as asked: {lines}",
                         hint=f"{questions} Rephrase the question, or go on with the stated "
                              f"assumptions (--yes on the command line, "
                              f"accept_assumptions=True in Python): they are then written at "
                              f"the top of the report.")
        self.problems = problems


#: Longest question accepted, characters (the web app and the chat tool use the same limit).
MAX_QUERY_CHARS = 2000


def check_query(query: str) -> str:
    """The query, stripped, after the checks every front end applies before any work.

    Raises:
        MatloopError: Empty, too long, or not valid text (undecodable bytes, control
            characters).
    """
    text = query.strip()
    if not text:
        raise MatloopError("empty query", hint='ask a question, e.g. "stable Ba-Ti-O oxides"')
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MatloopError("the query is not valid UTF-8 text (it holds undecodable bytes)",
                           hint="type the question again, or set a UTF-8 locale "
                                "(e.g. LANG=C.UTF-8)") from exc
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise MatloopError("the query holds control characters",
                           hint="type the question as plain text")
    if len(text) > MAX_QUERY_CHARS:
        raise MatloopError(f"the query is {len(text)} characters long (limit "
                           f"{MAX_QUERY_CHARS})", hint="ask a shorter question")
    return text


def check_campaign_id(campaign_id: str) -> str:
    """A thread id that is a plain folder name (no path separators, no leading dot).

    Raises:
        MatloopError: Anything else.
    """
    if not re.fullmatch(RUN_ID_PATTERN, campaign_id or ""):
        shown = campaign_id if len(campaign_id or "") <= 60 else campaign_id[:60] + "…"
        raise MatloopError(f"{shown!r} is not a valid campaign id",
                           hint="use letters, digits, '.', '-' and '_' (at most 100, not "
                                "starting with a dot), e.g. baTiO-run1")
    return campaign_id


def check_checkpoint_file(path: Path) -> None:
    """Raise when ``path`` exists but is no readable campaign checkpoint database.

    Raises:
        MatloopError: Not an SQLite file, damaged, or unreadable (named, with what to do).
    """
    if not path.exists():
        return
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "checkpoints" in tables:
                conn.execute("SELECT count(*) FROM checkpoints").fetchone()
                verdict = conn.execute("PRAGMA quick_check").fetchone()
                if verdict and verdict[0] != "ok":
                    raise sqlite3.DatabaseError(str(verdict[0])[:200])
            elif tables:
                raise sqlite3.DatabaseError("it holds no checkpoint table")
    except sqlite3.DatabaseError as exc:
        raise MatloopError(f"{path} is damaged or is not a campaign checkpoint ({exc})",
                           hint="this run cannot be resumed; start the campaign again (its "
                                "other files are kept)") from exc
    except OSError as exc:
        raise MatloopError(f"{path} cannot be read ({exc.strerror or exc})",
                           hint="check the run directory's permissions") from exc


__all__ = ["MAX_QUERY_CHARS", "QueryProblemsError", "check_campaign_id", "check_checkpoint_file",
           "check_query"]

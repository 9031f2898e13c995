"""Assembling a chat session: its tools (the campaign's, plus starting and reading
campaigns), its model and where its threads are kept, for the terminal, the web app and the
LangGraph server.

Conversations are checkpointed in SQLite at :func:`threads_path` (``<runs>/.chat/
threads.sqlite``), so a restarted server or a new terminal session can continue a thread.
Relaxations report their progress to the chat (:data:`matloop.tools.properties.TOOL_PROGRESS`)
through :class:`ChatEngine`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from matloop.agents.llm import make_chat_model, parse_model_string
from matloop.config import Settings, get_settings
from matloop.files import FileAccess
from matloop.materials.engine import MaterialsEngine
from matloop.tools.base import Toolbox
from matloop.tools.campaign import CampaignStarted, campaign_tools
from matloop.tools.properties import TOOL_PROGRESS
from matloop.tools.registry import build_toolbox

Starter = Callable[[str, int], CampaignStarted]


def chat_dir(runs_dir: Path) -> Path:
    """The chat's scratch folder: relaxed structures, uploads (one folder per thread)."""
    return runs_dir / ".chat"


def threads_path(runs_dir: Path) -> Path:
    """The SQLite file holding the chat threads' checkpoints."""
    return chat_dir(runs_dir) / "threads.sqlite"


def sqlite_checkpointer(runs_dir: Path) -> Any:
    """A (synchronous) SQLite checkpointer for chat threads, e.g. for the terminal chat."""
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    path = threads_path(runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteSaver(sqlite3.connect(str(path), check_same_thread=False))


class ChatEngine(MaterialsEngine):
    """The materials engine of a chat session: relaxations report their progress to whoever
    listens on :data:`TOOL_PROGRESS` (the chat graph turns it into events)."""

    def predict(self, structures: Any, **kwargs: Any) -> Any:  # noqa: D102
        listener = TOOL_PROGRESS.get()
        if listener is not None and kwargs.get("progress") is None:
            kwargs["progress"] = listener
        return super().predict(structures, **kwargs)


def chat_model_from_settings(llm: str | None = None, base_url: str | None = None,
                             settings: Settings | None = None) -> Any:
    """The chat model a setting names (``none``: the offline assistant, returns None)."""
    settings = settings or get_settings()
    spec = parse_model_string(llm if llm is not None else settings.llm, base_url=base_url)
    return make_chat_model(spec) if spec else None


def run_and_summarise(runs_dir: Path, *, llm: str = "none", base_url: str | None = None,
                      settings: Settings | None = None) -> Starter:
    """A campaign starter that runs the campaign to the end in this process."""
    def start(query: str, max_evaluations: int) -> CampaignStarted:
        from matloop.app.campaign import run_campaign
        from matloop.runtime import Budget

        report = run_campaign(query, out_dir=runs_dir, llm=llm, base_url=base_url,
                              settings=settings,
                              budget=Budget(max_evaluations=max_evaluations, max_iterations=2))
        top = [f"{c.formula} ({c.e_above_hull_ev_per_atom:+.3f} eV/atom)"
               for c in report.candidates if c.status == "ok" and
               c.e_above_hull_ev_per_atom is not None][:5]
        path = runs_dir / report.campaign_id / "report.html"
        return CampaignStarted(campaign_id=report.campaign_id, state=report.status, top=top,
                               report=str(path),
                               answer=f"Campaign {report.campaign_id} finished "
                                      f"({report.status}). Top candidates: "
                                      f"{', '.join(top) or 'none'}. Report: {path}")
    return start


def chat_toolbox(*, model: Any = None, runs_dir: Path | None = None,
                 starter: Starter | None = None, access: FileAccess | None = None,
                 settings: Settings | None = None) -> Toolbox:
    """The chat's tools: the campaign tools plus start_campaign and read_campaign."""
    settings = settings or get_settings()
    runs_dir = runs_dir or settings.runs_dir
    scratch = chat_dir(runs_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    engine = ChatEngine(settings)
    access = access or FileAccess([scratch], allow_hidden=True)
    tools = build_toolbox(engine, run_dir=scratch, access=access, chat_model=model)
    for spec in campaign_tools(starter=starter or run_and_summarise(runs_dir,
                                                                    settings=settings),
                               runs_dir=runs_dir):
        tools.add(spec)
    return tools

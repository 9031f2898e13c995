"""Module-level compiled graphs for the LangGraph server and Studio (see langgraph.json).

Nothing run-specific is bound here: every run gets its own services (run directory
``MATLOOP_RUNS_DIR/<thread id>``, event log, budget, de-duplication memory), built on its first
node from the run's context (``{"config": {...campaign settings...}}``) or from the defaults
(``MATLOOP_LLM`` for every role). The server supplies its own checkpointer.
"""

from __future__ import annotations

import matloop.app.assembly  # noqa: F401 - registers how run services are built
from matloop.graphs.campaign import build_graph
from matloop.graphs.chat import build_chat_graph
from matloop.tools.base import Toolbox

campaign = build_graph().compile()


def chat(config: dict | None = None):  # type: ignore[no-untyped-def]
    """The chat graph, built when the server first asks for it (its tools load the MLIP)."""
    from matloop.app.chat import chat_model_from_settings, chat_toolbox

    model = chat_model_from_settings()
    tools: Toolbox = chat_toolbox(model=model)
    return build_chat_graph(tools, model=model).compile()

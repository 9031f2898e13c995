"""Module-level compiled graphs for the LangGraph server and Studio (see langgraph.json).

The server supplies its own checkpointer. Model settings come from the environment
(``MATLOOP_LLM``, default ``none``: offline policies); runs write to ``MATLOOP_RUNS_DIR``
(default ``runs/server``). Nothing else imports this module, so loading the MLIP and the
tools happens only when the server starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from matloop.campaign import CampaignConfig, build_context
from matloop.graphs.campaign import build_graph
from matloop.graphs.chat import build_chat_graph

_run_dir = Path(os.environ.get("MATLOOP_RUNS_DIR", "runs/server"))
_config = CampaignConfig(query="(set per run)", campaign_id="server",
                         llm=os.environ.get("MATLOOP_LLM", "none"))
_ctx = build_context(_config, _run_dir)

campaign = build_graph(_ctx).compile()
chat = build_chat_graph(_ctx.tools, model=None if _config.llm == "none" else
                        _ctx.scientist.client.model).compile()

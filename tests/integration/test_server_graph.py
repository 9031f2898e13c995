"""The LangGraph server's module-level campaign graph (langgraph.json) binds nothing per run:
two threads run two campaigns, each in its own run directory with its own event log and
budget, as the server would run them (its own checkpointer, the run settings in the context).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

pytestmark = pytest.mark.slow


def test_two_server_runs_get_separate_run_directories(tmp_path: Path) -> None:
    from matloop.app import server
    from matloop.graphs.context import CampaignContext

    # the server compiles the module's graph with its own checkpointer, as here
    graph = server.campaign.copy(update={"checkpointer": InMemorySaver()})
    runs = tmp_path / "runs"
    queries = {"thread-a": "Find stable compounds in the Na-Cl system",
               "thread-b": "Find stable compounds in the K-Br system"}
    for thread, query in queries.items():
        context = CampaignContext(config={
            "query": query, "require_approval": False,
            "budget": {"max_iterations": 1, "max_evaluations": 2}}, runs_dir=str(runs))
        final = graph.invoke({"query": query, "campaign_id": thread},
                             {"configurable": {"thread_id": thread}}, context=context)
        assert final.get("status"), final.keys()
    for thread, own, other in (("thread-a", "NaCl", "KBr"), ("thread-b", "KBr", "NaCl")):
        run_dir = runs / thread
        events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text()
                  .splitlines()]
        evaluated = [e for e in events if e.get("type") == "tool_call"
                     and e.get("tool") == "predict_properties"]
        assert evaluated, f"{thread} evaluated nothing"
        # each run directory holds only its own campaign's candidates and log
        cifs = [p.name for p in (run_dir / "candidates").glob("*.cif")]
        assert cifs and all(own in name for name in cifs), cifs
        assert other not in (run_dir / "events.jsonl").read_text()

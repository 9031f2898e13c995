"""The chat graph: offline router and a scripted tool-calling model, with real tools."""

from __future__ import annotations

import json

from langgraph.checkpoint.memory import InMemorySaver

from matloop.config import get_settings
from matloop.graphs.chat import build_chat_graph, make_campaign_tool, user
from matloop.materials.engine import MaterialsEngine
from matloop.tools.materials import make_materials_tools
from tests.conftest import DATA
from tests.fakes import scripted, text_turn, tool_turn


def _tools(tmp_path):
    engine = MaterialsEngine(get_settings())
    tools = {t.name: t for t in make_materials_tools(engine, run_dir=tmp_path)}
    started = []
    tools["start_campaign"] = make_campaign_tool(
        lambda q, n: started.append(q) or {"campaign_id": "c1", "status": "completed",
                                          "top": [], "report": "r.md"})
    return tools, started


def _ask(graph, text, thread="t"):
    out = graph.invoke({"messages": [user(text)]}, {"configurable": {"thread_id": thread}})
    return out["messages"][-1].content


def test_offline_router_answers_with_tools(tmp_path) -> None:
    tools, started = _tools(tmp_path)
    graph = build_chat_graph(tools).compile(checkpointer=InMemorySaver())
    answer = _ask(graph, f"relax {DATA / 'NaCl_rocksalt.cif'} and tell me if it is stable")
    assert "NaCl" in answer and "eV/atom" in answer
    assert "known phases in" in _ask(graph, "what are the known phases in Na-Cl?")
    _ask(graph, "suggest Pb-free halide perovskites")
    assert started == ["suggest Pb-free halide perovskites"]
    assert "I can relax" in _ask(graph, "hello")


def test_model_loop_handles_unknown_tools_and_is_bounded(tmp_path) -> None:
    tools, _ = _tools(tmp_path)
    model = scripted([tool_turn("run_shell", {"cmd": "ls"}),
                      tool_turn("lookup_known_phases", {"chemsys": "Na-Cl"}),
                      text_turn("Na-Cl has NaCl and the elements.")])
    graph = build_chat_graph(tools, model=model).compile(checkpointer=InMemorySaver())
    out = graph.invoke({"messages": [user("phases in Na-Cl?")]},
                       {"configurable": {"thread_id": "x"}})
    tool_msgs = [m for m in out["messages"] if m.type == "tool"]
    assert "unknown tool 'run_shell'" in tool_msgs[0].content
    assert json.loads(tool_msgs[1].content)["status"] == "ok"
    assert out["messages"][-1].content == "Na-Cl has NaCl and the elements."
    looping = scripted([tool_turn("lookup_known_phases", {"chemsys": "Na-Cl"})],
                       repeat_last=True)
    graph = build_chat_graph(tools, model=looping, max_tool_rounds=2).compile(
        checkpointer=InMemorySaver())
    assert "Stopped after 2 rounds" in _ask(graph, "loop forever", thread="y")

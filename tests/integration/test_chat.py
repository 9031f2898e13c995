"""The chat graph: offline router and a scripted tool-calling model, with real tools."""

from __future__ import annotations

import json

from langgraph.checkpoint.memory import InMemorySaver

from matloop.config import get_settings
from matloop.files import FileAccess
from matloop.graphs.chat import build_chat_graph, user
from matloop.materials.engine import MaterialsEngine
from matloop.tools.campaign import CampaignStarted, campaign_tools
from matloop.tools.materials import materials_tools
from tests.conftest import DATA
from tests.fakes import scripted, text_turn, tool_turn, toolbox


def _tools(tmp_path):
    engine = MaterialsEngine(get_settings())
    started = []

    def starter(query: str, max_evaluations: int) -> CampaignStarted:
        started.append(query)
        return CampaignStarted(campaign_id="c1", state="completed", report="r.md",
                               answer="Campaign c1 finished (completed).")

    tools = toolbox(materials_tools(engine, run_dir=tmp_path, access=FileAccess([DATA,
                                                                                 tmp_path])),
                    campaign_tools(starter=starter, runs_dir=None))
    return tools, started


def _ask(graph, text, thread="t"):
    out = graph.invoke({"messages": [user(text)]}, {"configurable": {"thread_id": thread}})
    return out["messages"][-1].content


def test_offline_router_answers_with_tools(tmp_path) -> None:
    tools, started = _tools(tmp_path)
    graph = build_chat_graph(tools).compile(checkpointer=InMemorySaver())
    cif = (DATA / "NaCl_rocksalt.cif").read_text()
    answer = _ask(graph, f"relax this and tell me if it is stable:\n{cif}")
    assert "NaCl relaxed with chgnet" in answer and "eV/atom" in answer
    # a path typed as text is never read: an upload is needed
    typed = _ask(graph, f"relax {DATA / 'NaCl_rocksalt.cif'}", thread="paths")
    assert "upload" in typed and "eV/atom" not in typed
    phases = _ask(graph, "what are the known phases in Na-Cl?")
    # MP pack: NaCl, NaCl3 and NaCl7 on the Cl-Na hull (6 compounds with the subsystems)
    assert "6 compounds in the Cl-Na system" in phases and "NaCl7 (mp-1080771)" in phases
    assert "NaCl is stable: it lies on the convex hull (0 eV/atom above it) of the 6 known " \
           "Cl-Na compounds" in _ask(graph, "Is NaCl stable?")
    assert "Na3Cl is unstable: 0.131 eV/atom above the convex hull" in _ask(graph, "and Na3Cl?")
    _ask(graph, "suggest Pb-free halide perovskites")
    assert started == ["suggest Pb-free halide perovskites"]
    assert "I can tell whether" in _ask(graph, "hello")


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
    assert "stopped after 2 rounds of tool calls" in _ask(graph, "loop forever", thread="y")

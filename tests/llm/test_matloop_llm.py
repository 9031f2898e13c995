"""matloop itself against the real local server: a campaign with every role on Gemma 3 270M,
chat turns through native tool calls, and the failures a real server gives (server down,
context overflow) ending as a partial report or a one-line answer, never a traceback.

The campaign runs the CLI in a subprocess, as a user would (exit code, stderr, files). The
figures it measures (calls, tokens, latency, mechanisms, fallbacks per role) are printed with
``-s`` and written to ``llm_campaign_figures.json`` in the test's temporary folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from matloop.agents.llm import make_chat_model, parse_model_string
from matloop.app.chat import chat_toolbox
from matloop.graphs.chat import build_chat_graph, user
from tests.llm.conftest import LlmArtifacts
from tests.llm.runs import MODEL, campaign, events, figures, no_traceback
from tests.llm.server import LlamaServer, free_port

pytestmark = pytest.mark.llm

#: Output tokens per call in the tier's campaign: the bounded schemas shrink to fit, and a
#: call takes 10-40 s at the 8-30 tokens/s this shared machine gives (CI time).
TIER_MAX_TOKENS = 256


def _no_traceback(proc: Any) -> None:
    no_traceback(proc.stdout, proc.stderr)


def test_campaign_with_every_role_on_the_server_writes_a_report(
        llama_server: LlamaServer, tmp_path: Path) -> None:
    """A whole campaign on the real model. A role whose answers fail hands over to its offline
    policy (``--fallback offline``) so every role is tried; the report names each handover."""
    limits = [f"--llm-max-tokens={role}={TIER_MAX_TOKENS}" for role in
              ("scientist", "planner", "critic", "assistant", "reporter", "generator")]
    proc, run_dir = campaign(tmp_path, llama_server.base_url, "--fallback", "offline",
                             *limits, evaluations=1)
    _no_traceback(proc)
    log = events(run_dir)
    measured = figures(log)
    measured["exit_code"] = proc.returncode
    report = json.loads((run_dir / "report.json").read_text())
    measured["status"] = report["status"]
    (tmp_path / "llm_campaign_figures.json").write_text(json.dumps(measured, indent=2))
    print(json.dumps(measured, indent=2))  # the closing note's figures (pytest -s)

    # the CLI's contract: exit 1 when the campaign failed, made no progress, or has no usable
    # candidate (no_results included), else 0
    attention = report["status"].startswith(("failed", "no_progress")) or not any(
        c["status"] == "ok" for c in report["candidates"])
    assert proc.returncode == (1 if attention else 0), (proc.returncode, report["status"])
    assert (run_dir / "report.md").is_file() and (run_dir / "report.html").is_file()
    # every LLM call went to the server and is logged with real token counts
    calls = [e for e in log if e["type"] == "llm_call"]
    assert calls and all(e["model"] == MODEL.split(":", 1)[1] or MODEL in e["model"]
                         for e in calls), {e["model"] for e in calls}
    assert all(isinstance(e["input_tokens"], int) for e in calls)
    assert sum(e["input_tokens"] for e in calls if e["ok"]) > 0
    assert sum(e["output_tokens"] for e in calls if e["ok"]) > 0
    # structured answers go through json_schema on an OpenAI-compatible server
    scientist = [e for e in calls if e["role"] == "scientist"]
    assert scientist and {e.get("mechanism") for e in scientist} == {"json_schema"}
    # every role got the model first: the ones that failed handed over, and the report says so
    fell_back = {f["role"] for f in measured["fallbacks"]}
    reached = {e["role"] for e in calls}
    assert {"scientist", "critic", "reporter"} <= reached
    # the planner (and the assistant after it) is reached unless the model's critic rejected
    # every hypothesis, which Gemma 3 270M may do: the campaign then ends honestly, no_results
    assert "planner" in reached or report["status"] == (
        "no_results: the critic approved no hypothesis within the revision limit")
    text = (run_dir / "report.md").read_text()
    for role in fell_back:
        assert f"the {role} model" in text, f"the report does not name the {role} fallback"
    assert "Traceback" not in text


def test_server_down_ends_the_campaign_with_a_partial_report(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    proc, run_dir = campaign(tmp_path, url)
    _no_traceback(proc)
    assert proc.returncode == 1
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"].startswith("failed: ")
    assert "scientist" in report["status"] and "could not be reached" in report["status"]
    assert report["candidates"] == []
    assert (run_dir / "report.md").is_file()
    failed = [e for e in events(run_dir) if e["type"] == "llm_call" and not e["ok"]]
    assert failed and {e["failure"] for e in failed} == {"connection"}
    # no silent fallback: nothing ran offline
    assert not [e for e in events(run_dir) if e["type"] == "llm_fallback"]


def test_context_overflow_ends_the_campaign_with_a_partial_report(
        llm_artifacts: LlmArtifacts, tmp_path: Path) -> None:
    small = LlamaServer(llm_artifacts.binary, llm_artifacts.model,
                        template=llm_artifacts.template, ctx_size=256,
                        log_path=tmp_path / "server.log")
    with small:
        proc, run_dir = campaign(tmp_path, small.base_url)
    small.kill()
    _no_traceback(proc)
    assert proc.returncode == 1
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"].startswith("failed: ")
    assert "does not fit its context window" in report["status"]
    failed = [e for e in events(run_dir) if e["type"] == "llm_call" and not e["ok"]]
    assert failed and {e["failure"] for e in failed} == {"context_overflow"}
    # the hint says what to do, on the terminal, in one place
    assert "larger context" in proc.stdout + proc.stderr


# -- chat ---------------------------------------------------------------------------------------


def _chat_graph(base_url: str, tmp_path: Path) -> Any:
    model = make_chat_model(parse_model_string(MODEL, base_url=base_url), max_tokens=160,
                            timeout_s=240.0, max_retries=0)
    tools = chat_toolbox(model=model, runs_dir=tmp_path / "runs")
    return build_chat_graph(tools, model=model, max_tool_rounds=2).compile(
        checkpointer=InMemorySaver())


def test_chat_turn_calls_a_tool_and_answers_with_its_source(
        llama_server: LlamaServer, tmp_path: Path) -> None:
    graph = _chat_graph(llama_server.base_url, tmp_path)
    out = graph.invoke({"messages": [user("Look up the known phases of the Na-Cl system.")]},
                       {"configurable": {"thread_id": "t"}})
    messages = out["messages"]
    calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    results = [m for m in messages if isinstance(m, ToolMessage)]
    # Gemma 3 270M (a base model) may answer without a tool: the chat graph does not force one
    # (a greeting needs none). Every call made, parsed or cut off, gets exactly one result.
    assert len(results) == len(calls) + sum(
        len(m.invalid_tool_calls) for m in messages if isinstance(m, AIMessage))
    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert isinstance(final.content, str) and final.content.strip()
    answered = [json.loads(m.content) for m in results if m.content.startswith("{")]
    print(f"chat: {len(calls)} tool call(s), answer: {final.content[:300]!r}")
    # Tool calls cut off at max_tokens are answered "not run" and sent back closed into JSON,
    # so llama-server no longer refuses the next request (it answered HTTP 500 "Failed to
    # parse tool call arguments as JSON" when the cut-off arguments were sent back as they
    # were): the model's calls in this turn never fail.
    assert "The language model failed" not in final.content, final.content
    assert "HTTP 500" not in final.content
    answer = final.additional_kwargs.get("answer") or {}
    if answer.get("origin") == "model":
        if any(a.get("status") in ("ok", "partial") for a in answered):
            assert "Sources: " in final.content and final.additional_kwargs["sources"]
        else:  # every call failed: the answer claims no source
            assert "Sources: " not in final.content
    else:  # the offline floor answered (rounds limit, or no tool used): it says so first
        assert final.content.startswith(("(The language model ", "No answer: the language "))


def test_chat_with_the_server_down_answers_in_one_line(tmp_path: Path) -> None:
    graph = _chat_graph(f"http://127.0.0.1:{free_port()}/v1", tmp_path)
    out = graph.invoke({"messages": [user("What is the band gap of NaCl?")]},
                       {"configurable": {"thread_id": "t"}})
    final = out["messages"][-1]
    # a question the offline reader understands is answered from the tools, and the answer
    # says first, in one line, that the model failed and what to do
    first_line = final.content.splitlines()[0]
    assert first_line.startswith("(The language model failed (chat: ")
    assert "could not be reached" in first_line and "--base-url" in first_line
    answer = final.additional_kwargs["answer"]
    assert answer["origin"] == "offline_floor" and answer["sources"]
    # the conversation goes on: a second turn is answered the same way
    again = graph.invoke({"messages": [user("and of KCl?")]}, {"configurable": {"thread_id": "t"}})
    assert again["messages"][-1].content.startswith("(The language model failed (")

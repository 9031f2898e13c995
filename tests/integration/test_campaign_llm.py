"""The campaign loop driven by scripted chat models: approvals, rejections, malformed answers,
failing tools, budgets and resume. Tools are the real ones."""

from __future__ import annotations

import json

import pytest

from matloop.app.campaign import resume_campaign, start_campaign
from matloop.config import get_settings
from matloop.files import FileAccess
from matloop.materials.engine import MaterialsEngine
from matloop.runtime import Budget
from matloop.tools.materials import materials_tools
from tests.conftest import DATA
from tests.fakes import json_turn, scripted, text_turn, tool_turn, toolbox

QUERY = "What stable compounds exist in the Na-Cl system?"
OBJECTIVE = {"query": QUERY, "interpretation": "stable Na-Cl compounds",
             "chemical_systems": ["Na-Cl"], "require_stable": True}
HYPOTHESES = {"reasoning": "rocksalt chlorides are common", "hypotheses": [
    {"id": "x", "justification": "Na+ and Cl- balance 1:1", "statement": "NaCl is stable",
     "chemical_system": "Cl-Na", "target_compositions": ["NaCl"], "methods": ["prototype"],
     "test_plan": "look up known phases and relax NaCl"}]}
APPROVE_H = {"subject": "hypotheses", "reasoning": "sound", "issues": [], "approved": True,
             "verdicts": [{"hypothesis_id": "H1", "reasoning": "balanced", "approved": True}]}
REJECT_H = {"subject": "hypotheses", "reasoning": "too vague", "issues": ["name a structure"],
            "approved": False,
            "verdicts": [{"hypothesis_id": "H1", "reasoning": "vague", "approved": False}]}
PLAN = {"reasoning": "look up, then relax", "beyond_tools": ["DFT check"],
        "expected_evaluations": 1, "steps": [
            {"id": "S1", "purpose": "known phases", "tool": "lookup_known_phases",
             "inputs": {"chemsys": "Na-Cl"}},
            {"id": "S2", "purpose": "relax NaCl", "tool": "relax_structure",
             "inputs": {"structure": str(DATA / "NaCl_rocksalt.cif")}, "depends_on": ["S1"]}]}
APPROVE_P = {"subject": "plan", "reasoning": "tools fit", "issues": [], "approved": True}
DECISION = {"reasoning": "NaCl confirmed", "supported": ["H1"], "refuted": [],
            "objective_met": True, "continue_search": False}
#: The scripted plan looks up and relaxes a given file; no candidate is generated, so however
#: sure the scripted scientist is, the honest end is "no results", never "objective_met".
NO_CANDIDATES = "no_results: no candidate was evaluated"


@pytest.fixture
def tools(tmp_path):
    engine = MaterialsEngine(get_settings())
    return toolbox(materials_tools(engine, run_dir=tmp_path / "artifacts",
                                   access=FileAccess([DATA, tmp_path])))


def models(**overrides):
    base = {
        "scientist": [tool_turn("Objective", OBJECTIVE), tool_turn("HypothesisSet", HYPOTHESES),
                      tool_turn("ExpansionDecision", DECISION)],
        "critic": [tool_turn("Critique", APPROVE_H), tool_turn("Critique", APPROVE_P)],
        "planner": [tool_turn("Plan", PLAN)],
        "assistant": [tool_turn("lookup_known_phases", {"chemsys": "Na-Cl"}),
                      tool_turn("relax_structure",
                                {"structure": str(DATA / "NaCl_rocksalt.cif")})],
    }
    base.update(overrides)
    return {role: scripted(turns, label=f"scripted:{role}") for role, turns in base.items()}


def run(tmp_path, tools, chat_models, **kw):
    campaign = start_campaign(QUERY, out_dir=tmp_path / "runs", chat_models=chat_models,
                              tools=tools, budget=kw.pop("budget", Budget(max_iterations=1)),
                              **kw)
    return campaign, campaign.run()


def events(campaign):
    return campaign.services.events.read()


def test_approval_path_runs_every_role_and_logs_calls(tmp_path, tools) -> None:
    campaign, report = run(tmp_path, tools, models())
    assert report.status == NO_CANDIDATES
    assert [h.status for h in report.hypotheses] == ["supported"]
    assert report.hypotheses[0].author == "scripted:scientist"
    log = events(campaign)
    tool_calls = [e for e in log if e["type"] == "tool_call"]
    assert [e["tool"] for e in tool_calls] == ["lookup_known_phases", "relax_structure"]
    assert all(e["status"] == "ok" for e in tool_calls)
    llm = [e for e in log if e["type"] == "llm_call"]
    assert {e["role"] for e in llm} == {"scientist", "critic", "planner", "assistant"}
    assert report.usage.llm_calls == len(llm) == 8
    assert report.usage.input_tokens == 800 and report.usage.tool_calls == 2
    assert report.methods["models"]["critic"] == "scripted:critic"
    assert not (campaign.run_dir / "report.json").exists()  # written once, by the caller
    saved = json.loads((campaign.run_dir / "config.json").read_text())
    assert saved["query"] == QUERY


def test_rejection_loop_ends_at_its_bound(tmp_path, tools) -> None:
    revisions = 2
    chat = models(scientist=[tool_turn("Objective", OBJECTIVE)] +
                  [tool_turn("HypothesisSet", HYPOTHESES)] * (revisions + 1),
                  critic=[tool_turn("Critique", REJECT_H)] * (revisions + 1))
    campaign, report = run(tmp_path, tools, chat,
                           budget=Budget(max_iterations=1, max_revisions=revisions))
    hyp_reviews = [c for c in report.critiques if c.subject == "hypotheses"]
    assert len(hyp_reviews) == revisions + 1
    assert all(not c.approved for c in hyp_reviews)
    assert report.plan is None and report.candidates == []
    assert all(h.status == "rejected" for h in report.hypotheses)
    assert not [e for e in events(campaign) if e["type"] == "tool_call"]


def test_malformed_answers_are_retried_then_accepted(tmp_path, tools) -> None:
    chat = models(scientist=[
        text_turn("I think the answer is sodium chloride."),          # no JSON at all
        text_turn(""),                                                 # empty reply
        json_turn(OBJECTIVE),                                          # valid, as text JSON
        tool_turn("HypothesisSet", {"reasoning": "r", "hypotheses": "not a list"}),  # wrong type
        tool_turn("HypothesisSet", HYPOTHESES),
        tool_turn("ExpansionDecision", DECISION)])
    campaign, report = run(tmp_path, tools, chat)
    assert report.status == NO_CANDIDATES
    scientist_calls = [e for e in events(campaign) if e["type"] == "llm_call"
                       and e["role"] == "scientist"]
    assert len(scientist_calls) == 6


def test_a_role_that_never_answers_ends_the_campaign_with_a_report(tmp_path, tools) -> None:
    chat = models(scientist=[text_turn("no idea")], )
    chat["scientist"] = scripted([text_turn("no idea")], repeat_last=True)
    campaign, report = run(tmp_path, tools, chat)
    assert report.status.startswith("failed: interpret")
    assert "Objective" in report.status
    assert report.usage.llm_calls == 3  # one call and two retries


def test_unknown_tool_and_wrong_arguments_are_fed_back(tmp_path, tools) -> None:
    chat = models(assistant=[
        tool_turn("run_python", {"code": "print(1)"}),                 # unknown tool
        tool_turn("lookup_known_phases", {"chemsys": "Na-Cl"}),
        tool_turn("relax_structure", {"structure": 42, "bulk_modulus": "maybe"}),  # bad types
        tool_turn("relax_structure", {"structure": str(DATA / "NaCl_rocksalt.cif")})])
    campaign, report = run(tmp_path, tools, chat)
    calls = [e for e in events(campaign) if e["type"] == "tool_call"]
    assert calls[0]["status"] == "error" and "unknown tool 'run_python'" in calls[0]["summary"]
    assert calls[2]["status"] == "error"
    assert calls[-1]["status"] == "ok" and calls[-1]["tool"] == "relax_structure"
    assert report.status == NO_CANDIDATES


def test_failing_and_slow_tools_are_recorded_and_the_campaign_goes_on(tmp_path, tools) -> None:
    plan = dict(PLAN, steps=[
        {"id": "S1", "purpose": "bad file", "tool": "relax_structure",
         "inputs": {"structure": str(DATA / "garbage.cif")}},
        {"id": "S2", "purpose": "slow", "tool": "relax_structure",
         "inputs": {"structure": str(DATA / "NaCl_rocksalt.cif"), "bulk_modulus": True}}])
    chat = models(planner=[tool_turn("Plan", plan)])
    del chat["assistant"]  # offline assistant: calls exactly what the plan says
    campaign = start_campaign(QUERY, out_dir=tmp_path / "runs", chat_models=chat, tools=tools,
                              budget=Budget(max_iterations=1))
    campaign.services.config.tool_timeout_s = 0.05
    report = campaign.run()
    calls = [e for e in events(campaign) if e["type"] == "tool_call"]
    assert calls[0]["status"] == "error" and "not a readable CIF" in calls[0]["summary"]
    assert calls[1]["status"] == "timeout"
    # every step failed: a failure of the execution, whatever the scientist concluded
    assert report.status == ("failed: execute: assistant: every plan step failed (2 of 2; "
                             "last: no answer within 0.05 s)")


def test_budget_exhaustion_gives_a_partial_report(tmp_path, tools) -> None:
    campaign, report = run(tmp_path, tools, models(), budget=Budget(max_iterations=1,
                                                                    max_llm_calls=2))
    assert report.status == "budget_exhausted: llm_calls"
    assert report.objective is not None and report.plan is None
    assert report.usage.llm_calls == 2


def test_resume_after_an_interruption_repeats_no_work(tmp_path, tools) -> None:
    """A crash during step S2 (the process dies) and a resume: S1 is not called again and the
    relaxation finished before the crash is answered from the cache."""
    import dataclasses

    calls = {"n": 0}
    real = tools["relax_structure"]

    def crashing(args):
        """Relax then die, as a killed process would."""
        calls["n"] += 1
        real.run(args)
        raise SystemExit("killed")

    crashing_tools = toolbox(tools.specs.values())
    crashing_tools.add(dataclasses.replace(real, run=crashing))
    chat = models()
    del chat["assistant"]
    campaign = start_campaign(QUERY, out_dir=tmp_path / "runs", chat_models=chat,
                              tools=crashing_tools, budget=Budget(max_iterations=1))
    with pytest.raises(SystemExit):
        campaign.run()
    assert calls["n"] == 1
    engine_cache = MaterialsEngine(get_settings()).cache
    relaxed_before = engine_cache.count("relax")
    assert relaxed_before >= 1
    chat2 = models(scientist=[tool_turn("ExpansionDecision", DECISION)], critic=[], planner=[])
    del chat2["assistant"]
    chat2 = {k: v for k, v in chat2.items() if k in ("scientist",)}
    chat2.update({k: scripted([text_turn("unused")], label=f"scripted:{k}")
                  for k in ("critic", "planner")})
    resumed = resume_campaign(campaign.config.campaign_id, out_dir=tmp_path / "runs",
                              chat_models=chat2, tools=tools)
    report = resumed.run(resume=True)
    log = events(resumed)
    s1_calls = [e for e in log if e["type"] == "tool_call" and e["step_id"] == "S1"]
    assert len(s1_calls) == 1  # from the first run only
    assert engine_cache.count("relax") == relaxed_before  # no new relaxation
    assert report.status == NO_CANDIDATES


def test_human_approval_interrupt_and_feedback(tmp_path, tools) -> None:
    asked = []

    def approve(payload):
        asked.append(payload)
        if len(asked) == 1:
            return {"approved": False, "feedback": "also look up the Na-Cl phases first"}
        return {"approved": True}

    chat = models(planner=[tool_turn("Plan", PLAN), tool_turn("Plan", PLAN)],
                  critic=[tool_turn("Critique", APPROVE_H), tool_turn("Critique", APPROVE_P),
                          tool_turn("Critique", APPROVE_P)])
    campaign = start_campaign(QUERY, out_dir=tmp_path / "runs", chat_models=chat, tools=tools,
                              budget=Budget(max_iterations=1), require_approval=True,
                              approve=approve)
    report = campaign.run()
    assert len(asked) == 2 and asked[0]["plan"]["steps"][0]["tool"] == "lookup_known_phases"
    human = [c for c in report.critiques if c.author == "human"]
    assert human and "Na-Cl phases" in human[0].issues[0]
    approvals = [e for e in events(campaign) if e["type"] == "plan_approval"]
    assert [e["approved"] for e in approvals] == [False, True]
    assert report.status == NO_CANDIDATES


def test_api_keys_never_reach_events(tmp_path, tools, monkeypatch) -> None:
    from matloop.runtime import EventLog

    log = EventLog(tmp_path / "events.jsonl")
    log.write("llm_call", model="openai:gpt-4o", api_key="sk-live-abcdefghijklmnop",
              error="401 for key sk-proj-1234567890abcdef")
    text = (tmp_path / "events.jsonl").read_text()
    assert "sk-live" not in text and "sk-proj" not in text and "[redacted]" in text


def _unreachable() -> object:
    """A real OpenAI client pointed at a port nothing listens on (connection refused)."""
    import socket

    from langchain_openai import ChatOpenAI

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return ChatOpenAI(model="down", base_url=f"http://127.0.0.1:{port}/v1", api_key="k",
                      max_retries=0, timeout=5)


def test_planner_that_cannot_be_reached_ends_the_run_then_resume_retries_it(tmp_path,
                                                                           tools) -> None:
    """A transport failure of the planner is a role failure (no KeyError in review_plan, no
    traceback): a partial report naming the role; --resume runs the failed node again."""
    chat = {**models(), "planner": _unreachable()}
    campaign, report = run(tmp_path, tools, chat)
    assert report.status.startswith("failed: plan: planner: ChatOpenAI could not be reached")
    assert report.candidates == [] and report.hypotheses
    log = events(campaign)
    [failed] = [e for e in log if e["type"] == "llm_call" and not e["ok"]]
    assert failed["role"] == "planner" and failed["failure"] == "connection"
    assert not [e for e in log if e["type"] == "llm_fallback"]  # no silent fallback
    assert not [e for e in log if e["type"] == "tool_call"]  # nothing ran without a plan
    # the server is back: resume runs the plan node again and goes on to the end
    again = resume_campaign(campaign.config.campaign_id, out_dir=tmp_path / "runs",
                            chat_models=models(scientist=[tool_turn("ExpansionDecision",
                                                                    DECISION)],
                                               critic=[tool_turn("Critique", APPROVE_P)]),
                            tools=tools)
    final = again.run(resume=True)
    assert final.status == NO_CANDIDATES
    log = events(again)
    assert [e["node"] for e in log if e["type"] == "campaign_retry"] == ["plan"]
    assert [e["tool"] for e in log if e["type"] == "tool_call"] == [
        "lookup_known_phases", "relax_structure"]


def test_fallback_offline_hands_the_failed_role_over_and_the_report_says_so(tmp_path,
                                                                           tools) -> None:
    chat = {**models(), "planner": _unreachable(),  # the critic approves any plan
            "critic": scripted([tool_turn("Critique", APPROVE_H), tool_turn("Critique",
                                                                            APPROVE_P)],
                               repeat_last=True, label="scripted:critic")}
    campaign, report = run(tmp_path, tools, chat, fallback="offline")
    assert not report.status.startswith("failed")
    [switch] = [e for e in events(campaign) if e["type"] == "llm_fallback"]
    assert switch["role"] == "planner" and "could not be reached" in switch["reason"]
    assert report.methods["models"]["planner"] == "offline (fallback: ChatOpenAI failed)"
    assert any("the planner model ChatOpenAI failed at plan (connection, 1 call(s))" in note
               for note in report.limitations)
    assert report.limitations[0].startswith("LLM fallback:")  # listed first
    # one call to the planner's model; every later plan came from the offline planner
    log = events(campaign)
    assert len([e for e in log if e["type"] == "llm_call" and e["role"] == "planner"]) == 1
    plans = [e for e in log if e["type"] == "node_end" and e["node"] == "plan"]
    assert plans and not any(e.get("status") for e in plans)

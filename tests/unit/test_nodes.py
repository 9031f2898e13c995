"""Campaign nodes and routers called directly, without compiling the graph."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.runtime import Runtime
from pydantic import BaseModel

from matloop.agents.assistant import DirectAssistant
from matloop.agents.critic import OfflineCritic
from matloop.agents.planner import OfflinePlanner
from matloop.agents.reporter import OfflineReporter
from matloop.agents.scientist import OfflineScientist
from matloop.errors import MatloopError
from matloop.graphs import nodes, routing
from matloop.graphs.context import CampaignConfig, CampaignContext, RunServices
from matloop.runtime import Budget, EventLog
from matloop.schemas import Hypothesis, Objective, Plan, PlanStep, ToolRecord, Usage
from matloop.tools.base import Toolbox, ToolOutput, ToolSpec
from matloop.tools.generation import GenerateArgs, GeneratedRow, GenerateOutput, generation_updates

CONFIG = {"configurable": {"thread_id": "t"}}


class Failing:
    """A planner that cannot answer (as an LLM planner that never validates)."""

    def make_plan(self, *args, **kwargs):
        raise MatloopError("planner: no valid Plan in 3 attempts")


def generate_spec(calls: list) -> ToolSpec:
    def run(args: GenerateArgs) -> GenerateOutput:
        calls.append(args)
        return GenerateOutput(n=2, candidates=[
            GeneratedRow(id=f"c{i}", formula="BaTiO3", method="prototype", cif_path=f"c{i}.cif")
            for i in range(2)])

    return ToolSpec("generate_candidates", "generate", GenerateArgs, GenerateOutput, run,
                    lambda r: f"{r.n} candidates generated",
                    produces=lambda r, s: [c.cif_path for c in r.candidates if c.cif_path],
                    candidates=generation_updates)


class EchoArgs(BaseModel):
    structures: list[str]


def services(tmp_path: Path, *, planner=None, budget: Budget | None = None,
             tools: Toolbox | None = None) -> RunServices:
    config = CampaignConfig(query="stable Ba-Ti-O oxides", campaign_id="t",
                            budget=budget or Budget(max_iterations=2, max_evaluations=10))
    return RunServices(config=config, run_dir=tmp_path, scientist=OfflineScientist(),
                       critic=OfflineCritic(), planner=planner or OfflinePlanner(),
                       assistant=DirectAssistant(), reporter=OfflineReporter(),
                       tools=tools or Toolbox(), events=EventLog(tmp_path / "events.jsonl"),
                       engine=None)


def call(node, state: dict, svc: RunServices) -> dict:
    return node(state, Runtime(context=CampaignContext(services=svc)), CONFIG)


def test_interpret_counts_usage_and_logs_the_node(tmp_path) -> None:
    svc = services(tmp_path)
    out = call(nodes.interpret, {"query": "stable Ba-Ti-O oxides"}, svc)
    assert out["objective"].chemical_systems == ["Ba-O-Ti"]
    assert out["usage"].wall_time_s >= 0 and out["usage"].llm_calls == 0
    kinds = [(e["type"], e.get("node")) for e in svc.events.read()]
    assert kinds == [("node_start", "interpret"), ("node_end", "interpret")]


def test_a_spent_budget_stops_a_node_before_it_runs(tmp_path) -> None:
    svc = services(tmp_path, budget=Budget(max_iterations=1, max_evaluations=5))
    spent = Usage(mlip_evaluations=5)
    out = call(nodes.ideate, {"query": "q", "usage": spent,
                              "objective": Objective(query="q", interpretation="i")}, svc)
    assert out["status"] == "budget_exhausted: mlip_evaluations"
    assert routing.after_ideate(out) == "report"
    # a soft limit lets the current plan finish: execute is not stopped by it
    plan = Plan(reasoning="r", steps=[PlanStep(id="S1", purpose="p", tool="nothing")])
    out = call(nodes.execute, {"usage": spent, "plan": plan, "plan_cursor": 0}, svc)
    assert "status" not in out and out["tool_records"][0].status == "error"


def test_a_failing_planner_ends_the_campaign_cleanly(tmp_path) -> None:
    svc = services(tmp_path, planner=Failing())
    objective = Objective(query="q", interpretation="i", chemical_systems=["Ba-O-Ti"])
    out = call(nodes.plan, {"objective": objective, "hypotheses": []}, svc)
    assert out["status"] == "failed: plan: planner: no valid Plan in 3 attempts"
    assert out["last_verdict"] == "give_up" and "plan" not in out
    assert routing.after_plan({**out, "plan": None}) == "report"
    # review_plan reached without a plan (an old checkpoint) fails cleanly too
    failed = call(nodes.review_plan, {"plan": None}, svc)
    assert failed["status"].startswith("failed: review_plan: no plan to review")


def test_hypothesis_review_approves_revises_and_gives_up(tmp_path) -> None:
    svc = services(tmp_path, budget=Budget(max_iterations=1, max_revisions=1))
    objective = Objective(query="q", interpretation="i", chemical_systems=["Ba-O-Ti"],
                          excluded_elements=["Pb"])
    good = Hypothesis(id="H1", justification="j", statement="s", chemical_system="Ba-O-Ti",
                      test_plan="t")
    bad = good.model_copy(update={"id": "H2", "chemical_system": "O-Pb-Ti"})
    out = call(nodes.review_hypotheses, {"objective": objective, "hypotheses": [good, bad]}, svc)
    assert out["last_verdict"] == "approved"
    assert [h.status for h in out["hypotheses"]] == ["approved", "rejected"]
    out = call(nodes.review_hypotheses, {"objective": objective, "hypotheses": [bad]}, svc)
    assert out["last_verdict"] == "revise" and out["hypothesis_revisions"] == 1
    assert any("excluded" in i for i in out["feedback"])
    assert routing.after_hypothesis_review(out) == "ideate"
    out = call(nodes.review_hypotheses, {"objective": objective, "hypotheses": [bad],
                                         "hypothesis_revisions": 1}, svc)
    assert out["last_verdict"] == "give_up"
    assert routing.after_hypothesis_review(out) == "report"


def test_execute_resolves_inputs_and_records_candidates(tmp_path) -> None:
    calls: list = []
    tools = Toolbox()
    tools.add(generate_spec(calls))
    svc = services(tmp_path, tools=tools)
    plan = Plan(reasoning="r", steps=[
        PlanStep(id="S1", purpose="gen", tool="generate_candidates", hypothesis_id="H1",
                 inputs={"chemsys": "Ba-O-Ti", "n": 2}),
        PlanStep(id="S2", purpose="needs S9", tool="generate_candidates",
                 inputs={"structures": "$S9"})])
    out = call(nodes.execute, {"plan": plan, "plan_cursor": 0, "iteration": 0}, svc)
    assert out["plan_cursor"] == 1 and calls[0].n == 2
    assert [c["id"] for c in out["candidates"]] == ["c0", "c1"]
    assert all(c["hypothesis_id"] == "H1" and c["status"] == "generated"
               for c in out["candidates"])
    assert out["usage"].tool_calls == 1 and out["usage"].mlip_evaluations == 0
    assert routing.after_execute({**out, "plan": plan}) == "execute"
    state = {"plan": plan, "plan_cursor": 1, "step_outputs": out["step_outputs"]}
    out = call(nodes.execute, state, svc)
    (rec,) = out["tool_records"]
    assert rec.status == "error" and "refers to a step with no output" in rec.summary
    assert routing.after_execute({**out, "plan": plan}) == "expand"


def test_report_node_counts_itself_in_the_report_usage(tmp_path) -> None:
    svc = services(tmp_path)
    before = Usage(wall_time_s=10.0, tool_calls=3)
    out = call(nodes.report, {"query": "q", "campaign_id": "t", "usage": before}, svc)
    assert out["report"].usage == out["usage"]
    assert out["usage"].wall_time_s >= 10.0 and out["usage"].tool_calls == 3


def test_routers_raise_on_states_they_do_not_expect() -> None:
    with pytest.raises(routing.RoutingError):
        routing.after_hypothesis_review({})
    with pytest.raises(routing.RoutingError):
        routing.after_plan_review({"last_verdict": "maybe"})
    with pytest.raises(routing.RoutingError):
        routing.after_execute({})
    with pytest.raises(routing.RoutingError):
        routing.after_expand({})
    assert routing.after_approval({"last_verdict": "revise"}) == "plan"
    assert routing.after_interpret({"status": "failed: interpret: x"}) == "report"


def test_next_verdict_is_the_one_revise_or_give_up_rule() -> None:
    assert nodes.next_verdict(True, 0, 2) == ("approved", 0)
    assert nodes.next_verdict(False, 0, 2) == ("revise", 1)
    assert nodes.next_verdict(False, 2, 2) == ("give_up", 2)
    assert nodes.next_verdict(False, 0, 2, can_revise=False) == ("give_up", 0)


def test_tool_records_survive_a_round_trip_as_dicts() -> None:
    rec = ToolRecord(id="T", tool="generate_candidates", arguments={}, status="ok", summary="",
                     result=GenerateOutput(n=1), duration_s=0.0)
    spec = generate_spec([])
    assert spec.parse(rec.model_dump()["result"]).n == 1
    assert isinstance(spec.parse({"status": "error", "message": "m"}), ToolOutput)

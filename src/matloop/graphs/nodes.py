"""The campaign graph's nodes: module-level functions of the state and the runtime.

Each node reads the state, asks one role (offline or LLM policy) and returns what changed.
:func:`node` wraps every one of them once: it logs the node, stops it when the budget is
spent, turns a role's failure into a clean end of the campaign, and counts usage (LLM calls
and tokens, tool calls, MLIP evaluations, wall time), so no node does its own bookkeeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from matloop.agents.assistant import StepInputError, resolve_inputs
from matloop.agents.llm import LLMCallError
from matloop.agents.query_parser import query_problems, with_problems
from matloop.agents.reporter import FALLBACK_NOTE, OfflineReporter
from matloop.agents.scoring import pareto_ranks, score, target_probability
from matloop.errors import MatloopError
from matloop.graphs.context import CampaignContext, RunServices, services_for
from matloop.graphs.state import CampaignState
from matloop.schemas import (
    CandidateResult,
    Critique,
    EvidenceRecord,
    Hypothesis,
    IterationSummary,
    Objective,
    Plan,
    ToolRecord,
    Usage,
)
from matloop.tools.base import CandidateContext
from matloop.tools.materials import PREDICT_PROPERTIES
from matloop.tools.runner import candidate_updates, evidence_of

Verdict = Literal["approved", "revise", "give_up"]
#: Limits that stop new iterations but let the current plan and its expansion finish.
SOFT_LIMITS = ("iterations", "mlip_evaluations")
NodeFn = Callable[[CampaignState, RunServices], dict[str, Any]]


def next_verdict(approved: bool, revisions: int, max_revisions: int, *,
                 can_revise: bool = True) -> tuple[Verdict, int]:
    """What follows a review: go on, send it back for revision (counted), or give up."""
    if approved:
        return "approved", revisions
    if can_revise and revisions < max_revisions:
        return "revise", revisions + 1
    return "give_up", revisions


def node(name: str) -> Callable[[NodeFn], Callable[..., dict[str, Any]]]:
    """Wrap a node: events, budget, failures and usage, once for all nodes."""
    def wrap(fn: NodeFn) -> Callable[..., dict[str, Any]]:
        def run(state: CampaignState, runtime: Runtime[CampaignContext],
                config: RunnableConfig) -> dict[str, Any]:
            services = services_for(runtime.context, config, dict(state))
            started = time.perf_counter()
            services.events.write("node_start", node=name, iteration=state.get("iteration", 0))
            limit = services.budget.exhausted(state.get("usage") or Usage())
            if name != "report" and limit and (limit not in SOFT_LIMITS or name == "ideate"):
                services.events.write("budget", node=name, exhausted=limit)
                update: dict[str, Any] = {"status": f"budget_exhausted: {limit}",
                                          "last_verdict": "give_up"}
            else:
                update = _guarded(name, fn, state, services)
            update["usage"] = services.take_usage(state.get("usage"),
                                                  time.perf_counter() - started)
            if update.get("report") is not None:  # the report counts its own node too
                update["report"] = update["report"].model_copy(update={"usage": update["usage"]})
            services.events.write("node_end", node=name,
                                  seconds=round(time.perf_counter() - started, 3),
                                  status=update.get("status", ""))
            return update
        # not functools.wraps: LangGraph reads this signature to inject runtime and config
        run.__name__, run.__doc__, run.__qualname__ = name, fn.__doc__, fn.__qualname__
        run.policy = fn  # type: ignore[attr-defined]  # the unwrapped node, for tests
        return run
    return wrap


def _guarded(name: str, fn: NodeFn, state: CampaignState, services: RunServices,
             ) -> dict[str, Any]:
    """Run a node; a role that cannot answer either hands over to its offline policy
    (``fallback="offline"``) or ends the campaign with a ``failed:`` status. The report is
    written either way."""
    try:
        return fn(state, services)
    except LLMCallError as exc:
        services.events.write("node_error", node=name, role=exc.role, failure=exc.kind,
                              calls=exc.calls, error=str(exc))
        if not (exc.role and services.fall_back(exc.role, exc.message)):
            return _failed(name, exc, state, services)
        note = (f"{FALLBACK_NOTE} the {exc.role} model {exc.model} failed at {name} "
                f"({exc.kind}, {exc.calls} call(s)): {exc.message}. The offline {exc.role} "
                f"policy did the {exc.role}'s work from then on (fallback offline).")
        try:
            update = fn(state, services)
        except MatloopError as again:
            services.events.write("node_error", node=name, error=str(again))
            update = _failed(name, again, state, services)
        update["notes"] = [note, *update.get("notes", [])]
        return update
    except MatloopError as exc:  # a role that cannot answer ends the campaign
        services.events.write("node_error", node=name, error=str(exc))
        return _failed(name, exc, state, services)


def _failed(name: str, exc: MatloopError, state: CampaignState, services: RunServices,
            ) -> dict[str, Any]:
    """The update of a node whose role failed: ``failed: <node>: <why>``; a failed report
    node still yields the report, built by the offline reporter with that status."""
    calls = getattr(exc, "calls", None)
    note = f"{name} failed" + (f" after {calls} LLM call(s)" if calls else "") + f": {exc}"
    status = f"failed: {name}: {exc.message}"
    if name != "report":
        return {"status": status, "notes": [note], "last_verdict": "give_up"}
    reporter = services.offline.get("reporter") or OfflineReporter()
    built = reporter.build({**state, "status": state.get("status") or status,
                            "notes": [*state.get("notes", []), note]}, services)
    services.spend(tool_calls=len(built.tool_records))
    return {"report": built.report, "status": built.report.status, "notes": [note],
            "tool_records": built.tool_records}


def _objective(state: CampaignState) -> Objective:
    objective = state.get("objective")
    if objective is None:
        raise MatloopError("the campaign has no objective (the question was not interpreted)",
                           hint="see the scientist's error in events.jsonl")
    return objective


def _current(state: CampaignState, status: str) -> list[Hypothesis]:
    it = state.get("iteration", 0)
    return [h for h in state.get("hypotheses", []) if h.iteration == it and h.status == status]


@node("interpret")
def interpret(state: CampaignState, services: RunServices) -> dict[str, Any]:
    """Read the question into an objective. What cannot be read as asked (unknown elements,
    conditions not understood) is added to ``objective.problems`` whichever policy read it,
    so the report states the assumptions first."""
    objective = services.scientist.interpret(state["query"])
    objective = with_problems(objective, query_problems(state["query"]))
    for problem in objective.problems:
        services.events.write("query_problem", problem=problem.kind, message=problem.message,
                              assumption=problem.assumption)
    return {"objective": objective, "iteration": 0, "hypothesis_revisions": 0,
            "plan_revisions": 0, "plan_cursor": 0, "feedback": []}


@node("ideate")
def ideate(state: CampaignState, services: RunServices) -> dict[str, Any]:
    """New hypotheses (the critic's issues go back to the scientist after a rejection)."""
    feedback = state.get("feedback", []) if state.get("last_verdict") == "revise" else []
    new = services.scientist.propose(
        _objective(state), iteration=state.get("iteration", 0),
        prior=list(state.get("hypotheses", [])), candidates=list(state.get("candidates", [])),
        evidence=[e.model_dump() for e in state.get("evidence", [])], feedback=feedback)
    update: dict[str, Any] = {"hypotheses": new}
    it = state.get("iteration", 0)
    assumption = getattr(services.scientist, "assumption", None)
    widened = assumption(_objective(state)) if assumption is not None and it == 0 else None
    if widened is not None and new:
        update["objective"] = with_problems(_objective(state), [widened])
        services.events.write("query_problem", problem=widened.kind, message=widened.message,
                              assumption=widened.assumption)
    if not new and not feedback:
        if it == 0:
            objective = _objective(state)
            update["status"] = (
                "no_hypothesis: no chemical system fits the question's constraints "
                f"({objective.interpretation}); name a system (e.g. Li-Fe-O), an element or an "
                f"application")
        else:
            update["status"] = "completed"
        update["notes"] = [f"iteration {it}: the scientist had nothing new to propose (every "
                           f"ranked composition of the shortlisted systems was tried)"
                           if it else "no hypothesis could be formed for the question"]
    for h in new:
        services.events.write("allocation", hypothesis=h.id, system=h.chemical_system,
                              compositions=h.target_compositions, priority=h.priority,
                              why=h.justification[:300])
    return update


@node("review_hypotheses")
def review_hypotheses(state: CampaignState, services: RunServices) -> dict[str, Any]:
    """The critic's verdict on this iteration's proposed hypotheses."""
    current = _current(state, "proposed")
    prior = [h for h in state.get("hypotheses", []) if h not in current]
    remaining = services.budget.remaining_evaluations(state.get("usage") or Usage())
    critique: Critique = services.critic.review_hypotheses(
        _objective(state), current, prior, remaining_evaluations=remaining)
    verdicts = {v.hypothesis_id: v.approved and critique.approved for v in critique.verdicts}
    updated = [h.model_copy(update={"status": "approved" if verdicts.get(h.id) else "rejected"})
               for h in current]
    verdict, revisions = next_verdict(any(h.status == "approved" for h in updated),
                                      state.get("hypothesis_revisions", 0),
                                      services.budget.max_revisions)
    return {"critiques": [critique], "hypotheses": updated, "last_verdict": verdict,
            "hypothesis_revisions": revisions, "feedback": critique.issues,
            "notes": ["the critic approved no hypothesis within the revision limit"]
            if verdict == "give_up" else []}


@node("plan")
def plan(state: CampaignState, services: RunServices) -> dict[str, Any]:
    """A plan for this iteration's approved hypotheses."""
    it = state.get("iteration", 0)
    feedback = state.get("feedback", []) if state.get("last_verdict") == "revise" else []
    remaining = services.budget.remaining_evaluations(state.get("usage") or Usage())
    if remaining is not None:
        # spread the relaxations over the iterations left, so expansion has budget to learn
        # from what this iteration finds (the last iteration gets whatever is left)
        left = max(1, services.budget.max_iterations - it)
        remaining = -(-remaining // left)
    new_plan = services.planner.make_plan(
        _objective(state), _current(state, "approved"),
        remaining_evaluations=remaining,
        tools=services.tools, property_models=services.property_models,
        seed=services.config.seed + 1000 * it, feedback=feedback)
    return {"plan": new_plan, "plan_cursor": 0}


@node("review_plan")
def review_plan(state: CampaignState, services: RunServices) -> dict[str, Any]:
    """The critic's check of the plan."""
    current = state.get("plan")
    if current is None:
        raise MatloopError("no plan to review (the planner produced none)",
                           hint="see the planner's error in events.jsonl")
    critique = services.critic.review_plan(
        current, tool_names=services.tools.names,
        remaining_evaluations=services.budget.remaining_evaluations(state.get("usage") or Usage()))
    verdict, revisions = next_verdict(critique.approved, state.get("plan_revisions", 0),
                                      services.budget.max_revisions)
    return {"critiques": [critique], "last_verdict": verdict, "plan_revisions": revisions,
            "feedback": critique.issues,
            "notes": ["the critic approved no plan within the revision limit"]
            if verdict == "give_up" else []}


@node("approve")
def approve(state: CampaignState, services: RunServices) -> dict[str, Any]:
    """The human approval gate (a LangGraph interrupt), or automatic approval."""
    if not services.config.require_approval:
        services.events.write("plan_approval", approved=True, by="auto (--yes)")
        return {"last_verdict": "approved"}
    current = state.get("plan")
    answer = interrupt({"question": "Approve this plan?",
                        "plan": current.model_dump(mode="json") if current else None})
    approved = bool(answer.get("approved")) if isinstance(answer, dict) else bool(answer)
    feedback = str(answer.get("feedback", "")) if isinstance(answer, dict) else ""
    edited = answer.get("plan") if isinstance(answer, dict) and approved else None
    services.events.write("plan_approval", approved=approved, by="human", feedback=feedback,
                          edited=edited is not None)
    if edited is not None:  # the user's own version of the plan replaces the planner's
        return {"plan": Plan.model_validate(edited), "plan_cursor": 0,
                "last_verdict": "approved"}
    if approved:
        return {"last_verdict": "approved"}
    critique = Critique(subject="plan", reasoning="human review", approved=False,
                        issues=[feedback or "plan rejected by the user"], author="human")
    verdict, revisions = next_verdict(False, state.get("plan_revisions", 0),
                                      services.budget.max_revisions, can_revise=bool(feedback))
    return {"critiques": [critique], "last_verdict": verdict, "plan_revisions": revisions,
            "feedback": critique.issues,
            "notes": [] if verdict == "revise" else ["the user rejected the plan"]}


@node("execute")
def execute(state: CampaignState, services: RunServices) -> dict[str, Any]:
    """Run the plan's next step with the assistant."""
    current = state.get("plan")
    if current is None:
        raise MatloopError("no plan to execute", hint="see the planner's error in events.jsonl")
    cursor = state.get("plan_cursor", 0)
    step = current.steps[cursor]
    it = state.get("iteration", 0)
    record_base = f"T{it}-{cursor:02d}"
    update: dict[str, Any] = {"plan_cursor": cursor + 1}
    outputs = state.get("step_outputs", {})

    def skipped(why: str) -> dict[str, Any]:
        rec = ToolRecord(id=record_base, step_id=step.id, tool=step.tool, arguments=step.inputs,
                         status="error", summary=why, duration_s=0.0, iteration=it)
        services.events.tool_call(rec)
        services.spend(tool_calls=1)
        return {**update, "tool_records": [rec], "step_outputs": {step.id: rec}}

    try:
        arguments = resolve_inputs(step, outputs, services.tools)
    except StepInputError as exc:
        return skipped(str(exc))
    evaluations = 0
    if step.tool == PREDICT_PROPERTIES and isinstance(arguments.get("structures"), list):
        remaining = services.budget.remaining_evaluations(state.get("usage") or Usage())
        if remaining is not None and len(arguments["structures"]) > remaining:
            services.events.write("budget", note=f"{step.id}: {len(arguments['structures'])} "
                                                 f"structures cut to the {remaining} "
                                                 f"evaluations left")
            arguments["structures"] = arguments["structures"][:remaining]
            if not arguments["structures"]:
                return skipped(f"{step.id}: no MLIP evaluations left in the budget; step "
                               "skipped")
        evaluations = len(arguments["structures"])
    records, main = services.assistant.execute(step, arguments, runner=services.runner(),
                                               iteration=it, record_base=record_base)
    for rec in records:
        services.events.tool_call(rec)
    known = {c.id: c for c in state.get("candidates", [])}
    by_path = {path: c.id for c in known.values()
               for path in (c.cif_path, c.provenance.get("generated_cif")) if path}
    ctx = CandidateContext(record_id=main.id, arguments=main.arguments, known=known,
                           by_path=by_path, hypothesis_id=step.hypothesis_id, iteration=it)
    evidence = [EvidenceRecord.model_validate({**e, "found_by": main.id,
                                               "hypothesis_id": step.hypothesis_id})
                for e in evidence_of(main, services.tools)]
    services.spend(tool_calls=len(records), mlip_evaluations=evaluations)
    return {**update, "tool_records": records, "step_outputs": {step.id: main},
            "candidates": candidate_updates(main, services.tools, ctx), "evidence": evidence}


@node("expand")
def expand(state: CampaignState, services: RunServices) -> dict[str, Any]:
    """Score the candidates, read the results, decide whether to go on."""
    objective = _objective(state)
    it = state.get("iteration", 0)
    rescored: list[CandidateResult] = []
    for c in state.get("candidates", []):
        s, meets = score(c, objective)
        rescored.append(c.model_copy(update={
            "objective_score": s, "meets_objective": meets,
            "target_probability": target_probability(c, objective) if s is not None else None}))
    fronts = pareto_ranks(rescored, objective)
    rescored = [c.model_copy(update={"pareto_rank": fronts.get(c.id)}) for c in rescored]
    scores_before = [h.best_score for h in state.get("history", []) if h.best_score is not None]
    hypotheses = list(state.get("hypotheses", []))
    decision = services.scientist.review_results(
        objective, hypotheses, rescored, iteration=it,
        previous_best=max(scores_before) if scores_before else None,
        max_iterations=services.budget.max_iterations,
        remaining_evaluations=services.budget.remaining_evaluations(
            state.get("usage") or Usage()))
    services.events.write("expansion", iteration=it, continue_search=decision.continue_search,
                          reasoning=decision.reasoning)
    found: dict[str, list[str]] = {}
    for e in state.get("evidence", []):
        if e.hypothesis_id:
            found.setdefault(e.hypothesis_id, []).append(e.id)
    updated = []
    for h in hypotheses:
        if h.iteration != it:
            continue
        change: dict[str, Any] = {"evidence_ids": list(dict.fromkeys(
            h.evidence_ids + found.get(h.id, [])))}
        if h.id in decision.supported:
            change["status"] = "supported"
        elif h.id in decision.refuted:
            change["status"] = "refuted"
        elif h.status == "approved" and not any(
                c.hypothesis_id == h.id and c.status == "ok" for c in rescored):
            change["status"] = "dropped"  # nothing of its own was evaluated
        updated.append(h.model_copy(update=change))
    scores = [c.objective_score for c in rescored if c.objective_score is not None]
    services.spend(iterations=1)
    update: dict[str, Any] = {
        "candidates": rescored, "hypotheses": updated, "decision": decision,
        "iteration": it + 1, "hypothesis_revisions": 0, "plan_revisions": 0,
        "history": [IterationSummary(
            iteration=it, best_score=max(scores) if scores else None,
            evaluated=sum(c.status == "ok" for c in rescored if c.iteration == it),
            stable=sum(bool(c.is_stable) for c in rescored if c.iteration == it),
            meeting_objective=sum(bool(c.meets_objective) for c in rescored))],
    }
    usage = (state.get("usage") or Usage()).model_copy(
        update={"iterations": (state.get("usage") or Usage()).iterations + 1})
    if decision.continue_search and (limit := services.budget.exhausted(usage)):
        update["status"] = f"budget_exhausted: {limit}"
    return update


@node("report")
def report(state: CampaignState, services: RunServices) -> dict[str, Any]:
    """The discovery report (built here, written to disk by the caller)."""
    built = services.reporter.build(dict(state), services)
    services.spend(tool_calls=len(built.tool_records))
    return {"report": built.report, "status": built.report.status,
            "tool_records": built.tool_records}


#: Every node, by name, in graph order.
NODES: dict[str, Callable[..., dict[str, Any]]] = {
    "interpret": interpret, "ideate": ideate, "review_hypotheses": review_hypotheses,
    "plan": plan, "review_plan": review_plan, "approve": approve, "execute": execute,
    "expand": expand, "report": report,
}

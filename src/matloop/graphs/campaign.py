"""The campaign graph: ideation -> planning -> experimentation -> expansion -> report.

``build_graph(ctx)`` returns an uncompiled StateGraph; the caller compiles it with a
checkpointer (SQLite for campaigns, in-memory in tests). Node functions here are thin: they
read state, ask the role's policy (LLM or offline) and record what happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from matloop.agents.assistant import (
    StepInputError,
    ToolRunner,
    resolve_inputs,
    singular_structure_tool,
)
from matloop.agents.scoring import score
from matloop.errors import MatloopError
from matloop.graphs import routing
from matloop.runtime import Budget, EventLog, PriceTable
from matloop.schemas import (
    CandidateResult,
    Critique,
    Hypothesis,
    Objective,
    Plan,
    PlanStep,
    ToolRecord,
    Usage,
)
from matloop.state import CampaignInput, CampaignOutput, CampaignState


@dataclass
class CampaignContext:
    """Everything the nodes need besides state: policies, tools, budget, logs."""

    scientist: Any
    critic: Any
    planner: Any
    assistant: Any
    reporter: Any
    tools: dict[str, BaseTool]
    budget: Budget
    events: EventLog
    run_dir: Path
    models: dict[str, str] = field(default_factory=dict)
    property_models: set[str] = field(default_factory=set)
    seed: int = 0
    require_approval: bool = False
    tool_timeout_s: float = 1800.0
    prices: PriceTable = field(default_factory=PriceTable)
    mlip_label: str = ""
    methods: dict[str, Any] = field(default_factory=dict)
    _pending: Usage = field(default_factory=Usage)

    def record_llm_call(self, rec: Any) -> None:
        """LLM client callback: count the call and log it."""
        self._pending.llm_calls += 1
        self._pending.input_tokens += rec.input_tokens
        self._pending.output_tokens += rec.output_tokens
        cost = self.prices.cost_usd(rec.model, rec.input_tokens, rec.output_tokens)
        self._pending.cost_usd += cost or 0.0
        self.events.write("llm_call", role=rec.role, model=rec.model,
                          input_tokens=rec.input_tokens, output_tokens=rec.output_tokens,
                          latency_s=round(rec.latency_s, 3), ok=rec.ok, error=rec.error,
                          cost_usd=cost)

    def usage(self, state: CampaignState, started: float, **extra: int) -> dict[str, Any]:
        """State usage plus what this node spent."""
        u = Usage.model_validate(state.get("usage") or {})
        p = self._pending
        u.llm_calls += p.llm_calls
        u.input_tokens += p.input_tokens
        u.output_tokens += p.output_tokens
        u.cost_usd = round(u.cost_usd + p.cost_usd, 6)
        u.wall_time_s = round(u.wall_time_s + time.perf_counter() - started, 3)
        for key, value in extra.items():
            setattr(u, key, getattr(u, key) + value)
        self._pending = Usage()
        return u.model_dump()


def _objective(state: CampaignState) -> Objective:
    return Objective.model_validate(state["objective"])


def _hypotheses(state: CampaignState) -> list[Hypothesis]:
    return [Hypothesis.model_validate(h) for h in state.get("hypotheses", [])]


def _candidates(state: CampaignState) -> list[CandidateResult]:
    return [CandidateResult.model_validate(c) for c in state.get("candidates", [])]


def _dump(items: list[Any]) -> list[dict[str, Any]]:
    return [i.model_dump(mode="json") for i in items]


#: Limits that stop new iterations but let the current plan and its expansion finish.
SOFT_LIMITS = ("iterations", "mlip_evaluations")


def _exhausted(ctx: CampaignContext, state: CampaignState, usage: dict[str, Any]) -> str:
    limit = ctx.budget.exhausted(Usage.model_validate(usage))
    return f"budget_exhausted: {limit}" if limit else ""


def build_graph(ctx: CampaignContext) -> StateGraph:
    """The campaign as an uncompiled StateGraph over :class:`CampaignState`."""

    def node(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict]]:
        def wrap(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
            def run(state: CampaignState) -> dict[str, Any]:
                started = time.perf_counter()
                ctx.events.write("node_start", node=name, iteration=state.get("iteration", 0))
                limit = ctx.budget.exhausted(Usage.model_validate(state.get("usage") or {}))
                if name != "report" and limit and (limit not in SOFT_LIMITS or name == "ideate"):
                    ctx.events.write("budget", node=name, exhausted=limit)
                    return {"status": f"budget_exhausted: {limit}", "last_verdict": "give_up",
                            "usage": ctx.usage(state, started)}
                try:
                    update = fn(state, started)
                except MatloopError as exc:  # a role that cannot answer ends the campaign
                    ctx.events.write("node_error", node=name, error=str(exc))
                    update = {"status": f"failed: {name}: {exc}",
                              "notes": [f"{name} failed: {exc}"], "last_verdict": "give_up"}
                    update["usage"] = ctx.usage(state, started)
                ctx.events.write("node_end", node=name,
                                 seconds=round(time.perf_counter() - started, 3),
                                 status=update.get("status", ""))
                return update
            run.__name__ = name
            return run
        return wrap

    @node("interpret")
    def interpret(state: CampaignState, started: float) -> dict[str, Any]:
        objective = ctx.scientist.interpret(state["query"])
        return {"objective": objective.model_dump(mode="json"), "iteration": 0,
                "hypothesis_revisions": 0, "plan_revisions": 0, "plan_cursor": 0,
                "usage": ctx.usage(state, started)}

    @node("ideate")
    def ideate(state: CampaignState, started: float) -> dict[str, Any]:
        feedback = []
        if state.get("last_verdict") == "revise" and state.get("critiques"):
            feedback = state["critiques"][-1].get("issues", [])
        new = ctx.scientist.propose(
            _objective(state), iteration=state.get("iteration", 0), prior=_hypotheses(state),
            candidates=_candidates(state), evidence=state.get("evidence", []), feedback=feedback)
        return {"hypotheses": _dump(new), "usage": ctx.usage(state, started)}

    @node("review_hypotheses")
    def review_hypotheses(state: CampaignState, started: float) -> dict[str, Any]:
        it = state.get("iteration", 0)
        everything = _hypotheses(state)
        current = [h for h in everything if h.iteration == it and h.status == "proposed"]
        prior = [h for h in everything if h not in current]
        remaining = ctx.budget.remaining_evaluations(Usage.model_validate(state.get("usage")
                                                                          or {}))
        critique: Critique = ctx.critic.review_hypotheses(
            _objective(state), current, prior, remaining_evaluations=remaining)
        verdicts = {v.hypothesis_id: v.approved and critique.approved
                    for v in critique.verdicts}
        updated = [h.model_copy(update={"status": "approved" if verdicts.get(h.id) else
                                        "rejected"}) for h in current]
        revisions = state.get("hypothesis_revisions", 0)
        if any(h.status == "approved" for h in updated):
            verdict = "approved"
        elif revisions < ctx.budget.max_revisions:
            verdict, revisions = "revise", revisions + 1
        else:
            verdict = "give_up"
        return {"critiques": [critique.model_dump(mode="json")], "hypotheses": _dump(updated),
                "last_verdict": verdict, "hypothesis_revisions": revisions,
                "notes": [] if verdict != "give_up" else
                ["the critic approved no hypothesis within the revision limit"],
                "usage": ctx.usage(state, started)}

    @node("plan")
    def plan(state: CampaignState, started: float) -> dict[str, Any]:
        it = state.get("iteration", 0)
        approved = [h for h in _hypotheses(state) if h.iteration == it and
                    h.status == "approved"]
        feedback = []
        if state.get("last_verdict") == "revise" and state.get("critiques"):
            feedback = state["critiques"][-1].get("issues", [])
        usage = Usage.model_validate(state.get("usage") or {})
        new_plan: Plan = ctx.planner.make_plan(
            _objective(state), approved,
            remaining_evaluations=ctx.budget.remaining_evaluations(usage),
            tool_names=set(ctx.tools), property_models=ctx.property_models,
            seed=ctx.seed + 1000 * it, feedback=feedback)
        return {"plan": new_plan.model_dump(mode="json"), "plan_cursor": 0,
                "usage": ctx.usage(state, started)}

    @node("review_plan")
    def review_plan(state: CampaignState, started: float) -> dict[str, Any]:
        usage = Usage.model_validate(state.get("usage") or {})
        critique: Critique = ctx.critic.review_plan(
            Plan.model_validate(state["plan"]), tool_names=set(ctx.tools),
            remaining_evaluations=ctx.budget.remaining_evaluations(usage))
        revisions = state.get("plan_revisions", 0)
        if critique.approved:
            verdict = "approved"
        elif revisions < ctx.budget.max_revisions:
            verdict, revisions = "revise", revisions + 1
        else:
            verdict = "give_up"
        return {"critiques": [critique.model_dump(mode="json")], "last_verdict": verdict,
                "plan_revisions": revisions,
                "notes": [] if verdict != "give_up" else
                ["the critic approved no plan within the revision limit"],
                "usage": ctx.usage(state, started)}

    @node("approve")
    def approve(state: CampaignState, started: float) -> dict[str, Any]:
        if not ctx.require_approval:
            ctx.events.write("plan_approval", approved=True, by="auto (--yes)")
            return {"last_verdict": "approved", "usage": ctx.usage(state, started)}
        answer = interrupt({"question": "Approve this plan?", "plan": state["plan"]})
        approved = bool(answer.get("approved")) if isinstance(answer, dict) else bool(answer)
        feedback = answer.get("feedback", "") if isinstance(answer, dict) else ""
        edited = answer.get("plan") if isinstance(answer, dict) and approved else None
        ctx.events.write("plan_approval", approved=approved, by="human", feedback=feedback,
                         edited=edited is not None)
        if edited is not None:  # the user's own version of the plan replaces the planner's
            return {"plan": Plan.model_validate(edited).model_dump(mode="json"),
                    "plan_cursor": 0, "last_verdict": "approved",
                    "usage": ctx.usage(state, started)}
        if approved:
            return {"last_verdict": "approved", "usage": ctx.usage(state, started)}
        revisions = state.get("plan_revisions", 0)
        critique = Critique(subject="plan", reasoning="human review", approved=False,
                            issues=[feedback or "plan rejected by the user"], author="human")
        verdict = "revise" if feedback and revisions < ctx.budget.max_revisions else "give_up"
        return {"critiques": [critique.model_dump(mode="json")], "last_verdict": verdict,
                "plan_revisions": revisions + (verdict == "revise"),
                "notes": [] if verdict == "revise" else ["the user rejected the plan"],
                "usage": ctx.usage(state, started)}

    @node("execute")
    def execute(state: CampaignState, started: float) -> dict[str, Any]:
        current = Plan.model_validate(state["plan"])
        cursor = state.get("plan_cursor", 0)
        step = current.steps[cursor]
        it = state.get("iteration", 0)
        usage = Usage.model_validate(state.get("usage") or {})
        record_base = f"T{it}-{cursor:02d}"
        update: dict[str, Any] = {"plan_cursor": cursor + 1}
        try:
            arguments = resolve_inputs(step, state.get("step_outputs", {}))
        except StepInputError as exc:
            rec = ToolRecord(id=record_base, step_id=step.id, tool=step.tool,
                             arguments=step.inputs, status="error", summary=str(exc),
                             duration_s=0.0, iteration=it)
            ctx.events.write("tool_call", **_event(rec))
            update.update({"tool_records": [rec.model_dump(mode="json")],
                           "step_outputs": {step.id: rec.model_dump(mode="json")},
                           "usage": ctx.usage(state, started, tool_calls=1)})
            return update
        evaluations = 0
        if step.tool == "predict_properties" and isinstance(arguments.get("structures"), list):
            remaining = ctx.budget.remaining_evaluations(usage)
            if remaining is not None and len(arguments["structures"]) > remaining:
                ctx.events.write("budget", note=f"{step.id}: {len(arguments['structures'])} "
                                                f"structures cut to the {remaining} evaluations "
                                                f"left")
                arguments["structures"] = arguments["structures"][:remaining]
            evaluations = len(arguments["structures"])
        records, main = ctx.assistant.execute(step, arguments, ctx=ctx, iteration=it,
                                              record_base=record_base)
        for rec in records:
            ctx.events.write("tool_call", **_event(rec))
        update["tool_records"] = [r.model_dump(mode="json") for r in records]
        update["step_outputs"] = {step.id: main.model_dump(mode="json")}
        update["candidates"] = _candidate_updates(step, main, state, it)
        update["evidence"] = _evidence(main, step)
        update["usage"] = ctx.usage(state, started, tool_calls=len(records),
                                    mlip_evaluations=evaluations)
        return update

    @node("expand")
    def expand(state: CampaignState, started: float) -> dict[str, Any]:
        objective = _objective(state)
        it = state.get("iteration", 0)
        rescored = []
        for c in _candidates(state):
            s, meets = score(c, objective)
            rescored.append(c.model_copy(update={"objective_score": s, "meets_objective": meets}))
        history = state.get("history", [])
        previous = max((h["best_score"] for h in history if h.get("best_score") is not None),
                       default=None)
        decision = ctx.scientist.review_results(
            objective, _hypotheses(state), rescored, iteration=it, previous_best=previous,
            max_iterations=ctx.budget.max_iterations)
        found: dict[str, list[str]] = {}
        for e in state.get("evidence", []):
            if e.get("hypothesis_id"):
                found.setdefault(e["hypothesis_id"], []).append(e["id"])
        updated = []
        for h in _hypotheses(state):
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
        usage = ctx.usage(state, started, iterations=1)
        update: dict[str, Any] = {
            "candidates": _dump(rescored), "hypotheses": _dump(updated),
            "decision": decision.model_dump(mode="json"), "iteration": it + 1,
            "hypothesis_revisions": 0, "plan_revisions": 0, "usage": usage,
            "history": [{"iteration": it, "best_score": max(scores) if scores else None,
                         "evaluated": sum(c.status == "ok" for c in rescored
                                          if c.iteration == it),
                         "stable": sum(bool(c.is_stable) for c in rescored if c.iteration == it),
                         "meeting_objective": sum(bool(c.meets_objective) for c in rescored)}],
        }
        if decision.continue_search:
            status = _exhausted(ctx, state, usage)
            if status:
                update["status"] = status
        return update

    @node("report")
    def report(state: CampaignState, started: float) -> dict[str, Any]:
        result = ctx.reporter.write(state, ctx)
        return {"report": result.model_dump(mode="json"), "status": result.status,
                "usage": ctx.usage(state, started)}

    graph = StateGraph(CampaignState, input_schema=CampaignInput,
                       output_schema=CampaignOutput)
    for fn in (interpret, ideate, review_hypotheses, plan, review_plan, approve, execute,
               expand, report):
        graph.add_node(fn.__name__, fn)
    graph.add_edge(START, "interpret")
    graph.add_conditional_edges("interpret", routing.after_interpret)
    graph.add_conditional_edges("ideate", routing.after_ideate)
    graph.add_conditional_edges("review_hypotheses", routing.after_hypothesis_review)
    graph.add_edge("plan", "review_plan")
    graph.add_conditional_edges("review_plan", routing.after_plan_review)
    graph.add_conditional_edges("approve", routing.after_approval)
    graph.add_conditional_edges("execute", routing.after_execute)
    graph.add_conditional_edges("expand", routing.after_expand)
    graph.add_edge("report", END)
    return graph


def _event(rec: ToolRecord) -> dict[str, Any]:
    return {"record_id": rec.id, "step_id": rec.step_id, "tool": rec.tool,
            "arguments": rec.arguments, "status": rec.status, "summary": rec.summary,
            "duration_s": round(rec.duration_s, 3)}


def _combine(step: PlanStep, records: list[ToolRecord]) -> ToolRecord:
    """One record standing for a mapped step (one call per structure)."""
    ok = [r for r in records if r.status == "ok"]
    return ToolRecord(
        id=records[0].id + "*", step_id=step.id, tool=step.tool,
        arguments={"mapped_over": len(records)},
        status="ok" if len(ok) == len(records) else ("partial" if ok else "error"),
        summary=f"{len(ok)}/{len(records)} calls succeeded",
        result={"status": "ok", "mapped": [{"arguments": r.arguments, "result": r.result,
                                            "record_id": r.id} for r in records]},
        duration_s=sum(r.duration_s for r in records), iteration=records[0].iteration)


def _evidence(rec: ToolRecord, step: PlanStep) -> list[dict[str, Any]]:
    """Passages a search step retrieved, tagged with the call and the hypothesis."""
    if rec.tool != "search_literature":
        return []
    result = rec.result if isinstance(rec.result, dict) else {}
    items = result.get("results") or []
    return [dict(e, found_by=rec.id, hypothesis_id=step.hypothesis_id)
            for e in items if isinstance(e, dict) and "id" in e]


def _candidate_updates(step: PlanStep, rec: ToolRecord, state: CampaignState,
                       iteration: int) -> list[dict[str, Any]]:
    """Candidate records created or enriched by a tool result."""
    result = rec.result if isinstance(rec.result, dict) else {}
    known = {c["id"]: c for c in state.get("candidates", [])}
    by_path: dict[str, str] = {}
    for c in known.values():
        for key in ("cif_path", "generated_cif"):
            path = c.get(key) or c.get("provenance", {}).get(key)
            if path:
                by_path[path] = c["id"]
    out: list[dict[str, Any]] = []
    if step.tool == "generate_candidates":
        for c in result.get("candidates", []):
            if not c.get("cif_path"):
                continue
            out.append({
                "id": c["id"], "formula": c["formula"],
                "chemical_system": "-".join(sorted(c.get("elements") or
                                                   _elements(c["formula"]))),
                "spacegroup": None if c.get("spacegroup") is None else str(c["spacegroup"]),
                "n_atoms": int(c.get("n_atoms", 0)),
                "method": c.get("method", "unknown"), "novelty": c.get("novelty"),
                "provenance": {**c.get("provenance", {}), "generated_cif": c["cif_path"]},
                "hypothesis_id": step.hypothesis_id, "iteration": iteration,
                "status": "generated" if c.get("valid", True) else "invalid",
                "tool_call_ids": [rec.id],
            })
    elif step.tool == "predict_properties":
        structures = rec.arguments.get("structures", [])
        for row in result.get("results", []):
            idx = row.get("index")
            if idx is None or idx >= len(structures):
                continue
            cid = by_path.get(structures[idx])
            if cid is None:
                continue
            old = known[cid]
            upd: dict[str, Any] = {"id": cid, "tool_call_ids": old.get("tool_call_ids", []) +
                                   [rec.id]}
            if rec.arguments.get("bulk_modulus"):
                if row.get("bulk_modulus_gpa") is not None:
                    upd["properties"] = {**old.get("properties", {}),
                                         "bulk_modulus_gpa": row["bulk_modulus_gpa"]}
                    upd["property_sources"] = {**old.get("property_sources", {}),
                                               "bulk_modulus_gpa": f"mlip:{row.get('mlip')} "
                                                                   f"EOS fit ({rec.id})"}
            else:
                upd.update({
                    "status": row.get("status", "failed"),
                    "energy_per_atom_ev": row.get("energy_per_atom_ev"),
                    "formation_energy_ev_per_atom": row.get("formation_energy_ev_per_atom"),
                    "e_above_hull_ev_per_atom": row.get("e_above_hull_ev_per_atom"),
                    "decomposition": row.get("decomposition"),
                    "is_stable": row.get("is_stable"), "energy_scale": row.get("energy_scale"),
                    "cif_path": row.get("relaxed_cif_path"), "iteration": iteration,
                    "novelty": row.get("novelty") or old.get("novelty"),
                    "flags": list(row.get("flags") or []),
                    "mlip": f"{row.get('mlip')} {row.get('mlip_model')} "
                            f"{row.get('mlip_version')}" if row.get("mlip") else None,
                })
            out.append(upd)
    elif step.tool == "predict_property":
        prop = rec.arguments.get("property") if "mapped" not in result else None
        for item in result.get("mapped", [{"arguments": rec.arguments, "result": result,
                                           "record_id": rec.id}]):
            args, res = item["arguments"], item["result"] or {}
            cid = by_path.get(args.get("structure", ""))
            value = res.get("value") if isinstance(res, dict) else None
            if cid is None or value is None:
                continue
            name = args.get("property", prop) or "property"
            unit = str(res.get("unit", "")).lower().replace("/", "_per_")
            key = f"{name}_{unit}" if unit else name
            old = known[cid]
            out.append({"id": cid,
                        "properties": {**old.get("properties", {}), key: value},
                        "property_sources": {**old.get("property_sources", {}),
                                             key: f"{res.get('source', 'surrogate')} "
                                                  f"(±{res.get('uncertainty')}, in_domain="
                                                  f"{res.get('in_domain')}, {item['record_id']})"},
                        "tool_call_ids": old.get("tool_call_ids", []) + [item["record_id"]]})
    return out


def _elements(formula: str) -> list[str]:
    from pymatgen.core import Composition

    return [el.symbol for el in Composition(formula).elements]


class DirectAssistant:
    """Offline assistant: calls the step's tool with the step's inputs, as planned."""

    def execute(self, step: PlanStep, arguments: dict[str, Any], *, ctx: CampaignContext,
                iteration: int, record_base: str) -> tuple[list[ToolRecord], ToolRecord]:
        """Run a step (mapping a structure list over single-structure tools).

        Returns:
            Every call's record, and the record that stands for the step's result.
        """
        runner = ToolRunner(ctx.tools, timeout_s=ctx.tool_timeout_s)
        tool = ctx.tools.get(step.tool)
        if tool is not None and singular_structure_tool(tool) and isinstance(
                arguments.get("structures"), list):
            rest = {k: v for k, v in arguments.items() if k != "structures"}
            records = [runner.call(step.tool, {**rest, "structure": path}, step_id=step.id,
                                   iteration=iteration, record_id=f"{record_base}-{i:02d}")
                       for i, path in enumerate(arguments["structures"])]
            return records, _combine(step, records) if records else ToolRecord(
                id=record_base, step_id=step.id, tool=step.tool, arguments=arguments,
                status="ok", summary="no structures to process", result={"mapped": []},
                duration_s=0.0, iteration=iteration)
        rec = runner.call(step.tool, arguments, step_id=step.id, iteration=iteration,
                          record_id=record_base)
        return [rec], rec

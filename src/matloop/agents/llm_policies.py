"""LLM policies of the four roles: the same decisions as the offline policies, written by a
chat model through structured outputs with bounded retries.

The critic's hard rules (allowed elements, charge balance, tools exist, references resolve,
budget) are applied on top of the model's review: a model can reject more, never approve what
the rules reject. Retrieved passages reach prompts only through
``format_evidence_for_prompt`` (delimited, escaped, marked as untrusted data).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, Field

from matloop.agents.assistant import ToolRunner
from matloop.agents.llm import LLMClient
from matloop.agents.offline import OfflineCritic
from matloop.errors import MatloopError
from matloop.materials.references import parse_composition
from matloop.schemas import (
    CandidateResult,
    Critique,
    ExpansionDecision,
    Hypothesis,
    Objective,
    Plan,
    PlanStep,
    ToolRecord,
)


def prompt(role: str) -> str:
    """The system prompt of a role (``matloop/prompts/<role>.md``)."""
    return resources.files("matloop.prompts").joinpath(f"{role}.md").read_text()


class HypothesisSet(BaseModel):
    """New hypotheses for this iteration."""

    reasoning: str = Field(description="How the objective, evidence and results lead here.")
    hypotheses: list[Hypothesis] = Field(description="One to four testable hypotheses.")


def evidence_block(evidence: list[dict[str, Any]]) -> str:
    """Evidence passages, delimited and escaped, for a prompt."""
    if not evidence:
        return "(no evidence retrieved)"
    from matloop.knowledge import Evidence, format_evidence_for_prompt

    passages = [Evidence.model_validate({k: e[k] for k in Evidence.model_fields if k in e})
                for e in evidence[:12]]
    return format_evidence_for_prompt(passages)


def candidate_table(candidates: list[CandidateResult], limit: int = 15) -> str:
    """The best candidates as compact JSON lines (numbers exactly as computed)."""
    rows = sorted([c for c in candidates if c.status == "ok"],
                  key=lambda c: (c.e_above_hull_ev_per_atom or 9.0))[:limit]
    return "\n".join(json.dumps({
        "id": c.id, "formula": c.formula, "hypothesis": c.hypothesis_id, "method": c.method,
        "e_above_hull_ev_per_atom": c.e_above_hull_ev_per_atom,
        "formation_energy_ev_per_atom": c.formation_energy_ev_per_atom,
        "is_stable": c.is_stable, "properties": c.properties,
        "objective_score": c.objective_score}) for c in rows) or "(no evaluated candidates)"


class LLMScientist:
    """Scientist role backed by a chat model."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client

    def interpret(self, query: str) -> Objective:
        """Structured objective; unknown elements are dropped and noted."""
        objective = self.client.structured(
            Objective, prompt("scientist"),
            f"Interpret this question as an Objective. Copy the question verbatim into "
            f"'query'.\n\nQuestion: {query}", role="scientist")
        notes = list(objective.notes)
        systems = []
        for chemsys in objective.chemical_systems:
            try:
                for el in chemsys.split("-"):
                    parse_composition(el)
                systems.append(chemsys)
            except MatloopError as exc:
                notes.append(f"dropped chemical system {chemsys}: {exc.message}")
        return objective.model_copy(update={"query": query, "chemical_systems": systems,
                                            "notes": notes})

    def propose(self, objective: Objective, *, iteration: int, prior: list[Hypothesis],
                candidates: list[CandidateResult], evidence: list[dict[str, Any]],
                feedback: list[str]) -> list[Hypothesis]:
        """New hypotheses; evidence ids not retrieved in this run are removed."""
        known_ids = {e["id"] for e in evidence}
        answer = self.client.structured(
            HypothesisSet, prompt("scientist"),
            f"Objective:\n{objective.model_dump_json()}\n\nIteration: {iteration}\n\n"
            f"Hypotheses so far:\n" + "\n".join(
                f"{h.id} [{h.status}] {h.chemical_system}: {h.statement}" for h in prior) +
            f"\n\nBest results so far:\n{candidate_table(candidates)}\n\n"
            f"Evidence:\n{evidence_block(evidence)}\n\n"
            + (f"The critic rejected the last proposal: {'; '.join(feedback)}\n\n"
               if feedback else "") +
            "Propose new hypotheses (do not repeat tested ones).", role="scientist")
        out = []
        for k, h in enumerate(answer.hypotheses[:4]):
            out.append(h.model_copy(update={
                "id": f"H{len(prior) + k + 1}", "iteration": iteration, "status": "proposed",
                "author": self.client.label,
                "evidence_ids": [e for e in h.evidence_ids if e in known_ids],
                "chemical_system": "-".join(sorted(h.chemical_system.replace(" ", "")
                                                   .split("-")))}))
        return out

    def review_results(self, objective: Objective, hypotheses: list[Hypothesis],
                       candidates: list[CandidateResult], *, iteration: int,
                       previous_best: float | None, max_iterations: int) -> ExpansionDecision:
        """Read the results; the iteration limit is enforced whatever the model says."""
        decision = self.client.structured(
            ExpansionDecision, prompt("scientist"),
            f"Objective:\n{objective.model_dump_json()}\n\nHypotheses tested in iteration "
            f"{iteration}:\n" + "\n".join(f"{h.id} {h.chemical_system}: {h.statement}"
                                          for h in hypotheses if h.iteration == iteration) +
            f"\n\nResults:\n{candidate_table(candidates)}\n\nBest objective score before this "
            f"iteration: {previous_best}. Iterations allowed: {max_iterations}.\n"
            "Decide which hypotheses are supported or refuted, whether the objective is met and "
            "whether to continue.", role="scientist")
        go_on = decision.continue_search and iteration + 1 < max_iterations
        return decision.model_copy(update={"continue_search": go_on,
                                           "author": self.client.label})


class LLMCritic:
    """Critic role backed by a chat model, with the offline rules as a floor."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client
        self.rules = OfflineCritic()

    def review_hypotheses(self, objective: Objective, hypotheses: list[Hypothesis],
                          prior: list[Hypothesis], *, remaining_evaluations: int | None,
                          ) -> Critique:
        """Model review merged with the rule-based review."""
        rules = self.rules.review_hypotheses(objective, hypotheses, prior,
                                             remaining_evaluations=remaining_evaluations)
        review = self.client.structured(
            Critique, prompt("critic"),
            f"Objective:\n{objective.model_dump_json()}\n\nHypotheses to review:\n" +
            "\n".join(h.model_dump_json() for h in hypotheses) +
            "\n\nAlready tested:\n" + "\n".join(f"{h.id} {h.chemical_system} ({h.status})"
                                                  for h in prior) +
            f"\n\nMLIP evaluations left: {remaining_evaluations}. Review with subject "
            f"'hypotheses' and one verdict per hypothesis id.", role="critic")
        return _merge(review, rules, self.client.label)

    def review_plan(self, plan: Plan, *, tool_names: set[str],
                    remaining_evaluations: int | None) -> Critique:
        """Model review merged with the rule-based review."""
        rules = self.rules.review_plan(plan, tool_names=tool_names,
                                       remaining_evaluations=remaining_evaluations)
        review = self.client.structured(
            Critique, prompt("critic"),
            f"Plan to review:\n{plan.model_dump_json()}\n\nAvailable tools: "
            f"{', '.join(sorted(tool_names))}. MLIP evaluations left: {remaining_evaluations}. "
            f"Review with subject 'plan'.", role="critic")
        return _merge(review, rules, self.client.label)


def _merge(review: Critique, rules: Critique, label: str) -> Critique:
    rule_verdicts = {v.hypothesis_id: v for v in rules.verdicts}
    verdicts = []
    for v in review.verdicts:
        rule = rule_verdicts.get(v.hypothesis_id)
        if rule is not None and not rule.approved:
            v = v.model_copy(update={"approved": False,
                                     "reasoning": f"{v.reasoning} [rules: {rule.reasoning}]"})
        verdicts.append(v)
    reviewed = {v.hypothesis_id for v in verdicts}
    for v in rules.verdicts:  # hypotheses the model gave no verdict on follow its overall call
        if v.hypothesis_id not in reviewed:
            verdicts.append(v if review.approved else v.model_copy(update={
                "approved": False, "reasoning": "no verdict from the critic, which rejected "
                                                "the proposal as a whole"}))
    if rules.subject == "hypotheses":
        approved = review.approved and any(v.approved for v in verdicts)
    else:
        approved = review.approved and rules.approved
    return Critique(subject=rules.subject, reasoning=review.reasoning,
                    issues=review.issues + [i for i in rules.issues if i not in review.issues],
                    verdicts=verdicts, approved=approved, author=f"{label} + offline rules")


class LLMPlanner:
    """Planner role backed by a chat model."""

    def __init__(self, client: LLMClient, tools: dict[str, Any]) -> None:
        self.client = client
        self.tools = tools

    def make_plan(self, objective: Objective, hypotheses: list[Hypothesis], *,
                  remaining_evaluations: int | None, tool_names: set[str],
                  property_models: set[str], seed: int, feedback: list[str]) -> Plan:
        """A plan from the model; the critic checks it next."""
        catalogue = "\n".join(
            f"- {name}: {self.tools[name].description.strip().splitlines()[0]} args="
            f"{json.dumps(self.tools[name].args_schema.model_json_schema().get('properties', {}))}"
            for name in sorted(tool_names) if name in self.tools)
        plan = self.client.structured(
            Plan, prompt("planner"),
            f"Objective:\n{objective.model_dump_json()}\n\nApproved hypotheses:\n" +
            "\n".join(h.model_dump_json() for h in hypotheses) +
            f"\n\nTools:\n{catalogue}\n\nSurrogate models available for: "
            f"{', '.join(sorted(property_models)) or 'none'}.\nMLIP evaluations left: "
            f"{remaining_evaluations}. Use seed {seed} for generation.\n"
            + (f"The critic rejected the last plan: {'; '.join(feedback)}\n" if feedback
               else ""), role="planner")
        return plan.model_copy(update={"author": self.client.label})


class LLMAssistant:
    """Assistant role: the model issues the tool call for each step; calls are validated."""

    def __init__(self, client: LLMClient, *, max_turns: int = 3) -> None:
        self.client = client
        self.max_turns = max_turns

    def execute(self, step: PlanStep, arguments: dict[str, Any], *, ctx: Any, iteration: int,
                record_base: str) -> tuple[list[ToolRecord], ToolRecord]:
        """Ask for the call, run it, feed errors back; bounded turns.

        Returns:
            Every call's record (failed ones included) and the one standing for the step.
        """
        runner = ToolRunner(ctx.tools, timeout_s=ctx.tool_timeout_s)
        messages: list[BaseMessage] = [
            SystemMessage(content=prompt("assistant")),
            HumanMessage(content=f"Step {step.id}: {step.purpose}\nCall the tool {step.tool} "
                                 f"with these arguments:\n{json.dumps(arguments)}")]
        records: list[ToolRecord] = []
        tools = list(ctx.tools.values())
        for turn in range(self.max_turns):
            try:
                reply = self.client.invoke(messages, role="assistant", tools=tools)
            except NotImplementedError:
                reply = self.client.invoke(messages, role="assistant")
            if not reply.tool_calls:
                messages += [reply if reply.content else AIMessage(content="(empty reply)"),
                             HumanMessage(content=f"No tool was called. Call {step.tool} now.")]
                continue
            for n, call in enumerate(reply.tool_calls):
                rec = runner.call(call["name"], dict(call.get("args") or {}), step_id=step.id,
                                  iteration=iteration,
                                  record_id=f"{record_base}-{turn}{n}")
                records.append(rec)
                messages += [reply, ToolMessage(content=rec.summary,
                                                tool_call_id=call.get("id") or "call")]
            if records and records[-1].status in ("ok", "partial") and records[-1].tool == \
                    step.tool:
                return records, records[-1]
            messages.append(HumanMessage(content="That call failed; correct it and call "
                                                 f"{step.tool} again."))
        failure = ToolRecord(
            id=f"{record_base}-x", step_id=step.id, tool=step.tool, arguments=arguments,
            status="error", duration_s=sum(r.duration_s for r in records), iteration=iteration,
            summary=f"the assistant ({self.client.label}) did not complete the call in "
                    f"{self.max_turns} turns" + (f"; last error: {records[-1].summary}"
                                                 if records else ""))
        return records + [failure], failure

"""The critic: reviews hypotheses and plans before computing time is spent.

:class:`OfflineCritic` applies rules (allowed elements, charge balance, repeats, tools exist,
references resolve, every generated structure is relaxed and placed on the hull, the budget
fits); :class:`LLMCritic` adds a chat model's review on top of those rules: a model can reject
more, never approve what the rules reject.
"""

from __future__ import annotations

from typing import Any

from matloop import prompts
from matloop.agents.base import OFFLINE
from matloop.agents.llm import LLMClient
from matloop.materials.chemistry import charge_balanced
from matloop.schemas import Critique, Hypothesis, HypothesisVerdict, Objective, Plan

AUTHOR = OFFLINE


#: Below this probability (for every composition of a hypothesis) a property target or
#: stability is judged out of reach at composition level, and the hypothesis is rejected.
HOPELESS = 0.02


class OfflineCritic:
    """Rule-based review of hypotheses and plans.

    Args:
        store: A reference store; with it, hypotheses are also checked against the composition
            prior (hopeless compositions) and, for a band-gap window, the band-gap model
            (compositions that contradict the query).
    """

    def __init__(self, *, store: object = None) -> None:
        self.store = store

    def _model_problems(self, objective: Objective, h: Hypothesis) -> list[str]:
        """Problems the composition-level models find (none without compositions)."""
        formulas = [f for f in h.target_compositions if charge_balanced(f)]
        if not formulas:
            return []
        problems = []
        from matloop.agents.ideation import target_probabilities

        p_targets, gaps, source = target_probabilities(formulas, objective)
        if source and max(p_targets) < HOPELESS:
            shown = ", ".join(f"{f} ({g:.2f} eV)" for f, g in zip(formulas, gaps, strict=True)
                              if g is not None)
            window = "; ".join(t.describe() for t in objective.property_targets
                               if t.name == "band_gap")
            problems.append(f"contradicts the query: no composition is likely to meet {window} "
                            f"(predicted {shown}; {source})")
        if self.store is not None:
            from matloop.errors import MatloopError
            from matloop.generation.composition_prior import score_compositions

            try:
                scores = score_compositions(formulas, store=self.store, threshold_ev_per_atom=max(
                    objective.stability_threshold_ev_per_atom, 0.05))
            except MatloopError:
                scores = []
            if scores and max(s.probability_within_threshold for s in scores) < HOPELESS:
                problems.append("hopeless: the composition prior puts every composition far "
                                "above the MP hull (" + ", ".join(
                                    f"{s.formula} {s.predicted_e_above_hull_ev_per_atom:+.2f} "
                                    f"eV/atom" for s in scores) + ")")
        return problems

    def review_hypotheses(self, objective: Objective, hypotheses: list[Hypothesis],
                          prior: list[Hypothesis], *, remaining_evaluations: int | None,
                          ) -> Critique:
        """Chemical sense (elements, charge balance), novelty, duplicates, budget."""
        verdicts, issues = [], []
        seen = {(h.chemical_system, tuple(h.methods), tuple(h.target_compositions))
                for h in prior if h.iteration < (hypotheses[0].iteration if hypotheses else 0)}
        for h in hypotheses:
            problems = []
            elements = set(h.chemical_system.split("-"))
            bad = elements & set(objective.excluded_elements)
            if bad:
                problems.append(f"uses excluded element(s) {', '.join(sorted(bad))}")
            missing = set(objective.required_elements) - elements
            if missing and objective.required_elements:
                problems.append(f"lacks required element(s) {', '.join(sorted(missing))}")
            if objective.required_any_of and not elements & set(objective.required_any_of):
                problems.append(f"contains none of {', '.join(objective.required_any_of)}")
            for formula in h.target_compositions:
                if not charge_balanced(formula):
                    problems.append(f"{formula} cannot be charge balanced (SMACT oxidation "
                                    f"states, mixed valence allowed) and has no metallic "
                                    f"reading")
            if (h.chemical_system, tuple(h.methods), tuple(h.target_compositions)) in seen:
                problems.append("repeats a hypothesis already tested")
            if not h.test_plan.strip():
                problems.append("has no test plan")
            if not problems:
                problems += self._model_problems(objective, h)
            ok = not problems
            reasoning = ("sound: elements allowed, compositions balanced, not yet tested"
                         + (" and within reach by the composition models" if ok and
                            h.target_compositions else "") if ok else "; ".join(problems))
            verdicts.append(HypothesisVerdict(hypothesis_id=h.id, reasoning=reasoning,
                                              approved=ok))
            if not ok:
                issues.append(f"{h.id} {reasoning}")
        if remaining_evaluations is not None and remaining_evaluations <= 0:
            issues.append("no MLIP evaluations left in the budget")
            verdicts = [v.model_copy(update={"approved": False}) for v in verdicts]
        approved = bool(verdicts) and any(v.approved for v in verdicts)
        return Critique(subject="hypotheses", author=AUTHOR, issues=issues, verdicts=verdicts,
                        approved=approved,
                        reasoning=f"{sum(v.approved for v in verdicts)}/{len(verdicts)} hypotheses "
                                  f"pass the rules (allowed elements, charge balance, novelty, "
                                  f"budget)." if verdicts else "no hypotheses to review")

    def review_plan(self, plan: Plan, *, tool_names: set[str], remaining_evaluations: int | None,
                    ) -> Critique:
        """Tools exist, references resolve, every generated structure gets a stability check,
        the evaluation budget fits."""
        issues = []
        ids: list[str] = []
        generated: dict[str, bool] = {}
        for step in plan.steps:
            if step.tool not in tool_names:
                issues.append(f"{step.id}: unknown tool {step.tool!r} (available: "
                              f"{', '.join(sorted(tool_names))})")
            for dep in step.depends_on:
                if dep not in ids:
                    issues.append(f"{step.id}: depends on {dep}, which does not come before it")
            for value in step.inputs.values():
                for ref in _refs(value):
                    if ref not in ids:
                        issues.append(f"{step.id}: input refers to {ref}, not an earlier step")
                    elif step.tool == "predict_properties" and ref in generated:
                        generated[ref] = True
            if step.tool == "generate_candidates":
                generated[step.id] = False
            ids.append(step.id)
        for sid, checked in generated.items():
            if not checked:
                issues.append(f"{sid}: generated structures are never relaxed and checked "
                              f"against the hull (add predict_properties on ${sid})")
        if remaining_evaluations is not None and plan.expected_evaluations > remaining_evaluations:
            issues.append(f"plan needs {plan.expected_evaluations} MLIP evaluations, budget has "
                          f"{remaining_evaluations}")
        if not plan.steps:
            issues.append("plan has no steps")
        return Critique(subject="plan", author=AUTHOR, issues=issues, approved=not issues,
                        reasoning="all checks pass" if not issues else
                        f"{len(issues)} problem(s) found")


def _refs(value: Any) -> list[str]:
    if isinstance(value, str) and value.startswith("$"):
        return [value[1:].split(":")[0]]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


class LLMCritic:
    """Critic role backed by a chat model, with the offline rules as a floor."""

    def __init__(self, client: LLMClient, *, store: object = None) -> None:
        self.client = client
        self.rules = OfflineCritic(store=store)

    def review_hypotheses(self, objective: Objective, hypotheses: list[Hypothesis],
                          prior: list[Hypothesis], *, remaining_evaluations: int | None,
                          ) -> Critique:
        """Model review merged with the rule-based review."""
        rules = self.rules.review_hypotheses(objective, hypotheses, prior,
                                             remaining_evaluations=remaining_evaluations)
        review = self.client.structured(
            Critique, prompts.system("critic"),
            prompts.task("critic.hypotheses", objective=objective.model_dump_json(),
                         hypotheses="\n".join(h.model_dump_json() for h in hypotheses),
                         prior="\n".join(f"{h.id} {h.chemical_system} ({h.status})"
                                         for h in prior) or "(none)",
                         remaining_evaluations=remaining_evaluations), role="critic")
        return merge(review, rules, self.client.label)

    def review_plan(self, plan: Plan, *, tool_names: set[str],
                    remaining_evaluations: int | None) -> Critique:
        """Model review merged with the rule-based review."""
        rules = self.rules.review_plan(plan, tool_names=tool_names,
                                       remaining_evaluations=remaining_evaluations)
        review = self.client.structured(
            Critique, prompts.system("critic"),
            prompts.task("critic.plan", plan=plan.model_dump_json(),
                         tools=", ".join(sorted(tool_names)),
                         remaining_evaluations=remaining_evaluations), role="critic")
        return merge(review, rules, self.client.label)


def merge(review: Critique, rules: Critique, label: str) -> Critique:
    """A model's review with the rules applied on top: what the rules reject stays rejected."""
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


def make_critic(client: LLMClient | None, *, store: object = None) -> OfflineCritic | LLMCritic:
    """The LLM critic (rules as a floor) when the role has a model, else the rules alone."""
    return LLMCritic(client, store=store) if client is not None else OfflineCritic(store=store)

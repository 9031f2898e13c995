"""The planner: turns approved hypotheses into an executable plan of tool calls.

:class:`OfflinePlanner` writes one block of steps per hypothesis (evidence, generation with a
single-point pre-screen, relaxation and hull, then the targeted properties) and acts on the
feedback of a rejected plan; :class:`LLMPlanner` asks a chat model, and the critic checks
either.
"""

from __future__ import annotations

import re
from typing import Any

from matloop import prompts
from matloop.agents.base import OFFLINE
from matloop.agents.llm import LLMClient
from matloop.schemas import Hypothesis, Objective, Plan, PlanStep
from matloop.tools.base import Toolbox
from matloop.tools.generation import GENERATE_CANDIDATES
from matloop.tools.materials import PREDICT_PROPERTIES
from matloop.tools.retrieval import SEARCH_LITERATURE
from matloop.tools.surrogates import PREDICT_PROPERTY

AUTHOR = OFFLINE
#: Candidates generated per candidate relaxed; the rest are dropped by a single-point pre-screen.
PRESCREEN_FACTOR = 3
#: Work the tools cannot do, listed in every offline plan for the report.
BEYOND_TOOLS = [
    "DFT validation of the top candidates (PBE+U or r2SCAN relaxation and energy above hull "
    "against Materials Project references; phonons for dynamical stability)",
    "Band structure with a hybrid functional where a band-gap target matters",
    "Synthesis attempt following the closest known analogue route (precursors, temperature, "
    "atmosphere from the knowledge base), then phase identification by powder XRD",
]
_METHODS = ("prototype", "aflow", "substitution", "random", "llm")
#: Relaxations per target composition in one plan while other hypotheses can use the budget.
PER_COMPOSITION_PER_PLAN = 2
#: Best stable candidates per hypothesis that a property step (bulk modulus, elastic tensor)
#: evaluates at most.
PROPERTY_STRUCTURES = 3
#: Targets computed from the MLIP elastic tensor (one predict_properties step with elastic=True).
ELASTIC_TARGETS = ("shear_modulus", "hardness")


class PlanFeedback:
    """What a rejected plan's feedback asks for, as far as rules can read it: fewer
    candidates, no literature search, only or without some generation methods."""

    def __init__(self, feedback: list[str]) -> None:
        text = " ".join(feedback).lower()
        self.text = text
        # more than the budget allows is not possible; fewer is
        self.scale = 0.5 if re.search(r"\b(fewer|less|smaller|reduce|too many|cheaper)\b",
                                      text) else 1.0
        self.skip_search = bool(re.search(r"(no|skip|without|drop)\s+(the\s+)?(literature|"
                                          r"search|evidence)", text))
        self.only = [m for m in _METHODS if re.search(rf"only\s+(use\s+)?{m}", text)]
        self.without = [m for m in _METHODS if re.search(rf"(no|without|skip|drop)\s+{m}", text)]

    def methods(self, methods: list[str]) -> list[str]:
        """The hypothesis' methods after the feedback (never empty)."""
        kept = [m for m in methods if m in self.only] if self.only else list(methods)
        kept = [m for m in kept if m not in self.without]
        return kept or list(methods)

    def applied(self) -> list[str]:
        """What was changed, for the plan's reasoning."""
        out = []
        if self.scale != 1.0:
            out.append(f"candidates per hypothesis x{self.scale:g}")
        if self.skip_search:
            out.append("no literature search")
        if self.only:
            out.append(f"only {', '.join(self.only)}")
        if self.without:
            out.append(f"without {', '.join(self.without)}")
        return out


def allocate(total: int, weights: list[float], *, scale: float = 1.0) -> list[int]:
    """``total * scale`` integer shares in proportion to ``weights`` (largest remainder), at
    least one each while there is budget, at most 100 each (the generation tool's limit)."""
    if not weights:
        return []
    budget = max(len(weights), int(total * scale))
    w = [max(x, 1e-6) for x in weights]
    raw = [budget * x / sum(w) for x in w]
    shares = [max(1, int(r)) for r in raw]
    left = budget - sum(shares)
    for k in sorted(range(len(w)), key=lambda k: -(raw[k] - int(raw[k]))):
        if left <= 0:
            break
        shares[k] += 1
        left -= 1
    while sum(shares) > budget and max(shares) > 1:
        shares[shares.index(max(shares))] -= 1
    return [min(100, s) for s in shares]


def spread(shares: list[int], hypotheses: list[Hypothesis]) -> list[int]:
    """Shares with at most :data:`PER_COMPOSITION_PER_PLAN` relaxations per target composition
    while other hypotheses can take the rest (highest priority first): one composition's
    structures do not crowd out the next compositions; what none can take goes back to the
    capped ones (budget is not left unused)."""
    # no target composition (a chemical-system search): no cap
    caps = [PER_COMPOSITION_PER_PLAN * len(h.target_compositions) if h.target_compositions
            else sum(shares) for h in hypotheses]
    out = list(shares)
    excess = 0
    for k, cap in enumerate(caps):
        if out[k] > cap:
            excess += out[k] - cap
            out[k] = cap
    order = sorted(range(len(out)), key=lambda k: -hypotheses[k].priority)
    while excess > 0:
        room = [k for k in order if out[k] < caps[k]]
        if not room:  # nobody else can take it: back to the capped ones, up to their share
            for k in order:
                back = max(0, min(excess, shares[k] - out[k]))
                out[k] += back
                excess -= back
            return out
        for k in room:
            if excess <= 0:
                break
            out[k] += 1
            excess -= 1
    return out


class OfflinePlanner:
    """Plan templates: evidence, generation, relaxation + hull, then target properties."""

    def make_plan(self, objective: Objective, hypotheses: list[Hypothesis], *,
                  remaining_evaluations: int | None, tools: Toolbox, property_models: set[str],
                  seed: int, feedback: list[str]) -> Plan:
        """One block of steps per approved hypothesis, sharing the evaluation budget."""
        fb = PlanFeedback(feedback)
        steps: list[PlanStep] = []
        budget = remaining_evaluations if remaining_evaluations is not None else 30 * max(
            1, len(hypotheses))
        wants_bulk = any(t.name == "bulk_modulus" for t in objective.property_targets)
        wants_elastic = any(t.name in ELASTIC_TARGETS for t in objective.property_targets)
        families = int(wants_bulk) + int(wants_elastic)
        notes: list[str] = []
        # each hypothesis needs at least one relaxation and one evaluation per property step:
        # when the budget cannot hold them all, the lowest-priority hypotheses are left out,
        # so the plan fits the budget the critic checks; property steps take at most half of a
        # hypothesis's budget and at most PROPERTY_STRUCTURES candidates each
        if families:
            fit = max(1, budget // (1 + families))
            if len(hypotheses) > fit:
                ranked = sorted(hypotheses, key=lambda h: -h.priority)
                left_out = [h.id for h in ranked[fit:]]
                hypotheses = [h for h in hypotheses if h.id not in left_out]
                notes.append(f"{', '.join(left_out)} left out of this plan: {budget} "
                             f"evaluations hold {fit} hypothesis(es) with their property steps")
        per_property = min(PROPERTY_STRUCTURES, max(1, (budget // max(1, len(hypotheses)))
                                                    // (2 * max(1, families))))
        reserve = per_property * len(hypotheses) * families
        shares = spread(allocate(max(len(hypotheses), budget - reserve),
                                 [h.priority for h in hypotheses], scale=fb.scale), hypotheses)

        def step(**kw: Any) -> str:
            sid = f"S{len(steps) + 1}"
            steps.append(PlanStep(id=sid, **kw))
            return sid

        for i, (h, share) in enumerate(zip(hypotheses, shares, strict=True)):
            if SEARCH_LITERATURE in tools and not fb.skip_search:
                step(purpose=f"evidence for {h.id}", tool=SEARCH_LITERATURE, hypothesis_id=h.id,
                     inputs={"query": f"{h.chemical_system.replace('-', ' ')} "
                                      f"{objective.application or 'synthesis structure'}",
                             "k": 5})
            # Generate PRESCREEN_FACTOR times what the budget can relax and keep the best by
            # a single-point hull energy (evals/generation.py: 14.1% vs 11.6% SUN at equal
            # relaxations, 0.03 s per single point).
            # breadth first: while the share is smaller than the target list, one relaxation
            # for each of the first compositions (a second structure of a composition rarely
            # beats a first look at the next one; expansion returns to those that came close)
            targets: list[str | None] = list(h.target_compositions) or [None]
            if share < len(targets):
                targets = targets[:share]
            per = allocate(share, [1.0 / (k + 1) for k in range(len(targets))])
            gens = []
            for k, (formula, keep) in enumerate(zip(targets, per, strict=True)):
                if keep <= 0:
                    continue
                gen_inputs: dict[str, Any] = {
                    "methods": fb.methods(list(h.methods)),
                    "n": min(100, PRESCREEN_FACTOR * keep), "prescreen_keep": min(100, keep),
                    "seed": seed + 101 * i + 7 * k, "max_atoms": objective.max_atoms,
                    "excluded_elements": objective.excluded_elements}
                if formula:
                    gen_inputs["composition"] = formula
                else:
                    gen_inputs["chemsys"] = h.chemical_system
                gens.append(step(purpose=f"generate {formula or h.chemical_system} candidates "
                                         f"for {h.id}", tool=GENERATE_CANDIDATES,
                                 hypothesis_id=h.id, inputs=gen_inputs))
            notes.append(f"{h.id} (priority {h.priority:g}) gets {share} relaxation(s)"
                         + (": " + ", ".join(f"{f} {n}" for f, n in zip(targets, per,
                                                                       strict=True) if f)
                            if targets != [None] else ""))
            if not gens:
                continue
            # one relaxation step per generation step: each tool call stays short, and a
            # call that fails or times out loses only its own composition's results
            preds = [step(purpose=f"relax {h.id}'s candidates of step {g} and place them on "
                                  f"the hull", tool=PREDICT_PROPERTIES, hypothesis_id=h.id,
                          depends_on=[g], inputs={"structures": [f"${g}"], "relax": True})
                     for g in gens]
            # the best stable candidates of the first compositions, per_property in all
            best_of = [f"${p}:stable:{max(1, per_property // len(preds))}"
                       for p in preds[:per_property]]
            elastic_done = False
            for target in objective.property_targets:
                if target.name in ELASTIC_TARGETS:
                    if elastic_done:
                        continue
                    elastic_done = True
                    step(purpose=f"elastic tensor (shear modulus, Vickers hardness) of {h.id}'s "
                                 f"best stable candidates", tool=PREDICT_PROPERTIES,
                         hypothesis_id=h.id, depends_on=preds,
                         inputs={"structures": best_of,
                                 "relax": True, "elastic": True})
                elif target.name == "density":
                    if i == 0:
                        notes.append("density comes with the relaxation (the relaxed cell)")
                elif target.name == "bulk_modulus":
                    step(purpose=f"bulk modulus of {h.id}'s best stable candidates",
                         tool=PREDICT_PROPERTIES, hypothesis_id=h.id, depends_on=preds,
                         inputs={"structures": best_of,
                                 "relax": True, "bulk_modulus": True})
                elif target.name == "magnetic_moment":
                    if i == 0:
                        notes.append("magnetic_moment comes with the relaxation (the MLIP's "
                                     "site moments; CHGNet gives them, other backends do not)")
                elif target.name not in ("e_above_hull", "formation_energy", "energy_per_atom"):
                    if target.name in property_models and PREDICT_PROPERTY in tools:
                        step(purpose=f"{target.name} of {h.id}'s stable candidates (surrogate)",
                             tool=PREDICT_PROPERTY, hypothesis_id=h.id, depends_on=preds,
                             inputs={"property": target.name,
                                     "structures": [f"${p}:stable:10" for p in preds]})
                    elif i == 0:
                        notes.append(
                            f"no model for {target.name}: it will not be evaluated (train one "
                            f"with `matloop models train {target.name} --data FILE`)")
        if fb.applied():
            notes.append("feedback applied: " + "; ".join(fb.applied()))
        elif feedback:
            notes.append("feedback read but no rule applies to it: " + "; ".join(feedback)[:200])
        return Plan(
            reasoning=(f"{len(hypotheses)} approved hypothesis(es) share {sum(shares)} "
                       f"relaxations in proportion to their priority; each gets evidence "
                       f"retrieval, generated candidates per target composition (pre-screened "
                       f"by a single point), MLIP relaxation with a hull check, then the "
                       f"targeted properties. " + "; ".join(notes)).strip(),
            steps=steps, beyond_tools=list(BEYOND_TOOLS),
            expected_evaluations=min(budget, sum(shares)) + sum(
                int(ref.rsplit(":", 1)[1]) for s in steps
                if s.inputs.get("bulk_modulus") or s.inputs.get("elastic")
                for ref in s.inputs["structures"]),
            author=AUTHOR)


class LLMPlanner:
    """Planner role backed by a chat model; the critic checks the plan next."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client

    def make_plan(self, objective: Objective, hypotheses: list[Hypothesis], *,
                  remaining_evaluations: int | None, tools: Toolbox, property_models: set[str],
                  seed: int, feedback: list[str]) -> Plan:
        """A plan from the model."""
        plan = self.client.structured(
            Plan, prompts.system("planner"),
            prompts.task("planner.plan", objective=objective.model_dump_json(),
                         hypotheses="\n".join(h.model_dump_json() for h in hypotheses),
                         tools=tools.catalogue(),
                         property_models=", ".join(sorted(property_models)) or "none",
                         remaining_evaluations=remaining_evaluations, seed=seed,
                         feedback=f"The last plan was rejected: {'; '.join(feedback)}"
                         if feedback else ""), role="planner")
        return plan.model_copy(update={"author": self.client.label})


def make_planner(client: LLMClient | None) -> OfflinePlanner | LLMPlanner:
    """The LLM planner when the role has a model, else the offline one."""
    return LLMPlanner(client) if client is not None else OfflinePlanner()

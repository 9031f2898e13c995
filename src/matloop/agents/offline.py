"""Deterministic policies that do the agents' work without an LLM.

They reason with real chemistry: data-mined substitutions, tolerance factors, charge balance,
known phases and the tools' results. Every decision says it was written by the offline policy.
"""

from __future__ import annotations

import math
from typing import Any

from pymatgen.core import Composition

from matloop.agents.chemistry import (
    charge_balanced,
    mixed_systems,
    perovskite_systems,
    seed_compounds,
)
from matloop.agents.query_parser import anion_options, parse_query, structure_hints
from matloop.schemas import (
    CandidateResult,
    Critique,
    ExpansionDecision,
    Hypothesis,
    HypothesisVerdict,
    Objective,
    Plan,
    PlanStep,
)

AUTHOR = "offline"
#: Candidates generated per candidate relaxed; the rest are dropped by a single-point pre-screen.
PRESCREEN_FACTOR = 3
BEYOND_TOOLS = [
    "DFT validation of the top candidates (PBE+U or r2SCAN relaxation and energy above hull "
    "against Materials Project references; phonons for dynamical stability)",
    "Band structure with a hybrid functional where a band-gap target matters",
    "Synthesis attempt following the closest known analogue route (precursors, temperature, "
    "atmosphere from the knowledge base), then phase identification by powder XRD",
]


class OfflineScientist:
    """Interprets the query, proposes hypotheses and reads results against the objective."""

    def __init__(self, *, stability_threshold_ev_per_atom: float = 0.1, max_atoms: int = 20,
                 systems_per_iteration: int = 2) -> None:
        self.threshold = stability_threshold_ev_per_atom
        self.max_atoms = max_atoms
        self.systems_per_iteration = systems_per_iteration

    def interpret(self, query: str) -> Objective:
        """Read the query (see :func:`matloop.agents.query_parser.parse_query`)."""
        return parse_query(query, stability_threshold_ev_per_atom=self.threshold,
                           max_atoms=self.max_atoms)

    # -- ideation ------------------------------------------------------------------------------
    def candidate_systems(self, objective: Objective) -> list[tuple[str, str]]:
        """Chemical systems worth searching, with the reason for each."""
        excluded = set(objective.excluded_elements)
        required = set(objective.required_elements)
        systems: list[tuple[str, str]] = [
            (s, "named in the query") for s in objective.chemical_systems
            if not set(s.split("-")) & excluded
        ]
        for formula in objective.compositions:
            chemsys = "-".join(sorted(el.symbol for el in Composition(formula).elements))
            if chemsys not in [s for s, _ in systems] and not set(chemsys.split("-")) & excluded:
                systems.append((chemsys, f"contains the requested composition {formula}"))
        if systems:
            return systems
        hints = structure_hints(objective)
        anions = anion_options(objective) or [el for el in objective.required_elements
                                               if el in ("O", "N", "S", "Se", "Te", "F", "Cl",
                                                         "Br", "I")]
        if "perovskite" in hints:
            return perovskite_systems(anions or ["O"], excluded, required - set(anions))
        seeds = seed_compounds(required, excluded, anions, hints)
        found = mixed_systems(seeds, excluded)
        for entry in seeds:
            chemsys = "-".join(sorted(el.symbol for el in Composition(entry["formula"]).elements))
            if len(chemsys.split("-")) >= 3 and chemsys not in [s for s, _ in found]:
                found.append((chemsys, f"known {entry['prototype']} compound {entry['formula']} "
                                       f"lives here"))
        return found

    def propose(self, objective: Objective, *, iteration: int, prior: list[Hypothesis],
                candidates: list[CandidateResult], evidence: list[dict[str, Any]],
                feedback: list[str]) -> list[Hypothesis]:
        """Hypotheses for this iteration: new systems first, then refinements of the best
        results. ``feedback`` holds the critic's issues from a rejected round."""
        tried = {(h.chemical_system, tuple(h.methods), tuple(h.target_compositions))
                 for h in prior}
        rejected_systems = {h.chemical_system for h in prior if h.status == "rejected"}
        out: list[Hypothesis] = []
        n = len(prior)

        def add(**kw: Any) -> None:
            nonlocal n
            key = (kw["chemical_system"], tuple(kw["methods"]),
                   tuple(kw.get("target_compositions", [])))
            if key in tried or kw["chemical_system"] in rejected_systems:
                return
            tried.add(key)
            n += 1
            ev = [e["id"] for e in evidence
                  if set(kw["chemical_system"].split("-")) & set(e.get("elements", []))][:3]
            out.append(Hypothesis(id=f"H{n}", iteration=iteration, author=AUTHOR,
                                  evidence_ids=ev, **kw))

        if iteration == 0 or not candidates:
            hints = structure_hints(objective)
            for chemsys, why in self.candidate_systems(objective)[: self.systems_per_iteration]:
                comps = [f for f in objective.compositions
                         if "-".join(sorted(el.symbol for el in Composition(f).elements))
                         == chemsys]
                shape = f" in {', '.join(hints)}-type structures" if hints else ""
                add(chemical_system=chemsys, target_compositions=comps,
                    methods=["prototype"],
                    statement=f"Charge-balanced {chemsys} compounds decorated onto common "
                              f"structure types{shape} include phases within "
                              f"{objective.stability_threshold_ev_per_atom:g} eV/atom of the hull.",
                    justification=f"{chemsys}: {why}. Prototype decoration with common oxidation "
                                  f"states covers the structure types most compounds adopt.",
                    test_plan="generate prototype decorations, relax them with the MLIP, place "
                              "them on the convex hull of known phases")
                add(chemical_system=chemsys, target_compositions=comps,
                    methods=["substitution"],
                    statement=f"Ion substitution into known structures of chemically similar "
                              f"compounds yields stable {chemsys} phases.",
                    justification="Data-mined substitution probabilities (Hautier et al.) rank "
                                  "ion swaps that preserve known structure types; charge balance "
                                  "is enforced.",
                    test_plan="substitute ions in reference structures, relax, check the hull")
        else:
            ranked = sorted([c for c in candidates if c.objective_score is not None],
                            key=lambda c: -(c.objective_score or -math.inf))
            for best in ranked[:2]:
                add(chemical_system=best.chemical_system, target_compositions=[best.formula],
                    methods=["random", "prototype"],
                    parent=best.id,
                    statement=f"Other polymorphs of {best.formula} (best so far, e_above_hull "
                              f"{best.e_above_hull_ev_per_atom:+.3f} eV/atom) may lie lower.",
                    justification="The best composition found deserves a structure search: "
                                  "symmetric random crystals and other prototypes at the same "
                                  "stoichiometry.",
                    test_plan="random search and prototypes at this composition, relax, compare "
                              "with the best candidate on the hull")
            for chemsys, why in self.candidate_systems(objective)[
                    self.systems_per_iteration: 2 * self.systems_per_iteration]:
                add(chemical_system=chemsys, methods=["prototype", "substitution"],
                    statement=f"The next most promising system, {chemsys}, holds stable "
                              f"phases meeting the objective.",
                    justification=f"{chemsys}: {why}.",
                    test_plan="prototype and substitution candidates, relaxed and placed on the "
                              "hull")
        if feedback and not out:
            return []
        return out

    # -- expansion -----------------------------------------------------------------------------
    def review_results(self, objective: Objective, hypotheses: list[Hypothesis],
                       candidates: list[CandidateResult], *, iteration: int,
                       previous_best: float | None, max_iterations: int) -> ExpansionDecision:
        """Support or refute each hypothesis of this iteration and decide whether to go on."""
        current = [h for h in hypotheses if h.iteration == iteration and h.status == "approved"]
        supported, refuted, lines = [], [], []
        for h in current:
            mine = [c for c in candidates if c.hypothesis_id == h.id and c.status == "ok"]
            stable = [c for c in mine if c.is_stable]
            if not mine:
                lines.append(f"{h.id}: not tested: none of its own candidates was evaluated "
                             f"(none generated, all repeated earlier ones, or none converged)")
            elif stable:
                supported.append(h.id)
                best = min(stable, key=lambda c: c.e_above_hull_ev_per_atom or 0.0)
                lines.append(f"{h.id}: {len(stable)}/{len(mine)} evaluated candidates stable; "
                             f"best {best.formula} at {best.e_above_hull_ev_per_atom:+.3f} eV/atom")
            else:
                refuted.append(h.id)
                lines.append(f"{h.id}: none of {len(mine)} evaluated candidates within the "
                             f"threshold")
        meeting = [c for c in candidates if c.meets_objective]
        scores = [c.objective_score for c in candidates if c.objective_score is not None]
        best_score = max(scores) if scores else None
        improved = best_score is not None and (previous_best is None or
                                                best_score > previous_best + 1e-3)
        objective_met = len(meeting) >= 3
        go_on = (not objective_met and improved and iteration + 1 < max_iterations)
        reason = ("objective met by " + ", ".join(c.formula for c in meeting[:5])
                  if objective_met else
                  "no improvement of the best objective score" if not improved else
                  "iteration limit reached" if iteration + 1 >= max_iterations else
                  "refining the best candidates and trying the next systems")
        return ExpansionDecision(
            reasoning="; ".join(lines) + f". Decision: {reason}.", supported=supported,
            refuted=refuted, objective_met=objective_met, continue_search=go_on,
            next_directions=["random search around the best compositions",
                             "next-ranked chemical systems"] if go_on else [],
            author=AUTHOR)


class OfflineCritic:
    """Rule-based review of hypotheses and plans."""

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
            for formula in h.target_compositions:
                if not charge_balanced(formula):
                    problems.append(f"{formula} cannot be charge balanced with common "
                                    f"oxidation states")
            if (h.chemical_system, tuple(h.methods), tuple(h.target_compositions)) in seen:
                problems.append("repeats a hypothesis already tested")
            if not h.test_plan.strip():
                problems.append("has no test plan")
            ok = not problems
            reasoning = ("sound: elements allowed, compositions balanced, not yet tested"
                         if ok else "; ".join(problems))
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


class OfflinePlanner:
    """Plan templates: evidence, generation, relaxation + hull, then target properties."""

    def make_plan(self, objective: Objective, hypotheses: list[Hypothesis], *,
                  remaining_evaluations: int | None, tool_names: set[str],
                  property_models: set[str], seed: int, feedback: list[str]) -> Plan:
        """One block of steps per approved hypothesis, sharing the evaluation budget."""
        steps: list[PlanStep] = []
        budget = remaining_evaluations if remaining_evaluations is not None else 30 * max(
            1, len(hypotheses))
        wants_bulk = any(t.name == "bulk_modulus" for t in objective.property_targets)
        reserve = 3 * len(hypotheses) if wants_bulk else 0
        # At most 100 per hypothesis: the generation tool takes n <= 100.
        share = min(100, max(1, (budget - reserve) // max(1, len(hypotheses)))) if hypotheses else 0
        n_step = 0
        notes = []

        def step(**kw: Any) -> str:
            nonlocal n_step
            n_step += 1
            sid = f"S{n_step}"
            steps.append(PlanStep(id=sid, **kw))
            return sid

        for i, h in enumerate(hypotheses):
            if "search_literature" in tool_names:
                step(purpose=f"evidence for {h.id}", tool="search_literature",
                     hypothesis_id=h.id,
                     inputs={"query": f"{h.chemical_system.replace('-', ' ')} "
                                      f"{objective.application or 'synthesis structure'}",
                             "k": 5})
            # Generate PRESCREEN_FACTOR times what the budget can relax and keep the best by
            # a single-point hull energy (evals/generation.py: 14.1% vs 11.6% SUN at equal
            # relaxations, 0.03 s per single point).
            gen_inputs: dict[str, Any] = {
                "methods": h.methods, "n": min(100, PRESCREEN_FACTOR * share),
                "prescreen_keep": share, "seed": seed + 101 * i,
                "max_atoms": objective.max_atoms,
                "excluded_elements": objective.excluded_elements,
            }
            if h.target_compositions:
                gen_inputs["composition"] = h.target_compositions[0]
            else:
                gen_inputs["chemsys"] = h.chemical_system
            gen = step(purpose=f"generate candidates for {h.id}", tool="generate_candidates",
                       hypothesis_id=h.id, inputs=gen_inputs)
            pred = step(purpose=f"relax {h.id}'s candidates and place them on the hull",
                        tool="predict_properties", hypothesis_id=h.id, depends_on=[gen],
                        inputs={"structures": f"${gen}", "relax": True})
            for target in objective.property_targets:
                if target.name == "bulk_modulus":
                    step(purpose=f"bulk modulus of {h.id}'s best stable candidates",
                         tool="predict_properties", hypothesis_id=h.id, depends_on=[pred],
                         inputs={"structures": f"${pred}:stable:3", "relax": True,
                                 "bulk_modulus": True})
                elif target.name in ("band_gap",) or target.name not in (
                        "e_above_hull", "formation_energy", "energy_per_atom"):
                    if target.name in property_models and "predict_property" in tool_names:
                        step(purpose=f"{target.name} of {h.id}'s stable candidates (surrogate)",
                             tool="predict_property", hypothesis_id=h.id, depends_on=[pred],
                             inputs={"property": target.name,
                                     "structures": f"${pred}:stable:10"})
                    elif i == 0:
                        notes.append(
                            f"no surrogate model for {target.name}: it will not be evaluated "
                            f"(train one with `matloop models train {target.name} --data "
                            f"FILE`)")
        return Plan(
            reasoning=(f"{len(hypotheses)} approved hypothesis(es); each gets evidence retrieval, "
                       f"{share} generated candidates, MLIP relaxation with a hull check, then "
                       f"the targeted properties. " + " ".join(notes)).strip(),
            steps=steps, beyond_tools=list(BEYOND_TOOLS),
            expected_evaluations=min(budget, share * len(hypotheses)) + sum(
                3 for s in steps if s.inputs.get("bulk_modulus")),
            author=AUTHOR)

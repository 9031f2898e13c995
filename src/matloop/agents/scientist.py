"""The scientist: reads the question, proposes hypotheses, judges results.

:class:`OfflineScientist` reasons with real chemistry and no LLM (query parsing, data-mined
substitutions, tolerance factors, known phases, the tools' results); :class:`LLMScientist`
asks a chat model for the same decisions through structured outputs, with unknown elements
dropped and noted and evidence ids checked against what the run retrieved.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field
from pymatgen.core import Composition

from matloop import prompts
from matloop.agents.base import OFFLINE, candidate_table, evidence_block, hypothesis_lines
from matloop.agents.chemistry import mixed_systems, perovskite_systems, seed_compounds
from matloop.agents.llm import LLMClient
from matloop.agents.query_parser import anion_options, parse_query, structure_hints
from matloop.errors import MatloopError
from matloop.materials.references import parse_composition
from matloop.schemas import CandidateResult, ExpansionDecision, Hypothesis, Objective

AUTHOR = OFFLINE


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


class HypothesisSet(BaseModel):
    """New hypotheses for this iteration."""

    reasoning: str = Field(description="How the objective, evidence and results lead here.")
    hypotheses: list[Hypothesis] = Field(description="One to four testable hypotheses.")


class LLMScientist:
    """Scientist role backed by a chat model."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client

    def interpret(self, query: str) -> Objective:
        """Structured objective; unknown elements are dropped and noted."""
        objective = self.client.structured(
            Objective, prompts.system("scientist"),
            prompts.task("scientist.interpret", query=query), role="scientist")
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
            HypothesisSet, prompts.system("scientist"),
            prompts.task("scientist.propose", objective=objective.model_dump_json(),
                         iteration=iteration, prior=hypothesis_lines(prior),
                         candidates=candidate_table(candidates),
                         evidence=evidence_block(evidence),
                         feedback=f"The critic rejected the last proposal: {'; '.join(feedback)}"
                         if feedback else ""), role="scientist")
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
            ExpansionDecision, prompts.system("scientist"),
            prompts.task("scientist.review", objective=objective.model_dump_json(),
                         iteration=iteration,
                         hypotheses=hypothesis_lines([h for h in hypotheses
                                                      if h.iteration == iteration],
                                                     with_status=False),
                         candidates=candidate_table(candidates), previous_best=previous_best,
                         max_iterations=max_iterations), role="scientist")
        go_on = decision.continue_search and iteration + 1 < max_iterations
        return decision.model_copy(update={"continue_search": go_on,
                                           "author": self.client.label})


def make_scientist(client: LLMClient | None, *, stability_threshold_ev_per_atom: float = 0.1,
                   max_atoms: int = 20) -> OfflineScientist | LLMScientist:
    """The LLM scientist when the role has a model, else the offline one."""
    if client is not None:
        return LLMScientist(client)
    return OfflineScientist(stability_threshold_ev_per_atom=stability_threshold_ev_per_atom,
                            max_atoms=max_atoms)

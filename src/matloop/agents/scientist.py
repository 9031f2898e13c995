"""The scientist: reads the question, proposes hypotheses, judges results.

:class:`OfflineScientist` reasons with real chemistry and no LLM (query parsing, data-mined
substitutions, tolerance factors, known phases, the tools' results); :class:`LLMScientist`
asks a chat model for the same decisions through structured outputs, with unknown elements
dropped and noted and evidence ids checked against what the run retrieved.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from matloop import prompts
from matloop.agents.base import OFFLINE, candidate_table, evidence_block, hypothesis_lines
from matloop.agents.ideation import (
    CompositionOption,
    SystemOption,
    candidate_systems,
    no_system_problem,
    widened_systems,
)
from matloop.agents.llm import LLMClient
from matloop.agents.query_parser import parse_query, structure_hints
from matloop.errors import MatloopError
from matloop.materials.references import parse_composition
from matloop.schemas import (
    CandidateResult,
    ExpansionDecision,
    Hypothesis,
    Objective,
    QueryProblem,
)

AUTHOR = OFFLINE


#: Generators a hypothesis is tested with when nothing narrower is asked.
#: Structure sources of a fresh hypothesis: the 75 named types, pymatgen's AFLOW prototype
#: library, data-mined substitution and pyxtal random search with space-group priors.
STRUCTURE_METHODS = ["prototype", "aflow", "substitution", "random"]
#: Generators for more structures of an evaluated composition (random search first: the named
#: and data-mined types were the first look).
REFINE_METHODS = ("random", "substitution", "aflow", "prototype")
#: Relaxations of one composition after which expansion stops searching its structures.
MAX_STRUCTURES_PER_COMPOSITION = 6


@dataclass
class Arm:
    """What the campaign has learnt about one composition."""

    formula: str
    chemsys: str
    evaluated: int = 0
    stable: int = 0
    met: int = 0
    best_e_above_hull_ev_per_atom: float | None = None
    best_id: str | None = None

    def ucb(self, total: int, threshold: float) -> float:
        """Optimistic value: the posterior success rate plus an exploration bonus (UCB1 on
        Beta(1 + stable, 1 + misses)), raised when the best candidate came close."""
        mean = (1 + self.stable) / (2 + self.evaluated)
        bonus = math.sqrt(2.0 * math.log(max(total, 2)) / max(self.evaluated, 1))
        close = 0.0
        if self.best_e_above_hull_ev_per_atom is not None:
            close = max(0.0, 1.0 - max(self.best_e_above_hull_ev_per_atom, 0.0) /
                        max(2 * threshold, 1e-3))
        return mean + 0.5 * bonus + 0.5 * close


def arms_of(candidates: list[CandidateResult], threshold: float) -> dict[str, Arm]:
    """Per composition: evaluations, stable candidates, the best hull distance."""
    arms: dict[str, Arm] = {}
    for c in candidates:
        if c.status not in ("ok", "not_converged", "diverged", "failed"):
            continue
        arm = arms.setdefault(c.formula, Arm(c.formula, c.chemical_system))
        arm.evaluated += 1
        e = c.e_above_hull_ev_per_atom
        if c.status == "ok" and e is not None:
            arm.stable += int(e <= threshold and not c.flags)
            arm.met += int(c.meets_objective is True)
            if arm.best_e_above_hull_ev_per_atom is None or e < arm.best_e_above_hull_ev_per_atom:
                arm.best_e_above_hull_ev_per_atom, arm.best_id = e, c.id
    return arms


#: Ranked systems per (objective, reference store, held-out compositions, limit), shared by
#: the scientists of one process: the command line's check before a campaign and the
#: campaign's own ideation rank the same question once.
_SHARED_OPTIONS: dict[tuple[Any, ...], tuple[list[SystemOption], QueryProblem | None]] = {}


class OfflineScientist:
    """Interprets the query, proposes hypotheses and learns from the results.

    Ideation (:mod:`matloop.agents.ideation`): systems from the query or the application's
    element pools; compositions ranked by the MP-trained composition prior, the band-gap model
    for a gap window and how common the stoichiometry is. Expansion treats every composition
    as a bandit arm (UCB1 on its stable hits, raised when its best candidate came close):
    compositions that came close without meeting the objective get more structure search (at
    most :data:`MAX_STRUCTURES_PER_COMPOSITION` relaxations each; one that meets it is found
    and gets no more), systems with hits get their next compositions, and fresh systems get a
    share for exploration.
    """

    def __init__(self, *, store: Any = None, stability_threshold_ev_per_atom: float = 0.1,
                 max_atoms: int = 20, systems_per_iteration: int = 2,
                 compositions_per_hypothesis: int = 5) -> None:
        self.store = store
        self.threshold = stability_threshold_ev_per_atom
        self.max_atoms = max_atoms
        self.systems_per_iteration = systems_per_iteration
        self.per_hypothesis = compositions_per_hypothesis
        self._options: dict[str, list[SystemOption]] = {}
        self._widened: dict[str, QueryProblem] = {}

    def interpret(self, query: str) -> Objective:
        """Read the query (see :func:`matloop.agents.query_parser.parse_query`)."""
        return parse_query(query, stability_threshold_ev_per_atom=self.threshold,
                           max_atoms=self.max_atoms)

    # -- ideation ------------------------------------------------------------------------------
    def systems(self, objective: Objective) -> list[SystemOption]:
        """Ranked systems and compositions for the objective (computed once per objective)."""
        key = objective.model_dump_json()
        if key not in self._options:
            if self.store is None:
                from matloop.materials.references import ReferenceStore

                self.store = ReferenceStore.from_settings()
            limit = 2 * self.systems_per_iteration + 2
            # the store's phase count and held-out set: an import or a hold-out re-ranks
            shared = (key, str(getattr(self.store, "path", id(self.store))),
                      self.store.count() if hasattr(self.store, "count") else 0,
                      tuple(sorted(self.store.held_out())) if hasattr(self.store, "held_out")
                      else (), limit)
            if shared not in _SHARED_OPTIONS:
                options = candidate_systems(objective, self.store, limit=limit)
                widened = None
                if not options:
                    options, relaxed = widened_systems(objective, self.store, limit=limit)
                    widened = no_system_problem(objective, relaxed) if options else None
                _SHARED_OPTIONS[shared] = (options, widened)
                while len(_SHARED_OPTIONS) > 32:
                    del _SHARED_OPTIONS[next(iter(_SHARED_OPTIONS))]
            options, widened = _SHARED_OPTIONS[shared]
            if widened is not None:
                self._widened[key] = widened
            self._options[key] = copy.deepcopy(options)
        return self._options[key]

    def assumption(self, objective: Objective) -> QueryProblem | None:
        """The constraint relaxed because no system satisfied them all, if any (see
        :func:`matloop.agents.ideation.widened_systems`)."""
        self.systems(objective)
        return self._widened.get(objective.model_dump_json())

    def _hypothesis(self, n: int, iteration: int, objective: Objective, system: str,
                    options: list[CompositionOption], *, why: str, methods: list[str],
                    priority: float, parent: str | None = None,
                    evidence: list[dict[str, Any]]) -> Hypothesis:
        formulas = [o.formula for o in options]
        hints = structure_hints(objective)
        shape = f" in {', '.join(hints)}-type structures" if hints else ""
        targets = "; ".join(t.describe() for t in objective.property_targets
                            if t.name != "e_above_hull")
        lines = [o.describe() for o in options]
        sources = sorted({v for o in options for k, v in o.provenance.items()
                          if k in ("prior", "band_gap")})
        ev = [e["id"] for e in evidence
              if set(system.split("-")) & set(e.get("elements", []) or [])][:3]
        return Hypothesis(
            id=f"H{n}", iteration=iteration, author=AUTHOR, evidence_ids=ev,
            chemical_system=system, target_compositions=formulas, methods=methods,
            parent=parent, priority=round(max(priority, 0.01), 4),
            statement=f"{', '.join(formulas)} ({system}){shape} can lie within "
                      f"{objective.stability_threshold_ev_per_atom:g} eV/atom of the hull"
                      + (f" and meet {targets}" if targets else "") + ".",
            justification=f"{why}. " + "; ".join(lines) + (
                f" (models: {'; '.join(sources)})" if sources else ""),
            test_plan=f"generate candidates at each composition with {', '.join(methods)}, "
                      f"keep the best by a single-point pre-screen, relax them with the MLIP "
                      f"and place them on the Materials Project hull",
            rationale_data={"compositions": [
                {"formula": o.formula, "fit": round(o.fit, 4),
                 "p_within_reach": round(o.p_stable, 4), "p_targets": round(o.p_targets, 4),
                 "predicted_e_above_hull_ev_per_atom":
                     None if o.predicted_e_above_hull_ev_per_atom is None
                     else round(o.predicted_e_above_hull_ev_per_atom, 4),
                 "predicted_gap_ev": None if o.predicted_gap_ev is None
                 else round(o.predicted_gap_ev, 3), "known_to_mp": o.known,
                 "mp_id": o.known_id, **o.provenance} for o in options]})

    def propose(self, objective: Objective, *, iteration: int, prior: list[Hypothesis],
                candidates: list[CandidateResult], evidence: list[dict[str, Any]],
                feedback: list[str]) -> list[Hypothesis]:
        """Hypotheses for this iteration: the best-ranked systems first; later, a budget split
        learnt from the results (see the class docstring). ``feedback`` holds the critic's
        issues from a rejected round: rejected systems and compositions are not proposed
        again."""
        rejected = {h.chemical_system for h in prior if h.status == "rejected"}
        tried = {f for h in prior if h.status != "rejected" for f in h.target_compositions}
        refused = {f for h in prior if h.status == "rejected" for f in h.target_compositions}
        systems = [s for s in self.systems(objective) if s.chemsys not in rejected]
        n = len(prior)
        out: list[Hypothesis] = []
        if iteration == 0 or not candidates:
            for so in systems[: self.systems_per_iteration]:
                options = [o for o in so.compositions if o.formula not in tried | refused]
                options = options[: self.per_hypothesis]
                if not options:
                    continue
                n += 1
                out.append(self._hypothesis(
                    n, iteration, objective, so.chemsys, options, why=so.reason,
                    methods=list(STRUCTURE_METHODS), priority=so.score, evidence=evidence))
            return out
        arms = arms_of(candidates, objective.stability_threshold_ev_per_atom)
        total = sum(a.evaluated for a in arms.values())
        by_system: dict[str, list[Arm]] = {}
        for arm in arms.values():
            by_system.setdefault(arm.chemsys, []).append(arm)
        options_by_formula = {o.formula: o for so in systems for o in so.compositions}
        scored: list[tuple[float, Hypothesis]] = []
        ranked_arms = sorted(arms.values(), key=lambda a: -a.ucb(total, self.threshold))

        def refine(arm: Arm, value: float, why: str) -> Hypothesis:
            """More structures of one evaluated composition, seeded from its best candidate."""
            option = options_by_formula.get(arm.formula) or CompositionOption(
                formula=arm.formula, chemsys=arm.chemsys, fit=value, p_stable=1.0,
                p_targets=1.0, known=False, known_id=None, has_structure_type=True)
            return self._hypothesis(n, iteration, objective, arm.chemsys, [option], why=why,
                                    methods=list(REFINE_METHODS), priority=value,
                                    parent=arm.best_id, evidence=evidence)

        # 1. exploit: more structures for compositions that came close without meeting the
        #    objective (one that already meets it is found: its budget goes to the next
        #    compositions), at most MAX_STRUCTURES_PER_COMPOSITION relaxations each
        for arm in ranked_arms:
            if arm.best_e_above_hull_ev_per_atom is None or arm.met or \
                    arm.evaluated >= MAX_STRUCTURES_PER_COMPOSITION or \
                    arm.best_e_above_hull_ev_per_atom > objective.stability_threshold_ev_per_atom \
                    + 0.1:
                continue
            value = arm.ucb(total, self.threshold)
            n += 1
            scored.append((value, refine(
                arm, value, f"{arm.formula} came within {arm.best_e_above_hull_ev_per_atom:+.3f} "
                f"eV/atom of the hull ({arm.stable} of {arm.evaluated} evaluated candidates "
                f"stable; UCB value {value:.2f}): search its other structures")))
            if len(scored) >= 2:
                break
        # 2. next compositions of systems with hits, 3. fresh systems (exploration)
        for so in systems:
            fresh = [o for o in so.compositions if o.formula not in tried | refused]
            if not fresh:
                continue
            mine = by_system.get(so.chemsys, [])
            hits = sum(a.stable for a in mine)
            evaluated = sum(a.evaluated for a in mine)
            rate = (1 + hits) / (2 + evaluated)
            value = so.score * (2 * rate if mine else 1.0) + (
                0.0 if mine else math.sqrt(2.0 * math.log(max(total, 2)) / 1.0) * 0.1)
            why = (f"{so.reason}; {hits} of {evaluated} candidates of this system were stable "
                   f"(posterior rate {rate:.2f}): try its next-ranked compositions" if mine else
                   f"{so.reason}; not searched yet (exploration)")
            n += 1
            scored.append((value, self._hypothesis(
                n, iteration, objective, so.chemsys, fresh[: self.per_hypothesis], why=why,
                methods=list(STRUCTURE_METHODS), priority=value, evidence=evidence)))
        scored.sort(key=lambda vh: -vh[0])
        chosen = [h for _, h in scored[: self.systems_per_iteration + 1]]
        # 4. budget is never left unused while candidates remain: when fewer hypotheses than
        #    slots are left, more structures of compositions already within the threshold
        #    (a lower polymorph, another structure for the targets) fill the free slots
        used = {f for h in chosen for f in h.target_compositions}
        for arm in ranked_arms:
            if len(chosen) >= self.systems_per_iteration + 1:
                break
            if arm.formula in used or arm.formula in refused or \
                    arm.evaluated >= MAX_STRUCTURES_PER_COMPOSITION or \
                    arm.best_e_above_hull_ev_per_atom is None or \
                    arm.best_e_above_hull_ev_per_atom > objective.stability_threshold_ev_per_atom:
                continue
            value = 0.5 * arm.ucb(total, self.threshold)
            n += 1
            chosen.append(refine(
                arm, value, f"no untried composition is left for this slot: {arm.formula} "
                f"already lies within {arm.best_e_above_hull_ev_per_atom:+.3f} eV/atom of the "
                f"hull ({arm.stable} of {arm.evaluated} evaluated candidates stable): search its "
                f"other structures (a lower polymorph, or one that meets more targets)"))
        # renumber in order
        return [h.model_copy(update={"id": f"H{len(prior) + i + 1}"})
                for i, h in enumerate(chosen)]

    # -- expansion -----------------------------------------------------------------------------
    def review_results(self, objective: Objective, hypotheses: list[Hypothesis],
                       candidates: list[CandidateResult], *, iteration: int,
                       previous_best: float | None, max_iterations: int,
                       remaining_evaluations: int | None = None) -> ExpansionDecision:
        """Support or refute each hypothesis of this iteration, and go on while budget and
        iterations remain (the reason is stated either way)."""
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
        objective_met = len(meeting) >= 3
        if iteration + 1 >= max_iterations:
            go_on, reason = False, "iteration limit reached"
        elif remaining_evaluations is not None and remaining_evaluations <= 0:
            go_on, reason = False, "evaluation budget used"
        else:
            go_on = True
            reason = (f"{remaining_evaluations if remaining_evaluations is not None else 'the'} "
                      f"evaluations left: spending them where the results point")
            if objective_met:
                reason += (" (the objective is already met by "
                           + ", ".join(c.formula for c in meeting[:5]) + ")")
        return ExpansionDecision(
            reasoning="; ".join(lines) + f". Decision: {reason}.", supported=supported,
            refuted=refuted, objective_met=objective_met, continue_search=go_on,
            next_directions=["more structures for near-hull compositions",
                             "next-ranked compositions of productive systems",
                             "fresh systems for exploration"] if go_on else [],
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
                       previous_best: float | None, max_iterations: int,
                       remaining_evaluations: int | None = None) -> ExpansionDecision:
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
        go_on = decision.continue_search and iteration + 1 < max_iterations and (
            remaining_evaluations is None or remaining_evaluations > 0)
        return decision.model_copy(update={"continue_search": go_on,
                                           "author": self.client.label})


def make_scientist(client: LLMClient | None, *, stability_threshold_ev_per_atom: float = 0.1,
                   max_atoms: int = 20, store: Any = None) -> OfflineScientist | LLMScientist:
    """The LLM scientist when the role has a model, else the offline one."""
    if client is not None:
        return LLMScientist(client)
    return OfflineScientist(store=store,
                            stability_threshold_ev_per_atom=stability_threshold_ev_per_atom,
                            max_atoms=max_atoms)


def system_problems(query: str, *, max_atoms: int = 20) -> list[QueryProblem]:
    """Before a campaign: whether any chemical system satisfies the question's constraints
    together. One ``no_system`` problem when constraints must be relaxed (which ones), or
    when none fits even then; empty otherwise."""
    scientist = OfflineScientist(max_atoms=max_atoms)
    objective = scientist.interpret(query)
    if scientist.systems(objective):
        widened = scientist.assumption(objective)
        return [widened] if widened is not None else []
    return [QueryProblem(
        kind="no_system", text=query[:200],
        message=f"no chemical system satisfies the question's constraints, even with the "
                f"structure type, element alternatives and application pools relaxed "
                f"({objective.interpretation})",
        assumption="the campaign stops without candidates and says why",
        question="No chemical system fits the question. Go on anyway (nothing will be "
                 "evaluated), or rephrase it (name a system such as Li-Fe-O, or an element)?")]

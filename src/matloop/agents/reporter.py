"""The reporter: turns the campaign state into a :class:`DiscoveryReport`.

Every number in the report is copied from tool results held in state (candidates carry the
ids of the tool calls behind them); every citation is an evidence id retrieved in this run.
:class:`OfflineReporter` writes the narrative from templates; :class:`LLMReporter` has a chat
model write the narrative parts, which :mod:`matloop.reports.grounding` checks against the
results and evidence before they are kept. Nothing here writes files: the caller renders and
writes the report once (:func:`matloop.reports.write_report_files`).
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from pydantic import BaseModel, Field
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from matloop import prompts
from matloop.agents.base import OFFLINE, ReportServices, candidate_table, evidence_block
from matloop.agents.llm import LLMClient
from matloop.errors import MatloopError
from matloop.knowledge.evidence import format_analogs_for_prompt
from matloop.logs import quiet_third_party
from matloop.reports.grounding import KnownFacts, check_items, check_text, numbers_in
from matloop.schemas import (
    CandidateResult,
    DiscoveryReport,
    EvidenceRef,
    Objective,
    ReferencePoint,
    RemovedClaim,
    SynthesisSuggestion,
    ToolRecord,
    Usage,
)
from matloop.tools.retrieval import FIND_SYNTHESIS_ANALOGS, AnalogsOutput

#: Notes that start with this mark a role handed to its offline policy (listed first).
FALLBACK_NOTE = "LLM fallback:"
LIMITATIONS = [
    "Energies come from a machine-learned interatomic potential, not DFT: typical formation-"
    "energy errors are a few tens of meV/atom, so candidates within ~0.05 eV/atom of the hull "
    "are not distinguishable from stable without DFT.",
    "The convex hull only knows the reference phases in the store; a missing competing phase "
    "makes candidates look more stable than they are.",
    "Structures are ordered cells of at most the generated size; disorder, defects, "
    "temperature and entropy are not modelled.",
]


def rank(candidates: list[CandidateResult]) -> list[CandidateResult]:
    """Best first: meets the objective, then Pareto front (hull distance and distance to each
    property target), then objective score, then hull distance.

    A flagged candidate (e.g. far below the MP hull, a likely MLIP error) never wins on its
    suspicious energy: it comes after the unflagged candidates that meet the objective as well
    as it does, and its hull distance counts as 0.
    """
    def key(c: CandidateResult) -> tuple:
        usable = c.status == "ok" and c.e_above_hull_ev_per_atom is not None
        e_hull = c.e_above_hull_ev_per_atom if c.e_above_hull_ev_per_atom is not None else 1e9
        return (not usable, c.meets_objective is not True, bool(c.flags),
                c.pareto_rank if c.pareto_rank is not None else 10**6,
                -(c.objective_score if c.objective_score is not None else -1e9),
                max(e_hull, 0.0) if c.flags else e_hull, c.id)
    return sorted(candidates, key=key)


def distinct(ranked: list[CandidateResult]) -> list[CandidateResult]:
    """Evaluated candidates, one per relaxed structure (two generators often reach the same
    one: same formula, space group and energy)."""
    seen, out = set(), []
    for c in ranked:
        key = (c.formula, c.spacegroup, round(c.energy_per_atom_ev or 0.0, 4))
        if c.status == "ok" and key not in seen:
            seen.add(key)
            out.append(c)
    return out


class ReportBuild(NamedTuple):
    """A built report and the tool calls made while building it (synthesis analogues)."""

    report: DiscoveryReport
    tool_records: list[ToolRecord]


class OfflineReporter:
    """Template-written report; adds synthesis analogues for the top candidates from the
    knowledge base (the shipped recipes, and any the user ingested)."""

    author = OFFLINE

    def __init__(self, *, synthesis_for: int = 3) -> None:
        self.synthesis_for = synthesis_for

    def summary(self, objective: Objective | None, ranked: list[CandidateResult],
                status: str) -> str:
        """A paragraph built only from the ranked candidates' numbers."""
        usable = [c for c in ranked if c.status == "ok"]
        stable = [c for c in usable if c.is_stable]
        meeting = [c for c in usable if c.meets_objective]
        parts = [f"{len(usable)} candidates were relaxed with the MLIP; {len(stable)} lie "
                 f"within the stability threshold"]
        if objective is not None:
            parts[0] += f" ({objective.stability_threshold_ev_per_atom:g} eV/atom)"
        known = [c for c in stable if (c.novelty or "").startswith("known phase")]
        polymorphs = [c for c in stable if (c.novelty or "").startswith("known composition")]
        new = [c for c in stable if (c.novelty or "").startswith("new composition")]
        if known:
            parts[0] += (f", of which {len(known)} match known phases ("
                         + ", ".join(dict.fromkeys(c.formula for c in known)) + ")")
        if polymorphs:
            parts.append(f"{len(polymorphs)} stable candidate(s) have compositions the "
                         f"Materials Project lists ("
                         + ", ".join(dict.fromkeys(c.formula for c in polymorphs))
                         + "); their structures match none of the local structure references "
                         "(MP's own structures count only when imported), so they may still be "
                         "the known phases")
        if new:
            parts.append(f"{len(new)} stable candidate(s) have compositions absent from the "
                         f"references (" + ", ".join(dict.fromkeys(c.formula for c in new)) + ")")
        flagged = [c for c in usable if c.flags]
        if flagged:
            parts.append(f"{len(flagged)} candidate(s) lie suspiciously far below the hull and "
                         f"are flagged for DFT")
        if meeting:
            parts.append(f"{len(meeting)} meet every evaluated target")
        if usable:
            best = usable[0]
            parts.append(f"the best is {best.formula} ({best.spacegroup or 'space group n/a'}, "
                         f"{best.method}) at {best.e_above_hull_ev_per_atom:+.3f} eV/atom above "
                         f"the hull with formation energy "
                         f"{best.formation_energy_ev_per_atom:.3f} eV/atom")
        parts.append(f"campaign status: {status}")
        return "; ".join(parts) + "."

    def synthesis(self, ranked: list[CandidateResult], services: ReportServices | None,
                  ) -> tuple[list[SynthesisSuggestion], list[ToolRecord]]:
        """Synthesis suggestions from find_synthesis_analogs (recorded as tool calls)."""
        if services is None or FIND_SYNTHESIS_ANALOGS not in services.tools:
            return [], []
        spec = services.tools[FIND_SYNTHESIS_ANALOGS]
        runner = services.runner(timeout_s=120)
        out: list[SynthesisSuggestion] = []
        records: list[ToolRecord] = []
        formulas = list(dict.fromkeys(c.formula for c in distinct(ranked)))
        firsts = [next(c for c in ranked if c.formula == f) for f in formulas]
        for i, c in enumerate(firsts[: self.synthesis_for]):
            rec = runner.call(FIND_SYNTHESIS_ANALOGS, {"formula": c.formula, "k": 2},
                              step_id=None, iteration=-1, record_id=f"R-syn-{i}")
            services.events.tool_call(rec)
            records.append(rec)
            result: AnalogsOutput = spec.parse(rec.result)
            for a in result.analogs[:2]:
                out.append(SynthesisSuggestion(
                    candidate_id=c.id, analog_formula=a.analog_formula,
                    precursors=a.precursors, temperatures=a.temperatures,
                    atmosphere=a.atmosphere, doi=a.doi, similarity=a.similarity))
        return out, records

    def build(self, state: dict[str, Any], services: ReportServices | None) -> ReportBuild:
        """The report from state (tables, numbers and template narrative)."""
        objective: Objective | None = state.get("objective")
        candidates: list[CandidateResult] = list(state.get("candidates", []))
        ranked = rank(candidates)
        status = outcome_status(state)
        hypotheses = list(state.get("hypotheses", []))
        cited = {e for h in hypotheses for e in h.evidence_ids}
        evidence = [EvidenceRef.model_validate(e.model_dump()) for e in state.get("evidence", [])
                    if e.id in cited or not cited]
        synthesis, records = self.synthesis(ranked, services)
        usage: Usage = state.get("usage") or Usage()
        negative = [f"{h.id} ({h.chemical_system}): {h.statement} — refuted: no evaluated "
                    f"candidate within the stability threshold"
                    for h in hypotheses if h.status == "refuted"]
        negative += [f"{h.id} ({h.chemical_system}): {h.statement} — not tested: none of its "
                     f"candidates was evaluated (none generated, all repeated structures "
                     f"already evaluated for another hypothesis, or none converged)"
                     for h in hypotheses if h.status == "dropped"]
        negative += [f"{h.id} rejected by the critic: " + "; ".join(
            v.reasoning for c in state.get("critiques", []) for v in c.verdicts
            if v.hypothesis_id == h.id and not v.approved)
            for h in hypotheses if h.status == "rejected"]
        plan = state.get("plan")
        methods = dict(services.methods) if services is not None else {}
        references: list[ReferencePoint] = []
        hull_note = None
        engine = services.engine if services is not None else None
        if engine is not None:
            hull_system = hull_scale = None
            try:
                references, hull_system, hull_scale = reference_hull(engine, ranked)
            except (MatloopError, ValueError) as exc:  # the report goes on without the figure
                hull_note = f"The hull figure has no reference phases: {exc}"
            methods.update({"hull_chemical_system": hull_system, "hull_energy_scale": hull_scale,
                            "references": reference_scope(engine)})
        limitations = [f"The question was not answered exactly as asked: {q.message}; "
                       f"assumed: {q.assumption}." for q in (objective.problems if objective
                                                             else [])]
        limitations += LIMITATIONS
        if objective is not None:
            for t in objective.property_targets:
                evaluated = any(t.name in k for c in candidates for k in c.properties)
                if not evaluated and t.name not in ("e_above_hull", "formation_energy"):
                    limitations.append(f"{t.describe()} was not evaluated: no model for "
                                       f"{t.name} was available to this run (train one with "
                                       f"`matloop models train {t.name} --data FILE`).")
        if not state.get("evidence"):
            limitations.append("No literature evidence was retrieved (the knowledge base had "
                               "nothing relevant to the searches); ingest papers or synthesis "
                               "recipes with `matloop ingest`.")
        if hull_note:
            limitations.append(hull_note)
        notes = list(dict.fromkeys(state.get("notes", [])))
        fallbacks = [n for n in notes if n.startswith(FALLBACK_NOTE)]
        limitations = fallbacks + limitations + [n for n in notes if n not in fallbacks and
                                                 n not in limitations]
        top = distinct(ranked)[:3]
        next_steps = [f"DFT-relax {c.formula} ({c.id}) and recompute its energy above the hull "
                      f"against Materials Project references" for c in top]
        next_steps += plan.beyond_tools if plan else []
        roles = services.models if services is not None else {}
        report = DiscoveryReport(
            campaign_id=state.get("campaign_id", ""), status=status,
            created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            query=state.get("query", ""), summary=self.summary(objective, ranked, status),
            objective=objective, hypotheses=hypotheses,
            critiques=list(state.get("critiques", [])),
            plan=plan, methods=methods, reference_phases=references,
            candidates=ranked, evidence=evidence, synthesis=synthesis,
            limitations=limitations, negative_results=negative, next_steps=next_steps,
            usage=usage,
            authorship={"summary": self.author, "report": self.author,
                        "next_steps": self.author, "limitations": self.author,
                        **({"roles": json.dumps(roles)} if roles else {}),
                        **({"fallback": " ".join(fallbacks)} if fallbacks else {})},
        )
        return ReportBuild(report, records)


def outcome_status(state: dict[str, Any]) -> str:
    """How the campaign ended, never ``completed`` when nothing was evaluated.

    A status set on the way (``budget_exhausted: ...``, ``failed: <node>: <why>``) stands.
    Otherwise: ``objective_met`` (the scientist says so and an evaluated candidate meets every
    target), ``completed`` (candidates were evaluated), ``failed: execute: assistant: every
    plan step failed ...`` (steps ran and none succeeded) or ``no_results: <why>`` (nothing
    was evaluated: no hypothesis approved, no candidate generated...).
    """
    if state.get("status"):
        return str(state["status"])
    candidates = [c for c in state.get("candidates", []) if c.status == "ok"]
    decision = state.get("decision")
    if candidates:
        met = decision is not None and decision.objective_met and any(
            c.meets_objective for c in candidates)
        return "objective_met" if met else "completed"
    steps = list((state.get("step_outputs") or {}).values())
    if steps and all(r.status in ("error", "timeout") for r in steps):
        return (f"failed: execute: assistant: every plan step failed ({len(steps)} of "
                f"{len(steps)}; last: {steps[-1].summary[:160]})")
    notes = [n for n in state.get("notes", []) if not n.startswith(FALLBACK_NOTE)]
    return "no_results: " + (notes[-1] if notes else "no candidate was evaluated")


def reference_hull(engine: Any, ranked: list[CandidateResult],
                   ) -> tuple[list[ReferencePoint], str | None, str | None]:
    """Reference phases of the hull the best candidate was placed on, on its energy scale.

    MLIP scale: the references relaxed with the run's MLIP (from the evaluation cache: the
    candidates' stability checks relaxed them). MP2020 scale: the store's DFT formation
    energies. Returns the points, the chemical system and the scale name.
    """
    usable = [c for c in ranked if c.status == "ok" and c.energy_scale]
    if not usable:
        return [], None, None
    best = usable[0]
    elements = best.chemical_system.split("-")
    entries, sources = [], []
    if (best.energy_scale or "").startswith("mlip"):
        phases, energies, _ = engine.mlip_references(elements)
        for phase, energy in zip(phases, energies, strict=True):
            comp = phase.composition
            entries.append(PDEntry(comp, energy * comp.num_atoms, name=comp.reduced_formula))
            sources.append((phase.source, (phase.meta or {}).get("material_id")))
    else:
        for el in elements:
            entries.append(PDEntry(Composition(el), 0.0, name=el))
            ref = next(iter(engine.store.phases([el], energy_kind="total",
                                                energy_scale="mp2020")), None)
            sources.append(("element", (ref.meta or {}).get("mp_id") if ref else None))
        for phase in engine.store.phases(elements, energy_kind="formation",
                                         energy_scale="mp2020"):
            if phase.energy_ev_per_atom is not None:
                comp = phase.composition
                entries.append(PDEntry(comp, phase.energy_ev_per_atom * comp.num_atoms,
                                       name=comp.reduced_formula))
                meta = phase.meta or {}
                sources.append((phase.source, meta.get("mp_id") or meta.get("material_id")))
    if not entries:
        return [], best.chemical_system, best.energy_scale
    with quiet_third_party():
        try:
            pd = PhaseDiagram(entries)
        except ValueError:  # an element without a reference: no hull to draw
            return [], best.chemical_system, best.energy_scale
        points = [ReferencePoint(
            formula=e.composition.reduced_formula,
            formation_energy_ev_per_atom=float(pd.get_form_energy_per_atom(e)),
            e_above_hull_ev_per_atom=float(pd.get_e_above_hull(e) or 0.0), source=src,
            mp_id=mp_id)
            for e, (src, mp_id) in zip(entries, sources, strict=True)]
    return points, best.chemical_system, best.energy_scale


def reference_scope(engine: Any) -> str:
    """What hulls and novelty labels were checked against, in one line."""
    store = engine.store
    parts = []
    pack = store.shipped_set()
    if pack is not None:
        parts.append(pack.describe())
    own = [r for r in store.status() if "shipped" not in r["source"]]
    if own:
        parts.append("local store: " + ", ".join(
            f"{r['phases']} {r['source']}" + (" structures" if r["with_structure"] else "")
            for r in own))
    held = store.held_out()
    if held:
        parts.append(f"{len(held)} formula(s) held out")
    return "; ".join(parts) or "no references"


class ReportNarrative(BaseModel):
    """The narrative parts of a discovery report. Tables and numbers are not written here."""

    discussion: str = Field(description="What the results mean for the objective: which "
                                         "hypotheses held, how reliable the numbers are, what "
                                         "was not evaluated. Copy numbers exactly.")
    summary: str = Field(description="One paragraph for a materials scientist: what was found, "
                                     "best candidates with their numbers, campaign status.")
    next_steps: list[str] = Field(default_factory=list,
                                  description="Up to four concrete follow-ups beyond the DFT "
                                              "validation and synthesis steps already listed.")


def known_facts(report: DiscoveryReport, state: dict[str, Any]) -> KnownFacts:
    """Numbers and citations the narrative may use: everything the run computed or retrieved
    (tool results, candidates, usage, settings, evidence) and counts derived from it."""
    data = report.model_dump(mode="json", exclude={"summary", "discussion", "removed_claims",
                                                   "next_steps", "authorship"})
    records = [r.model_dump(mode="json") for r in state.get("tool_records", [])]
    evidence = [e.model_dump(mode="json") for e in state.get("evidence", [])]
    history = [h.model_dump(mode="json") for h in state.get("history", [])]
    usage = state.get("usage")
    numbers = numbers_in(data)
    numbers += numbers_in([r.get("result") for r in records])
    numbers += numbers_in([history, usage.model_dump() if usage is not None else {}, evidence,
                           report.next_steps])
    ok = [c for c in report.candidates if c.status == "ok"]
    counts = [len(report.candidates), len(ok), sum(bool(c.is_stable) for c in ok),
              sum(bool(c.meets_objective) for c in ok), len({c.formula for c in ok}),
              len(report.hypotheses), len(report.evidence), len(report.synthesis),
              len(report.critiques), len(report.reference_phases)]
    counts += [sum(h.status == s for h in report.hypotheses) for s in
               ("supported", "refuted", "rejected", "approved")]
    counts += [sum(c.formula == f for c in ok) for f in {c.formula for c in ok}]
    dois = {e.get("doi") for e in evidence if e.get("doi")}
    dois |= {e.doi for e in report.evidence if e.doi} | {s.doi for s in report.synthesis
                                                         if s.doi}
    ids = {e.get("id") for e in evidence} | {e.id for e in report.evidence}
    return KnownFacts(numbers=numbers + [float(c) for c in counts], dois=dois,
                      evidence_ids={i for i in ids if i})


def facts_for_prompt(report: DiscoveryReport, state: dict[str, Any]) -> str:
    """The reporter's task prompt: the run's results, quoted exactly."""
    verdicts = "\n".join(f"{v.hypothesis_id}: {'approved' if v.approved else 'rejected'} — "
                         f"{v.reasoning}" for c in report.critiques for v in c.verdicts)
    refs = "\n".join(f"{r.formula}: formation {r.formation_energy_ev_per_atom:.3f} eV/atom, "
                     f"e_above_hull {r.e_above_hull_ev_per_atom:.3f} eV/atom"
                     + (f" ({r.mp_id})" if r.mp_id else "") for r in report.reference_phases)
    evidence = [e.model_dump() for e in state.get("evidence", [])]
    return prompts.task(
        "reporter.narrative", query=report.query, status=report.status,
        objective=report.objective.model_dump_json() if report.objective else "-",
        hypotheses="\n".join(f"{h.id} [{h.status}] {h.chemical_system}: {h.statement}"
                             for h in report.hypotheses) or "(none)",
        verdicts=verdicts or "(none)", candidates=candidate_table(report.candidates),
        hull_scale=report.methods.get("hull_energy_scale"), references=refs or "(none)",
        synthesis=format_analogs_for_prompt(report.synthesis) if report.synthesis else "(none)",
        evidence=evidence_block(evidence), limitations="\n".join(report.limitations),
        next_steps="\n".join(report.next_steps), usage=report.usage.model_dump_json())


class LLMReporter:
    """Reporter whose narrative (summary, discussion, extra next steps) is written by a chat
    model and checked against the run's results before it is kept.

    Tables, numbers, cards and inputs come from :class:`OfflineReporter`. A sentence with a
    number or citation the run does not hold is removed and listed in ``removed_claims``. A
    model that gives no valid answer (or cannot be reached) raises
    :class:`~matloop.agents.llm.LLMCallError`; the report node then writes the offline report
    with a ``failed: report: ...`` status, or with the offline reporter's narrative and a
    fallback note when the run allows it.
    """

    def __init__(self, client: LLMClient, *, offline: OfflineReporter | None = None) -> None:
        self.client = client
        self.offline = offline or OfflineReporter()

    @property
    def author(self) -> str:
        """Authorship label of the model's parts."""
        return f"llm:{self.client.label}"

    def build(self, state: dict[str, Any], services: ReportServices | None) -> ReportBuild:
        """The offline report with the checked narrative."""
        built = self.offline.build(state, services)
        return ReportBuild(self.narrate(built.report, state,
                                        prices=services.prices if services else None),
                           built.tool_records)

    def narrate(self, report: DiscoveryReport, state: dict[str, Any], *,
                prices: Any = None) -> DiscoveryReport:
        """The report with the model's narrative, grounded; usage includes the model calls
        (and their cost when a price table is given)."""
        first = len(self.client.records)
        authorship = dict(report.authorship)
        removed = list(report.removed_claims)
        update: dict[str, Any] = {}
        # A failed call (no valid answer, server down...) raises LLMCallError: the report
        # node then writes the offline report with a failed status, or hands the role to the
        # offline reporter when the run allows a fallback.
        answer = self.client.structured(ReportNarrative, prompts.system("reporter"),
                                        facts_for_prompt(report, state), role="reporter")
        if answer is not None:
            facts = known_facts(report, state)
            summary, cut = check_text(answer.summary, facts, part="summary")
            removed += cut
            if summary.strip():
                update["summary"] = summary
                authorship["summary"] = self.author
            else:
                removed.append(RemovedClaim(part="summary", text="(empty after the check)",
                                            reason="no grounded sentence left; the offline "
                                                   "summary is kept"))
            discussion, cut = check_text(answer.discussion, facts, part="discussion")
            removed += cut
            if discussion.strip():
                update["discussion"] = discussion
                authorship["discussion"] = self.author
            steps, cut = check_items(answer.next_steps[:4], facts, part="next_steps")
            removed += cut
            if steps:
                update["next_steps"] = report.next_steps + steps
                authorship["next_steps"] = f"offline + {self.author}"
        update.update({"authorship": authorship, "removed_claims": removed,
                       "usage": usage_with(report.usage, self.client.records[first:], prices)})
        return report.model_copy(update=update)


def usage_with(usage: Usage, records: list[Any], prices: Any = None) -> Usage:
    """Usage plus some LLM calls (and their cost when a price table is given)."""
    out = usage.model_copy()
    for rec in records:
        out.llm_calls += 1
        out.input_tokens += rec.input_tokens
        out.output_tokens += rec.output_tokens
        cost = prices.cost_usd(rec.model, rec.input_tokens, rec.output_tokens) if prices \
            else None
        out.cost_usd = round(out.cost_usd + (cost or 0.0), 6)
    return out


def make_reporter(client: LLMClient | None) -> OfflineReporter | LLMReporter:
    """The LLM reporter (narrative checked, tables offline) when the role has a model."""
    return LLMReporter(client) if client is not None else OfflineReporter()

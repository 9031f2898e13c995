"""The reporter: turns the campaign state into a :class:`DiscoveryReport`.

Every number in the report is copied from tool results held in state (candidates carry the
ids of the tool calls behind them); every citation is an evidence id retrieved in this run.
The offline reporter writes the narrative from templates; an LLM reporter (see
``matloop.agents.llm_policies``) may write the summary, which is then checked against the
results before it is kept.
"""

from __future__ import annotations

import json
import time
from typing import Any

from matloop.schemas import (
    CandidateResult,
    Critique,
    DiscoveryReport,
    EvidenceRef,
    Hypothesis,
    Objective,
    Plan,
    SynthesisSuggestion,
    Usage,
)

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
    """Best first: meets the objective, then objective score, then hull distance."""
    def key(c: CandidateResult) -> tuple:
        usable = c.status == "ok" and c.e_above_hull_ev_per_atom is not None
        return (not usable, c.meets_objective is not True,
                -(c.objective_score if c.objective_score is not None else -1e9),
                c.e_above_hull_ev_per_atom if c.e_above_hull_ev_per_atom is not None else 1e9,
                c.id)
    return sorted(candidates, key=key)


class OfflineReporter:
    """Template-written report; adds synthesis analogues for the top candidates when the
    knowledge base offers them."""

    author = "offline"

    def __init__(self, *, top_k: int = 10, synthesis_for: int = 3) -> None:
        self.top_k = top_k
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

    def synthesis(self, ranked: list[CandidateResult], ctx: Any) -> tuple[list[
            SynthesisSuggestion], list[dict[str, Any]]]:
        """Synthesis suggestions from find_synthesis_analogs (recorded as tool calls)."""
        tool = ctx.tools.get("find_synthesis_analogs") if ctx is not None else None
        out: list[SynthesisSuggestion] = []
        records: list[dict[str, Any]] = []
        if tool is None:
            return out, records
        from matloop.agents.assistant import ToolRunner

        runner = ToolRunner(ctx.tools, timeout_s=120)
        for i, c in enumerate([c for c in ranked if c.status == "ok"][: self.synthesis_for]):
            rec = runner.call("find_synthesis_analogs", {"formula": c.formula, "k": 2},
                              step_id=None, iteration=-1, record_id=f"R-syn-{i}")
            ctx.events.write("tool_call", record_id=rec.id, tool=rec.tool,
                             arguments=rec.arguments, status=rec.status, summary=rec.summary,
                             duration_s=round(rec.duration_s, 3))
            records.append(rec.model_dump(mode="json"))
            result = rec.result if isinstance(rec.result, dict) else {}
            for analog in (result.get("analogs") or [])[:2]:
                atmosphere = analog.get("atmosphere") or []
                out.append(SynthesisSuggestion(
                    candidate_id=c.id, analog_formula=str(analog.get("analog_formula")),
                    precursors=list(analog.get("precursors") or []),
                    temperatures=[str(t) for t in analog.get("temperatures") or []],
                    atmosphere=[atmosphere] if isinstance(atmosphere, str) else
                    [str(a) for a in atmosphere],
                    doi=analog.get("doi"), similarity=analog.get("similarity")))
        return out, records

    def write(self, state: dict[str, Any], ctx: Any) -> DiscoveryReport:
        """Build the report from state and write report.json into the run directory."""
        objective = Objective.model_validate(state["objective"]) if state.get(
            "objective") else None
        candidates = [CandidateResult.model_validate(c) for c in state.get("candidates", [])]
        ranked = rank(candidates)
        status = state.get("status") or (
            "objective_met" if (state.get("decision") or {}).get("objective_met") else
            "completed")
        hypotheses = [Hypothesis.model_validate(h) for h in state.get("hypotheses", [])]
        cited = {e for h in hypotheses for e in h.evidence_ids}
        evidence = [EvidenceRef.model_validate({k: e.get(k) for k in EvidenceRef.model_fields
                                                if k in e})
                    for e in state.get("evidence", [])
                    if e.get("id") in cited or len(cited) == 0]
        synthesis, _ = self.synthesis(ranked, ctx)
        usage = Usage.model_validate(state.get("usage") or {})
        negative = [f"{h.id} ({h.chemical_system}): {h.statement} — refuted: no evaluated "
                    f"candidate within the stability threshold"
                    for h in hypotheses if h.status == "refuted"]
        negative += [f"{h.id} rejected by the critic: " + "; ".join(
            v["reasoning"] for c in state.get("critiques", []) for v in c.get("verdicts", [])
            if v.get("hypothesis_id") == h.id and not v.get("approved"))
            for h in hypotheses if h.status == "rejected"]
        plan = Plan.model_validate(state["plan"]) if state.get("plan") else None
        limitations = list(LIMITATIONS)
        if objective is not None:
            for t in objective.property_targets:
                if not any(t.name in k for c in candidates for k in c.properties) and t.name not in (
                        "e_above_hull", "formation_energy"):
                    limitations.append(f"{t.describe()} was not evaluated: no model for "
                                       f"{t.name} was available to this run (train one with "
                                       f"`matloop models train {t.name} --data FILE`).")
        if not state.get("evidence"):
            limitations.append("No literature evidence was retrieved (the knowledge base is "
                               "empty or had nothing relevant); ingest papers or synthesis "
                               "recipes with `matloop ingest`.")
        top = [c for c in ranked if c.status == "ok"][:3]
        next_steps = [f"DFT-relax {c.formula} ({c.id}) and recompute its energy above the hull "
                      f"against Materials Project references" for c in top]
        next_steps += plan.beyond_tools if plan else []
        report = DiscoveryReport(
            campaign_id=state.get("campaign_id", ""), status=status,
            created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            query=state.get("query", ""), summary=self.summary(objective, ranked, status),
            objective=objective, hypotheses=hypotheses,
            critiques=[Critique.model_validate(c) for c in state.get("critiques", [])],
            plan=plan, methods=getattr(ctx, "methods", {}) if ctx is not None else {},
            candidates=ranked[: max(self.top_k, len(ranked))], evidence=evidence,
            synthesis=synthesis, limitations=limitations, negative_results=negative,
            next_steps=next_steps, usage=usage,
            authorship={"summary": self.author, "report": self.author,
                        **({"roles": json.dumps(ctx.models)} if ctx is not None else {})},
        )
        if ctx is not None:
            ctx.run_dir.mkdir(parents=True, exist_ok=True)
            (ctx.run_dir / "report.json").write_text(report.model_dump_json(indent=2))
        return report

"""What each role does, as typed interfaces, and the text helpers the LLM policies share.

Every role has an offline policy (deterministic rules, no LLM) and an LLM policy in its own
module (:mod:`scientist`, :mod:`critic`, :mod:`planner`, :mod:`assistant`, :mod:`reporter`);
the graph sees only these protocols. Changing how a role decides means changing its module and
its prompts (:mod:`matloop.prompts`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from matloop.runtime import EventLog
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
from matloop.tools.base import Toolbox
from matloop.tools.runner import ToolRunner

OFFLINE = "offline"


@runtime_checkable
class Scientist(Protocol):
    """Reads the question, proposes hypotheses, judges results."""

    def interpret(self, query: str) -> Objective:
        """The objective the question asks for."""

    def propose(self, objective: Objective, *, iteration: int, prior: list[Hypothesis],
                candidates: list[CandidateResult], evidence: list[dict[str, Any]],
                feedback: list[str]) -> list[Hypothesis]:
        """New hypotheses for this iteration (``feedback``: the critic's last issues)."""

    def review_results(self, objective: Objective, hypotheses: list[Hypothesis],
                       candidates: list[CandidateResult], *, iteration: int,
                       previous_best: float | None, max_iterations: int,
                       remaining_evaluations: int | None = None) -> ExpansionDecision:
        """Which hypotheses held, and whether to go on."""


@runtime_checkable
class Critic(Protocol):
    """Reviews hypotheses and plans before computing time is spent."""

    def review_hypotheses(self, objective: Objective, hypotheses: list[Hypothesis],
                          prior: list[Hypothesis], *, remaining_evaluations: int | None,
                          ) -> Critique:
        """A verdict per hypothesis and an overall one."""

    def review_plan(self, plan: Plan, *, tool_names: set[str],
                    remaining_evaluations: int | None) -> Critique:
        """Whether the plan may run as it is."""


@runtime_checkable
class Planner(Protocol):
    """Turns approved hypotheses into tool calls."""

    def make_plan(self, objective: Objective, hypotheses: list[Hypothesis], *,
                  remaining_evaluations: int | None, tools: Toolbox, property_models: set[str],
                  seed: int, feedback: list[str]) -> Plan:
        """A plan within the evaluation budget (``feedback``: what the critic or the user
        asked to change in the last plan)."""


@runtime_checkable
class Assistant(Protocol):
    """Runs one plan step with the tools."""

    def execute(self, step: PlanStep, arguments: dict[str, Any], *, runner: ToolRunner,
                iteration: int, record_base: str) -> tuple[list[ToolRecord], ToolRecord]:
        """Every call's record, and the one standing for the step's result."""


class ReportServices(Protocol):
    """What the reporter reads besides the state."""

    tools: Toolbox
    events: EventLog
    run_dir: Path
    models: dict[str, str]
    methods: dict[str, Any]
    engine: Any
    prices: Any

    def runner(self, *, timeout_s: float | None = None) -> ToolRunner:
        """A tool runner (synthesis analogues are recorded tool calls)."""


@runtime_checkable
class Reporter(Protocol):
    """Turns the finished (or stopped) campaign into a report."""

    author: str

    def build(self, state: dict[str, Any], services: ReportServices | None) -> Any:
        """The report and the tool calls made for it (``ReportBuild``); nothing is written to
        disk here."""


# -- text the LLM policies share ---------------------------------------------------------------


def candidate_table(candidates: list[CandidateResult], limit: int = 15) -> str:
    """The best candidates as compact JSON lines (numbers exactly as computed)."""
    rows = sorted([c for c in candidates if c.status == "ok"],
                  key=lambda c: (c.e_above_hull_ev_per_atom if c.e_above_hull_ev_per_atom
                                 is not None else 9.0))[:limit]
    return "\n".join(json.dumps({
        "id": c.id, "formula": c.formula, "hypothesis": c.hypothesis_id, "method": c.method,
        "e_above_hull_ev_per_atom": c.e_above_hull_ev_per_atom,
        "formation_energy_ev_per_atom": c.formation_energy_ev_per_atom,
        "is_stable": c.is_stable, "properties": c.properties, "novelty": c.novelty,
        "flags": c.flags, "objective_score": c.objective_score}) for c in rows) or \
        "(no evaluated candidates)"


def evidence_block(evidence: list[dict[str, Any]]) -> str:
    """Evidence passages, delimited and escaped, for a prompt."""
    if not evidence:
        return "(no evidence retrieved)"
    from matloop.knowledge.evidence import Evidence, format_evidence_for_prompt

    passages = [Evidence.model_validate({k: e[k] for k in Evidence.model_fields if k in e})
                for e in evidence[:12]]
    return format_evidence_for_prompt(passages)


def hypothesis_lines(hypotheses: list[Hypothesis], *, with_status: bool = True) -> str:
    """One line per hypothesis: id, status, system, statement."""
    return "\n".join(f"{h.id}{f' [{h.status}]' if with_status else ''} {h.chemical_system}: "
                     f"{h.statement}" for h in hypotheses) or "(none)"

"""The offline chat assistant: understands a message (:func:`understand`), calls the tools
that answer it, and writes an answer from their typed results with its sources.

No number in an answer is written by hand: each comes from a tool result, and the answer
names the tool call, the mp-id, the DOI or the evidence id behind it. A question the tools
cannot answer is answered with what is missing, never with a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from matloop.agents.chat.intents import understand
from matloop.agents.chat.models import ConversationContext, Understanding

HELP = ("I can tell whether a compound is stable against the Materials Project (\"is NaCl "
        "stable?\"), list the known phases of a chemical system (\"which phases are known in "
        "Li-Fe-O?\"), give formation energies and band gaps (\"band gap of GaN\"), compare "
        "compounds, find synthesis routes with DOIs (\"how is LiFePO4 made?\"), relax a "
        "structure you upload or paste (CIF or POSCAR), search the literature, start a "
        "discovery campaign (\"suggest Pb-free halide perovskites\") and answer questions "
        "about a campaign's results.")


@dataclass
class ToolCall:
    """One call the answer needs: the tool, its arguments, and what the answer is about."""

    tool: str
    arguments: dict[str, Any]
    subject: str = ""


@dataclass
class ChatTurn:
    """A message understood, the calls that answer it, and how to write the answer."""

    understanding: Understanding
    calls: list[ToolCall] = field(default_factory=list)
    direct: str | None = None  # an answer that needs no tool (help, what is missing)


def _system_of(formula: str) -> str:
    from pymatgen.core import Composition

    return "-".join(sorted(el.symbol for el in Composition(formula).elements))


def plan_turn(text: str, context: ConversationContext | None = None, *,
              uploaded: str | None = None, tools: set[str] | None = None) -> ChatTurn:
    """Read a message and choose the tool calls that answer it."""
    u = understand(text, context=context, uploaded=uploaded)
    ent = u.entities
    have = tools if tools is not None else set()
    turn = ChatTurn(u)
    if ent.unknown_symbols and not ent.formulas and not ent.chemical_systems:
        verb = "is not a chemical element" if len(ent.unknown_symbols) == 1 else \
            "are not chemical elements"
        turn.direct = (f"{', '.join(ent.unknown_symbols)} {verb}; check the symbols (e.g. Co for "
                       f"cobalt, not CO).")
        return turn
    if u.intent in ("help", "unknown"):
        turn.direct = ("I could not tell what you want to know" +
                       (f" ({'; '.join(u.missing)})" if u.missing else "") + ". " + HELP)
        return turn
    if u.missing and u.intent not in ("campaign", "literature"):
        turn.direct = f"To answer that I need {'; '.join(u.missing)}."
        if u.intent == "relax" and ent.paths:
            turn.direct += (" Files typed as paths are not read: upload the file, or paste its "
                            "CIF or POSCAR text.")
        return turn
    props = u.property_names()
    structure = ent.structure.text if ent.structure is not None and not ent.structure.problem \
        else None
    if u.intent == "relax" or (u.intent == "stability" and structure and not ent.formulas):
        turn.calls.append(ToolCall("relax_structure", {"structure": structure},
                                   ent.structure.formula or "the structure"
                                   if ent.structure else "the structure"))
    elif u.intent in ("stability", "property", "compare"):
        for formula in ent.formulas[:4]:
            turn.calls.append(ToolCall("lookup_known_phases",
                                       {"chemsys": _system_of(formula), "limit": 500}, formula))
            for prop in props:
                if prop == "band_gap" and "predict_property" in have:
                    turn.calls.append(ToolCall("predict_property",
                                               {"property": "band_gap", "formula": formula},
                                               formula))
    elif u.intent == "known_phases":
        systems = ent.chemical_systems or [_system_of(f) for f in ent.formulas[:1]]
        for system in systems[:2]:
            turn.calls.append(ToolCall("lookup_known_phases", {"chemsys": system, "limit": 500},
                                       system))
    elif u.intent == "synthesis":
        for formula in ent.formulas[:2]:
            turn.calls.append(ToolCall("find_synthesis_analogs", {"formula": formula, "k": 4},
                                       formula))
        turn.calls.append(ToolCall("search_literature", {"query": text[:900], "k": 4}))
    elif u.intent == "campaign":
        turn.calls.append(ToolCall("start_campaign", {"query": text[:1900]}))
    elif u.intent == "run_question":
        turn.calls.append(ToolCall("read_campaign", {"run_id": ent.run_id or "",
                                                      "question": text[:900]}))
    elif u.intent == "literature":
        turn.calls.append(ToolCall("search_literature", {"query": text[:900], "k": 5}))
    turn.calls = [c for c in turn.calls if c.tool in have] if tools is not None else turn.calls
    if not turn.calls:
        turn.direct = ("The tools that answer this are not available in this session. " + HELP)
    return turn


# -- writing answers from typed results ---------------------------------------------------------


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _phases_answer(result: Any, formula: str | None, props: list[str], intent: str) -> str:
    rows = result.phases
    if formula is None:
        stable = [p for p in rows if p.e_above_hull_ev_per_atom is not None and
                  p.e_above_hull_ev_per_atom <= 1e-6 and len(_elements(p.formula)) > 1]
        near = [p for p in rows if p.e_above_hull_ev_per_atom is not None and
                1e-6 < p.e_above_hull_ev_per_atom <= 0.05 and len(_elements(p.formula)) > 1]
        names = ", ".join(f"{p.formula}" + (f" ({p.mp_id})" if p.mp_id else "") for p in stable)
        text = (f"{result.total} known phases in {result.chemsys} (subsystems included); "
                f"{len(stable)} compounds lie on the hull: {names or 'none'}.")
        if near:
            text += (" Within 0.05 eV/atom of it: " + ", ".join(
                f"{p.formula} ({_fmt(p.e_above_hull_ev_per_atom)} eV/atom)" for p in near[:10])
                + ".")
        return text
    mine = [p for p in rows if p.formula == formula and p.energy_kind == "formation"]
    if not mine:
        return (f"{formula}: the Materials Project references do not list this composition, "
                f"so its stability is not known; upload a structure to relax it, or start a "
                f"campaign to search for one.")
    best = min(mine, key=lambda p: p.energy_ev_per_atom or 0.0)
    e_hull = best.e_above_hull_ev_per_atom
    ref = best.mp_id or (f"{best.source}:{best.source_id}" if not best.source.startswith(
        "mp-pack") else "Materials Project data, no mp-id shipped for it")
    verdict = ("stable (on the hull)" if e_hull is not None and e_hull <= 1e-6 else
               f"not stable: {_fmt(e_hull)} eV/atom above the hull" if e_hull is not None
               else "of unknown stability")
    parts = [f"{formula} is {verdict} against the Materials Project ({ref}; hull of "
             f"{result.total} phases of {result.chemsys}, DFT formation energies on the "
             f"MP2020 scale)"]
    if "formation_energy" in props or intent in ("property", "compare"):
        parts.append(f"formation energy {_fmt(best.energy_ev_per_atom)} eV/atom ({ref}, "
                     f"{best.energy_scale})")
    return "; ".join(parts) + "."


def _elements(formula: str) -> list[str]:
    import re

    return sorted(set(re.findall(r"[A-Z][a-z]?", formula)))


def _property_answer(result: Any, formula: str) -> str:
    if result.status == "no_model":
        return (f"{formula}: no model for {result.property} is available here ({result.message})"
                f"; I will not guess a value.")
    if result.status == "error":
        return f"{formula}: {result.property} could not be predicted: {result.message}"
    band = f" ± {result.uncertainty}" if result.uncertainty is not None else ""
    domain = "" if result.in_domain in (None, True) else " (outside the model's training " \
                                                         "domain: a rough guess)"
    return (f"{formula}: {result.property} = {result.value}{band} {result.unit or ''} "
            f"(source: {result.source}){domain}.")


def _relax_answer(result: Any) -> str:
    if result.status == "error":
        return f"The relaxation gave no result: {result.message}"
    text = (f"{result.formula} relaxed with {result.mlip} {result.mlip_model}: "
            f"{_fmt(result.energy_per_atom_ev, '.4f')} eV/atom")
    if result.e_above_hull_ev_per_atom is not None:
        text += (f"; formation energy {_fmt(result.formation_energy_ev_per_atom)} eV/atom, "
                 f"{result.e_above_hull_ev_per_atom:+.3f} eV/atom above the hull "
                 f"({'stable' if result.is_stable else 'not stable'} at the threshold; "
                 f"hull: {result.reference_set or result.energy_scale})")
    elif result.stability_error:
        text += f"; stability not assessed: {result.stability_error}"
    for flag in result.flags:
        text += f". Note: {flag}"
    return text + "."


def _analogs_answer(result: Any) -> str:
    if not result.analogs:
        return f"No known synthesis of {result.formula} or a similar composition was found."
    lines = [f"Known syntheses of {result.formula} or similar compositions:"]
    for a in result.analogs:
        cond = ", ".join(a.temperatures[:3]) or "temperatures not reported"
        lines.append(f"- {a.analog_formula} (similarity {a.similarity:.2f}): from "
                     f"{', '.join(a.precursors) or 'precursors not reported'}; {cond}"
                     + (f"; {', '.join(a.atmosphere)}" if a.atmosphere else "")
                     + (f" (doi:{a.doi}, {a.evidence_id})" if a.doi else
                        f" ({a.evidence_id})"))
    return "\n".join(lines)


def _search_answer(result: Any) -> str:
    if not result.results:
        return result.note or "Nothing relevant in the knowledge base."
    return "From the literature (quoted data; cite by id):\n" + "\n".join(
        f"- [{p.id}] {p.title}" + (f" (doi:{p.doi})" if p.doi else "") + f": {p.snippet[:200]}"
        for p in result.results)


def write_answer(turn: ChatTurn, results: list[tuple[ToolCall, Any]]) -> str:
    """The answer to a planned turn from its tool results (typed), with sources."""
    if turn.direct is not None:
        return turn.direct
    u = turn.understanding
    props = u.property_names()
    parts: list[str] = []
    for call, result in results:
        if result is None:
            parts.append(f"{call.tool} gave no result.")
        elif result.status == "error" and call.tool not in ("relax_structure",
                                                             "predict_property"):
            parts.append(f"{call.tool} could not answer: {result.message}")
        elif call.tool == "lookup_known_phases":
            formula = call.subject if u.intent in ("stability", "property", "compare") else None
            parts.append(_phases_answer(result, formula, props, u.intent))
        elif call.tool == "predict_property":
            parts.append(_property_answer(result, call.subject))
        elif call.tool == "relax_structure":
            parts.append(_relax_answer(result))
        elif call.tool == "find_synthesis_analogs":
            parts.append(_analogs_answer(result))
        elif call.tool == "search_literature":
            parts.append(_search_answer(result))
        elif call.tool in ("start_campaign", "read_campaign"):
            parts.append(getattr(result, "answer", "") or result.model_dump_json())
    unsupported = u.entities.unsupported_properties
    if unsupported:
        parts.append(f"No tool here computes {', '.join(unsupported)}; the literature search "
                     f"may hold measured values.")
    sources = sorted({f"{call.tool}" for call, _ in results})
    return "\n\n".join(p for p in parts if p) + (f"\n\nSources: {', '.join(sources)} "
                                                 f"(tool calls of this turn)." if sources else "")

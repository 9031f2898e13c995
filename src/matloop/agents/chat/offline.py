"""The offline chat assistant: reads a message (:func:`understand`), chooses the tool calls that
answer it (:func:`plan_turn`), and writes the answer from their typed results
(:func:`matloop.agents.chat.answers.write_answer`).

Which tools answer which intent:

* stability of a formula: ``lookup_known_phases`` of its system (Materials Project formation
  energies, hull distances, mp-ids); of a structure: ``relax_structure`` (MLIP, then the hull);
* known phases: ``lookup_known_phases``;
* properties: formation energy and hull distance from ``lookup_known_phases``; band gap from
  ``lookup_band_gap`` (``predict_property`` when that tool is absent); density, lattice
  parameters, magnetic moment, bulk and shear moduli and hardness from
  ``structure_properties`` (an uploaded structure, or the shipped reference structure of the
  formula); energy per atom from ``relax_structure``;
* comparisons: the same per compound, answered as one table;
* synthesis: ``find_synthesis_analogs`` and ``search_literature``;
* relaxing: ``relax_structure``; campaigns: ``start_campaign`` / ``read_campaign``;
  literature: ``search_literature``.

No number is written here: the plan only names calls. A message that cannot be answered (a
missing compound, an unknown element, a path typed as text) gets a direct reply saying what
is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from matloop.agents.chat.chemistry import chemsys, elements_of
from matloop.agents.chat.intents import understand
from matloop.agents.chat.models import ConversationContext, StructureText, Understanding

HELP = ("I can tell whether a compound is stable against the Materials Project (\"is NaCl "
        "stable?\"), list the known phases of a chemical system (\"which phases are known in "
        "Li-Fe-O?\"), give formation energies, band gaps, densities, moduli and hardness "
        "(\"band gap of GaN\", \"bulk modulus of WC\"), compare compounds (\"GaN vs AlN\"), "
        "find synthesis routes with DOIs (\"how is LiFePO4 made?\"), relax a structure you "
        "upload or paste (CIF or POSCAR), search the literature, start a discovery campaign "
        "(\"suggest Pb-free halide perovskites\") and answer questions about a campaign's "
        "results (\"why was H2 rejected?\").")

#: Properties computed on a structure by structure_properties (chat name -> tool name).
STRUCTURE_PROPERTIES = {"density": "density", "lattice_parameter": "lattice_parameters",
                        "magnetic_moment": "magnetic_moment", "bulk_modulus": "bulk_modulus",
                        "shear_modulus": "shear_modulus", "hardness": "hardness"}
#: Properties a comparison shows when the question names none.
DEFAULT_COMPARED = ["e_above_hull", "formation_energy", "band_gap"]
#: Polymorph names of the reader -> prototype names of the shipped reference structures.
PROTOTYPES = {"zincblende": "zincblende", "wurtzite": "wurtzite", "rocksalt": "rocksalt",
              "rutile": "rutile", "anatase": "anatase", "diamond": "diamond",
              "graphite": "graphite", "cubic": "zincblende", "hexagonal": "hBN"}
MAX_COMPOUNDS = 6


@dataclass
class ToolCall:
    """One call the answer needs: the tool, its arguments, and what the answer is about."""

    tool: str
    arguments: dict[str, Any]
    subject: str = ""
    purpose: str = ""


@dataclass
class ChatTurn:
    """A message understood, the calls that answer it, and how to write the answer."""

    understanding: Understanding
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    direct: str | None = None  # an answer that needs no tool (help, what is missing)


def system_of(formula: str) -> str:
    """Chemical system of a formula, e.g. Fe-Li-O-P."""
    return chemsys(elements_of(formula))


def _structure_arg(structure: StructureText) -> str:
    return structure.path or structure.text


def _gap_call(formulas: list[str], have: set[str]) -> list[ToolCall]:
    if "lookup_band_gap" in have or not have:
        return [ToolCall("lookup_band_gap", {"formulas": formulas}, ", ".join(formulas),
                         "band gap")]
    return [ToolCall("predict_property", {"property": "band_gap", "formula": f}, f, "band gap")
            for f in formulas]


def _lookup(formulas: list[str], purpose: str) -> list[ToolCall]:
    """One lookup_known_phases call per system (compounds of one system share it)."""
    by_system: dict[str, list[str]] = {}
    for f in formulas:
        by_system.setdefault(system_of(f), []).append(f)
    return [ToolCall("lookup_known_phases", {"chemsys": s, "limit": 500}, ", ".join(fs),
                     purpose) for s, fs in by_system.items()]


def _prototype(u: Understanding) -> str | None:
    names = [PROTOTYPES[p] for p in u.entities.polymorphs if p in PROTOTYPES]
    return names[0] if len(names) == 1 else None


def _property_calls(u: Understanding, formulas: list[str], structure: StructureText | None,
                    props: list[str], have: set[str]) -> list[ToolCall]:
    calls: list[ToolCall] = []
    if structure is not None:
        arg = _structure_arg(structure)
        name = structure.formula or "the structure"
        if {"formation_energy", "e_above_hull", "energy_per_atom"} & set(props):
            calls.append(ToolCall("relax_structure", {"structure": arg}, name, "energies"))
        wanted = [STRUCTURE_PROPERTIES[p] for p in props if p in STRUCTURE_PROPERTIES]
        if wanted:
            calls.append(ToolCall("structure_properties", {"structure": arg,
                                                           "properties": wanted}, name,
                                  "structure properties"))
        if "band_gap" in props and structure.formula:
            calls += _gap_call([structure.formula], have)
        return calls
    if {"formation_energy", "e_above_hull"} & set(props):
        calls += _lookup(formulas, "formation energy")
    if "band_gap" in props:
        calls += _gap_call(formulas, have)
    wanted = [STRUCTURE_PROPERTIES[p] for p in props if p in STRUCTURE_PROPERTIES]
    if wanted:
        proto = _prototype(u)
        for f in formulas:
            args: dict[str, Any] = {"formula": f, "properties": wanted}
            if proto:
                args["prototype"] = proto
            calls.append(ToolCall("structure_properties", args, f, "structure properties"))
    return calls


def _needs_structure(u: Understanding) -> str | None:
    """A reply for questions only a structure can answer, when none was given."""
    props = u.property_names()
    if props == ["energy_per_atom"] and u.entities.structure is None:
        return ("The MLIP energy per atom needs a structure: upload a CIF or POSCAR file (or "
                "paste its text) and I will relax it.")
    return None


def plan_turn(text: str, context: ConversationContext | None = None, *,
              uploaded: str | None = None, upload_name: str | None = None,
              upload_path: str | None = None, tools: set[str] | None = None) -> ChatTurn:
    """Read a message and choose the tool calls that answer it.

    Args:
        text: The message.
        context: The conversation so far.
        uploaded: Text of a structure file sent with the message.
        upload_name: Its file name.
        upload_path: Where the server stored it (the tools read it from there).
        tools: Names of the tools available (None: assume all).
    """
    u = understand(text, context=context, uploaded=uploaded)
    ent = u.entities
    if uploaded and ent.structure is not None and ent.structure.text.strip() == \
            uploaded.strip():
        ent.structure.name = upload_name
        ent.structure.path = upload_path
    have = tools if tools is not None else set()
    turn = ChatTurn(u, text=text)
    if ent.unknown_symbols and not ent.formulas and not ent.chemical_systems:
        verb = "is not a chemical element" if len(ent.unknown_symbols) == 1 else \
            "are not chemical elements"
        turn.direct = (f"{', '.join(ent.unknown_symbols)} {verb}; check the symbols (e.g. Co for "
                       f"cobalt, not CO). Nothing was looked up.")
        return turn
    if u.intent in ("help", "unknown"):
        turn.direct = ("I could not tell what you want to know" +
                       (f" ({'; '.join(u.missing)})" if u.missing else "") + ". " + HELP) \
            if u.intent == "unknown" else HELP
        return turn
    if u.missing and u.intent not in ("campaign", "literature", "run_question"):
        turn.direct = f"To answer that I need {'; '.join(u.missing)}."
        if u.intent == "relax" and ent.paths:
            turn.direct += (" Files typed as paths are not read: upload the file, or paste its "
                            "CIF or POSCAR text.")
        return turn
    direct = _needs_structure(u)
    if direct:
        turn.direct = direct
        return turn
    turn.calls = _calls(u, text, have)
    turn.calls = [c for c in turn.calls if c.tool in have] if tools is not None else turn.calls
    if not turn.calls:
        turn.direct = ("The tools that answer this are not available in this session. " + HELP)
    return turn


def _calls(u: Understanding, text: str, have: set[str]) -> list[ToolCall]:
    ent = u.entities
    props = u.property_names()
    structure = ent.structure if ent.structure is not None and not ent.structure.problem \
        else None
    formulas = list(dict.fromkeys(ent.formulas))[:MAX_COMPOUNDS]
    if u.intent == "relax" or (u.intent == "stability" and structure and not formulas):
        assert structure is not None  # relax with nothing missing has a structure
        return [ToolCall("relax_structure", {"structure": _structure_arg(structure)},
                         structure.formula or "the structure", "relaxation")]
    if u.intent == "stability":
        return _lookup(formulas, "stability")
    if u.intent == "property":
        if structure is not None and not formulas:
            return _property_calls(u, [], structure, props, have)
        return _property_calls(u, formulas, None, props, have)
    if u.intent == "compare":
        compared = [p for p in props if p != "energy_per_atom"] or DEFAULT_COMPARED
        calls = _lookup(formulas, "compare")  # stability and formation energy always shown
        rest = [p for p in compared if p not in ("e_above_hull", "formation_energy")]
        return calls + _property_calls(u, formulas, None, rest, have)
    if u.intent == "known_phases":
        return [ToolCall("lookup_known_phases", {"chemsys": s, "limit": 500}, s, "known phases")
                for s in ent.chemical_systems[:2]]
    if u.intent == "synthesis":
        calls = [ToolCall("find_synthesis_analogs", {"formula": f, "k": 5}, f, "synthesis")
                 for f in formulas[:2]]
        query = f"synthesis of {', '.join(formulas[:2])}" if formulas else text[:900]
        return calls + [ToolCall("search_literature", {"query": query, "k": 4}, query,
                                 "synthesis literature")]
    if u.intent == "campaign":
        return [ToolCall("start_campaign", {"query": text[:1900]}, text[:80], "campaign")]
    if u.intent == "run_question":
        return [ToolCall("read_campaign", {"run_id": ent.run_id or "", "question": text[:900]},
                         ent.run_id or "the most recent campaign", "campaign question")]
    if u.intent == "literature":
        return [ToolCall("search_literature", {"query": text[:900], "k": 5}, text[:80],
                         "literature")]
    return []


__all__ = ["HELP", "ChatTurn", "ToolCall", "plan_turn", "system_of"]

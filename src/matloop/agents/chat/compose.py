"""Composing a whole answer from the parts of :mod:`matloop.agents.chat.answers`.

:func:`write_answer` is the offline assistant's answer to a planned turn; comparisons become
one table with a sentence per property. :func:`rich_parts` collects the tables, hull figures,
structures and sources of any tool results, for answers whose text a language model wrote.
"""

from __future__ import annotations

from typing import Any

from matloop.agents.chat.answers import (
    Part,
    analogs_part,
    band_gap_part,
    call_label,
    campaign_part,
    fmt,
    formation_energy_part,
    known_phases_part,
    phase_rows,
    predicted_property_part,
    relax_part,
    search_part,
    stability_part,
    structure_properties_part,
    verdict,
)
from matloop.agents.chat.hull import SystemPhases
from matloop.agents.chat.models import AnswerTable, ChatAnswer, Source
from matloop.agents.chat.offline import ChatTurn, ToolCall

#: Structure-property result fields shown in comparisons: chat name -> (field, label, unit).
_STRUCTURE_FIELDS = {
    "density": ("density_g_per_cm3", "density", "g/cm^3"),
    "lattice_parameter": ("lattice_a_angstrom", "lattice parameter a", "Å"),
    "magnetic_moment": ("magnetic_moment_bohr_per_formula_unit", "magnetic moment", "μB/f.u."),
    "bulk_modulus": ("bulk_modulus_gpa", "bulk modulus", "GPa"),
    "shear_modulus": ("shear_modulus_gpa", "shear modulus", "GPa"),
    "hardness": ("vickers_hardness_gpa", "Vickers hardness", "GPa"),
}


def _subjects(call: ToolCall) -> list[str]:
    return [s for s in call.subject.split(", ") if s]


def _error(call: ToolCall, result: Any) -> str:
    hint = f" ({result.hint})" if getattr(result, "hint", "") else ""
    return f"{call_label(call)} could not answer: {result.message}{hint}"


def _part(call: ToolCall, result: Any, props: list[str]) -> list[Part]:
    """The parts one tool result contributes to a non-comparison answer."""
    tool = call.tool
    if result is None:
        return [Part(text=f"{call_label(call)} gave no result.")]
    if result.status == "error" and tool not in ("relax_structure", "predict_property"):
        if tool == "structure_properties":
            what = call.subject or "it"
            return [Part(text=f"I could not compute that for {what}: {result.message}"
                         + (f"; {result.hint}" if result.hint else "") + ".")]
        return [Part(text=_error(call, result))]
    if tool == "lookup_known_phases":
        phases = SystemPhases.from_result(result)
        if call.purpose == "known phases":
            return [known_phases_part(phases)]
        parts = []
        formulas = _subjects(call)
        for f in formulas:
            if call.purpose == "formation energy" and "e_above_hull" not in props:
                parts.append(formation_energy_part(f, phases))
            else:
                parts.append(stability_part(f, phases, with_energy="formation_energy" in props))
        plot = phases.plot(highlight=formulas, source="Data: Materials Project (shipped).")
        extra = Part(tables=[phase_rows(phases, formulas)], plots=[plot] if plot else [],
                     campaign_query=f"new stable compounds in the {phases.system} system")
        return [*parts, extra]
    if tool == "lookup_band_gap":
        return [band_gap_part(result)]
    if tool == "predict_property":
        return [predicted_property_part(result, call.subject)]
    if tool == "structure_properties":
        return [structure_properties_part(result)]
    if tool == "relax_structure":
        return [relax_part(result)]
    if tool == "find_synthesis_analogs":
        return [analogs_part(result)]
    if tool == "search_literature":
        return [search_part(result)]
    if tool in ("start_campaign", "read_campaign"):
        return [campaign_part(result, tool)]
    return [Part(text=f"{call_label(call)}: {result.model_dump_json()[:500]}")]


def _compare(turn: ChatTurn, results: list[tuple[ToolCall, Any]]) -> list[Part]:
    """One table of the compounds compared, and a sentence per property."""
    u = turn.understanding
    formulas = list(dict.fromkeys(u.entities.formulas))
    props = [p for p in u.property_names() if p != "energy_per_atom"] or \
        ["e_above_hull", "formation_energy", "band_gap"]
    values: dict[str, dict[str, Any]] = {f: {} for f in formulas}
    problems: list[str] = []
    plots = []
    for call, result in results:
        if result is None or (result.status == "error" and call.tool != "predict_property"):
            problems.append(f"{call.subject}: {result.message if result else 'no result'}")
            continue
        if call.tool == "lookup_known_phases":
            phases = SystemPhases.from_result(result)
            mine = [f for f in _subjects(call) if f in values]
            for f in mine:
                row = phases.row(f)
                values[f]["phases"] = row
            plot = phases.plot(highlight=mine, source="Data: Materials Project (shipped).")
            if plot and len(mine) >= 2:
                plots.append(plot)
        elif call.tool == "lookup_band_gap":
            for r in result.rows:
                if r.formula in values:
                    values[r.formula]["band_gap"] = (r.band_gap_ev, r.basis)
        elif call.tool == "predict_property" and result.value is not None:
            values.setdefault(call.subject, {})["band_gap"] = (result.value, "model")
        elif call.tool == "structure_properties" and result.formula in values:
            values[result.formula]["structure"] = result
    columns = ["formula", "E above hull (eV/atom)", "formation energy (eV/atom)",
               "Materials Project id"]
    wanted_structure = [p for p in props if p in _STRUCTURE_FIELDS]
    if "band_gap" in props:
        columns += ["band gap (eV)", "band-gap basis"]
    columns += [f"{_STRUCTURE_FIELDS[p][1]} ({_STRUCTURE_FIELDS[p][2]})"
                for p in wanted_structure]
    rows = []
    for f in formulas:
        v = values[f]
        row = v.get("phases")
        line: list[Any] = [f, row.e_above_hull_ev_per_atom if row else None,
                           row.energy_ev_per_atom if row else None, row.mp_id if row else None]
        if "band_gap" in props:
            gap = v.get("band_gap")
            line += [gap[0] if gap else None, gap[1] if gap else None]
        s = v.get("structure")
        line += [getattr(s, _STRUCTURE_FIELDS[p][0]) if s else None for p in wanted_structure]
        rows.append(line)
    sentences = []
    for p in props:
        sentences.append(_ranking(p, formulas, values))
    text = "\n".join(s for s in sentences if s)
    if problems:
        text += "\nNot available: " + "; ".join(problems) + "."
    table = AnswerTable(title=f"{' vs '.join(formulas)}", columns=columns, rows=rows,
                        note="E above hull and formation energy: Materials Project (shipped, "
                             "MP2020 scale); band gap: measured where known, else the model; "
                             "structure properties: MLIP on the shipped reference structures")
    parts = [Part(text=text, tables=[table], plots=plots[:1])]
    for call, result in results:  # sources of each result (mp-ids, models, MLIPs)
        if result is not None and result.status != "error" and call.tool != \
                "lookup_known_phases":
            parts += [Part(sources=p.sources) for p in _part(call, result, props)]
    parts.append(Part(sources=[Source(kind="mp", label=values[f]["phases"].mp_id,
                                      url=f"https://next-gen.materialsproject.org/materials/"
                                          f"{values[f]['phases'].mp_id}")
                               for f in formulas if values[f].get("phases") is not None
                               and values[f]["phases"].mp_id]))
    return parts


def _ranking(prop: str, formulas: list[str], values: dict[str, dict[str, Any]]) -> str:
    """One sentence comparing the compounds on one property."""
    if prop == "e_above_hull":
        known = {f: values[f]["phases"] for f in formulas if values[f].get("phases")}
        missing = [f for f in formulas if f not in known]
        text = "Stability (Materials Project hull): " + "; ".join(
            f"{f} is {verdict(r.e_above_hull_ev_per_atom or 0.0).split(':')[0]} "
            f"({fmt(r.e_above_hull_ev_per_atom)} eV/atom above the hull)"
            for f, r in sorted(known.items(), key=lambda kv: kv[1].e_above_hull_ev_per_atom))
        if missing:
            text += f"; {', '.join(missing)} not in the shipped data"
        return text + "."
    if prop == "formation_energy":
        known = {f: values[f]["phases"].energy_ev_per_atom for f in formulas
                 if values[f].get("phases")}
        if not known:
            return "Formation energy: none of them is in the shipped Materials Project data."
        return "Formation energy (more negative is more strongly bound): " + " < ".join(
            f"{f} {e:.3f} eV/atom" for f, e in sorted(known.items(), key=lambda kv: kv[1])) + "."
    if prop == "band_gap":
        gaps = {f: values[f]["band_gap"] for f in formulas if values[f].get("band_gap")}
        if not gaps:
            return "Band gap: not available."
        return "Band gap: " + " > ".join(
            f"{f} {g[0]:.2f} eV ({g[1]})" for f, g in sorted(gaps.items(),
                                                            key=lambda kv: -kv[1][0])) + "."
    if prop in _STRUCTURE_FIELDS:
        attr, label, unit = _STRUCTURE_FIELDS[prop]
        got = {f: getattr(values[f]["structure"], attr) for f in formulas
               if values[f].get("structure") is not None and
               getattr(values[f]["structure"], attr) is not None}
        if not got:
            return f"{label.capitalize()}: not available."
        return f"{label.capitalize()} (MLIP): " + " > ".join(
            f"{f} {v:g} {unit}" for f, v in sorted(got.items(), key=lambda kv: -kv[1])) + "."
    return ""


def _merge(parts: list[Part], calls: list[ToolCall]) -> tuple[str, list[Source], Part]:
    merged = Part()
    sources = [Source(kind="tool", label=call_label(c)) for c in calls]
    for p in parts:
        merged.tables += p.tables
        merged.plots += p.plots
        merged.structures += p.structures
        sources += p.sources
        merged.campaign_query = merged.campaign_query or p.campaign_query
    unique: dict[str, Source] = {}
    for s in sources:
        unique.setdefault(s.label, s)
    text = "\n\n".join(p.text for p in parts if p.text)
    return text, list(unique.values()), merged


def write_answer(turn: ChatTurn, results: list[tuple[ToolCall, Any]]) -> ChatAnswer:
    """The answer to a planned turn from its tool results (typed), with its sources."""
    u = turn.understanding
    if turn.direct is not None:
        return ChatAnswer(intent=u.intent, text=turn.direct, grounded=False)
    props = u.property_names()
    if u.intent == "compare":
        parts = _compare(turn, results)
    else:
        parts = [p for call, result in results for p in _part(call, result, props)]
    lead = []
    if "formulas" in u.resolved_from_context and u.entities.formulas:
        swap = u.entities.substitution
        how = (f" ({', '.join(f'{n} in place of {o}' for o, n in swap.items())} in the earlier "
               f"compound)" if swap else " (from the earlier turn)")
        lead.append(Part(text=f"About {', '.join(u.entities.formulas)}{how}:"))
    elif "structure" in u.resolved_from_context and u.entities.structure is not None:
        lead.append(Part(text=f"About the structure given earlier "
                              f"({u.entities.structure.formula or 'formula unknown'}):"))
    unsupported = u.entities.unsupported_properties
    tail = [Part(text=f"No tool here computes {', '.join(unsupported)}; the passages above are "
                      f"what the knowledge base holds on it.")] if unsupported else []
    text, sources, merged = _merge(lead + parts + tail, [c for c, _ in results])
    if sources:
        text += "\n\nSources: " + "; ".join(s.label for s in sources) + "."
    return ChatAnswer(intent=u.intent, text=text, tables=merged.tables, plots=merged.plots,
                      structures=merged.structures, sources=sources,
                      campaign_query=merged.campaign_query)


def rich_parts(results: list[tuple[ToolCall, Any]]) -> tuple[list[AnswerTable], list[Any],
                                                             list[Any], list[Source]]:
    """Tables, hull figures, structures and sources of tool results a model asked for."""
    parts: list[Part] = []
    for call, result in results:
        purpose = call.purpose or ("known phases" if call.tool == "lookup_known_phases" else "")
        parts += _part(ToolCall(call.tool, call.arguments, call.subject, purpose), result, [])
    _, sources, merged = _merge(parts, [c for c, _ in results])
    return merged.tables, merged.plots, merged.structures, sources


__all__ = ["rich_parts", "write_answer"]

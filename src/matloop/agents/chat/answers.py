"""Answers of the offline chat assistant, written from typed tool results.

:func:`write_answer` turns a planned turn (:func:`matloop.agents.chat.offline.plan_turn`) and
the results of its tool calls into a :class:`ChatAnswer`: the text, tables, a hull figure, the
relaxed structure for a viewer, the sources behind every number (tool calls, mp-ids, DOIs,
evidence ids, models, MLIPs), and a campaign the answer could turn into.
:func:`rich_parts` gives the tables, figures, structures and sources of any tool results (the
LLM path uses it for the results its model asked for).

No number is typed here: each comes from a result field. What the results cannot support is
said, never guessed: a compound missing from the references is "not known here", a property
without a model or a structure says what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matloop.agents.chat.hull import ON_HULL_EV_PER_ATOM, SystemPhases
from matloop.agents.chat.models import (
    AnswerTable,
    HullPlot,
    Source,
    StructureView,
)
from matloop.agents.chat.offline import ToolCall, system_of

#: Above the hull but within this (eV/atom) is called metastable.
METASTABLE_EV_PER_ATOM = 0.05
MP_DATA = ("Materials Project formation energies shipped with matloop (MP2020 scale; "
           "matbench_mp_e_form, MP 2018, and roost mp-formation, MP ~2019)")
MAX_CIF_BYTES = 400_000
MAX_TABLE_ROWS = 80


@dataclass
class Part:
    """A piece of an answer (one tool result, or one compound of a comparison)."""

    text: str = ""
    tables: list[AnswerTable] = field(default_factory=list)
    plots: list[HullPlot] = field(default_factory=list)
    structures: list[StructureView] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    campaign_query: str | None = None


def fmt(value: float | None, spec: str = ".3f") -> str:
    """A number for text ('n/a' when missing)."""
    return "n/a" if value is None else format(value, spec)


def mp_url(mp_id: str) -> str:
    """The Materials Project page of an id."""
    return f"https://next-gen.materialsproject.org/materials/{mp_id}"


def doi_url(doi: str) -> str:
    """The resolver link of a DOI."""
    return f"https://doi.org/{doi}"


def call_label(call: ToolCall) -> str:
    """A tool call as a short source label, e.g. ``lookup_known_phases(chemsys=Cl-Na)``."""
    shown = []
    for key, value in call.arguments.items():
        if key in ("limit", "k"):
            continue
        text = str(value)
        if "\n" in text:
            text = "<structure text>"
        elif key == "structure":
            text = Path(text).name
        shown.append(f"{key}={text[:60]}")
    return f"{call.tool}({', '.join(shown)})"


def verdict(e_hull: float) -> str:
    """Stable, metastable or unstable, with the distance to the hull."""
    if e_hull <= ON_HULL_EV_PER_ATOM:
        return "stable: it lies on the convex hull (0 eV/atom above it)"
    if e_hull <= METASTABLE_EV_PER_ATOM:
        return (f"metastable: {e_hull:.3f} eV/atom above the convex hull (within "
                f"{METASTABLE_EV_PER_ATOM} eV/atom)")
    return f"unstable: {e_hull:.3f} eV/atom above the convex hull"


def _mp_ref(row: Any) -> tuple[str, list[Source]]:
    if row.mp_id:
        return row.mp_id, [Source(kind="mp", label=row.mp_id, url=mp_url(row.mp_id))]
    return "Materials Project data; no mp-id is shipped for this composition", []


def _decomposition_text(decomp: dict[str, float]) -> str:
    return " + ".join(f"{frac:.2f} {name}" for name, frac in decomp.items())


# -- phases -------------------------------------------------------------------------------------


def stability_part(formula: str, phases: SystemPhases, *, with_energy: bool = False) -> Part:
    """Stability of one composition against the system's known phases."""
    row = phases.row(formula)
    n = len(phases.compounds())
    if row is None:
        return Part(text=(f"{formula} is not among the {n} compounds of the {phases.system} "
                          f"system in the shipped Materials Project data, so its stability is "
                          f"not known here. Upload (or paste) a structure of {formula} and I "
                          f"will relax it with the MLIP and place it on this hull, or start a "
                          f"campaign to search for stable {formula} structures."),
                    sources=[Source(kind="data", label=MP_DATA)],
                    campaign_query=f"find stable structures of {formula}")
    e_hull = row.e_above_hull_ev_per_atom or 0.0
    ref, sources = _mp_ref(row)
    text = (f"{formula} is {verdict(e_hull)} of the {n} known {phases.system} compounds "
            f"(Materials Project formation energies, MP2020 scale; {ref}).")
    decomp = phases.decomposition(formula) if e_hull > ON_HULL_EV_PER_ATOM else {}
    if decomp:
        text += f" It would decompose into {_decomposition_text(decomp)} (atomic fractions)."
    elif e_hull <= ON_HULL_EV_PER_ATOM:
        text += " It has no decomposition products: no combination of other phases is lower."
    if with_energy:
        text += f" Its formation energy is {fmt(row.energy_ev_per_atom)} eV/atom."
    return Part(text=text, sources=[*sources, Source(kind="data", label=MP_DATA)])


def phase_rows(phases: SystemPhases, formulas: list[str]) -> AnswerTable:
    """A table of compounds with their hull distances and formation energies."""
    rows = []
    for f in formulas:
        row = phases.row(f)
        if row is None:
            rows.append([f, None, None, None, "not in the shipped MP data"])
            continue
        decomp = phases.decomposition(f) if (row.e_above_hull_ev_per_atom or 0) > \
            ON_HULL_EV_PER_ATOM else {}
        rows.append([f, row.e_above_hull_ev_per_atom, row.energy_ev_per_atom, row.mp_id,
                     _decomposition_text(decomp) if decomp else "on the hull"])
    return AnswerTable(title=f"Stability against the {phases.system} hull",
                       columns=["formula", "E above hull (eV/atom)", "formation energy (eV/atom)",
                                "Materials Project id", "decomposition"],
                       rows=rows, note=MP_DATA)


def known_phases_part(phases: SystemPhases) -> Part:
    """Known phases of a system: counts, the stable compounds with mp-ids, near-hull ones."""
    compounds = phases.compounds()
    stable = [r for r in compounds if r.e_above_hull_ev_per_atom <= ON_HULL_EV_PER_ATOM]
    near = [r for r in compounds if ON_HULL_EV_PER_ATOM < r.e_above_hull_ev_per_atom
            <= METASTABLE_EV_PER_ATOM]

    def name(r: Any) -> str:
        return f"{r.formula} ({r.mp_id})" if r.mp_id else r.formula

    text = (f"The shipped Materials Project data lists {len(compounds)} compounds in the "
            f"{phases.system} system, its subsystems included ({phases.total} entries with "
            f"elements and reference structures). {len(stable)} lie on the convex hull: "
            f"{', '.join(name(r) for r in stable) or 'none'}.")
    if near:
        shown = ", ".join(f"{r.formula} ({r.e_above_hull_ev_per_atom:.3f} eV/atom)"
                          for r in near[:12])
        more = f" and {len(near) - 12} more" if len(near) > 12 else ""
        text += (f" {len(near)} more lie within {METASTABLE_EV_PER_ATOM} eV/atom of it: "
                 f"{shown}{more}.")
    listed = phases.compounds(within_ev_per_atom=0.1)
    table = AnswerTable(
        title=f"Compounds of {phases.system} on and near the hull",
        columns=["formula", "E above hull (eV/atom)", "formation energy (eV/atom)",
                 "Materials Project id"],
        rows=[[r.formula, r.e_above_hull_ev_per_atom, r.energy_ev_per_atom, r.mp_id]
              for r in listed[:MAX_TABLE_ROWS]],
        note=MP_DATA + (f"; {len(compounds) - min(len(listed), MAX_TABLE_ROWS)} compounds "
                        f"farther from the hull are not shown" if len(compounds) >
                        min(len(listed), MAX_TABLE_ROWS) else ""))
    sources = [Source(kind="mp", label=r.mp_id, url=mp_url(r.mp_id)) for r in stable if r.mp_id]
    plot = phases.plot(source="Data: " + MP_DATA + ".")
    return Part(text=text, tables=[table], plots=[plot] if plot else [],
                sources=[*sources, Source(kind="data", label=MP_DATA)],
                campaign_query=f"new stable compounds in the {phases.system} system")


def formation_energy_part(formula: str, phases: SystemPhases) -> Part:
    """The Materials Project formation energy of a composition."""
    row = phases.row(formula)
    if row is None:
        return Part(text=(f"{formula} is not in the shipped Materials Project data, so I have "
                          f"no formation energy for it; upload a structure and I will compute "
                          f"one with the MLIP."), sources=[Source(kind="data", label=MP_DATA)])
    ref, sources = _mp_ref(row)
    return Part(text=(f"The formation energy of {formula} is {fmt(row.energy_ev_per_atom)} "
                      f"eV/atom (Materials Project, MP2020 scale; {ref}); it lies "
                      f"{fmt(row.e_above_hull_ev_per_atom)} eV/atom above the {phases.system} "
                      f"hull."), sources=[*sources, Source(kind="data", label=MP_DATA)])


# -- properties ---------------------------------------------------------------------------------


def band_gap_text(row: Any) -> str:
    """One band-gap row as a sentence that says whether it was measured or modelled."""
    if row.basis == "measured":
        return (f"{row.formula}: band gap {row.band_gap_ev:.2f} eV, measured ({row.source}). "
                f"The model, with this compound held out of its training, gives "
                f"{row.model_band_gap_ev:.2f} ± {row.model_uncertainty_ev:.2f} eV.")
    low, high = row.model_interval_95_ev
    text = (f"{row.formula}: band gap {row.model_band_gap_ev:.2f} ± "
            f"{row.model_uncertainty_ev:.2f} eV from the band-gap model (95% interval "
            f"{low:.2f}-{high:.2f} eV); the shipped experimental table has no measured gap for "
            f"it" + (f" ({row.measured_note})" if row.measured_note else "") + ".")
    if row.metal_probability is not None and row.metal_probability >= 0.5:
        text += f" The model reads it as a metal (probability {row.metal_probability:.2f})."
    if not row.in_domain:
        text += (" It lies outside the model's training domain, so treat the value as a rough "
                 "guess" + (f": {'; '.join(row.domain_notes)}" if row.domain_notes else "") + ".")
    return text


def band_gap_part(result: Any) -> Part:
    """lookup_band_gap rows as text and a table."""
    table = AnswerTable(
        title="Band gaps", columns=["formula", "band gap (eV)", "basis", "model value (eV)",
                                    "model 1σ (eV)", "source"],
        rows=[[r.formula, r.band_gap_ev, r.basis, r.model_band_gap_ev, r.model_uncertainty_ev,
               r.source] for r in result.rows],
        note=f"model: {result.model_source}")
    sources = [Source(kind="model", label=f"{result.model}: {result.model_source}")]
    if any(r.basis == "measured" for r in result.rows):
        sources.append(Source(kind="data", label=next(r.source for r in result.rows
                                                      if r.basis == "measured")))
    return Part(text="\n".join(band_gap_text(r) for r in result.rows), tables=[table],
                sources=sources)


def predicted_property_part(result: Any, formula: str) -> Part:
    """A predict_property result (a user-trained or the default model)."""
    if result.status == "no_model":
        return Part(text=(f"{formula}: no model for {result.property} is available here "
                          f"({result.message}); I will not guess a value."))
    if result.status == "error":
        return Part(text=f"{formula}: {result.property} could not be predicted: "
                         f"{result.message}")
    band = f" ± {result.uncertainty}" if result.uncertainty is not None else ""
    domain = "" if result.in_domain in (None, True) else \
        " (outside the model's training domain: a rough guess)"
    return Part(text=(f"{formula}: {result.property} = {result.value}{band} "
                      f"{result.unit or ''} (model: {result.source}){domain}."),
                sources=[Source(kind="model", label=str(result.source))])


def _cif_of(path: str | None) -> str | None:
    if not path:
        return None
    file = Path(path)
    if not file.is_file() or file.stat().st_size > MAX_CIF_BYTES:
        return None
    return file.read_text(errors="replace")


def structure_properties_part(result: Any) -> Part:
    """structure_properties: the computed values, how, and on which structure."""
    lines: list[str] = []
    rows: list[list[Any]] = []
    how = f"on {result.structure_source}" + (
        f", relaxed with {result.mlip}" if result.relaxed else ", as given")

    def add(label: str, value: float | None, unit: str, method: str) -> None:
        if value is None:
            return
        lines.append(f"{label} {value:g} {unit}")
        rows.append([label, value, unit, method])

    add("density", result.density_g_per_cm3, "g/cm^3", how)
    if result.lattice_a_angstrom is not None:
        angles = result.lattice_angles_deg or []
        add("lattice parameter a", result.lattice_a_angstrom, "Å",
            f"conventional cell, {result.spacegroup}")
        if result.lattice_b_angstrom is not None and \
                abs(result.lattice_b_angstrom - result.lattice_a_angstrom) > 1e-3:
            add("lattice parameter b", result.lattice_b_angstrom, "Å", "conventional cell")
        if result.lattice_c_angstrom is not None and \
                abs(result.lattice_c_angstrom - result.lattice_a_angstrom) > 1e-3:
            add("lattice parameter c", result.lattice_c_angstrom, "Å", "conventional cell")
        if angles and any(abs(a - 90) > 0.01 for a in angles):
            lines.append(f"angles {', '.join(f'{a:g}' for a in angles)} degrees")
    add("magnetic moment", result.magnetic_moment_bohr_per_formula_unit, "μB/f.u.",
        f"sum of site-moment magnitudes ({result.mlip})")
    add("bulk modulus", result.bulk_modulus_gpa, "GPa", result.bulk_modulus_method or "")
    add("shear modulus", result.shear_modulus_gpa, "GPa",
        f"elastic tensor, Voigt-Reuss-Hill ({result.elastic_mlip})")
    add("Vickers hardness", result.vickers_hardness_gpa, "GPa",
        f"{result.hardness_model} model from B and G ({result.elastic_mlip})")
    text = (f"{result.formula} ({result.spacegroup or 'space group not found'}): "
            f"{'; '.join(lines) or 'nothing computed'}. Computed {how}.")
    if result.magnetic_moment_note and result.magnetic_moment_bohr_per_formula_unit:
        text += f" Note: {result.magnetic_moment_note}"
    for note in result.notes:
        text += f" Note: {note}."
    state = "relaxed" if result.relaxed else "as given"
    structures = [StructureView(title=f"{result.formula}, {state}", formula=result.formula,
                                cif=result.relaxed_cif, source=how)] \
        if result.relaxed_cif and len(result.relaxed_cif) <= MAX_CIF_BYTES else []
    sources = [Source(kind="mlip", label=m) for m in {result.mlip, result.elastic_mlip} if m]
    return Part(text=text, structures=structures, sources=sources,
                tables=[AnswerTable(title=f"Properties of {result.formula}",
                                    columns=["property", "value", "unit", "how"], rows=rows,
                                    note=f"structure: {result.structure_source}")])


def relax_part(result: Any) -> Part:
    """A relaxation: energy, hull position, decomposition, and the relaxed structure."""
    if result.status == "error":
        return Part(text=f"The relaxation gave no result: {result.message}" +
                    (f" ({result.hint})" if result.hint else ""))
    mlip = f"{result.mlip} {result.mlip_model} ({result.mlip} {result.mlip_version})"
    text = (f"{result.formula} relaxed with {mlip}: total energy "
            f"{fmt(result.energy_per_atom_ev, '.4f')} eV/atom.")
    if result.e_above_hull_ev_per_atom is not None:
        text += (f" Formation energy {fmt(result.formation_energy_ev_per_atom)} eV/atom; it is "
                 f"{verdict(max(result.e_above_hull_ev_per_atom, 0.0))}"
                 + (f" ({result.e_above_hull_ev_per_atom:+.3f} eV/atom, below the reference "
                    f"hull)" if result.e_above_hull_ev_per_atom < -ON_HULL_EV_PER_ATOM else "")
                 + f", against {result.reference_set or result.energy_scale}.")
        decomp = {k: v for k, v in (result.decomposition or {}).items()
                  if k != result.formula}
        if decomp and result.e_above_hull_ev_per_atom > ON_HULL_EV_PER_ATOM:
            text += f" It would decompose into {_decomposition_text(decomp)}."
    elif result.stability_error:
        text += f" Stability not assessed: {result.stability_error}."
    if result.novelty:
        text += f" Novelty: {result.novelty}."
    for flag in result.flags:
        text += f" Note: {flag}."
    cif = _cif_of(result.relaxed_cif_path)
    structures = [StructureView(title=f"{result.formula} relaxed with {result.mlip}",
                                formula=result.formula, cif=cif, source=mlip)] if cif else []
    table = AnswerTable(
        title=f"Relaxation of {result.formula}",
        columns=["formula", "energy (eV/atom)", "formation energy (eV/atom)",
                 "E above hull (eV/atom)", "within the stability threshold", "MLIP",
                 "hull reference"],
        rows=[[result.formula, result.energy_per_atom_ev, result.formation_energy_ev_per_atom,
               result.e_above_hull_ev_per_atom, result.is_stable,
               f"{result.mlip} {result.mlip_model}", result.reference_set or result.energy_scale]])
    query = f"stable compounds in the {system_of(result.formula)} system" if result.formula \
        else None
    return Part(text=text, tables=[table], structures=structures,
                sources=[Source(kind="mlip", label=mlip)], campaign_query=query)


# -- synthesis and literature -------------------------------------------------------------------


def analogs_part(result: Any) -> Part:
    """Known syntheses of a composition or its nearest analogues, with DOIs."""
    if not result.analogs:
        return Part(text=f"No known synthesis of {result.formula} or a similar composition "
                         f"was found" + (f" ({result.note})" if result.note else "") + ".")
    exact = [a for a in result.analogs if a.exact_match]
    rows = [[a.analog_formula, round(a.similarity, 2), a.synthesis_type or None,
             ", ".join(a.precursors) or None, a.max_temperature_c, ", ".join(a.atmosphere) or None,
             a.doi, a.evidence_id] for a in result.analogs]
    precursors: dict[str, int] = {}
    for a in exact or result.analogs:
        for p in a.precursors:
            precursors[p] = precursors.get(p, 0) + 1
    common = sorted(precursors, key=lambda p: -precursors[p])[:5]
    temps = [a.max_temperature_c for a in exact or result.analogs if a.max_temperature_c]
    what = (f"{len(exact)} text-mined recipe{'s' if len(exact) > 1 else ''} of "
            f"{result.formula} itself, then the most similar compositions" if exact else
            f"no recipe of {result.formula} itself; the {len(result.analogs)} most similar "
            f"compositions")
    text = f"Known syntheses ({what}):"
    for a in result.analogs:
        cond = ", ".join(a.temperatures[:3]) or "temperatures not reported"
        text += (f"\n- {a.analog_formula} ({a.synthesis_type or 'route not stated'}): from "
                 f"{', '.join(a.precursors) or 'precursors not reported'}; {cond}"
                 + (f"; {', '.join(a.atmosphere)}" if a.atmosphere else "")
                 + (f" (doi:{a.doi}, {a.evidence_id})" if a.doi else f" ({a.evidence_id})"))
    if common:
        text += f"\nMost used precursors: {', '.join(common)}."
    if len(temps) == 1:
        text += f" Highest temperature of the recipe: {temps[0]:g} °C."
    elif temps:
        span = f"{min(temps):g}" if min(temps) == max(temps) else \
            f"{min(temps):g}-{max(temps):g}"
        text += f" Highest temperature of each recipe: {span} °C ({len(temps)} recipes)."
    sources = [Source(kind="doi", label=f"doi:{a.doi}", url=doi_url(a.doi))
               for a in result.analogs if a.doi]
    sources += [Source(kind="evidence", label=a.evidence_id) for a in result.analogs
                if a.evidence_id]
    return Part(text=text, sources=sources, tables=[AnswerTable(
        title=f"Known syntheses of {result.formula} and analogues",
        columns=["target", "similarity", "route", "precursors", "max temperature (°C)",
                 "atmosphere", "DOI", "evidence"], rows=rows,
        note="text-mined recipes (Kononova et al., Sci. Data 6, 203 (2019)) shipped with "
             "matloop")])


def search_part(result: Any) -> Part:
    """Retrieved passages with their evidence ids and DOIs."""
    if not result.results:
        return Part(text="The knowledge base holds nothing relevant" +
                    (f" ({result.note})" if result.note else "") + ".")
    text = "From the literature (quoted passages; cite by id):\n" + "\n".join(
        f"- [{p.id}] {p.title}" + (f" (doi:{p.doi})" if p.doi else "") +
        f": {' '.join(p.snippet.split())[:220]}" for p in result.results)
    sources = [Source(kind="evidence", label=p.id) for p in result.results]
    sources += [Source(kind="doi", label=f"doi:{p.doi}", url=doi_url(p.doi))
                for p in result.results if p.doi]
    return Part(text=text, sources=sources)


def campaign_part(result: Any, tool: str) -> Part:
    """start_campaign / read_campaign answers."""
    if tool == "start_campaign":
        run = getattr(result, "campaign_id", None)
        return Part(text=result.answer or f"Campaign {run}: {result.state}",
                    sources=[Source(kind="run", label=run, url=f"#run/{run}")] if run else [])
    run = getattr(result, "run_id", None)
    return Part(text=result.answer, sources=[Source(kind="run", label=run, url=f"#run/{run}")]
                if run else [])

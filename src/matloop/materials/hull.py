"""Convex-hull stability of a candidate against reference phases on one energy scale.

Two scales, never mixed:

* ``mp2020``: DFT formation energies (MP2020-corrected) from the reference store, elements at
  zero. The candidate's MLIP total energy is put on the MP2020 scale (see
  :mod:`matloop.materials.energy_scale`) and referenced to MP2020 elemental total energies.
* ``mlip``: every reference with a structure in the chemical system (starter library, imported
  CIFs, fetched MP structures) is relaxed with the same MLIP as the candidate; the hull is built
  from those total energies. Works fully offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Structure

from matloop.errors import ReferenceDataError
from matloop.logs import quiet_third_party
from matloop.materials.references import ReferencePhase, ReferenceStore, chemsys_of

Scale = Literal["mlip", "mp2020"]


class StabilityResult(BaseModel):
    """Where a composition and energy sit relative to the convex hull of known phases."""

    formula: str = Field(description="Reduced formula of the candidate.")
    chemsys: str = Field(description="Chemical system of the hull, e.g. Fe-Li-O.")
    energy_scale: str = Field(
        description="Scale of the hull: 'mp2020 (DFT formation energies, MP2020 corrections)' "
        "or 'mlip:<model> (all references relaxed with the same MLIP)'."
    )
    formation_energy_ev_per_atom: float = Field(
        description="Formation energy from the elemental references on that scale, eV/atom."
    )
    e_above_hull_ev_per_atom: float = Field(
        description="Energy above the hull of the references, eV/atom; negative means the "
        "candidate lies below the current hull (a new stable phase on this scale)."
    )
    decomposition: dict[str, float] = Field(
        description="Competing phases at the candidate's composition and their atomic fractions."
    )
    is_stable: bool = Field(description="e_above_hull_ev_per_atom <= threshold_ev_per_atom.")
    threshold_ev_per_atom: float = Field(description="Stability threshold, eV/atom.")
    n_reference_phases: int = Field(description="Reference phases in the hull.")
    reference_sources: list[str] = Field(description="Sources the references came from.")


def _decomposition_fractions(pd: PhaseDiagram, comp: Composition) -> dict[str, float]:
    decomp = pd.get_decomposition(comp)
    out: dict[str, float] = {}
    for entry, amount in sorted(decomp.items(), key=lambda kv: -kv[1]):
        name = entry.composition.reduced_formula
        out[name] = round(out.get(name, 0.0) + float(amount), 6)
    return out


def stability_from_formation_energies(
    formula: str | Composition,
    formation_energy_ev_per_atom: float,
    references: Sequence[tuple[Composition, float]],
    *,
    threshold_ev_per_atom: float = 0.1,
    energy_scale: str = "mp2020",
    reference_sources: Sequence[str] = (),
) -> StabilityResult:
    """Hull position of a composition from formation energies (no MLIP).

    Args:
        formula: Candidate composition.
        formation_energy_ev_per_atom: Its formation energy, eV/atom.
        references: (composition, formation energy per atom) of known phases; elements are
            added at zero.
    """
    comp = Composition(formula)
    elements = sorted(el.symbol for el in comp.elements)
    entries = [PDEntry(Composition(el), 0.0, name=el) for el in elements]
    for ref_comp, e_form in references:
        if set(el.symbol for el in ref_comp.elements) <= set(elements):
            entries.append(PDEntry(ref_comp, e_form * ref_comp.num_atoms))
    pd = PhaseDiagram(entries)
    e_hull = pd.get_hull_energy_per_atom(comp)
    return StabilityResult(
        formula=comp.reduced_formula,
        chemsys="-".join(elements),
        energy_scale=energy_scale,
        formation_energy_ev_per_atom=formation_energy_ev_per_atom,
        e_above_hull_ev_per_atom=float(formation_energy_ev_per_atom - e_hull),
        decomposition=_decomposition_fractions(pd, comp),
        is_stable=bool(formation_energy_ev_per_atom - e_hull <= threshold_ev_per_atom),
        threshold_ev_per_atom=threshold_ev_per_atom,
        n_reference_phases=len(entries),
        reference_sources=sorted(set(reference_sources)),
    )


def choose_scale(store: ReferenceStore, elements: Sequence[str], requested: str) -> Scale:
    """Resolve 'auto' to the scale the store can support for ``elements``.

    'auto' relaxes the references with the MLIP ('mlip') where the user supplied reference
    structures without energies for this system (imported CIFs), and otherwise uses the DFT
    formation energies on the MP2020 scale ('mp2020': the shipped Materials Project set and
    any imported or fetched entries) whenever there is an MP2020 elemental energy for every
    element; only without one does it fall back to 'mlip'.
    """
    if requested in ("mlip", "mp2020"):
        return requested  # type: ignore[return-value]
    if requested != "auto":
        raise ValueError(f"unknown reference scale {requested!r}; valid: auto, mlip, mp2020")
    if store.user_structures(elements):
        return "mlip"
    elemental = {p.formula_element for p in _elemental_refs(store, elements)}
    return "mp2020" if set(elements) <= elemental else "mlip"


class _ElementalRef(BaseModel):
    formula_element: str
    energy_ev_per_atom: float
    source: str


def _elemental_refs(store: ReferenceStore, elements: Sequence[str]) -> list[_ElementalRef]:
    best: dict[str, _ElementalRef] = {}
    for p in store.phases(elements, energy_kind="total", energy_scale="mp2020"):
        comp = p.composition
        if len(comp.elements) != 1 or p.energy_ev_per_atom is None:
            continue
        el = comp.elements[0].symbol
        if el not in best or p.energy_ev_per_atom < best[el].energy_ev_per_atom:
            best[el] = _ElementalRef(formula_element=el, energy_ev_per_atom=p.energy_ev_per_atom,
                                     source=p.source)
    return list(best.values())


def stability_mp2020(phase: Structure | Composition, energy_per_atom_ev: float, energy_scale: str,
                     store: ReferenceStore, *, threshold_ev_per_atom: float = 0.1,
                     ) -> StabilityResult:
    """Stability on the MP2020 scale from the store's DFT formation energies.

    Args:
        phase: The (relaxed) candidate, or just its composition.
        energy_per_atom_ev: Its MLIP total energy per atom on the backend's native scale.
        energy_scale: The backend's scale (``mp2020`` or ``gga_raw``).
    """
    from matloop.materials.energy_scale import to_mp2020_energy_per_atom

    comp = phase.composition if isinstance(phase, Structure) else Composition(phase)
    elements = sorted(el.symbol for el in comp.elements)
    refs = {r.formula_element: r for r in _elemental_refs(store, elements)}
    missing = [el for el in elements if el not in refs]
    if missing:
        raise ReferenceDataError(
            f"no MP2020 elemental reference energy for {', '.join(missing)}",
            hint="import ComputedEntry JSON of elemental references (matloop refs import) or "
                 "run `matloop refs fetch`, or use the 'mlip' scale",
        )
    e_corr = to_mp2020_energy_per_atom(comp, energy_per_atom_ev, energy_scale)
    frac = comp.fractional_composition
    e_form = e_corr - sum(frac[el] * refs[el].energy_ev_per_atom for el in elements)
    formation = store.phases(elements, energy_kind="formation", energy_scale="mp2020")
    result = stability_from_formation_energies(
        comp, e_form,
        [(p.composition, float(p.energy_ev_per_atom)) for p in formation
         if p.energy_ev_per_atom is not None],
        threshold_ev_per_atom=threshold_ev_per_atom,
        energy_scale="mp2020 (DFT formation energies with MP2020 corrections)",
        reference_sources=[p.source for p in formation] + [r.source for r in refs.values()],
    )
    return result


def stability_mlip_consistent(
    phase: Structure | Composition, energy_per_atom_ev: float, references: Sequence[ReferencePhase],
    reference_energies_ev_per_atom: Sequence[float], *, mlip_label: str,
    threshold_ev_per_atom: float = 0.1,
) -> StabilityResult:
    """Stability against references whose total energies come from the same MLIP.

    Args:
        references: Reference phases (with structures) in the candidate's chemical system.
        reference_energies_ev_per_atom: Their MLIP total energies per atom (converged relaxations).
        mlip_label: e.g. ``chgnet CHGNet-0.3.0 (chgnet 0.4.2)``, recorded in the scale name.

    Raises:
        ReferenceDataError: An element of the candidate has no reference phase.
    """
    comp = phase.composition if isinstance(phase, Structure) else Composition(phase)
    elements = sorted(el.symbol for el in comp.elements)
    entries: list[PDEntry] = []
    have_elements: set[str] = set()
    for phase, energy in zip(references, reference_energies_ev_per_atom, strict=True):
        rc = phase.composition
        entries.append(PDEntry(rc, energy * rc.num_atoms, name=rc.reduced_formula))
        if len(rc.elements) == 1:
            have_elements.add(rc.elements[0].symbol)
    missing = [el for el in elements if el not in have_elements]
    if missing:
        raise ReferenceDataError(
            f"no elemental reference structure for {', '.join(missing)} in chemical system "
            f"{chemsys_of(comp)}",
            hint="import a CIF of the element's ground state with `matloop refs import`",
        )
    with quiet_third_party():
        pd = PhaseDiagram(entries)
        candidate = PDEntry(comp, energy_per_atom_ev * comp.num_atoms)
        e_form = float(pd.get_form_energy_per_atom(candidate))
        e_hull = float(energy_per_atom_ev - pd.get_hull_energy_per_atom(comp))
    return StabilityResult(
        formula=comp.reduced_formula,
        chemsys="-".join(elements),
        energy_scale=f"mlip:{mlip_label} (all references relaxed with the same MLIP)",
        formation_energy_ev_per_atom=e_form,
        e_above_hull_ev_per_atom=e_hull,
        decomposition=_decomposition_fractions(pd, comp),
        is_stable=bool(e_hull <= threshold_ev_per_atom),
        threshold_ev_per_atom=threshold_ev_per_atom,
        n_reference_phases=len(entries),
        reference_sources=sorted({p.source for p in references}),
    )

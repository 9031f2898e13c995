"""Material cards: a structured text annotation of a crystal structure for the knowledge base.

A card holds the formula, space group, lattice parameters, coordination environments of the
symmetry-distinct sites (CrystalNN), a text description and the computed properties passed in.
The description comes from robocrys when it succeeds in time; robocrys is slow to import and can
fail on unusual structures, in which case the card says so and carries a pymatgen-only
description instead.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from matloop.knowledge.formulas import canonical_from_composition
from matloop.logs import quiet_third_party


class CoordinationEnvironment(BaseModel):
    """Neighbours of one symmetry-distinct site."""

    element: str = Field(description="Element on the site.")
    multiplicity: int = Field(description="Number of equivalent sites in the cell.")
    coordination_number: int = Field(description="Number of neighbours (CrystalNN).")
    neighbours: dict[str, int] = Field(description="Neighbour element -> count.")
    mean_bond_length_angstrom: float | None = Field(default=None,
                                                    description="Mean neighbour distance, Å.")


class MaterialCard(BaseModel):
    """Structured text annotation of one crystal structure."""

    formula: str = Field(description="Reduced formula, e.g. LiFePO4.")
    canonical_formula: str = Field(description="Canonical formula (elements sorted), e.g. "
                                               "FeLiO4P.")
    elements: list[str] = Field(description="Element symbols, sorted.")
    n_sites: int = Field(description="Atoms in the cell.")
    space_group_symbol: str | None = Field(default=None, description="Hermann-Mauguin symbol.")
    space_group_number: int | None = Field(default=None, description="International number.")
    crystal_system: str | None = Field(default=None, description="Crystal system.")
    a_angstrom: float = Field(description="Lattice parameter a, Å.")
    b_angstrom: float = Field(description="Lattice parameter b, Å.")
    c_angstrom: float = Field(description="Lattice parameter c, Å.")
    alpha_deg: float = Field(description="Lattice angle alpha, degrees.")
    beta_deg: float = Field(description="Lattice angle beta, degrees.")
    gamma_deg: float = Field(description="Lattice angle gamma, degrees.")
    volume_angstrom3: float = Field(description="Cell volume, Å^3.")
    density_g_cm3: float = Field(description="Density, g/cm^3.")
    coordination: list[CoordinationEnvironment] = Field(
        default_factory=list, description="Coordination of the symmetry-distinct sites.")
    description: str = Field(description="Text description of the structure.")
    description_source: Literal["robocrys", "pymatgen"] = Field(
        description="What wrote the description.")
    description_note: str | None = Field(
        default=None, description="Why robocrys was not used, when it was not.")
    properties: dict[str, Any] = Field(
        default_factory=dict, description="Computed properties passed in, with units in the "
                                          "keys (e.g. formation_energy_ev_per_atom).")
    source: str | None = Field(default=None, description="Where the structure came from.")

    def to_text(self) -> str:
        """The card as indexable text."""
        lines = [f"Material card: {self.formula} ({self.canonical_formula})."]
        if self.space_group_symbol:
            lines.append(f"Space group {self.space_group_symbol} (No. {self.space_group_number}),"
                         f" {self.crystal_system} crystal system.")
        lines.append(f"Lattice: a={self.a_angstrom:.4f} Å, b={self.b_angstrom:.4f} Å, "
                     f"c={self.c_angstrom:.4f} Å, alpha={self.alpha_deg:.2f}°, "
                     f"beta={self.beta_deg:.2f}°, gamma={self.gamma_deg:.2f}°; "
                     f"volume {self.volume_angstrom3:.2f} Å^3, {self.n_sites} sites, "
                     f"density {self.density_g_cm3:.3f} g/cm^3.")
        for env in self.coordination:
            neigh = ", ".join(f"{n} {el}" for el, n in sorted(env.neighbours.items()))
            bond = (f", mean distance {env.mean_bond_length_angstrom:.3f} Å"
                    if env.mean_bond_length_angstrom else "")
            lines.append(f"Coordination: {env.element} (x{env.multiplicity}) is "
                         f"{env.coordination_number}-coordinated by {neigh or 'nothing'}{bond}.")
        if self.properties:
            props = "; ".join(f"{k} = {_fmt(v)}" for k, v in sorted(self.properties.items()))
            lines.append(f"Computed properties: {props}.")
        src = "robocrys" if self.description_source == "robocrys" else "pymatgen only"
        lines.append(f"Description ({src}): {self.description}")
        if self.description_note:
            lines.append(f"Note: {self.description_note}")
        if self.source:
            lines.append(f"Source: {self.source}")
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _coordination(structure: Structure, equivalent: list[list[int]],
                  ) -> list[CoordinationEnvironment]:
    from pymatgen.analysis.local_env import CrystalNN

    cnn = CrystalNN()
    envs = []
    for group in equivalent:
        i = group[0]
        infos = cnn.get_nn_info(structure, i)
        counts = Counter(info["site"].specie.symbol for info in infos)
        dists = [structure[i].distance(info["site"]) for info in infos]
        envs.append(CoordinationEnvironment(
            element=structure[i].specie.symbol, multiplicity=len(group),
            coordination_number=len(infos), neighbours=dict(counts),
            mean_bond_length_angstrom=round(sum(dists) / len(dists), 4) if dists else None))
    return envs


def _pymatgen_description(formula: str, sg: str | None, system: str | None,
                          envs: list[CoordinationEnvironment]) -> str:
    parts = [f"{formula} crystallizes in the {system or 'unknown'} "
             f"{sg or 'unknown'} space group."]
    for env in envs:
        neigh = " and ".join(f"{n} {el}" for el, n in sorted(env.neighbours.items()))
        parts.append(f"{env.element} is bonded to {neigh or 'no atoms'}"
                     + (f" at a mean distance of {env.mean_bond_length_angstrom:.2f} Å."
                        if env.mean_bond_length_angstrom else "."))
    return " ".join(parts)


def _robocrys_describe(structure: Structure, timeout_s: float) -> tuple[str | None, str | None]:
    """Robocrys description, or (None, reason) when it fails or exceeds the time limit."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            with quiet_third_party():
                from robocrys import StructureCondenser, StructureDescriber

                condensed = StructureCondenser().condense_structure(structure)
                result["text"] = StructureDescriber().describe(condensed)
        except Exception as exc:  # robocrys fails in many ways on odd structures
            result["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"

    worker = threading.Thread(target=run, daemon=True, name="robocrys")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return None, f"robocrys did not finish within {timeout_s:g} s"
    if "error" in result:
        return None, f"robocrys failed ({result['error']})"
    text = (result.get("text") or "").strip()
    return (text, None) if text else (None, "robocrys returned an empty description")


def material_card(structure: Structure, properties: dict[str, Any] | None = None, *,
                  source: str | None = None, use_robocrys: bool = True,
                  robocrys_timeout_s: float = 60.0, max_robocrys_sites: int = 80,
                  symprec: float = 0.1) -> MaterialCard:
    """Build a :class:`MaterialCard` for a structure.

    Args:
        structure: An ordered pymatgen structure.
        properties: Computed properties to record, keys with units
            (e.g. ``{"formation_energy_ev_per_atom": -2.1}``).
        source: Where the structure came from (file, reference store id, campaign).
        use_robocrys: Try robocrys for the description.
        robocrys_timeout_s: Longest wait for robocrys, s (it then runs on in the background
            and its result is dropped).
        max_robocrys_sites: Larger cells skip robocrys (its cost grows quickly with size).
        symprec: Symmetry tolerance for the space group, Å.

    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    comp = structure.composition
    formula = comp.reduced_formula
    sg_symbol = sg_number = system = None
    equivalent = [[i] for i in range(len(structure))]
    with quiet_third_party():
        try:
            sga = SpacegroupAnalyzer(structure, symprec=symprec)
            sg_symbol, sg_number = sga.get_space_group_symbol(), sga.get_space_group_number()
            system = sga.get_crystal_system()
            equivalent = sga.get_symmetrized_structure().equivalent_indices
        except Exception:  # spglib can fail on distorted cells; keep every site distinct
            pass
        try:
            envs = _coordination(structure, equivalent)
        except Exception:  # CrystalNN can fail on odd geometries; the card still has the rest
            envs = []
    note = None
    description = None
    if not use_robocrys:
        note = "robocrys not requested"
    elif len(structure) > max_robocrys_sites:
        note = f"robocrys skipped for a cell of {len(structure)} sites (> {max_robocrys_sites})"
    else:
        description, note = _robocrys_describe(structure, robocrys_timeout_s)
    if description is None:
        description = _pymatgen_description(formula, sg_symbol, system, envs)
    lat = structure.lattice
    return MaterialCard(
        formula=formula, canonical_formula=canonical_from_composition(comp),
        elements=sorted(el.symbol for el in comp.elements), n_sites=len(structure),
        space_group_symbol=sg_symbol, space_group_number=sg_number, crystal_system=system,
        a_angstrom=round(lat.a, 5), b_angstrom=round(lat.b, 5), c_angstrom=round(lat.c, 5),
        alpha_deg=round(lat.alpha, 3), beta_deg=round(lat.beta, 3), gamma_deg=round(lat.gamma, 3),
        volume_angstrom3=round(lat.volume, 4), density_g_cm3=round(float(structure.density), 4),
        coordination=envs, description=description,
        description_source="pymatgen" if note else "robocrys", description_note=note,
        properties=dict(properties or {}), source=source)

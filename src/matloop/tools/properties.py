"""Property tools: lookup_band_gap and structure_properties.

``lookup_band_gap`` gives the band gap of compositions from the default band-gap model
(:mod:`matloop.surrogates.band_gap`): the measured gap where the composition is in the shipped
experimental table (Zhuo et al. 2018), else the model's value with its calibrated uncertainty;
each row says which (``basis``) and carries the held-out model value next to a measured one.

``structure_properties`` computes properties of one crystal structure with the MLIP: density,
conventional lattice parameters, magnetic moment (site moments of the relaxation), bulk modulus
(equation-of-state fit) and, from the finite-strain elastic tensor, shear modulus and Vickers
hardness (:mod:`matloop.materials.elastic`). The structure is an uploaded file or pasted text,
or, given only a formula, the shipped reference structure of that composition (the starter
library's prototypes, most with experimental lattice constants); the result says which.

Long calculations report their stages through :data:`TOOL_PROGRESS` when a caller (the chat)
has set it: ``callback(stage, done, total)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from matloop.errors import MatloopError
from matloop.files import FileAccess, load_structure
from matloop.materials.engine import MaterialsEngine
from matloop.materials.references import parse_composition
from matloop.tools.base import ToolOutput, ToolSpec

LOOKUP_BAND_GAP = "lookup_band_gap"
STRUCTURE_PROPERTIES = "structure_properties"

#: Progress of the running tool call: ``callback(stage, done, total)`` (None: nobody listens).
TOOL_PROGRESS: ContextVar[Callable[[str, int, int], None] | None] = ContextVar(
    "matloop_tool_progress", default=None)

StructureProperty = Literal["density", "lattice_parameters", "magnetic_moment", "bulk_modulus",
                            "shear_modulus", "hardness"]
_ELASTIC = {"shear_modulus", "hardness"}


def _default_properties() -> list[StructureProperty]:
    return ["density", "lattice_parameters"]


def report_progress(stage: str, done: int = 0, total: int = 0) -> None:
    """Tell the listener of :data:`TOOL_PROGRESS`, if any, what the tool is doing."""
    callback = TOOL_PROGRESS.get()
    if callback is not None:
        callback(stage, done, total)


# -- lookup_band_gap ----------------------------------------------------------------------------


class BandGapArgs(BaseModel):
    """Arguments of lookup_band_gap."""

    formulas: list[str] = Field(description="Compositions, e.g. ['GaN', 'GaAs'].", min_length=1,
                                max_length=20)


class BandGapRow(BaseModel):
    """The band gap of one composition."""

    formula: str = Field(description="Reduced formula.")
    band_gap_ev: float = Field(description="The gap to quote, eV: measured when known, else "
                                           "the model's.")
    basis: Literal["measured", "model"] = Field(description="Where band_gap_ev comes from.")
    source: str = Field(description="The measurement's source or the model.")
    measured_band_gap_ev: float | None = Field(default=None, description="Measured gap, eV.")
    measured_note: str | None = Field(default=None, description="What the experimental table "
                                      "says when it has no number (e.g. a measured non-metal).")
    model_band_gap_ev: float = Field(description="Model value, eV (held out from its own row "
                                                 "when the composition is in the table).")
    model_uncertainty_ev: float = Field(description="Calibrated 1-sigma of the model value, eV.")
    model_interval_95_ev: list[float] = Field(description="95% interval of the model value, eV.")
    model_held_out: bool = Field(description="Model value from trees that never saw this row.")
    metal_probability: float | None = Field(default=None, description="Model's probability "
                                            "that the compound is a metal.")
    in_domain: bool = Field(description="Inside the model's training domain.")
    domain_notes: list[str] = Field(default_factory=list, description="Why not, if so.")


class BandGapOutput(ToolOutput):
    """Result of lookup_band_gap."""

    rows: list[BandGapRow] = Field(default_factory=list, description="One per formula.")
    model: str | None = Field(default=None, description="Model name and version.")
    model_source: str | None = Field(default=None, description="Model description and CV MAE.")


def _band_gap(args: BandGapArgs) -> BandGapOutput:
    from matloop.surrogates.band_gap import default_band_gap_model

    formulas = [parse_composition(f).reduced_formula for f in args.formulas]
    report_progress("band-gap model", 0, len(formulas))
    model = default_band_gap_model()
    rows = []
    predictions = model.predict(formulas)
    for p in predictions:
        measured = p.measured_value is not None
        rows.append(BandGapRow(
            formula=p.formula, band_gap_ev=round(float(
                p.recommended_value if measured and p.recommended_value is not None
                else p.value), 4),
            basis="measured" if measured else "model",
            source=(p.measured_source or "experiment") if measured else p.source,
            measured_band_gap_ev=p.measured_value, measured_note=p.measured_note,
            model_band_gap_ev=round(p.value, 4), model_uncertainty_ev=round(p.uncertainty, 4),
            model_interval_95_ev=[round(v, 4) for v in p.interval_95],
            model_held_out=p.held_out, metal_probability=p.metal_probability,
            in_domain=p.in_domain, domain_notes=list(p.domain_notes)))
    first = predictions[0]
    return BandGapOutput(rows=rows, model=f"{first.model_name} {first.model_version}",
                         model_source=first.source)


def _summary_gap(r: BandGapOutput) -> str:
    if r.status == "error":
        return f"error: {r.message}"
    return "; ".join(f"{x.formula} {x.band_gap_ev:.2f} eV ({x.basis})" for x in r.rows)


# -- structure_properties -----------------------------------------------------------------------


class StructurePropertiesArgs(BaseModel):
    """Arguments of structure_properties."""

    structure: str | None = Field(default=None, description="Path to a structure file (CIF, "
                                  "POSCAR, extxyz, JSON) or CIF/POSCAR text.")
    formula: str | None = Field(default=None, description="Composition whose shipped reference "
                                "structure to use when no structure is given, e.g. WC.")
    prototype: str | None = Field(default=None, description="Structure type of that reference, "
                                  "e.g. rutile, anatase, zincblende, wurtzite (default: the "
                                  "ground state).")
    properties: list[StructureProperty] = Field(
        default_factory=_default_properties, min_length=1,
        description="What to compute. shear_modulus and hardness need the elastic tensor "
                    "(about 25 MLIP relaxations; a minute or more).")
    relax: bool = Field(default=True, description="Relax (cell and ions) first.")


class StructurePropertiesOutput(ToolOutput):
    """Result of structure_properties."""

    formula: str | None = Field(default=None, description="Reduced formula.")
    structure_source: str | None = Field(default=None, description="Which structure: the "
                                         "input, or the shipped reference (id, prototype).")
    spacegroup: str | None = Field(default=None, description="Space group of the final cell.")
    n_atoms: int | None = Field(default=None, description="Atoms in the cell.")
    relaxed: bool = Field(default=False, description="Whether it was relaxed.")
    mlip: str | None = Field(default=None, description="MLIP of the relaxation, with version.")
    density_g_per_cm3: float | None = Field(default=None, description="Density, g/cm^3.")
    lattice_a_angstrom: float | None = Field(default=None, description="Conventional a, Å.")
    lattice_b_angstrom: float | None = Field(default=None, description="Conventional b, Å.")
    lattice_c_angstrom: float | None = Field(default=None, description="Conventional c, Å.")
    lattice_angles_deg: list[float] | None = Field(default=None, description="alpha, beta, "
                                                   "gamma of the conventional cell, degrees.")
    magnetic_moment_bohr_per_formula_unit: float | None = Field(
        default=None, description="Sum of site-moment magnitudes per formula unit, μB.")
    magnetic_moment_note: str | None = Field(default=None, description="What it means.")
    bulk_modulus_gpa: float | None = Field(default=None, description="Bulk modulus, GPa.")
    bulk_modulus_method: str | None = Field(default=None, description="EOS fit or elastic "
                                            "tensor (VRH), with the MLIP.")
    shear_modulus_gpa: float | None = Field(default=None, description="Shear modulus (VRH), GPa.")
    vickers_hardness_gpa: float | None = Field(default=None, description="Vickers hardness, GPa.")
    hardness_model: str | None = Field(default=None, description="Model behind the hardness.")
    elastic_mlip: str | None = Field(default=None, description="MLIP of the elastic tensor.")
    mechanically_stable: bool | None = Field(default=None, description="Born criterion.")
    relaxed_cif: str | None = Field(default=None, description="The final structure as CIF.")
    notes: list[str] = Field(default_factory=list, description="Caveats to show with it.")
    wall_time_s: float | None = Field(default=None, description="Wall time, s.")


def reference_structure(engine: MaterialsEngine, formula: str,
                        prototype: str | None = None) -> tuple[Structure, str, list[str]]:
    """The shipped reference structure of a composition: (structure, description, other
    prototypes known for it). Raises :class:`MatloopError` when none is shipped."""
    comp = parse_composition(formula)
    phases = [p for p in engine.store.phases([e.symbol for e in comp.elements],
                                             with_structure=True)
              if p.composition.reduced_formula == comp.reduced_formula]
    if not phases:
        raise MatloopError(f"no reference structure of {comp.reduced_formula} is shipped",
                           hint="upload a CIF or POSCAR of it (or paste its text)")

    def proto(p: Any) -> str:
        return str((p.meta or {}).get("prototype") or p.source_id)

    if prototype:
        wanted = prototype.lower().replace("-", "").replace(" ", "")
        chosen = [p for p in phases if proto(p).lower().replace("_", "") == wanted]
        if not chosen:
            raise MatloopError(f"no {prototype} structure of {comp.reduced_formula} is shipped "
                               f"(known: {', '.join(sorted({proto(p) for p in phases}))})",
                               hint="upload the structure you mean")
        phase = chosen[0]
    else:
        phase = sorted(phases, key=lambda p: not (p.meta or {}).get("ground_state", False))[0]
    meta = phase.meta or {}
    lattice = "experimental lattice" if meta.get("lattice_is_experimental") else \
        "approximate lattice"
    text = (f"the shipped reference structure {phase.source}:{phase.source_id} ({proto(phase)} "
            f"prototype, {lattice})")
    structure = phase.get_structure()
    assert structure is not None  # filtered on with_structure
    return structure, text, sorted({proto(p) for p in phases} - {proto(phase)})


def property_tools(engine: MaterialsEngine, *, access: FileAccess) -> list[ToolSpec[Any, Any]]:
    """The property tools, bound to one engine (MLIP, cache, reference store)."""

    def structure_properties(args: StructurePropertiesArgs) -> StructurePropertiesOutput:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        from matloop.materials.elastic import density, elastic_properties, magnetic_moment

        t0 = time.perf_counter()
        notes: list[str] = []
        if args.structure:
            structure = load_structure(args.structure, access=access)
            source = "the uploaded structure" if "\n" in args.structure else \
                f"the structure file {args.structure.rsplit('/', 1)[-1]}"
        elif args.formula:
            structure, source, others = reference_structure(engine, args.formula,
                                                            args.prototype)
            if others:
                notes.append(f"other shipped polymorphs: {', '.join(others)} (ask for one by "
                             f"name, or upload a structure)")
        else:
            raise MatloopError("give a structure or a formula", hint="e.g. formula='WC'")
        out = StructurePropertiesOutput(formula=structure.composition.reduced_formula,
                                        structure_source=source, n_atoms=len(structure))
        final = structure
        relax_result = None
        if args.relax:
            report_progress(f"relaxing {out.formula} ({len(structure)} atoms) with "
                            f"{engine.mlip_label}", 0, 1)
            relax_result = engine.evaluator.relax(structure)
            if relax_result.status != "converged":
                raise MatloopError(f"the relaxation of {out.formula} {relax_result.status}: "
                                   f"{relax_result.message}",
                                   hint="check the structure, or ask with relax=false")
            final = relax_result.final_structure()
            out.relaxed = True
            out.mlip = engine.mlip_label
            report_progress("relaxed", 1, 1)
        wanted = set(args.properties)
        if "density" in wanted:
            out.density_g_per_cm3 = round(density(final).density_g_cm3, 4)
        try:
            sga = SpacegroupAnalyzer(final, symprec=0.05)
            out.spacegroup = f"{sga.get_space_group_symbol()} ({sga.get_space_group_number()})"
            conventional = sga.get_conventional_standard_structure()
        except Exception:  # noqa: BLE001 - symmetry finding can fail on odd cells
            conventional = final
            notes.append("symmetry not found: lattice parameters are those of the given cell")
        if "lattice_parameters" in wanted:
            lat = conventional.lattice
            out.lattice_a_angstrom, out.lattice_b_angstrom, out.lattice_c_angstrom = (
                round(lat.a, 4), round(lat.b, 4), round(lat.c, 4))
            out.lattice_angles_deg = [round(lat.alpha, 2), round(lat.beta, 2),
                                      round(lat.gamma, 2)]
        if "magnetic_moment" in wanted:
            if relax_result is None:
                notes.append("magnetic moments come from the relaxation: ask with relax=true")
            else:
                try:
                    mm = magnetic_moment(relax_result)
                    out.magnetic_moment_bohr_per_formula_unit = round(
                        mm.total_magnetic_moment_bohr_per_formula_unit, 3)
                    out.magnetic_moment_note = mm.note
                except MatloopError as exc:
                    notes.append(f"no magnetic moment: {exc.message}")
        if wanted & _ELASTIC:
            evaluator = engine.elastic_evaluator()
            label = f"{evaluator.spec.name} {evaluator.spec.model}"
            report_progress(f"elastic tensor of {out.formula} with {label} (about 25 "
                            f"relaxations)", 0, 1)
            el = elastic_properties(final, evaluator)
            out.elastic_mlip = f"{label} ({evaluator.spec.package} {evaluator.mlip_version})"
            out.shear_modulus_gpa = round(el.shear_modulus_vrh_gpa, 2)
            out.bulk_modulus_gpa = round(el.bulk_modulus_vrh_gpa, 2)
            out.bulk_modulus_method = f"elastic tensor, Voigt-Reuss-Hill average ({label})"
            out.vickers_hardness_gpa = None if el.vickers_hardness_gpa is None else \
                round(el.vickers_hardness_gpa, 2)
            out.hardness_model = el.hardness_model
            out.mechanically_stable = el.mechanically_stable
            notes += el.notes
            report_progress("elastic tensor done", 1, 1)
        elif "bulk_modulus" in wanted:
            report_progress(f"equation of state of {out.formula} (7 volumes)", 0, 1)
            bm = engine.evaluator.bulk_modulus(final)
            out.bulk_modulus_gpa = round(bm.bulk_modulus_gpa, 2)
            out.bulk_modulus_method = (f"Birch-Murnaghan fit of energy against volume "
                                       f"({engine.mlip_label})")
            report_progress("equation of state done", 1, 1)
        out.relaxed_cif = final.to(fmt="cif")
        out.notes = notes
        out.wall_time_s = round(time.perf_counter() - t0, 2)
        return out

    def summary(r: StructurePropertiesOutput) -> str:
        if r.status == "error":
            return f"error: {r.message}"
        parts = [f"{r.formula}"]
        for label, value, unit in (("density", r.density_g_per_cm3, "g/cm^3"),
                                   ("a", r.lattice_a_angstrom, "Å"),
                                   ("moment", r.magnetic_moment_bohr_per_formula_unit, "μB/f.u."),
                                   ("B", r.bulk_modulus_gpa, "GPa"),
                                   ("G", r.shear_modulus_gpa, "GPa"),
                                   ("Hv", r.vickers_hardness_gpa, "GPa")):
            if value is not None:
                parts.append(f"{label} {value} {unit}")
        return ", ".join(parts)

    return [
        ToolSpec(LOOKUP_BAND_GAP,
                 "Band gaps (eV) of compositions: the measured gap where the composition is in "
                 "the shipped experimental table (Zhuo et al. 2018), else the default model's "
                 "value with its 1-sigma uncertainty and 95% interval; basis says which. The "
                 "model value (held out from its own row) is given next to a measured one.",
                 BandGapArgs, BandGapOutput, _band_gap, _summary_gap),
        ToolSpec(STRUCTURE_PROPERTIES,
                 "Properties of one crystal structure from the MLIP: density (g/cm^3), "
                 "conventional lattice parameters (Å), magnetic moment (μB per formula unit), "
                 "bulk modulus (GPa, equation of state), shear modulus and Vickers hardness "
                 "(GPa, elastic tensor; slow). Give a structure (path or CIF/POSCAR text) or "
                 "a formula whose shipped reference structure is used.",
                 StructurePropertiesArgs, StructurePropertiesOutput, structure_properties,
                 summary),
    ]

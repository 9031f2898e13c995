"""Materials-engine tools: relax_structure, predict_properties, check_stability,
lookup_known_phases.

Structures are read through one file-access policy (:class:`matloop.files.FileAccess`): a path
inside an allowed folder, or CIF/POSCAR text. Relaxed structures are written as CIFs into the
run directory when there is one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from matloop.errors import MatloopError
from matloop.files import FileAccess, load_structure
from matloop.generation.matching import NoveltyIndex, novelty_label
from matloop.logs import quiet_third_party
from matloop.materials.engine import MaterialsEngine, Prediction
from matloop.materials.references import parse_composition
from matloop.tools.base import CandidateContext, ToolOutput, ToolSpec

RELAX_STRUCTURE = "relax_structure"
PREDICT_PROPERTIES = "predict_properties"
CHECK_STABILITY = "check_stability"
LOOKUP_KNOWN_PHASES = "lookup_known_phases"


class StructureArgs(BaseModel):
    """Arguments naming one structure."""

    structure: str = Field(description="Path to a structure file (CIF, POSCAR, extxyz, "
                                       "pymatgen JSON) or the text of a CIF.")


class RelaxArgs(StructureArgs):
    """Arguments of relax_structure."""

    bulk_modulus: bool = Field(default=False, description="Also fit an equation of state and "
                               "report bulk_modulus_gpa (7 extra relaxations).")


class PredictArgs(BaseModel):
    """Arguments of predict_properties."""

    structures: list[str] = Field(description="Structure file paths or CIF texts (a batch).",
                                  min_length=1, max_length=200)
    relax: bool = Field(default=True, description="Relax before predicting.")
    bulk_modulus: bool = Field(default=False, description="Also compute bulk_modulus_gpa.")
    elastic: bool = Field(default=False, description="Also compute the elastic tensor: "
                          "shear_modulus_gpa and vickers_hardness_gpa (about 25 relaxations "
                          "per structure).")


class StabilityArgs(BaseModel):
    """Arguments of check_stability."""

    formula: str = Field(description="Composition of the phase, e.g. LiFePO4.")
    energy_per_atom_ev: float = Field(description="MLIP total energy per atom, eV/atom, on the "
                                      "engine's MLIP native scale (from relax_structure).")
    structure: str | None = Field(default=None, description="Optional structure (path or CIF "
                                                            "text), checked against the formula.")


class LookupArgs(BaseModel):
    """Arguments of lookup_known_phases."""

    chemsys: str = Field(description="Chemical system as elements joined by '-', e.g. Li-Fe-O, "
                                     "or a formula whose elements define it.")
    limit: int = Field(default=30, ge=1, le=500, description="Most phases to list.")


class PredictionRow(BaseModel):
    """What was computed for one structure (a row of predict_properties)."""

    index: int = Field(default=0, description="Position of the structure in the request.")
    outcome: str = Field(default="ok", description="ok, not_converged, diverged, failed, error.")
    message: str = Field(default="", description="Why there is no result, when there is none.")
    formula: str | None = Field(default=None, description="Reduced formula.")
    energy_per_atom_ev: float | None = Field(default=None, description="MLIP energy, eV/atom.")
    formation_energy_ev_per_atom: float | None = Field(default=None, description="eV/atom.")
    e_above_hull_ev_per_atom: float | None = Field(default=None, description="eV/atom, "
                                                   "negative below the reference hull.")
    decomposition: dict[str, float] | None = Field(default=None, description="Competing phases "
                                                   "and atomic fractions.")
    is_stable: bool | None = Field(default=None, description="Within the hull threshold.")
    energy_scale: str | None = Field(default=None, description="Scale of the hull numbers.")
    stability_error: str | None = Field(default=None, description="Why stability was not "
                                                                  "assessed.")
    reference_set: str | None = Field(default=None, description="What the hull was built from.")
    flags: list[str] = Field(default_factory=list, description="Warnings to show with the "
                                                               "numbers.")
    bulk_modulus_gpa: float | None = Field(default=None, description="Birch-Murnaghan B0, GPa.")
    shear_modulus_gpa: float | None = Field(default=None, description="Shear modulus (VRH), GPa.")
    vickers_hardness_gpa: float | None = Field(default=None, description="Vickers hardness, GPa.")
    hardness_model: str | None = Field(default=None, description="B/G model of the hardness.")
    elastic_mlip: str | None = Field(default=None, description="MLIP of the elastic tensor.")
    elastic_notes: list[str] = Field(default_factory=list, description="Elastic caveats.")
    density_g_per_cm3: float | None = Field(default=None, description="Density, g/cm^3.")
    magmoms_bohr: list[float] | None = Field(default=None, description="Site moments, μB.")
    mlip: str | None = Field(default=None, description="MLIP backend.")
    mlip_model: str | None = Field(default=None, description="MLIP model.")
    mlip_version: str | None = Field(default=None, description="Backend package version.")
    relaxed_cif_path: str | None = Field(default=None, description="Relaxed CIF written.")
    novelty: str | None = Field(default=None, description="Known phase / known composition / "
                                "new composition, with what it was checked against.")
    novelty_error: str | None = Field(default=None, description="Why novelty was not judged.")

    @property
    def usable(self) -> bool:
        """A converged result with energies."""
        return self.outcome == "ok" and self.energy_per_atom_ev is not None


class RelaxOutput(ToolOutput, PredictionRow):
    """Result of relax_structure (status error when the relaxation gave no result)."""


class PredictOutput(ToolOutput):
    """Result of predict_properties."""

    evaluated: int = Field(default=0, description="Structures with a usable result.")
    total: int = Field(default=0, description="Structures asked for.")
    results: list[PredictionRow] = Field(default_factory=list, description="One row per "
                                         "structure, in request order.")


class StabilityOutput(ToolOutput):
    """Result of check_stability (the hull position of a composition and energy)."""

    formula: str | None = Field(default=None, description="Reduced formula.")
    chemsys: str | None = Field(default=None, description="Chemical system of the hull.")
    energy_scale: str | None = Field(default=None, description="Scale of the hull.")
    formation_energy_ev_per_atom: float | None = Field(default=None, description="eV/atom.")
    e_above_hull_ev_per_atom: float | None = Field(default=None, description="eV/atom.")
    decomposition: dict[str, float] | None = Field(default=None, description="Competing phases.")
    is_stable: bool | None = Field(default=None, description="Within the threshold.")
    threshold_ev_per_atom: float | None = Field(default=None, description="eV/atom.")
    n_reference_phases: int | None = Field(default=None, description="Phases in the hull.")
    reference_sources: list[str] = Field(default_factory=list, description="Their sources.")


class PhaseRow(BaseModel):
    """One known phase."""

    formula: str = Field(description="Reduced formula.")
    source: str = Field(description="Where it comes from (mp-pack, starter, file...).")
    source_id: str = Field(description="Id within the source (mp-id for MP data).")
    energy_ev_per_atom: float | None = Field(default=None, description="Energy, eV/atom.")
    energy_kind: str | None = Field(default=None, description="formation or total.")
    energy_scale: str | None = Field(default=None, description="Scale of the energy.")
    has_structure: bool = Field(default=False, description="Whether a structure is known.")
    e_above_hull_ev_per_atom: float | None = Field(default=None, description="Its distance to "
                                                   "the hull of the listed formation energies.")
    mp_id: str | None = Field(default=None, description="Materials Project id, when known.")


class PhasesOutput(ToolOutput):
    """Result of lookup_known_phases."""

    chemsys: str | None = Field(default=None, description="The system listed.")
    total: int = Field(default=0, description="Phases known within it (subsystems included).")
    shown: int = Field(default=0, description="Phases listed here.")
    phases: list[PhaseRow] = Field(default_factory=list, description="Stable ones first.")


def _row(p: Prediction, index: int = 0) -> dict[str, Any]:
    data = p.model_dump()
    keep = {k: data[k] for k in PredictionRow.model_fields if k in data and k not in
            ("index", "outcome", "message")}
    return {**keep, "index": index, "outcome": p.status, "message": p.message}


def _stem(spec: str, p: Prediction) -> str:
    """File stem of a relaxed CIF: the input file's stem, or a hash of the result, so results
    of different calls never overwrite each other."""
    if "\n" not in spec:  # a file path (structure text always has several lines)
        return f"relaxed-{Path(spec.strip()).stem}"
    return "relaxed-" + hashlib.sha1((p.structure_cif or "").encode()).hexdigest()[:12]


def _source(spec: str) -> str:
    return Path(spec.strip()).name if "\n" not in spec else "structure text"


# -- hooks: files produced and candidate updates --------------------------------------------


def produced_by_prediction(result: PredictOutput | RelaxOutput, selector: str) -> list[str]:
    """Relaxed CIFs of usable rows; ``stable:N`` keeps the N lowest stable ones."""
    rows = result.results if isinstance(result, PredictOutput) else [result]
    ok = [r for r in rows if r.usable and r.relaxed_cif_path]
    if selector.startswith("stable"):
        parts = selector.split(":")
        limit = int(parts[1]) if len(parts) > 1 and parts[1] else None
        stable = sorted([r for r in ok if r.is_stable],
                        key=lambda r: r.e_above_hull_ev_per_atom or 0.0)
        return [str(r.relaxed_cif_path) for r in stable[:limit]]
    return [str(r.relaxed_cif_path) for r in ok]


def prediction_updates(result: PredictOutput, ctx: CandidateContext) -> list[dict[str, Any]]:
    """Energies, hull position and novelty for the candidates whose files were relaxed (or
    their bulk moduli, for a bulk-modulus call)."""
    structures = ctx.arguments.get("structures", [])
    out: list[dict[str, Any]] = []
    for row in result.results:
        if row.index >= len(structures) or (cid := ctx.by_path.get(structures[row.index])) is None:
            continue
        old = ctx.known[cid]
        update: dict[str, Any] = {"id": cid, "tool_call_ids": [*old.tool_call_ids,
                                                               ctx.record_id]}
        if ctx.arguments.get("bulk_modulus") or ctx.arguments.get("elastic"):
            props, sources = dict(old.properties), dict(old.property_sources)
            if row.bulk_modulus_gpa is not None:
                props["bulk_modulus_gpa"] = row.bulk_modulus_gpa
                sources["bulk_modulus_gpa"] = f"mlip:{row.mlip} EOS fit ({ctx.record_id})"
            caveats = f"; {'; '.join(row.elastic_notes)}" if row.elastic_notes else ""
            if row.shear_modulus_gpa is not None:
                props["shear_modulus_gpa"] = row.shear_modulus_gpa
                sources["shear_modulus_gpa"] = (
                    f"mlip:{row.elastic_mlip} finite-strain elastic tensor, Voigt-Reuss-Hill "
                    f"({ctx.record_id}{caveats})")
            if row.vickers_hardness_gpa is not None:
                props["vickers_hardness_gpa"] = row.vickers_hardness_gpa
                sources["vickers_hardness_gpa"] = (
                    f"{row.hardness_model} B/G model on mlip:{row.elastic_mlip} moduli "
                    f"({ctx.record_id}{caveats})")
            update["properties"], update["property_sources"] = props, sources
        else:
            update.update({
                "status": row.outcome, "energy_per_atom_ev": row.energy_per_atom_ev,
                "formation_energy_ev_per_atom": row.formation_energy_ev_per_atom,
                "e_above_hull_ev_per_atom": row.e_above_hull_ev_per_atom,
                "decomposition": row.decomposition, "is_stable": row.is_stable,
                "energy_scale": row.energy_scale, "cif_path": row.relaxed_cif_path,
                "iteration": ctx.iteration, "novelty": row.novelty or old.novelty,
                "flags": list(row.flags),
                "mlip": f"{row.mlip} {row.mlip_model} {row.mlip_version}" if row.mlip else None,
            })
            props, sources = dict(old.properties), dict(old.property_sources)
            if row.usable and row.density_g_per_cm3 is not None:
                props["density_g_per_cm3"] = row.density_g_per_cm3
                sources["density_g_per_cm3"] = f"relaxed cell of mlip:{row.mlip} " \
                                               f"({ctx.record_id})"
            update["properties"], update["property_sources"] = props, sources
            if row.usable and row.magmoms_bohr:  # CHGNet's site moments: a magnetic target
                moment = sum(abs(m) for m in row.magmoms_bohr) / len(row.magmoms_bohr)
                update["properties"] = {**props,
                                        "magnetic_moment_bohr_per_atom": round(moment, 4)}
                update["property_sources"] = {
                    **sources,
                    "magnetic_moment_bohr_per_atom":
                        f"mlip:{row.mlip} site moments of the relaxed cell, mean |m| per atom "
                        f"(magnitudes only, ferromagnetic reading; {ctx.record_id})"}
        out.append(update)
    return out


def _summary_prediction(r: PredictOutput) -> str:
    if r.status == "error":
        return f"error: {r.message}"
    stable = sum(bool(x.is_stable) for x in r.results if x.usable)
    return f"{r.evaluated}/{r.total} evaluated, {stable} stable"


def _summary_relax(r: RelaxOutput) -> str:
    if r.status == "error":
        return f"error: {r.message}"
    text = f"{r.formula}: {r.energy_per_atom_ev:.4f} eV/atom"
    if r.e_above_hull_ev_per_atom is not None:
        text += f", {r.e_above_hull_ev_per_atom:+.3f} eV/atom above the hull"
    return text


#: Progress of a long tool call: ``(tool, stage, done, total)``.
ToolProgress = Callable[[str, str, int, int], None]


def materials_tools(engine: MaterialsEngine, *, run_dir: Path | None, access: FileAccess,
                    progress: ToolProgress | None = None) -> list[ToolSpec[Any, Any]]:
    """The engine's tools, bound to one engine (MLIP, cache, reference store).

    Args:
        progress: Receives ``(tool, stage, done, total)`` while relax_structure and
            predict_properties work (a campaign writes them to its event log).
    """

    def report(tool: str) -> Callable[[str, int, int], None] | None:
        if progress is None:
            return None
        return lambda stage, done, total: progress(tool, stage, done, total)

    def save(p: Prediction, stem: str) -> str | None:
        if run_dir is None or not p.structure_cif:
            return None
        folder = run_dir / "structures"
        folder.mkdir(parents=True, exist_ok=True)
        if not p.relaxed:
            stem = stem.replace("relaxed-", "input-", 1)
        name = stem if stem.endswith(f"_{p.formula}") else f"{stem}_{p.formula}"
        path = folder / f"{name}.cif"
        path.write_text(p.structure_cif)
        return str(path)

    def load(spec: str) -> Structure:
        return load_structure(spec, access=access)

    def relax(args: RelaxArgs) -> RelaxOutput:
        s = load(args.structure)
        (p,) = engine.predict([s], sources=[_source(args.structure)],
                              bulk_modulus=args.bulk_modulus, progress=report(RELAX_STRUCTURE))
        row = _row(p)
        row["relaxed_cif_path"] = save(p, _stem(args.structure, p))
        if p.status != "ok":
            return RelaxOutput(**{**row, "status": "error",
                                  "message": f"relaxation {p.status}: {p.message}",
                                  "hint": "check the structure, or raise MATLOOP_RELAX_STEPS"})
        return RelaxOutput(**row)

    def predict(args: PredictArgs) -> PredictOutput:
        loaded: list[tuple[int, Structure]] = []
        rows: list[PredictionRow] = []
        for i, spec in enumerate(args.structures):
            try:
                loaded.append((i, load(spec)))
            except MatloopError as exc:
                rows.append(PredictionRow(index=i, outcome="error", message=str(exc)))
        preds = engine.predict([s for _, s in loaded],
                               sources=[_source(args.structures[i]) for i, _ in loaded],
                               relax=args.relax, bulk_modulus=args.bulk_modulus,
                               elastic=args.elastic,
                               progress=report(PREDICT_PROPERTIES)) if loaded else []
        indexes: dict[str, NoveltyIndex] = {}
        for (i, _), p in zip(loaded, preds, strict=True):
            row = PredictionRow(**_row(p, i))
            if p.status == "ok" and p.structure_cif:
                try:
                    final = load(p.structure_cif)
                except MatloopError as exc:  # a relaxed cell that fails validation
                    row.novelty_error = str(exc)
                else:
                    system = final.composition.chemical_system
                    if system not in indexes:
                        indexes[system] = NoveltyIndex(engine.store, elements=system.split("-"),
                                                       mp_structures=engine.mp_structures)
                    row.novelty = novelty_label(indexes[system].assess(final))
            row.relaxed_cif_path = save(p, _stem(args.structures[i], p))
            rows.append(row)
        rows.sort(key=lambda r: r.index)
        ok = sum(r.usable for r in rows)
        return PredictOutput(status="ok" if ok == len(rows) else ("partial" if ok else "error"),
                             message="" if ok else "no structure gave a usable result",
                             evaluated=ok, total=len(rows), results=rows)

    def stability(args: StabilityArgs) -> StabilityOutput:
        comp = parse_composition(args.formula)
        if args.structure:
            s = load(args.structure)
            if s.composition.reduced_formula != comp.reduced_formula:
                raise MatloopError(f"structure is {s.composition.reduced_formula}, formula says "
                                   f"{comp.reduced_formula}", hint="pass matching inputs")
        st = engine.stability(comp, args.energy_per_atom_ev)
        return StabilityOutput(**st.model_dump())

    def lookup(args: LookupArgs) -> PhasesOutput:
        text = args.chemsys.strip()
        if "-" in text or (text.isalpha() and len(text) <= 2):
            elements = [e.strip() for e in text.split("-") if e.strip()]
            for el in elements:
                parse_composition(el)
        else:
            elements = [el.symbol for el in parse_composition(text).elements]
        phases = engine.store.phases(elements)
        hull = _hull_distances(phases, elements)
        rows = sorted(
            (PhaseRow(formula=p.composition.reduced_formula, source=p.source,
                      source_id=p.source_id, energy_ev_per_atom=p.energy_ev_per_atom,
                      energy_kind=p.energy_kind, energy_scale=p.energy_scale,
                      has_structure=p.structure is not None,
                      e_above_hull_ev_per_atom=hull.get(p.composition.reduced_formula)
                      if p.energy_kind == "formation" else None,
                      mp_id=(p.meta or {}).get("mp_id") or (p.meta or {}).get("material_id"))
             for p in phases),
            key=lambda r: (r.e_above_hull_ev_per_atom is None,
                           r.e_above_hull_ev_per_atom or 0.0, r.formula))
        return PhasesOutput(chemsys="-".join(sorted(elements)), total=len(rows),
                            shown=min(len(rows), args.limit), phases=rows[:args.limit])

    return [
        ToolSpec(RELAX_STRUCTURE,
                 "Relax one crystal structure with the MLIP and report its energy (eV/atom), "
                 "formation energy (eV/atom), energy above the convex hull (eV/atom), "
                 "decomposition products and stability; optionally the bulk modulus (GPa).",
                 RelaxArgs, RelaxOutput, relax, _summary_relax, produces=produced_by_prediction),
        ToolSpec(PREDICT_PROPERTIES,
                 "Predict energies, formation energies, hull stability (and optionally bulk "
                 "moduli) for a batch of structures, and say whether each relaxed structure is "
                 "a known phase, a known composition or a new composition against the "
                 "Materials Project references; cached results are reused.",
                 PredictArgs, PredictOutput, predict, _summary_prediction,
                 produces=produced_by_prediction, candidates=prediction_updates),
        ToolSpec(CHECK_STABILITY,
                 "Place a composition with a given MLIP energy (eV/atom) on the convex hull of "
                 "known phases: formation energy, energy above hull (eV/atom), decomposition, "
                 "is_stable.", StabilityArgs, StabilityOutput, stability,
                 lambda r: f"error: {r.message}" if r.status == "error" else
                 f"{r.formula}: {r.e_above_hull_ev_per_atom:+.3f} eV/atom above the hull"),
        ToolSpec(LOOKUP_KNOWN_PHASES,
                 "List known reference phases within a chemical system (every sub-system "
                 "included), stable ones first: formula, source, mp-id, energy (eV/atom) and "
                 "its scale, energy above the hull of the listed formation energies.",
                 LookupArgs, PhasesOutput, lookup,
                 lambda r: f"error: {r.message}" if r.status == "error" else
                 f"{r.total} known phases in {r.chemsys}"),
    ]


def _hull_distances(phases: list[Any], elements: list[str]) -> dict[str, float]:
    """Energy above the hull of each formula among the formation-energy phases (eV/atom)."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    entries = [PDEntry(Composition(el), 0.0) for el in elements]
    best: dict[str, float] = {}
    for p in phases:
        if p.energy_kind == "formation" and p.energy_ev_per_atom is not None:
            rf = p.composition.reduced_formula
            best[rf] = min(best.get(rf, float("inf")), float(p.energy_ev_per_atom))
    for rf, e in best.items():
        comp = Composition(rf)
        entries.append(PDEntry(comp, e * comp.num_atoms, name=rf))
    try:
        with quiet_third_party():
            pd = PhaseDiagram(entries)
            return {e.name: round(float(pd.get_e_above_hull(e) or 0.0), 6) for e in entries[
                len(elements):]}
    except ValueError:
        return {}

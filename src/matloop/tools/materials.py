"""Materials-engine tools: relax_structure, predict_properties, check_stability,
lookup_known_phases.

Each tool takes JSON-friendly arguments (pydantic schemas with units in the descriptions),
returns a short JSON summary whose first key is ``status``, and writes full artifacts
(relaxed CIFs) to the run directory when one is given.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field
from pymatgen.core import Structure

from matloop.errors import MatloopError, StructureInputError
from matloop.generation.matching import NoveltyIndex, novelty_label
from matloop.materials.engine import MaterialsEngine, Prediction
from matloop.materials.references import parse_composition
from matloop.materials.structures import read_structure, validate_structure


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


def _load(spec: str) -> Structure:
    text = spec.strip()
    if "\n" in text and ("_cell_length_a" in text or text.startswith("data_")):
        try:
            from pymatgen.io.cif import CifParser

            s = CifParser.from_str(text).parse_structures(primitive=False, on_error="raise")[0]
        except Exception as exc:
            raise StructureInputError(f"CIF text could not be parsed ({exc})") from exc
        return validate_structure(s, source="CIF text")
    return read_structure(spec)


def _stem(spec: str, p: Prediction) -> str:
    """File stem of a relaxed CIF: the input file's stem, or a hash of the result, so results
    of different calls never overwrite each other."""
    if "\n" not in spec:  # a file path (CIF text always has several lines)
        return f"relaxed-{Path(spec.strip()).stem}"
    return "relaxed-" + hashlib.sha1((p.relaxed_cif or "").encode()).hexdigest()[:12]


def _summary(p: Prediction) -> dict[str, Any]:
    keys = ("status", "message", "formula", "energy_per_atom_ev", "formation_energy_ev_per_atom",
            "e_above_hull_ev_per_atom", "decomposition", "is_stable", "energy_scale",
            "stability_error", "reference_set", "flags", "bulk_modulus_gpa", "mlip",
            "mlip_model", "mlip_version")
    data = p.model_dump()
    return {k: data[k] for k in keys if data.get(k) not in (None, "", {}, [])}


def make_materials_tools(engine: MaterialsEngine, *, run_dir: Path | None = None,
                         ) -> list[BaseTool]:
    """The engine's tools, bound to one engine (MLIP, cache, reference store)."""

    def save(p: Prediction, stem: str) -> str | None:
        if run_dir is None or not p.relaxed_cif:
            return None
        folder = run_dir / "structures"
        folder.mkdir(parents=True, exist_ok=True)
        name = stem if stem.endswith(f"_{p.formula}") else f"{stem}_{p.formula}"
        path = folder / f"{name}.cif"
        path.write_text(p.relaxed_cif)
        return str(path)

    def error(exc: MatloopError) -> str:
        return json.dumps({"status": "error", "message": str(exc)})

    def relax_structure(structure: str, bulk_modulus: bool = False) -> str:
        """Relax one crystal structure with the MLIP and report its energy (eV/atom),
        formation energy (eV/atom), energy above the convex hull (eV/atom), decomposition
        products and stability; optionally the bulk modulus (GPa)."""
        try:
            s = _load(structure)
            (p,) = engine.predict([s], sources=[structure[:80]], bulk_modulus=bulk_modulus)
        except MatloopError as exc:
            return error(exc)
        out = _summary(p)
        if cif := save(p, _stem(structure, p)):
            out["relaxed_cif_path"] = cif
        return json.dumps(out)

    def predict_properties(structures: list[str], relax: bool = True,
                           bulk_modulus: bool = False) -> str:
        """Predict energies, formation energies, hull stability (and optionally bulk moduli)
        for a batch of structures, and say whether each relaxed structure is novel or a known
        reference phase; cached results are reused."""
        loaded, problems = [], []
        for i, spec in enumerate(structures):
            try:
                loaded.append((i, _load(spec)))
            except MatloopError as exc:
                problems.append({"index": i, "status": "error", "message": str(exc)})
        preds = engine.predict([s for _, s in loaded], sources=[structures[i][:80] for i, _ in
                                                                loaded],
                               relax=relax, bulk_modulus=bulk_modulus) if loaded else []
        rows = []
        indexes: dict[str, NoveltyIndex] = {}
        for (i, s), p in zip(loaded, preds, strict=True):
            row = {"index": i, **_summary(p)}
            if p.status == "ok" and p.relaxed_cif:
                try:
                    final = _load(p.relaxed_cif)
                except MatloopError as exc:  # a relaxed cell that fails validation
                    row["novelty_error"] = str(exc)
                else:
                    system = final.composition.chemical_system
                    if system not in indexes:
                        indexes[system] = NoveltyIndex(engine.store, elements=system.split("-"),
                                                       mp_structures=engine.mp_structures)
                    row["novelty"] = novelty_label(indexes[system].assess(final))
            if cif := save(p, _stem(structures[i], p)):
                row["relaxed_cif_path"] = cif
            rows.append(row)
        rows = sorted(rows + problems, key=lambda r: r["index"])
        ok = sum(r["status"] == "ok" for r in rows)
        return json.dumps({"status": "ok" if ok == len(rows) else "partial",
                           "evaluated": ok, "total": len(rows), "results": rows})

    def check_stability(formula: str, energy_per_atom_ev: float,
                        structure: str | None = None) -> str:
        """Place a composition with a given MLIP energy (eV/atom) on the convex hull of known
        phases: formation energy, energy above hull (eV/atom), decomposition, is_stable."""
        try:
            comp = parse_composition(formula)
            if structure:
                s = _load(structure)
                if s.composition.reduced_formula != comp.reduced_formula:
                    return error(MatloopError(
                        f"structure is {s.composition.reduced_formula}, formula says "
                        f"{comp.reduced_formula}"))
            st = engine.stability(comp, energy_per_atom_ev)
        except MatloopError as exc:
            return error(exc)
        return json.dumps({"status": "ok", **st.model_dump()})

    def lookup_known_phases(chemsys: str, limit: int = 30) -> str:
        """List known reference phases within a chemical system (every sub-system included):
        formula, source, energy (eV/atom) and its scale, whether a structure is known."""
        try:
            if "-" in chemsys or chemsys.strip().isalpha() and len(chemsys.strip()) <= 2:
                elements = [e.strip() for e in chemsys.split("-") if e.strip()]
                for el in elements:
                    parse_composition(el)
            else:
                elements = [el.symbol for el in parse_composition(chemsys).elements]
        except MatloopError as exc:
            return error(exc)
        phases = engine.store.phases(elements)
        rows = [{"formula": p.composition.reduced_formula, "source": p.source,
                 "source_id": p.source_id, "energy_ev_per_atom": p.energy_ev_per_atom,
                 "energy_kind": p.energy_kind, "energy_scale": p.energy_scale,
                 "has_structure": p.structure is not None} for p in phases[:limit]]
        return json.dumps({"status": "ok", "chemsys": "-".join(sorted(elements)),
                           "total": len(phases), "shown": len(rows), "phases": rows})

    return [
        StructuredTool.from_function(relax_structure, args_schema=RelaxArgs),
        StructuredTool.from_function(predict_properties, args_schema=PredictArgs),
        StructuredTool.from_function(check_stability, args_schema=StabilityArgs),
        StructuredTool.from_function(lookup_known_phases, args_schema=LookupArgs),
    ]

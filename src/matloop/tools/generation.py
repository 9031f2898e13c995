"""Generation tool: generate_candidates.

Proposes new crystal structures for a composition or chemical system with the generators of
:mod:`matloop.generation`, writes each as a CIF plus ``candidates.json`` (full provenance) into
``<run_dir>/candidates/``, labels each against the references, and can keep only the most
promising by a single-point MLIP pre-screen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from pymatgen.core import Composition

from matloop.errors import MatloopError
from matloop.generation import GenerationReport, GenerationRequest, generate_report
from matloop.generation.matching import NoveltyIndex, UniqueIndex, novelty_label
from matloop.generation.screening import prescreen
from matloop.materials.structures import read_structure
from matloop.tools.base import CandidateContext, ToolOutput, ToolSpec, short_validation_error

GENERATE_CANDIDATES = "generate_candidates"


class GenerateArgs(BaseModel):
    """Arguments of generate_candidates."""

    chemsys: str | None = Field(default=None, description="Chemical system, elements joined by "
                                "'-', e.g. Li-Fe-O. Give this or composition.")
    composition: str | None = Field(default=None, description="Exact composition, e.g. LiFeO2.")
    methods: list[str] = Field(default_factory=lambda: ["all"], description="Generators: "
                               "prototype (decorated structure types), aflow (pymatgen's AFLOW "
                               "prototype library), substitution (data-mined "
                               "ion substitution of known structures), random (symmetric random "
                               "search), llm (few-shot, when a model is configured), or all.")
    n: int = Field(default=10, ge=1, le=100, description="How many candidates.")
    spacegroups: list[int] | None = Field(default=None, description="Allowed space-group "
                                          "numbers (1-230); omit for any.")
    max_atoms: int = Field(default=20, ge=1, le=100, description="Most atoms per primitive cell.")
    required_elements: list[str] = Field(default_factory=list, description="Elements every "
                                         "candidate must contain.")
    excluded_elements: list[str] = Field(default_factory=list, description="Elements no "
                                         "candidate may contain.")
    seed: int = Field(default=0, description="Random seed (same seed, same candidates).")
    prescreen_keep: int | None = Field(default=None, ge=1, le=100, description=(
        "Keep only this many of the n candidates: the lowest above the hull by one MLIP single "
        "point on the unrelaxed cell (about 0.03 s each, vs seconds to minutes per "
        "relaxation). Ask for n 2-4 times what you will relax. Omit to keep all."))


class GeneratedRow(BaseModel):
    """One generated candidate."""

    id: str = Field(description="Candidate id.")
    formula: str = Field(description="Reduced formula.")
    method: str = Field(description="Generator.")
    spacegroup: int | None = Field(default=None, description="Space-group number.")
    n_atoms: int = Field(default=0, description="Atoms in the cell.")
    valid: bool = Field(default=True, description="Passed the validity checks.")
    validity_notes: list[str] = Field(default_factory=list, description="Failed checks.")
    novelty: str | None = Field(default=None, description="Against the references.")
    cif_path: str | None = Field(default=None, description="CIF written for it.")
    provenance: dict[str, Any] = Field(default_factory=dict, description="Prototype, parent, "
                                       "substitution, seed.")


class GenerateOutput(ToolOutput):
    """Result of generate_candidates."""

    n: int = Field(default=0, description="Candidates returned.")
    per_method: dict[str, int] = Field(default_factory=dict, description="Per generator.")
    proposed: int = Field(default=0, description="Structures the generators proposed.")
    duplicates_removed: int = Field(default=0, description="Repeats dropped.")
    rejected: dict[str, int] = Field(default_factory=dict, description="Rejections by reason.")
    seconds: float = Field(default=0.0, description="Wall time, s.")
    candidates: list[GeneratedRow] = Field(default_factory=list, description="The candidates.")
    prescreen: dict[str, Any] | None = Field(default=None, description="What the pre-screen "
                                             "kept and how.")
    repeats_of_earlier_calls: list[dict[str, str]] = Field(
        default_factory=list, description="Candidates dropped as repeats of earlier calls.")


def write_candidates(report: GenerationReport, folder: Path) -> list[str]:
    """Write one CIF per candidate and candidates.json into ``folder``; returns the CIF paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rows = []
    for c in report.candidates:
        path = folder / f"{c.id}_{c.formula}.cif"
        path.write_text(c.get_structure().to(fmt="cif"))
        paths.append(str(path))
        rows.append({**c.model_dump(), "cif_path": str(path)})
    (folder / "candidates.json").write_text(json.dumps({
        "request": report.request.model_dump(), "candidates": rows,
        "rejected": [r.model_dump() for r in report.rejected], "proposed": report.proposed,
        "duplicates": report.duplicates, "seconds": report.seconds,
        "method_seconds": report.method_seconds,
    }, indent=2, default=str))
    return paths


class RunCandidates:
    """Structures this run has generated so far, so a later call drops repeats.

    Seeded from the CIFs already in the run's candidates folder, so a resumed campaign keeps
    the memory; a candidate with the same id as an earlier one (the same step run again after
    a crash) is kept, a different candidate with the same structure is a repeat.
    """

    def __init__(self, folder: Path | None) -> None:
        self.index = UniqueIndex()
        self.ids: list[str] = []
        if folder is not None and folder.is_dir():
            for path in sorted(folder.glob("*.cif")):
                try:
                    self._add(path.name.split("_")[0], read_structure(path))
                except MatloopError:
                    continue

    def _add(self, cid: str, structure: Any) -> None:
        if cid not in self.ids and self.index.add(structure):
            self.ids.append(cid)

    def repeat_of(self, cid: str, structure: Any) -> str | None:
        """Id of an earlier, different candidate with this structure, else None."""
        if cid in self.ids:
            return None
        found = self.index.find(structure)
        return None if found is None else self.ids[found]

    def remember(self, cid: str, structure: Any) -> None:
        """Record a candidate the run keeps."""
        self._add(cid, structure)


def summarize(report: GenerationReport, paths: list[str] | None = None,
              novelty: list[str] | None = None) -> GenerateOutput:
    """The tool's result for a generation report."""
    rows = [GeneratedRow(id=c.id, formula=c.formula, method=c.method, spacegroup=c.spacegroup,
                         n_atoms=c.n_atoms, valid=c.valid, validity_notes=c.validity_notes,
                         novelty=novelty[i] if novelty else None,
                         cif_path=paths[i] if paths else None, provenance=c.provenance)
            for i, c in enumerate(report.candidates)]
    reasons: dict[str, int] = {}
    for r in report.rejected:
        key = f"{r.method}: {r.reason.split(':')[0]}"
        reasons[key] = reasons.get(key, 0) + 1
    return GenerateOutput(n=len(rows), per_method=report.per_method, proposed=report.proposed,
                          duplicates_removed=report.duplicates, rejected=reasons,
                          seconds=report.seconds, candidates=rows)


def produced_by_generation(result: GenerateOutput, selector: str) -> list[str]:
    """CIFs of the valid generated candidates."""
    return [c.cif_path for c in result.candidates if c.cif_path and c.valid]


def generation_updates(result: GenerateOutput, ctx: CandidateContext) -> list[dict[str, Any]]:
    """New campaign candidates, one per generated CIF."""
    out = []
    for c in result.candidates:
        if not c.cif_path:
            continue
        out.append({
            "id": c.id, "formula": c.formula,
            "chemical_system": "-".join(sorted(el.symbol for el in
                                               Composition(c.formula).elements)),
            "spacegroup": None if c.spacegroup is None else str(c.spacegroup),
            "n_atoms": c.n_atoms, "method": c.method, "novelty": c.novelty,
            "provenance": {**c.provenance, "generated_cif": c.cif_path},
            "hypothesis_id": ctx.hypothesis_id, "iteration": ctx.iteration,
            "status": "generated" if c.valid else "invalid", "tool_call_ids": [ctx.record_id],
        })
    return out


def _summary(r: GenerateOutput) -> str:
    if r.status == "error":
        return f"error: {r.message}"
    return f"{r.n} candidates generated"


def generation_tools(engine: Any, *, run_dir: Path | None = None, chat_model: Any = None,
                     ) -> list[ToolSpec[Any, Any]]:
    """The generation tool, bound to one engine (its reference store) and optional chat model."""
    folder = run_dir / "candidates" if run_dir is not None else None
    memory: list[RunCandidates] = []

    def generate(args: GenerateArgs) -> GenerateOutput:
        wanted = list(args.methods or ["all"])
        if "all" in wanted and chat_model is not None:
            wanted = ["prototype", "aflow", "substitution", "random", "llm"]
        try:
            request = GenerationRequest(
                chemsys=args.chemsys, composition=args.composition, methods=wanted, n=args.n,
                spacegroups=args.spacegroups, max_atoms=args.max_atoms,
                required_elements=args.required_elements,
                excluded_elements=args.excluded_elements, seed=args.seed)
        except ValidationError as exc:
            raise MatloopError(f"invalid generation request: {short_validation_error(exc)}",
                               hint="give chemsys or composition, and valid limits") from exc
        report = generate_report(request, store=engine.store, chat_model=chat_model)
        if not memory:
            memory.append(RunCandidates(folder))
        repeats = []
        for c in list(report.candidates):
            earlier = memory[0].repeat_of(c.id, c.get_structure())
            if earlier is not None:
                repeats.append({"id": c.id, "same_structure_as": earlier})
                report.candidates.remove(c)
        screened = None
        if args.prescreen_keep is not None and len(report.candidates) > args.prescreen_keep:
            screen = prescreen(report.candidates, engine, keep=args.prescreen_keep)
            report.candidates = screen.kept
            screened = {"kept": len(screen.kept), "scored": len(screen.scores),
                        "seconds": screen.seconds, "mlip": screen.mlip,
                        "criterion": "lowest single-point E_hull of the unrelaxed cell"}
        for c in report.candidates:
            memory[0].remember(c.id, c.get_structure())
        report.per_method = {m: sum(c.method == m for c in report.candidates)
                             for m in report.per_method}
        known = NoveltyIndex(engine.store, elements=sorted(
            {el for c in report.candidates for el in c.get_structure().composition.as_dict()}),
            mp_structures=engine.mp_structures)
        novelty = [novelty_label(known.assess(c.get_structure())) for c in report.candidates]
        paths = write_candidates(report, folder) if folder is not None else None
        out = summarize(report, paths, novelty)
        out.prescreen = screened
        out.repeats_of_earlier_calls = repeats
        return out

    return [ToolSpec(
        GENERATE_CANDIDATES,
        "Generate new candidate crystal structures for a chemical system or composition "
        "(prototype decoration, data-mined substitution, symmetric random search, LLM few-shot). "
        "Candidates are charge-balanced, de-duplicated (also against earlier calls of this run), "
        "labelled against the reference phases, and not yet relaxed: pass their cif_path to "
        "predict_properties to relax them and check hull stability. With prescreen_keep, only "
        "the most promising by a single-point hull energy are returned.",
        GenerateArgs, GenerateOutput, generate, _summary, produces=produced_by_generation,
        candidates=generation_updates)]

"""Generation tool: generate_candidates.

Proposes new crystal structures for a composition or chemical system with the generators of
:mod:`matloop.generation`, writes each as a CIF plus ``candidates.json`` (full provenance) into
``<run_dir>/candidates/``, and returns a short JSON summary whose first key is ``status``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from matloop.errors import MatloopError
from matloop.generation import GenerationReport, GenerationRequest, generate_report
from matloop.generation.matching import NoveltyIndex, UniqueIndex, novelty_label


class GenerateArgs(BaseModel):
    """Arguments of generate_candidates."""

    chemsys: str | None = Field(default=None, description="Chemical system, elements joined by "
                                "'-', e.g. Li-Fe-O. Give this or composition.")
    composition: str | None = Field(default=None, description="Exact composition, e.g. LiFeO2.")
    methods: list[str] = Field(default_factory=lambda: ["all"], description="Generators: "
                               "prototype (decorated structure types), substitution (data-mined "
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
            from matloop.materials.structures import read_structure

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
              novelty: list[str] | None = None) -> dict[str, Any]:
    """The compact summary the tool returns."""
    rows = []
    for i, c in enumerate(report.candidates):
        row: dict[str, Any] = {"id": c.id, "formula": c.formula, "method": c.method,
                               "spacegroup": c.spacegroup, "n_atoms": c.n_atoms,
                               "valid": c.valid}
        if novelty:
            row["novelty"] = novelty[i]
        if c.validity_notes:
            row["validity_notes"] = c.validity_notes
        if paths:
            row["cif_path"] = paths[i]
        rows.append(row)
    reasons: dict[str, int] = {}
    for r in report.rejected:
        key = f"{r.method}: {r.reason.split(':')[0]}"
        reasons[key] = reasons.get(key, 0) + 1
    return {"status": "ok", "n": len(rows), "per_method": report.per_method,
            "proposed": report.proposed, "duplicates_removed": report.duplicates,
            "rejected": reasons, "seconds": report.seconds, "candidates": rows}


def make_generation_tools(engine: Any, *, run_dir: Path | None = None, chat_model: Any = None,
                          ) -> list[BaseTool]:
    """The generation tool bound to one engine (its reference store) and optional chat model."""
    folder = run_dir / "candidates" if run_dir is not None else None
    memory: list[RunCandidates] = []

    def generate_candidates(chemsys: str | None = None, composition: str | None = None,
                            methods: list[str] | None = None, n: int = 10,
                            spacegroups: list[int] | None = None, max_atoms: int = 20,
                            required_elements: list[str] | None = None,
                            excluded_elements: list[str] | None = None, seed: int = 0,
                            prescreen_keep: int | None = None) -> str:
        """Generate new candidate crystal structures for a chemical system or composition
        (prototype decoration, data-mined substitution, symmetric random search, LLM few-shot).
        Candidates are charge-balanced, de-duplicated (also against earlier calls of this
        run), labelled novel or known against the reference phases, and not yet relaxed: pass
        their cif_path to predict_properties to relax them and check hull stability. With
        prescreen_keep, only the most promising by a single-point hull energy are returned."""
        try:
            wanted = list(methods or ["all"])
            if "all" in wanted and chat_model is not None:
                wanted = ["prototype", "substitution", "random", "llm"]
            request = GenerationRequest(
                chemsys=chemsys, composition=composition, methods=wanted, n=n,
                spacegroups=spacegroups, max_atoms=max_atoms,
                required_elements=required_elements or [],
                excluded_elements=excluded_elements or [], seed=seed)
            report = generate_report(request, store=engine.store, chat_model=chat_model)
        except MatloopError as exc:
            return json.dumps({"status": "error", "message": str(exc)})
        except ValueError as exc:  # pydantic validation of the arguments
            return json.dumps({"status": "error", "message": str(exc).splitlines()[0]})
        if not memory:
            memory.append(RunCandidates(folder))
        repeats = []
        for c in list(report.candidates):
            earlier = memory[0].repeat_of(c.id, c.get_structure())
            if earlier is not None:
                repeats.append({"id": c.id, "same_structure_as": earlier})
                report.candidates.remove(c)
        screened = None
        if prescreen_keep is not None and len(report.candidates) > prescreen_keep:
            from matloop.generation.screening import prescreen

            screen = prescreen(report.candidates, engine, keep=prescreen_keep)
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
        summary = summarize(report, paths, novelty)
        if screened:
            summary["prescreen"] = screened
        if repeats:
            summary["repeats_of_earlier_calls"] = repeats
        return json.dumps(summary)

    return [StructuredTool.from_function(generate_candidates, args_schema=GenerateArgs)]

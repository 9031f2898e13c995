"""Requests, candidates and reports of candidate generation (pydantic, JSON-friendly)."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pymatgen.core import Structure

from matloop.materials.structures import structure_fingerprint

#: Generators shipped with matloop, in the order ``methods=None`` / ``"all"`` runs them.
BUILTIN_METHODS = ("prototype", "substitution", "random", "llm")


class GenerationRequest(BaseModel):
    """What to generate: a composition or a chemical system, with constraints."""

    composition: str | None = Field(default=None, description="Target composition, e.g. "
                                    "LiFeO2; every candidate has this reduced formula.")
    chemsys: str | None = Field(default=None, description="Chemical system, elements joined by "
                                "'-', e.g. Li-Fe-O; candidates use elements from it.")
    required_elements: list[str] = Field(default_factory=list, description="Elements every "
                                         "candidate must contain (default with a chemsys: all "
                                         "of its elements).")
    excluded_elements: list[str] = Field(default_factory=list, description="Elements no "
                                         "candidate may contain.")
    spacegroups: list[int] | None = Field(default=None, description="Allowed space-group "
                                          "numbers (1-230) of the generated cells; None: any.")
    max_atoms: int = Field(default=20, ge=1, le=200, description="Most atoms per cell "
                           "(primitive cell of the candidate).")
    n: int = Field(default=10, ge=1, le=1000, description="How many candidates to return.")
    seed: int = Field(default=0, description="Random seed; same request and seed, same output.")
    methods: list[str] | None = Field(default=None, description="Generators to run: prototype, "
                                      "substitution, random, llm, a registered name, or 'all'. "
                                      "None: prototype, substitution, random (and llm when a "
                                      "chat model is given).")
    keep_invalid: bool = Field(default=False, description="Return candidates that fail the "
                               "validity checks too (flagged valid=False).")
    dedupe: bool = Field(default=True, description="Drop structures that match an earlier "
                         "candidate (StructureMatcher ltol 0.2, stol 0.3, angle_tol 5).")
    exclude_known: bool = Field(default=False, description="Drop structures that match a "
                                "reference structure of the store (not novel).")
    novel_compositions_only: bool = Field(default=False, description="Drop candidates whose "
                                          "reduced formula the store already knows (with or "
                                          "without a structure): spend no MLIP time on known "
                                          "compositions.")

    @field_validator("spacegroups")
    @classmethod
    def _check_spacegroups(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            bad = [v for v in value if not 1 <= int(v) <= 230]
            if bad:
                raise ValueError(f"space-group numbers must be 1-230, got {bad}")
            if not value:
                return None
        return value


class Candidate(BaseModel):
    """One generated structure with its provenance and validity."""

    id: str = Field(description="Stable id: hash of the structure and the method.")
    formula: str = Field(description="Reduced formula.")
    structure: dict[str, Any] = Field(description="pymatgen Structure.as_dict().")
    method: str = Field(description="Generator that produced it.")
    provenance: dict[str, Any] = Field(default_factory=dict, description="How it was made: "
                                       "parent or prototype, substitution map and probability, "
                                       "seed, space group...")
    valid: bool = Field(default=True, description="Passed charge/electronegativity, distance and "
                        "volume checks.")
    validity_notes: list[str] = Field(default_factory=list, description="Failed checks.")
    spacegroup: int | None = Field(default=None, description="Space group of the cell "
                                   "(spglib, symprec 0.1 Å).")
    n_atoms: int = Field(default=0, description="Atoms in the cell.")

    def get_structure(self) -> Structure:
        """The candidate as a pymatgen Structure."""
        return Structure.from_dict(self.structure)

    @classmethod
    def from_structure(cls, structure: Structure, *, method: str,
                       provenance: dict[str, Any] | None = None,
                       spacegroup: int | None = None) -> Candidate:
        """Wrap a structure; the id hashes its fingerprint with the method name."""
        digest = hashlib.sha256(
            f"{method}:{structure_fingerprint(structure)}".encode()).hexdigest()[:12]
        return cls(id=f"{method[:4]}-{digest}", formula=structure.composition.reduced_formula,
                   structure=structure.as_dict(), method=method,
                   provenance=dict(provenance or {}), spacegroup=spacegroup,
                   n_atoms=len(structure))


class Rejection(BaseModel):
    """A proposal that did not become a candidate, and why."""

    method: str = Field(description="Generator that proposed it.")
    reason: str = Field(description="Why it was rejected.")
    formula: str | None = Field(default=None, description="Its formula, when known.")
    detail: dict[str, Any] = Field(default_factory=dict, description="E.g. the model's answer.")


class GenerationReport(BaseModel):
    """Candidates of one request, with what was discarded and how long it took."""

    request: GenerationRequest = Field(description="The request, as run.")
    candidates: list[Candidate] = Field(description="Returned candidates (unique unless "
                                        "dedupe=False).")
    rejected: list[Rejection] = Field(default_factory=list, description="Invalid or malformed "
                                      "proposals (LLM answers included).")
    proposed: int = Field(default=0, description="Structures proposed before filtering.")
    duplicates: int = Field(default=0, description="Proposals dropped as duplicates.")
    known: int = Field(default=0, description="Proposals dropped as known (exclude_known).")
    per_method: dict[str, int] = Field(default_factory=dict, description="Candidates per method.")
    seconds: float = Field(default=0.0, description="Wall time of generation, s.")
    method_seconds: dict[str, float] = Field(default_factory=dict, description="Wall time "
                                             "spent in each generator and its checks, s.")
    notes: list[str] = Field(default_factory=list, description="E.g. methods skipped and why.")

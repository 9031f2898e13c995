"""Requests, candidates and reports of candidate generation (pydantic, JSON-friendly)."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pymatgen.core import Structure

from matloop.materials.structures import structure_fingerprint

#: Generators shipped with matloop, in the order ``"all"`` runs them.
BUILTIN_METHODS = ("prototype", "aflow", "substitution", "random", "llm")
#: Where substitution takes its parent structures from.
SUBSTITUTION_SOURCES = ("store", "prototypes", "aflow")


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
                                      "aflow, substitution, random, llm, a registered name, or "
                                      "'all' (every built-in). None: prototype, substitution, "
                                      "random (and llm when a chat model is given).")
    prior_oversample: int = Field(default=1, ge=1, le=10, description="Generate this many "
                                  "times n candidates, then keep n, preferring compositions the "
                                  "composition prior (MP-trained formation-energy model) puts "
                                  "likely within reach of the store's hull; a composition's k-th "
                                  "structure counts half its (k-1)-th, so the kept set stays "
                                  "broad. 1: off (chemical-system requests only).")
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
    exclude_prototypes: list[str] = Field(default_factory=list, description="Structure types "
                                          "no prototype source may use: names or aliases of the "
                                          "75-type library (spinel, MAX_211), AFLOW labels "
                                          "(A2BC4_cF56_227_d_a_e), Strukturbericht designations "
                                          "(H1_1) or mineral names (Spinel). Every prototype of "
                                          "either library with the same structure (anonymous "
                                          "StructureMatcher fit) goes too.")
    exclude_structures: list[dict[str, Any]] = Field(default_factory=list, description="Structures "
                                                     "(pymatgen Structure.as_dict()) whose "
                                                     "structure type no prototype source may use; "
                                                     "the structures themselves are also no "
                                                     "substitution parent or random-search "
                                                     "analogue.")
    holdout_formulas: list[str] = Field(default_factory=list, description="Compositions whose "
                                        "known structures no generator may start from "
                                        "(substitution parents, random-search analogues).")
    holdout_strict: bool = Field(default=False, description="Also drop every known structure "
                                 "of an excluded structure type from substitution parents and "
                                 "random-search analogues (nothing of that type left to copy).")
    substitution_sources: list[str] | None = Field(default=None, description="Parents of the "
                                                   "substitution method: store (reference "
                                                   "store or starter library), prototypes (the "
                                                   "75-type library's examples), aflow (the AFLOW "
                                                   "library's examples). None: all three.")
    random_prior: bool = Field(default=False, description="Random search draws space groups and "
                               "Wyckoff patterns from known structures of similar chemistry "
                               "(same anonymised formula or stoichiometry class) instead of "
                               "uniformly.")
    random_explore_fraction: float = Field(default=0.25, ge=0.0, le=1.0, description="With "
                                           "random_prior: share of attempts that still draw the "
                                           "space group uniformly.")
    aflow_assignments: int = Field(default=2, ge=1, le=24, description="Most element "
                                   "assignments tried per AFLOW prototype (best ranked first).")

    @field_validator("substitution_sources")
    @classmethod
    def _check_sources(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            bad = sorted(set(value) - set(SUBSTITUTION_SOURCES))
            if bad:
                raise ValueError(f"unknown substitution source(s) {bad}; valid: "
                                 f"{', '.join(SUBSTITUTION_SOURCES)}")
        return value

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

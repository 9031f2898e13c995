"""Uniqueness and novelty with pymatgen's StructureMatcher at MatterGen's settings.

Structures are compared only with structures of the same reduced formula (StructureMatcher
never matches different compositions), so a batch costs little more than its duplicates.
Novelty has two levels, reported separately:

* structure level: no reference *structure* of the store matches (starter library, imported
  CIFs, fetched MP structures);
* composition level: no reference phase of the same reduced formula that has *no* structure
  (e.g. an imported MP formation-energy CSV) exists; such a reference cannot be matched
  structurally, so a known composition counts as not novel.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure

#: MatterGen's matcher settings (Zeni et al., Nature 2025).
MATCHER_SETTINGS = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0}


@lru_cache(maxsize=1)
def matcher() -> StructureMatcher:
    """The shared StructureMatcher (ltol 0.2, stol 0.3, angle_tol 5)."""
    return StructureMatcher(**MATCHER_SETTINGS)


def matches(a: Structure, b: Structure) -> bool:
    """Same structure under the matcher (after a cheap composition check)."""
    if a.composition.reduced_formula != b.composition.reduced_formula:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(matcher().fit(a, b))
        except Exception:  # noqa: BLE001 - spglib/lattice-reduction corner cases: no match
            return False


class UniqueIndex:
    """Structures seen so far, by reduced formula; ``add`` says whether one is new."""

    def __init__(self) -> None:
        self._seen: dict[str, list[Structure]] = {}

    def find(self, structure: Structure) -> int | None:
        """Position of a matching earlier structure of the same formula, or None."""
        for i, other in enumerate(self._seen.get(structure.composition.reduced_formula, [])):
            if matches(structure, other):
                return i
        return None

    def add(self, structure: Structure) -> bool:
        """Remember the structure; True when it matched nothing seen before."""
        if self.find(structure) is not None:
            return False
        self._seen.setdefault(structure.composition.reduced_formula, []).append(structure)
        return True


def unique_flags(structures: Sequence[Structure]) -> list[bool]:
    """True for the first occurrence of each distinct structure."""
    index = UniqueIndex()
    return [index.add(s) for s in structures]


class NoveltyIndex:
    """Reference structures and structure-less compositions of a store, for novelty checks."""

    def __init__(self, store: Any = None, *, elements: Sequence[str] | None = None,
                 phases: Sequence[Any] | None = None) -> None:
        if phases is None:
            if store is None:
                from matloop.materials.references import starter_phases

                phases = list(starter_phases())
            else:
                phases = store.phases(sorted(set(elements or [])))
        self.structures: dict[str, list[tuple[str, Structure]]] = {}
        self.compositions: dict[str, list[str]] = {}
        for p in phases:
            rf = Composition(p.formula).reduced_formula
            if p.structure is not None:
                self.structures.setdefault(rf, []).append(
                    (f"{p.source}:{p.source_id}", p.get_structure()))
            else:
                self.compositions.setdefault(rf, []).append(f"{p.source}:{p.source_id}")

    def structure_match(self, structure: Structure) -> str | None:
        """Label of a matching reference structure, or None (novel at structure level)."""
        for label, ref in self.structures.get(structure.composition.reduced_formula, []):
            if matches(structure, ref):
                return label
        return None

    def composition_match(self, composition: Composition) -> str | None:
        """Label of a structure-less reference of that formula, or None."""
        known = self.compositions.get(composition.reduced_formula)
        return known[0] if known else None

    def assess(self, structure: Structure) -> dict[str, Any]:
        """Novelty of one structure at both levels, with what it matched."""
        s_match = self.structure_match(structure)
        c_match = self.composition_match(structure.composition)
        rf = structure.composition.reduced_formula
        basis = []
        if rf in self.structures:
            basis.append("structure")
        if rf in self.compositions:
            basis.append("composition")
        return {
            "novel_structure": s_match is None,
            "novel_composition": c_match is None,
            "novel": s_match is None and c_match is None,
            "matched_structure": s_match,
            "matched_composition": c_match,
            "novelty_basis": "+".join(basis) or "formula unknown to the references",
        }


def novelty_label(assessment: dict[str, Any]) -> str:
    """``novel`` or ``known: <reference>`` with the level the verdict rests on."""
    match = assessment["matched_structure"] or assessment["matched_composition"]
    if match:
        level = "structure" if assessment["matched_structure"] else "composition"
        return f"known ({level} match: {match})"
    return f"novel (checked: {assessment['novelty_basis']})"

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

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure

from matloop.logs import quiet_third_party

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
    with quiet_third_party():
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


def _reference_label(phase: Any) -> str:
    """How a reference is named in labels: its mp-id for MP data, else source:id."""
    mp_id = (phase.meta or {}).get("mp_id") or (phase.meta or {}).get("material_id")
    if mp_id and str(phase.source).startswith("mp"):
        return f"{mp_id} (Materials Project)"
    if str(phase.source).startswith("mp-pack"):
        return "Materials Project composition; no mp-id shipped"
    return f"{phase.source}:{phase.source_id}"


class NoveltyIndex:
    """Reference structures and structure-less compositions, for novelty verdicts that say
    what they were checked against.

    Three verdicts (see :func:`novelty_label`): a *known phase* (the structure matches a
    reference structure: starter library, imported CIFs, fetched MP structures, or MP's own
    structures when ``mp_structures`` is given); a *known composition* (the formula is a
    reference composition, e.g. one of the shipped Materials Project compositions, but no
    reference structure of it matches); a *new composition* (no reference of the formula).

    Args:
        store: A :class:`~matloop.materials.references.ReferenceStore`; its phases within
            ``elements`` are the references, and its composition count is quoted in labels.
        phases: Reference phases to use instead of a store (tests, benchmarks).
        mp_structures: Optional ``formula -> [(mp_id, Structure), ...]`` (online structure
            check against the Materials Project, cached by the caller); without it, a known
            composition's structure is checked against the local structures only.
    """

    def __init__(self, store: Any = None, *, elements: Sequence[str] | None = None,
                 phases: Sequence[Any] | None = None,
                 mp_structures: Any = None) -> None:
        if phases is None:
            if store is None:
                from matloop.materials.references import starter_phases

                phases = list(starter_phases())
            else:
                phases = store.phases(sorted(set(elements or [])))
        self.mp_structures = mp_structures
        self.structures: dict[str, list[tuple[str, Structure]]] = {}
        self.compositions: dict[str, list[str]] = {}
        shipped = False
        for p in phases:
            rf = Composition(p.formula).reduced_formula
            if p.structure is not None:
                self.structures.setdefault(rf, []).append(
                    (_reference_label(p), p.get_structure()))
            elif p.energy_kind != "total" or len(Composition(p.formula).elements) > 1:
                self.compositions.setdefault(rf, []).append(_reference_label(p))
                shipped = shipped or str(p.source).startswith("mp-pack")
        self.n_compositions = (store.composition_count() if store is not None
                               else len(set(self.structures) | set(self.compositions)))
        self.scope = ("MP and local reference compositions"
                      if shipped or (store is not None and store.shipped_set() is not None)
                      else "reference compositions")

    def structure_match(self, structure: Structure) -> str | None:
        """Label of a matching local reference structure, or None."""
        for label, ref in self.structures.get(structure.composition.reduced_formula, []):
            if matches(structure, ref):
                return label
        return None

    def composition_match(self, composition: Composition) -> str | None:
        """Label of a structure-less reference of that formula, or None."""
        known = self.compositions.get(composition.reduced_formula)
        return known[0] if known else None

    def assess(self, structure: Structure) -> dict[str, Any]:
        """Novelty of one structure at both levels, with what it was checked against."""
        rf = structure.composition.reduced_formula
        s_match = self.structure_match(structure)
        c_match = self.composition_match(structure.composition)
        mp_checked: int | None = None
        mp_error: str | None = None
        if s_match is None and (c_match is not None or rf in self.structures) and \
                self.mp_structures is not None:
            from matloop.errors import MatloopError

            try:
                mp_refs = list(self.mp_structures(rf))
            except MatloopError as exc:  # offline or refused: say so, judge locally
                mp_refs, mp_error = [], exc.message
            else:
                mp_checked = len(mp_refs)
            for mp_id, ref in mp_refs:
                if matches(structure, ref):
                    s_match = f"{mp_id} (Materials Project structure)"
                    break
        basis = []
        if rf in self.structures:
            basis.append("structure")
        if rf in self.compositions:
            basis.append("composition")
        known_composition = c_match is not None or rf in self.structures
        return {
            "novel_structure": s_match is None,
            "novel_composition": not known_composition,
            "novel": s_match is None and not known_composition,
            "matched_structure": s_match,
            "matched_composition": c_match or (self.structures[rf][0][0]
                                               if rf in self.structures else None),
            "novelty_basis": "+".join(basis) or "formula unknown to the references",
            "local_structures": len(self.structures.get(rf, [])),
            "mp_structures_checked": mp_checked,
            "mp_check_error": mp_error,
            "reference_compositions": self.n_compositions,
            "scope": self.scope,
            "formula": rf,
        }


def novelty_label(assessment: dict[str, Any]) -> str:
    """The verdict in words, saying what it was checked against.

    * ``known phase (matches <reference>)``;
    * ``known composition (<reference>); structure not among the N local structure
      references of <formula> (not checked against MP structures)`` — or, after an online
      check, ``...; structure not among the M Materials Project structures of <formula>``;
    * ``new composition (not among the N MP compositions ...)``.
    """
    if assessment["matched_structure"]:
        return f"known phase (matches {assessment['matched_structure']})"
    rf = assessment.get("formula", "")
    if not assessment["novel_composition"]:
        n_local = assessment.get("local_structures", 0)
        checked = assessment.get("mp_structures_checked")
        why_not = (f"MP structure check failed: {assessment['mp_check_error']}"
                   if assessment.get("mp_check_error") else "not checked against MP structures")
        where = (f"not among the {checked} Materials Project structures of {rf}"
                 if checked is not None else
                 f"not among the {n_local} local structure reference(s) of {rf} ({why_not})")
        return f"known composition ({assessment['matched_composition']}); structure {where}"
    n = assessment.get("reference_compositions")
    count = f"{n:,} " if isinstance(n, int) else ""
    return f"new composition (not among the {count}{assessment.get('scope', 'references')})"

"""Holding structure types and structures out of a run (blind benchmarks, ablations).

A request can name structure types (``exclude_prototypes``), give structures
(``exclude_structures``) and compositions (``holdout_formulas``):

* a named type is looked up in both prototype sources: the 75-type library by name or alias,
  the AFLOW library by label, Strukturbericht designation or mineral name (case-insensitive);
  an unknown name is an error;
* every prototype of *either* source whose example has the same structure as a named type or a
  given structure (StructureMatcher ``fit_anonymous``, ltol 0.2 / stol 0.3 / angle_tol 5, among
  examples with the same anonymised formula) is excluded too, so "spinel" removes the 75-type
  spinel and AFLOW's A2BC4_cF56_227_d_a_e alike;
* substitution parents and random-search analogues of a held-out formula, or that are one of
  the given structures (same formula and StructureMatcher fit), are dropped. Other compounds of
  a held-out type stay: finding the target from them is what substitution is for. With
  ``strict`` (request field ``holdout_strict``) they go too, so nothing of a held-out type is
  left to copy and only a search can find it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pymatgen.core import Composition, Structure

from matloop.generation.matching import matcher, matches
from matloop.generation.targets import GenerationError
from matloop.logs import quiet_third_party


@dataclass(frozen=True)
class Exclusions:
    """What a run may not use (see the module docstring)."""

    prototype_names: frozenset[str] = frozenset()
    aflow_labels: frozenset[str] = frozenset()
    structures: tuple[Structure, ...] = ()
    formulas: frozenset[str] = frozenset()
    requested: tuple[str, ...] = ()
    matched: dict[str, list[str]] = field(default_factory=dict)
    type_structures: tuple[Structure, ...] = ()
    strict: bool = False

    def __bool__(self) -> bool:
        return bool(self.prototype_names or self.aflow_labels or self.structures
                    or self.formulas)

    def excludes_prototype(self, name: str) -> bool:
        """Whether a 75-type prototype (by its canonical name) is held out."""
        return name in self.prototype_names

    def excludes_aflow(self, label: str) -> bool:
        """Whether an AFLOW prototype (by label) is held out."""
        return label in self.aflow_labels

    def excludes_key(self, key: str) -> bool:
        """Whether a source-qualified prototype id (``prototype:<name>``, ``aflow:<label>``)
        is held out."""
        source, _, name = key.partition(":")
        return (source == "prototype" and self.excludes_prototype(name)) or (
            source == "aflow" and self.excludes_aflow(name))

    def excludes_parent(self, formula: str, structure: Structure | dict[str, Any] | None = None,
                        ) -> bool:
        """Whether a known structure may not be a parent or analogue: its formula is held out,
        or it is one of the excluded structures."""
        rf = Composition(formula).reduced_formula
        if rf in self.formulas:
            return True
        if structure is None:
            return False
        same = [s for s in self.structures if s.composition.reduced_formula == rf]
        anon = Composition(rf).anonymized_formula
        types = [t for t in self.type_structures if _anon(t) == anon] if self.strict else []
        if not same and not types:
            return False
        s = Structure.from_dict(structure) if isinstance(structure, dict) else structure
        return any(matches(s, other) for other in same) or any(
            same_structure_type(s, t) for t in types)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly record for provenance and reports."""
        return {"requested": list(self.requested),
                "prototypes": sorted(self.prototype_names),
                "aflow_labels": sorted(self.aflow_labels),
                "structures": len(self.structures), "formulas": sorted(self.formulas),
                "strict": self.strict}


def _anon(structure: Structure) -> str:
    return structure.composition.reduced_composition.anonymized_formula


def same_structure_type(a: Structure, b: Structure) -> bool:
    """Same structure up to a relabelling of elements (StructureMatcher ``fit_anonymous``)."""
    if _anon(a) != _anon(b):
        return False
    with quiet_third_party():
        try:
            return bool(matcher().fit_anonymous(a, b))
        except Exception:  # noqa: BLE001 - spglib/lattice-reduction corner cases: no match
            return False


@lru_cache(maxsize=1)
def prototype_examples() -> tuple[tuple[str, Structure], ...]:
    """(name, example structure) of every 75-type prototype with an example decoration."""
    from matloop.generation.prototype import example_structure, templates

    out = []
    for index, t in enumerate(templates()):
        if t.species is None:
            continue
        try:
            out.append((t.prototype.name, example_structure(index)))
        except Exception:  # noqa: BLE001, S112 - a broken library entry is skipped
            continue
    return tuple(out)


def _lookup(name: str) -> tuple[set[str], set[str]]:
    """75-type names and AFLOW labels a requested name denotes."""
    from matloop.generation.aflow import aflow_library
    from matloop.materials.prototypes import load_prototypes

    key = name.strip().lower()
    names: set[str] = set()
    labels: set[str] = set()
    proto = load_prototypes().get(key)
    if proto is not None:
        names.add(proto.name)
    for p in aflow_library():
        if key in {p.label.lower(), (p.strukturbericht or "").lower(), (p.mineral or "").lower()}:
            labels.add(p.label)
    return names, labels


def resolve_exclusions(*, prototypes: Iterable[str] = (),
                       structures: Iterable[Structure | dict[str, Any]] = (),
                       formulas: Iterable[str] = (), strict: bool = False) -> Exclusions:
    """Expand named types and given structures to every matching prototype of both sources.

    ``strict``: also drop every known structure of an excluded type from substitution parents
    and random-search analogues.

    Raises:
        GenerationError: A name that is neither a 75-type name/alias nor an AFLOW label,
            Strukturbericht designation or mineral name; an unreadable structure.
    """
    from matloop.generation.aflow import aflow_library

    requested = tuple(p for p in (s.strip() for s in prototypes) if p)
    names: set[str] = set()
    labels: set[str] = set()
    matched: dict[str, list[str]] = {}
    for raw in requested:
        n, lab = _lookup(raw)
        if not n and not lab:
            raise GenerationError(
                f"unknown structure type {raw!r} in exclude_prototypes",
                hint="use a 75-type name or alias (spinel, MAX_211, rocksalt), an AFLOW label "
                     "(A2BC4_cF56_227_d_a_e), a Strukturbericht designation (H1_1) or a "
                     "mineral name (Spinel)")
        names |= n
        labels |= lab
        matched[raw] = sorted(n) + sorted(lab)
    given: list[Structure] = []
    for s in structures:
        try:
            given.append(Structure.from_dict(s) if isinstance(s, dict) else s)
        except Exception as exc:
            raise GenerationError(f"exclude_structures holds an unreadable structure ({exc})",
                                  hint="pass pymatgen Structure.as_dict() dictionaries") from exc
    examples = prototype_examples()
    library = aflow_library()
    types = [s for n, s in examples if n in names] + [p.structure for p in library
                                                      if p.label in labels] + given
    for ref in types:
        for n, s in examples:
            if n not in names and same_structure_type(s, ref):
                names.add(n)
        for p in library:
            if p.label not in labels and same_structure_type(p.structure, ref):
                labels.add(p.label)
    held = frozenset(Composition(f).reduced_formula for f in formulas if f.strip())
    return Exclusions(frozenset(names), frozenset(labels), tuple(given), held, requested,
                      matched, tuple(types), strict)


def exclusions_for(request: Any) -> Exclusions:
    """The exclusions of a :class:`~matloop.generation.models.GenerationRequest`."""
    if not (request.exclude_prototypes or request.exclude_structures
            or request.holdout_formulas):
        return Exclusions()
    return resolve_exclusions(prototypes=request.exclude_prototypes,
                              structures=request.exclude_structures,
                              formulas=request.holdout_formulas,
                              strict=request.holdout_strict)

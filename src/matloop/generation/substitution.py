"""Data-mined ion substitution (Hautier et al., Inorg. Chem. 50, 656 (2011)).

Parents are known structures from three sources (``substitution_sources``, default all): the
reference store's structures (``store``: starter library, imported CIFs, fetched MP structures),
the 75-type prototype library's example decorations (``prototypes``) and the AFLOW prototype
library's examples (``aflow``, 288 structures bundled with pymatgen). Parents of held-out
prototypes or formulas are skipped (:mod:`matloop.generation.holdout`). Each parent's elements
are mapped one-to-one onto allowed elements; the map's probability is the product over sites of
pymatgen's ``SubstitutionProbability.cond_prob(parent_species, new_species)``, the same quantity
``SubstitutionPredictor`` ranks by when predicting *to* a composition. That predictor does not
check charge balance of the result, so oxidation states are chosen here: the new composition must
be neutral with common oxidation states and keep every ion's sign. Charge balance is not asked
of intermetallics: alloy parents (all metals) map onto alloys or metallic compounds (Cu2MnAl ->
Co2MnSi), metallic parents (Ti2AlC) onto metallic compounds (Ti2AlN), with an element-level
probability (the best over the elements' common ion pairs). Substitutions that change nothing
are skipped. The volume is rescaled by the ratio of summed cubed radii (ionic radii for ions).
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pymatgen.core import Composition, Element, Structure

from matloop.generation.chemistry import (
    common_oxidation_states,
    is_alloy,
    is_metallic,
    proposable,
    roles,
    sphere_volume,
)
from matloop.generation.models import Candidate
from matloop.generation.similarity import element_probability, species_probability
from matloop.generation.targets import Target
from matloop.logs import quiet_third_party

#: Maps less likely than this are not proposed.
MIN_PROBABILITY = 1e-7


@dataclass(frozen=True)
class Parent:
    """A known structure that substitutions start from."""

    label: str
    formula: str
    structure: dict[str, Any]
    kind: str
    states: tuple[tuple[str, int], ...]
    amounts: tuple[tuple[str, float], ...]
    n_sites: int
    source: str = "store"


def _parent(label: str, structure: Structure, source: str = "store") -> Parent:
    comp = structure.composition
    kind, states = roles(comp)
    return Parent(label, comp.reduced_formula, structure.as_dict(), kind,
                  tuple(sorted(states.items())), tuple(sorted(comp.get_el_amt_dict().items())),
                  len(structure), source)


@lru_cache(maxsize=1)
def _starter_parents() -> tuple[Parent, ...]:
    from matloop.materials.references import starter_phases

    return tuple(_parent(f"{p.source}:{p.source_id}", p.get_structure())
                 for p in starter_phases())


@lru_cache(maxsize=1)
def _library_parents() -> tuple[tuple[str, Parent], ...]:
    """(prototype name, parent) of the 75-type library's own example decorations."""
    from matloop.generation.prototype import example_structure, templates

    out = []
    for index, t in enumerate(templates()):
        if t.species is None or t.source.startswith("starter:"):
            continue
        try:
            out.append((t.prototype.name, _parent(t.source, example_structure(index),
                                                  "prototypes")))
        except Exception:  # noqa: BLE001, S112 - a broken library entry is skipped
            continue
    return tuple(out)


@lru_cache(maxsize=1)
def _aflow_parents() -> tuple[tuple[str, Parent], ...]:
    """(AFLOW label, parent) of every AFLOW library example."""
    from matloop.generation.aflow import aflow_library

    return tuple((p.label, _parent(f"aflow:{p.label}:{p.formula}", p.structure, "aflow"))
                 for p in aflow_library())


def library_parents(sources: set[str], exclusions: Any = None) -> list[Parent]:
    """Parents from the prototype libraries (``prototypes``, ``aflow``) that are not held
    out."""
    out = []
    if "prototypes" in sources:
        out += [p for name, p in _library_parents()
                if exclusions is None or not (exclusions.excludes_prototype(name)
                                              or exclusions.excludes_parent(p.formula))]
    if "aflow" in sources:
        out += [p for label, p in _aflow_parents()
                if exclusions is None or not (exclusions.excludes_aflow(label)
                                              or exclusions.excludes_parent(p.formula))]
    return out


def store_parents(store: Any, *, n_elements: set[int]) -> list[Parent]:
    """Structures of a ReferenceStore (any chemical system) with the given element counts;
    without a store, the built-in starter library.

    ``ReferenceStore.phases`` needs a chemical system; substitution needs every system, so the
    store's SQLite file is read directly (read-only).
    """
    if store is None:
        return [p for p in _starter_parents() if len(p.amounts) in n_elements]
    uri = f"file:{store.path}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute(
            "SELECT source, source_id, structure, chemsys FROM phases WHERE structure IS NOT NULL "
            "ORDER BY id").fetchall()
    return [_cached_parent(f"{source}:{source_id}", text) for source, source_id, text, chemsys
            in rows if chemsys.count("-") + 1 in n_elements]


@lru_cache(maxsize=20_000)
def _cached_parent(label: str, text: str) -> Parent:
    return _parent(label, Structure.from_dict(json.loads(text)))


def _maps(parent: Parent, target: Target) -> Iterator[tuple[float, dict[str, str],
                                                          dict[str, int]]]:
    """(probability, parent element -> new element, new oxidation states) of one parent."""
    p_states = dict(parent.states)
    p_amounts = dict(parent.amounts)
    p_els = sorted(p_amounts)
    for els in target.element_sets(len(p_els)):
        for perm in itertools.permutations(els):
            mapping = dict(zip(p_els, perm, strict=True))
            new_amounts = {mapping[e]: p_amounts[e] for e in p_els}
            comp = Composition(new_amounts)
            if target.accepts(comp) is not None:
                continue
            if parent.kind == "alloy":
                if not (is_alloy(comp) or is_metallic(comp)):
                    continue
                prob = math.prod(element_probability(e, mapping[e]) for e in p_els)
                states = dict.fromkeys(perm, 0)
            elif parent.kind == "ionic":
                best = None
                options = [[q for q in common_oxidation_states(mapping[e])
                            if (q > 0) == (p_states[e] > 0)] for e in p_els]
                for qs in itertools.product(*options):
                    if abs(sum(p_amounts[e] * q for e, q in zip(p_els, qs, strict=True))) > 1e-6:
                        continue
                    cat = [Element(mapping[e]).X for e, q in zip(p_els, qs, strict=True) if q > 0]
                    an = [Element(mapping[e]).X for e, q in zip(p_els, qs, strict=True) if q < 0]
                    if cat and an and max(cat) >= min(an):
                        continue
                    prob = math.prod(species_probability(e, p_states[e], mapping[e], q)
                                     for e, q in zip(p_els, qs, strict=True))
                    if best is None or prob > best[0]:
                        best = (prob, {mapping[e]: q for e, q in zip(p_els, qs, strict=True)})
                if best is None:
                    continue
                prob, states = best
            else:
                if is_alloy(comp) or not proposable(comp):
                    continue
                prob = math.prod(element_probability(e, mapping[e]) for e in p_els)
                states = dict.fromkeys(perm, 0)
            if all(mapping[e] == e and states.get(e, 0) == p_states.get(e, 0) for e in p_els):
                continue  # nothing substituted: the parent itself
            if prob >= MIN_PROBABILITY:
                yield prob, mapping, states


def ranked_substitutions(target: Target, store: Any = None, *,
                         sources: list[str] | tuple[str, ...] | None = None,
                         exclusions: Any = None,
                         ) -> list[tuple[float, Parent, dict[str, str], dict[str, int]]]:
    """Every allowed substitution of every parent, most probable first.

    Args:
        target: Resolved request constraints.
        store: ReferenceStore (None: the starter library) for the ``store`` source.
        sources: Parent sources, a subset of store, prototypes, aflow (None: all).
        exclusions: Held-out prototypes, structures and formulas.
    """
    from matloop.generation.models import SUBSTITUTION_SOURCES

    chosen = set(sources if sources is not None else SUBSTITUTION_SOURCES)
    sizes = set(target.sizes)
    known = store_parents(store, n_elements=sizes) if "store" in chosen else []
    if exclusions:
        known = [p for p in known if not exclusions.excludes_parent(p.formula, p.structure)]
    parents = [p for p in (*library_parents(chosen, exclusions), *known)
               if len(p.amounts) in sizes]
    found = []
    for parent in parents:
        if parent.n_sites / 4 > target.max_atoms:  # not even a primitive F cell would fit
            continue
        for prob, mapping, states in _maps(parent, target):
            found.append((prob, parent, mapping, states))
    found.sort(key=lambda f: (-f[0], f[1].label, tuple(sorted(f[2].items()))))
    return found


def substitute(parent: Parent, mapping: dict[str, str], states: dict[str, int]) -> Structure:
    """The parent with elements replaced and its volume rescaled by the radius ratio."""
    structure = Structure.from_dict(parent.structure)
    old = sphere_volume(dict(parent.amounts), dict(parent.states))
    structure.replace_species(dict(mapping.items()))
    comp = structure.composition.reduced_composition
    new = sphere_volume(comp.get_el_amt_dict(), states)
    old_reduced = old / Composition(dict(parent.amounts)).num_atoms
    new_reduced = new / comp.num_atoms
    structure.scale_lattice(structure.volume * new_reduced / old_reduced)
    return structure


def substitution_generator(request: Any, context: Any) -> Iterator[Candidate]:
    """Substituted known structures, most probable map first."""
    with quiet_third_party():
        ranked = ranked_substitutions(context.target, context.store,
                                      sources=request.substitution_sources,
                                      exclusions=getattr(context, "exclusions", None))
    for prob, parent, mapping, states in ranked:
        try:
            structure = substitute(parent, mapping, states)
        except Exception as exc:  # noqa: BLE001 - one bad parent must not stop the run
            context.reject("substitution", f"{parent.label}: substitution failed ({exc})")
            continue
        p_states = dict(parent.states)
        yield Candidate.from_structure(structure, method="substitution", provenance={
            "parent": parent.label,
            "parent_formula": parent.formula,
            "parent_source": parent.source,
            "substitution": {_sp(e, p_states.get(e, 0)): _sp(mapping[e], states.get(mapping[e], 0))
                             for e in sorted(mapping)},
            "probability": prob,
            "oxidation_states": states,
            "seed": request.seed,
        })


def _sp(symbol: str, q: int) -> str:
    if q == 0:
        return symbol
    return f"{symbol}{abs(q) if abs(q) != 1 else ''}{'+' if q > 0 else '-'}"

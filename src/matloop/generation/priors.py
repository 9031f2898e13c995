"""Space-group and Wyckoff priors for random search, from known structures of similar chemistry.

Uniform random search spends most attempts in space groups no compound of the kind adopts. The
prior replaces the uniform draw with the distribution seen in known structures (*analogues*):
the reference store's structures (starter library, imported CIFs, MP structures), the 75-type
prototype library's examples and the AFLOW library's examples, minus anything held out
(:mod:`matloop.generation.holdout`). Each analogue is reduced, with spglib (symprec 0.1 Å), to
its space group and Wyckoff pattern (element -> sites such as ``8a``, ``16d``, ``32e`` of the
conventional cell, letters as in the International Tables, which pyxtal uses too).

Weights for a target composition:

* same anonymised formula (AB2C4 for MgAl2O4): ``exp(-score / 0.25)`` of the best element
  assignment (:mod:`matloop.generation.similarity`: radii, electronegativity order,
  substitution probability; no cation on an anion site), so a chemically close analogue
  counts fully and a far one hardly;
* same number of elements, other stoichiometry: ``0.1 exp(-d / 0.1)``, ``d`` the L1 distance
  of the sorted atomic fractions (only the space group is borrowed).

A draw is uniform with probability ``explore_fraction`` (exploration, as plain random search);
otherwise an analogue is drawn by weight and, for a same-formula analogue half of the time,
its Wyckoff pattern is reused with the target's elements on the analogue's sites (free
coordinates and lattice still random); else only its space group (and formula units) is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from pymatgen.core import Composition, Structure

from matloop.generation.similarity import ranked_assignments
from matloop.generation.targets import centring
from matloop.logs import quiet_third_party

#: Temperature of the same-formula weight exp(-score / T).
SCORE_TEMPERATURE = 0.25
#: Weight of an analogue of another stoichiometry relative to a perfect same-formula one.
OTHER_STOICHIOMETRY_WEIGHT = 0.1
#: Length scale of the fraction distance for other stoichiometries.
FRACTION_SCALE = 0.1
#: Share of prior draws (same-formula analogues) that reuse the Wyckoff pattern.
WYCKOFF_SHARE = 0.5


@dataclass(frozen=True)
class Analogue:
    """A known structure reduced to what the prior borrows from it."""

    label: str
    formula: str
    spacegroup: int
    sites: tuple[tuple[str, tuple[str, ...]], ...]
    z_conventional: int
    anonymous: str
    n_elements: int
    n_conventional: int

    def site_map(self) -> dict[str, tuple[str, ...]]:
        """Element -> Wyckoff sites (conventional cell)."""
        return dict(self.sites)


@lru_cache(maxsize=256)
def _wyckoff_multiplicities(spacegroup: int) -> dict[str, int]:
    from pyxtal.symmetry import Group

    out = {}
    for label in Group(spacegroup).get_wp_list():
        out[label[-1]] = int(label[:-1])
    return out


def analogue_from_structure(label: str, structure: Structure) -> Analogue | None:
    """Space group and Wyckoff pattern of a structure (None when spglib finds no symmetry
    or the pattern does not reproduce the composition)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    with quiet_third_party():
        try:
            data = SpacegroupAnalyzer(structure, symprec=0.1).get_symmetry_dataset()
        except Exception:  # noqa: BLE001 - spglib fails on a few odd cells
            return None
    if data is None:
        return None
    sg = int(data.number)
    mult = _wyckoff_multiplicities(sg)
    sites: dict[str, list[str]] = {}
    for i in sorted(set(int(x) for x in data.equivalent_atoms)):
        letter = str(data.wyckoffs[i])
        if letter not in mult:
            return None
        sites.setdefault(structure[i].specie.symbol, []).append(f"{mult[letter]}{letter}")
    counts = {el: sum(int(s[:-1]) for s in ws) for el, ws in sites.items()}
    comp = Composition(counts)
    if comp.reduced_formula != structure.composition.reduced_formula:
        return None
    reduced = comp.reduced_composition
    z = int(round(comp.num_atoms / reduced.num_atoms))
    return Analogue(label, comp.reduced_formula, sg,
                    tuple(sorted((el, tuple(sorted(ws))) for el, ws in sites.items())), z,
                    reduced.anonymized_formula, len(counts), int(comp.num_atoms))


@lru_cache(maxsize=1)
def _library_analogues() -> tuple[tuple[str, str, Analogue], ...]:
    """(source, prototype name or AFLOW label, analogue) of both prototype libraries."""
    from matloop.generation.aflow import aflow_library
    from matloop.generation.holdout import prototype_examples

    out = []
    for name, s in prototype_examples():
        if (a := analogue_from_structure(f"prototype:{name}", s)) is not None:
            out.append(("prototypes", name, a))
    for p in aflow_library():
        if (a := analogue_from_structure(f"aflow:{p.label}", p.structure)) is not None:
            out.append(("aflow", p.label, a))
    return tuple(out)


@lru_cache(maxsize=20_000)
def _store_analogue(label: str, text: str) -> Analogue | None:
    return analogue_from_structure(label, Structure.from_dict(json.loads(text)))


def known_analogues(store: Any = None, *, exclusions: Any = None,
                    n_elements: Iterable[int] | None = None) -> list[Analogue]:
    """Analogues from the store (or the starter library), the 75-type and the AFLOW library,
    without held-out prototypes, formulas and structures."""
    from matloop.generation.substitution import store_parents

    sizes = set(n_elements) if n_elements is not None else set(range(1, 9))
    out = []
    for source, name, a in _library_analogues():
        if a.n_elements not in sizes:
            continue
        if exclusions is not None and (
                (source == "prototypes" and exclusions.excludes_prototype(name))
                or (source == "aflow" and exclusions.excludes_aflow(name))
                or exclusions.excludes_parent(a.formula)):
            continue
        out.append(a)
    for parent in store_parents(store, n_elements=sizes):
        if exclusions is not None and exclusions.excludes_parent(parent.formula,
                                                                  parent.structure):
            continue
        a = _store_analogue(parent.label, json.dumps(parent.structure, sort_keys=True))
        if a is not None:
            out.append(a)
    return out


def _fractions(comp: Composition) -> list[float]:
    amounts = sorted(comp.reduced_composition.get_el_amt_dict().values(), reverse=True)
    total = sum(amounts)
    return [a / total for a in amounts]


@dataclass(frozen=True)
class PriorEntry:
    """One analogue's weight for a target composition."""

    analogue: Analogue
    weight: float
    same_formula: bool
    mapping: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Draw:
    """One prior draw: what to ask pyxtal for, and why."""

    spacegroup: int
    z_conventional: int | None
    sites: list[list[str]] | None
    prior: str
    analogue: str | None = None
    analogue_formula: str | None = None
    analogue_probability: float | None = None

    def provenance(self) -> dict[str, Any]:
        """JSON-friendly record of the draw."""
        return {"prior": self.prior, "analogue": self.analogue,
                "analogue_formula": self.analogue_formula,
                "analogue_probability": None if self.analogue_probability is None
                else round(self.analogue_probability, 4),
                "wyckoff_sites": self.sites}


@dataclass
class SpacegroupPrior:
    """Weighted analogues of one composition, and draws from them."""

    composition: Composition
    entries: list[PriorEntry]

    @property
    def total(self) -> float:
        """Sum of the weights."""
        return sum(e.weight for e in self.entries)

    def spacegroup_probabilities(self) -> dict[int, float]:
        """Probability of each space group under the analogue weights (no exploration)."""
        total = self.total
        out: dict[int, float] = {}
        for e in self.entries:
            out[e.analogue.spacegroup] = out.get(e.analogue.spacegroup, 0.0) + e.weight / total
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def sample(self, rng: np.random.Generator, *, groups: list[int], max_atoms: int,
               explore_fraction: float = 0.25) -> Draw:
        """One draw: uniform over ``groups`` with probability ``explore_fraction`` (or when
        no analogue fits), else an analogue by weight (see the module docstring)."""
        allowed = set(groups)
        usable = [e for e in self.entries if e.analogue.spacegroup in allowed]
        if not usable or rng.random() < explore_fraction:
            return Draw(int(groups[int(rng.integers(len(groups)))]), None, None, "uniform")
        weights = np.array([e.weight for e in usable])
        entry = usable[int(rng.choice(len(usable), p=weights / weights.sum()))]
        a = entry.analogue
        probability = entry.weight / float(weights.sum())
        fits = a.n_conventional / centring(a.spacegroup) <= max_atoms
        if entry.same_formula and fits and rng.random() < WYCKOFF_SHARE:
            species = sorted(self.composition.get_el_amt_dict())
            inverse = {new: old for old, new in entry.mapping.items()}
            site_map = a.site_map()
            sites = [list(site_map[inverse[el]]) for el in species]
            return Draw(a.spacegroup, a.z_conventional, sites, "analogue_wyckoff", a.label,
                        a.formula, probability)
        z = a.z_conventional if entry.same_formula and fits else None
        return Draw(a.spacegroup, z, None, "analogue_spacegroup", a.label, a.formula,
                    probability)


def build_prior(composition: Composition | str, analogues: Iterable[Analogue]) -> SpacegroupPrior:
    """Weights of the analogues for one composition (see the module docstring)."""
    comp = Composition(composition).reduced_composition
    anon = comp.anonymized_formula
    n = len(comp.elements)
    target_fr = _fractions(comp)
    entries = []
    for a in analogues:
        if a.n_elements != n:
            continue
        if a.anonymous == anon:
            ranked = ranked_assignments(Composition(a.formula), comp)
            if not ranked:
                continue
            best = ranked[0]
            entries.append(PriorEntry(a, math.exp(-best.score / SCORE_TEMPERATURE), True,
                                      dict(best.mapping)))
        else:
            d = sum(abs(x - y) for x, y in zip(_fractions(Composition(a.formula)), target_fr,
                                               strict=True))
            entries.append(PriorEntry(a, OTHER_STOICHIOMETRY_WEIGHT
                                      * math.exp(-d / FRACTION_SCALE), False))
    return SpacegroupPrior(comp, [e for e in entries if e.weight > 0])

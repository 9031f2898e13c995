"""Chemistry for generation: oxidation states, charge balance, radii, volumes, validity.

Two sets of oxidation states are used on purpose:

* decorating and substituting use the *common* states, pymatgen's ``common_oxidation_states``
  joined with its ICSD-derived ``icsd_oxidation_states`` (Fe 2/3, Cu 1/2, O -2...), so the
  candidates start from textbook valences;
* the validity check is SMACT's ``smact_validity`` (ICSD 2024 oxidation states, Pauling
  electronegativity order, all-metal compositions accepted as alloys), so "valid" means what it
  means in the generative-model literature (CDVAE, MatterGen, Chemeleon).

Metallic compounds are the one exception to charge balance besides alloys (:func:`is_metallic`):
metal-rich compounds of a d- or f-block metal with B, C, N, Si, Ge, P, As or Sb (MAX phases such
as Ti2AlN, Heuslers with a main-group Z such as Co2MnSi, Fe3C, Fe2P) are bonded metallically
and need no oxidation-state assignment. They are proposed from a small stoichiometry grid
(:data:`STOICHIOMETRY_GRID`), not from the full enumeration.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from functools import lru_cache

from pymatgen.core import Composition, Element, Species, Structure

from matloop.logs import quiet_third_party
from matloop.materials.chemistry import charge_balanced as shared_charge_balanced
from matloop.materials.structures import min_interatomic_distance

#: Closest allowed interatomic distance in a generated structure, Å (the issue's 0.5 Å).
MIN_DISTANCE_ANGSTROM = 0.5
#: Allowed range of (volume per atom) / (radius-based estimate). Over the starter library
#: (molecular crystals left out) the ratio spans 0.68 (K2O) to 6.1 (graphite), median 1.0.
VOLUME_RATIO_RANGE = (0.4, 8.0)
#: Cell volume over summed sphere volume (larger of atomic and ionic radius per element):
#: the starter-library median, so the estimate is unbiased for textbook compounds.
VOLUME_FACTOR = 1.24

Assignment = dict[str, int]


#: Elements that make a compound ionic: with one of these and no common-valence assignment, a
#: composition is not proposed (e.g. LiFeO needs Fe+).
ANION_FORMERS = frozenset({"H", "N", "O", "F", "S", "Cl", "Se", "Br", "Te", "I"})

#: Non-metals that form metallic compounds with d-/f-block metals (carbides, nitrides, borides,
#: silicides, pnictides, the X and A elements of MAX phases).
METALLIC_PARTNERS = frozenset({"B", "C", "N", "Si", "Ge", "P", "As", "Sb"})

#: Reduced stoichiometries offered for alloy and metallic systems, by number of elements; every
#: assignment of the elements to the letters is tried. AB2C covers full Heuslers (Cu2MnAl) and
#: M2AX MAX phases (Ti2AlN), A3BC2 and A4BC3 the 312 and 413 MAX phases, AB2 Laves phases.
STOICHIOMETRY_GRID: dict[int, tuple[tuple[int, ...], ...]] = {
    1: ((1,),),
    2: ((1, 1), (1, 2), (1, 3), (2, 3), (1, 5)),
    3: ((1, 1, 1), (2, 1, 1), (1, 2, 2), (3, 1, 1), (3, 1, 2), (4, 1, 3)),
    4: ((1, 1, 1, 1), (2, 1, 1, 1)),
}


@lru_cache(maxsize=256)
def common_oxidation_states(symbol: str) -> tuple[int, ...]:
    """Common non-zero oxidation states of an element (pymatgen common + ICSD lists); metals
    get no negative states (Zintl anions are left to the alloy path)."""
    el = Element(symbol)
    states = set(el.common_oxidation_states) | set(el.icsd_oxidation_states)
    return tuple(sorted(s for s in states if s != 0 and (s > 0 or not el.is_metal)))


def proposable(composition: Composition) -> bool:
    """Whether decorating/substituting generators may propose this composition: an alloy, a
    metallic compound (:func:`is_metallic`), a compound balanced with common states, or (no
    anion former present) one SMACT accepts."""
    if is_alloy(composition) or is_metallic(composition) or oxidation_assignments(composition):
        return True
    if any(el.symbol in ANION_FORMERS for el in composition.elements):
        return False
    return charge_balanced(composition)


def is_alloy(composition: Composition) -> bool:
    """True when every element is a metal: charge balance does not apply (intermetallic)."""
    return all(el.is_metal for el in composition.elements)


def _d_or_f_metal(el: Element) -> bool:
    return bool((el.is_transition_metal and (el.group or 0) <= 11) or el.is_rare_earth
                or el.is_actinoid)


def is_metallic(composition: Composition) -> bool:
    """A metallic compound that needs no charge balance: not all metals, at least half of the
    atoms metals, one of them a d- or f-block metal (groups 3-11, rare earths, actinides), and
    every non-metal in :data:`METALLIC_PARTNERS` (Ti2AlN, Fe3C, Co2MnSi yes; LiN, Ti2AlO no)."""
    amounts = composition.get_el_amt_dict()
    els = [Element(s) for s in amounts]
    if all(el.is_metal for el in els):
        return False
    if any(not el.is_metal and el.symbol not in METALLIC_PARTNERS for el in els):
        return False
    if not any(_d_or_f_metal(el) for el in els):
        return False
    metal_atoms = sum(n for s, n in amounts.items() if Element(s).is_metal)
    return metal_atoms >= 0.5 * sum(amounts.values())


def grid_compositions(elements: Sequence[str], *, max_atoms: int) -> list[Composition]:
    """Alloy or metallic compositions of :data:`STOICHIOMETRY_GRID` using every element once,
    smallest first (empty for more than four elements or when none is metallic)."""
    symbols = sorted(elements)
    found: dict[str, Composition] = {}
    for pattern in STOICHIOMETRY_GRID.get(len(symbols), ()):
        for counts in set(itertools.permutations(pattern)):
            if sum(counts) > max_atoms:
                continue
            comp = Composition(dict(zip(symbols, counts, strict=True)))
            if is_alloy(comp) or is_metallic(comp):
                found.setdefault(comp.reduced_formula, comp)
    return sorted(found.values(), key=lambda c: (c.num_atoms, c.reduced_formula))


@lru_cache(maxsize=4096)
def _assignments(formula: str) -> tuple[tuple[tuple[str, int], ...], ...]:
    comp = Composition(formula)
    amounts = comp.get_el_amt_dict()
    symbols = sorted(amounts)
    options = [common_oxidation_states(s) for s in symbols]
    if any(not o for o in options):
        return ()
    found = []
    for states in itertools.product(*options):
        if abs(sum(amounts[s] * q for s, q in zip(symbols, states, strict=True))) > 1e-6:
            continue
        if not any(q < 0 for q in states):
            continue
        cations = [Element(s).X for s, q in zip(symbols, states, strict=True) if q > 0]
        anions = [Element(s).X for s, q in zip(symbols, states, strict=True) if q < 0]
        if cations and anions and max(cations) >= min(anions):
            continue
        common = sum(q in Element(s).common_oxidation_states
                     for s, q in zip(symbols, states, strict=True))
        found.append((-common, sum(abs(q) for q in states), tuple(zip(symbols, states,
                                                                       strict=True))))
    return tuple(item[2] for item in sorted(found))


def oxidation_assignments(composition: Composition | str) -> list[Assignment]:
    """Charge-balanced assignments of one common oxidation state per element, best first.

    An assignment needs at least one anion, and every cation less electronegative (Pauling)
    than every anion. Alloys and covalent compounds get an empty list.
    """
    formula = Composition(composition).reduced_formula
    return [dict(a) for a in _assignments(formula)]


def roles(composition: Composition) -> tuple[str, Assignment]:
    """Bonding type and oxidation states: ('alloy', 0s), ('ionic', states), ('metallic', 0s)
    for a metallic compound with no common-valence assignment, or ('other', 0s)."""
    symbols = [el.symbol for el in composition.elements]
    if is_alloy(composition):
        return "alloy", dict.fromkeys(symbols, 0)
    found = oxidation_assignments(composition)
    if found:
        return "ionic", found[0]
    if is_metallic(composition):
        return "metallic", dict.fromkeys(symbols, 0)
    return "other", dict.fromkeys(symbols, 0)


@lru_cache(maxsize=4096)
def species_radius(symbol: str, oxidation_state: int) -> float:
    """Radius for volume scaling, Å: Shannon ionic radius for ions, metallic/atomic otherwise."""
    el = Element(symbol)
    with quiet_third_party():
        if oxidation_state != 0:
            try:
                r = Species(symbol, oxidation_state).ionic_radius
                if r:
                    return float(r)
            except Exception:  # noqa: BLE001 - pymatgen lacks data for rare states
                pass
            fallback = el.average_anionic_radius if oxidation_state < 0 else \
                el.average_cationic_radius
            if fallback:
                return float(fallback)
        for r in (el.metallic_radius, el.atomic_radius, el.atomic_radius_calculated):
            if r:
                return float(r)
    return 1.5


def sphere_volume(amounts: dict[str, float], states: Assignment) -> float:
    """Summed sphere volume (Å^3) of a composition with the given oxidation states."""
    return sum(n * 4.0 / 3.0 * math.pi * species_radius(s, states.get(s, 0)) ** 3
               for s, n in amounts.items())


def estimated_volume_per_atom(composition: Composition) -> float:
    """Rough volume per atom, Å^3: spheres of the larger of atomic and ionic radius per element
    times :data:`VOLUME_FACTOR` (log-spread 0.34 over the starter library)."""
    _, states = roles(composition)
    total = 0.0
    for symbol, n in composition.get_el_amt_dict().items():
        r = max(Element(symbol).atomic_radius or 1.5, species_radius(symbol, states.get(symbol, 0)))
        total += n * 4.0 / 3.0 * math.pi * r**3
    return VOLUME_FACTOR * total / composition.num_atoms


def charge_balanced(composition: Composition) -> bool:
    """The shared rule of generators and critic (:func:`matloop.materials.chemistry.
    charge_balanced`): SMACT neutrality with mixed valence in Pauling order, or a metallic
    reading (carbides, nitrides, MAX phases); alloys and elements pass."""
    return shared_charge_balanced(composition.reduced_formula)


def check_validity(structure: Structure) -> tuple[bool, list[str]]:
    """Validity of a generated structure: SMACT charge/electronegativity (not for metallic
    compounds, :func:`is_metallic`, which like alloys need no charge balance), distances,
    volume.

    Returns:
        Whether it is valid, and one note per failed check.
    """
    notes: list[str] = []
    comp = structure.composition
    if any(getattr(el, "Z", 0) > 94 for el in comp.elements):
        notes.append("element beyond Pu (Z>94)")
    elif not charge_balanced(comp):
        notes.append(f"{comp.reduced_formula} is not charge balanced (SMACT oxidation states, "
                     "mixed valence allowed, Pauling electronegativity order) and has no "
                     "metallic reading")
    dmin = min_interatomic_distance(structure)
    if dmin < MIN_DISTANCE_ANGSTROM:
        notes.append(f"atoms {dmin:.2f} Å apart (< {MIN_DISTANCE_ANGSTROM} Å)")
    vpa = structure.volume / len(structure)
    est = estimated_volume_per_atom(comp)
    lo, hi = VOLUME_RATIO_RANGE
    if not lo <= vpa / est <= hi:
        notes.append(f"volume {vpa:.1f} Å^3/atom is outside {lo}-{hi} x the radius estimate "
                     f"{est:.1f} Å^3/atom")
    return not notes, notes


def enumerate_compositions(elements: Sequence[str], *, max_atoms: int, max_coefficient: int = 8,
                           ) -> Iterator[Composition]:
    """Charge-balanced (or alloy) reduced compositions using every element of ``elements``,
    and the metallic ones of the stoichiometry grid (:func:`grid_compositions`).

    Ordered by formula-unit size, then formula; at most ``max_coefficient`` of each element.
    """
    symbols = sorted(elements)
    seen: set[str] = set()
    found = []
    kept: set[str] = set()
    limit = min(max_coefficient, max_atoms)
    for counts in itertools.product(range(1, limit + 1), repeat=len(symbols)):
        if sum(counts) > max_atoms or math.gcd(*counts) != 1:
            continue
        comp = Composition(dict(zip(symbols, counts, strict=True)))
        rf = comp.reduced_formula
        if rf in seen:
            continue
        seen.add(rf)
        if is_alloy(comp) or oxidation_assignments(comp):
            found.append((sum(counts), rf, comp))
            kept.add(rf)
    for comp in grid_compositions(symbols, max_atoms=max_atoms):
        if comp.reduced_formula not in kept:
            kept.add(comp.reduced_formula)
            found.append((int(comp.num_atoms), comp.reduced_formula, comp))
    for _, _, comp in sorted(found, key=lambda t: (t[0], t[1])):
        yield comp

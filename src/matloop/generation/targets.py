"""What a request allows: elements, compositions, space groups and cell size.

Resolving a request checks it once, up front, so an impossible request fails with a message
and a hint before any generator runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from pymatgen.core import Composition, Element
from pymatgen.symmetry.groups import sg_symbol_from_int_number

from matloop.errors import MatloopError
from matloop.generation.chemistry import (
    charge_balanced,
    enumerate_compositions,
    is_alloy,
    is_metallic,
)
from matloop.generation.models import GenerationRequest
from matloop.materials.references import parse_composition

#: Lattice points per conventional cell by centring letter (R in hexagonal axes).
_CENTRING = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}


class GenerationError(MatloopError):
    """A generation request that cannot be met (bad element, impossible constraint, no result)."""


def centring(spacegroup: int) -> int:
    """Lattice points in the conventional cell of a space group (1, 2, 3 or 4)."""
    return _CENTRING[sg_symbol_from_int_number(spacegroup)[0]]


def _elements(values: Iterable[str], what: str) -> list[str]:
    out = []
    for raw in values:
        symbol = raw.strip()
        if not symbol:
            continue
        if not Element.is_valid_symbol(symbol):
            raise GenerationError(f"unknown element {symbol!r} in {what}",
                                  hint="use element symbols with correct capitalisation, e.g. Co")
        out.append(symbol)
    return sorted(set(out))


@dataclass(frozen=True)
class Target:
    """Resolved constraints of a request."""

    allowed: tuple[str, ...]
    required: tuple[str, ...]
    composition: Composition | None
    spacegroups: frozenset[int] | None
    max_atoms: int

    @property
    def label(self) -> str:
        """The composition's formula or the chemical system."""
        return self.composition.reduced_formula if self.composition else "-".join(self.allowed)

    def element_sets(self, k: int) -> list[tuple[str, ...]]:
        """Element sets of size ``k`` a candidate may use (sorted tuples)."""
        if self.composition is not None:
            els = tuple(sorted(el.symbol for el in self.composition.elements))
            return [els] if len(els) == k else []
        if k < len(self.required) or k > len(self.allowed):
            return []
        rest = [e for e in self.allowed if e not in self.required]
        return [tuple(sorted((*self.required, *extra)))
                for extra in itertools.combinations(rest, k - len(self.required))]

    @property
    def sizes(self) -> range:
        """Numbers of distinct elements a candidate may have."""
        if self.composition is not None:
            n = len(self.composition.elements)
            return range(n, n + 1)
        return range(max(1, len(self.required)), len(self.allowed) + 1)

    def accepts(self, composition: Composition) -> str | None:
        """None when the composition fits, else why not."""
        if self.composition is not None:
            if composition.reduced_formula != self.composition.reduced_formula:
                return (f"composition {composition.reduced_formula} is not the requested "
                        f"{self.composition.reduced_formula}")
            return None
        els = {el.symbol for el in composition.elements}
        if not els <= set(self.allowed):
            return f"elements {', '.join(sorted(els - set(self.allowed)))} are not allowed"
        if not set(self.required) <= els:
            return f"required element(s) {', '.join(sorted(set(self.required) - els))} missing"
        return None

    def compositions(self, *, limit: int = 200) -> list[Composition]:
        """Charge-balanced, alloy or metallic compositions the request allows, smallest
        first."""
        if self.composition is not None:
            return [self.composition]
        found: list[Composition] = []
        for k in self.sizes:
            for els in self.element_sets(k):
                found.extend(itertools.islice(
                    enumerate_compositions(els, max_atoms=self.max_atoms), limit))
        found.sort(key=lambda c: (c.num_atoms, c.reduced_formula))
        return found[:limit]


def resolve(request: GenerationRequest) -> Target:
    """Check a request and resolve its constraints.

    Raises:
        GenerationError: Unknown element, contradictory or impossible constraints.
    """
    required = _elements(request.required_elements, "required_elements")
    excluded = _elements(request.excluded_elements, "excluded_elements")
    if (request.composition is None) == (request.chemsys is None):
        raise GenerationError("give either a composition or a chemical system",
                              hint="e.g. composition='LiFeO2' or chemsys='Li-Fe-O'")
    both = sorted(set(required) & set(excluded))
    if both:
        raise GenerationError(f"element(s) {', '.join(both)} are both required and excluded",
                              hint="drop them from one of the two lists")
    sgs = frozenset(request.spacegroups) if request.spacegroups else None
    if request.composition is not None:
        comp = parse_composition(request.composition).reduced_composition
        els = sorted(el.symbol for el in comp.elements)
        if bad := sorted(set(els) & set(excluded)):
            raise GenerationError(f"composition {comp.reduced_formula} contains excluded "
                                  f"element(s) {', '.join(bad)}", hint="drop the exclusion")
        if missing := sorted(set(required) - set(els)):
            raise GenerationError(f"composition {comp.reduced_formula} lacks required "
                                  f"element(s) {', '.join(missing)}",
                                  hint="ask for a chemical system instead of a composition")
        if comp.num_atoms > request.max_atoms:
            raise GenerationError(
                f"max_atoms={request.max_atoms} is smaller than one formula unit of "
                f"{comp.reduced_formula} ({int(comp.num_atoms)} atoms)",
                hint=f"raise max_atoms to at least {int(comp.num_atoms)}")
        if not is_alloy(comp) and not is_metallic(comp) and not charge_balanced(comp):
            raise GenerationError(
                f"{comp.reduced_formula} cannot be charge balanced with common oxidation states",
                hint="check the formula, or ask for its chemical system to let the generators "
                     "choose balanced compositions")
        return Target(tuple(els), tuple(els), comp, sgs, request.max_atoms)
    text = request.chemsys.replace(",", "-").replace(" ", "")
    allowed = _elements(text.split("-"), "chemsys")
    if not allowed:
        raise GenerationError("empty chemical system", hint="write it like Li-Fe-O")
    if not required:
        required = list(allowed)
        if bad := sorted(set(excluded) & set(allowed)):
            raise GenerationError(
                f"chemical system {'-'.join(allowed)} requires all its elements, but "
                f"{', '.join(bad)} is excluded",
                hint="drop the element from the chemical system, or name required_elements")
    if outside := sorted(set(required) - set(allowed)):
        raise GenerationError(f"required element(s) {', '.join(outside)} are not in the "
                              f"chemical system {'-'.join(allowed)}",
                              hint="add them to the chemical system")
    allowed = [e for e in allowed if e not in excluded]
    if len(required) > request.max_atoms:
        raise GenerationError(f"max_atoms={request.max_atoms} cannot hold the "
                              f"{len(required)} required elements",
                              hint=f"raise max_atoms to at least {len(required)}")
    target = Target(tuple(allowed), tuple(sorted(required)), None, sgs, request.max_atoms)
    if not target.compositions(limit=1):
        raise GenerationError(
            f"no charge-balanced composition of {'-'.join(allowed)} with "
            f"{', '.join(required)} fits in {request.max_atoms} atoms",
            hint="raise max_atoms or change the elements")
    return target

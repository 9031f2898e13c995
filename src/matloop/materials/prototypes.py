"""Structure types written from their space group and Wyckoff positions.

A :class:`Prototype` names its space group, the lattice parameters it needs and its sites.
Each site carries a label (``A``, ``B``, ``X``...) that a decoration maps to an element, a
Wyckoff letter for documentation, and a representative fractional position that may use the
free parameters of the prototype (``x``, ``y``, ``z``, ``u``...). Building applies the space
group's operations (pymatgen ``Structure.from_spacegroup``), so only the asymmetric unit is
written here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from pymatgen.core import Lattice, Structure

from matloop.errors import StructureInputError

_CRYSTAL_SYSTEMS = (
    "cubic",
    "hexagonal",
    "rhombohedral",  # hexagonal axes for R groups unless stated otherwise
    "tetragonal",
    "orthorhombic",
    "monoclinic",
    "triclinic",
)


@dataclass(frozen=True)
class PrototypeSite:
    """One Wyckoff orbit of a prototype.

    Attributes:
        label: Decoration label (e.g. ``A``); several sites may share one.
        wyckoff: Wyckoff multiplicity and letter, e.g. ``4a``.
        coords: Fractional coordinates; strings are expressions in the free parameters.
    """

    label: str
    wyckoff: str
    coords: tuple[float | str, float | str, float | str]


@dataclass(frozen=True)
class Prototype:
    """A structure type."""

    name: str
    spacegroup: int
    system: str
    sites: tuple[PrototypeSite, ...]
    params: dict[str, float] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    description: str = ""
    c_over_a: float | None = None
    b_over_a: float | None = None
    beta: float | None = None

    @property
    def labels(self) -> list[str]:
        """Distinct decoration labels in site order."""
        seen: list[str] = []
        for site in self.sites:
            if site.label not in seen:
                seen.append(site.label)
        return seen

    def lattice(self, a: float, *, b: float | None = None, c: float | None = None,
                alpha: float | None = None, beta: float | None = None,
                gamma: float | None = None) -> Lattice:
        """The prototype's lattice for lattice constant ``a`` (Å) and optional others."""
        system = self.system
        if system == "cubic":
            return Lattice.cubic(a)
        if system in ("hexagonal", "rhombohedral"):
            if system == "rhombohedral" and alpha is not None and c is None:
                return Lattice.rhombohedral(a, alpha)
            return Lattice.hexagonal(a, c if c is not None else a * (self.c_over_a or 1.633))
        if system == "tetragonal":
            return Lattice.tetragonal(a, c if c is not None else a * (self.c_over_a or 1.0))
        if system == "orthorhombic":
            return Lattice.orthorhombic(
                a, b if b is not None else a * (self.b_over_a or 1.0),
                c if c is not None else a * (self.c_over_a or 1.0),
            )
        if system == "monoclinic":
            return Lattice.monoclinic(
                a, b if b is not None else a * (self.b_over_a or 1.0),
                c if c is not None else a * (self.c_over_a or 1.0),
                beta if beta is not None else (self.beta or 90.0),
            )
        if system == "triclinic":
            return Lattice.from_parameters(
                a, b or a, c or a, alpha or 90.0, beta or 90.0, gamma or 90.0
            )
        raise ValueError(f"unknown crystal system {system!r}; valid: {', '.join(_CRYSTAL_SYSTEMS)}")

    def build(self, species: dict[str, str], *, a: float, params: dict[str, float] | None = None,
              **lattice_kw: float) -> Structure:
        """Decorate the prototype and build the conventional cell.

        Args:
            species: Label to element symbol (or species string), e.g. ``{"A": "Na", "X": "Cl"}``.
            a: Lattice constant a, Å.
            params: Free Wyckoff parameters overriding the prototype's defaults.
            **lattice_kw: ``b``, ``c`` (Å) and ``alpha``, ``beta``, ``gamma`` (degrees).

        Raises:
            StructureInputError: A label is not decorated, or sites collapse onto each other.
        """
        missing = [label for label in self.labels if label not in species]
        if missing:
            raise StructureInputError(
                f"prototype {self.name}: no element given for site label(s) {', '.join(missing)}",
                hint=f"decorate every label of {self.labels}",
            )
        values = {**self.params, **(params or {})}
        coords = [[_evaluate(c, values, self.name) for c in site.coords] for site in self.sites]
        lattice = self.lattice(a, **lattice_kw)
        spg = _spacegroup(self.spacegroup)
        if not spg.is_compatible(lattice):
            raise StructureInputError(
                f"prototype {self.name}: lattice {lattice.parameters} does not fit space group "
                f"{spg.symbol}"
            )
        all_species: list[str] = []
        all_coords: list[list[float]] = []
        for site, coord in zip(self.sites, coords, strict=True):
            orbit = spg.get_orbit(coord, tol=1e-3)
            all_species += [species[site.label]] * len(orbit)
            all_coords += [list(c) for c in orbit]
        return Structure(lattice, all_species, all_coords)


@cache
def _spacegroup(number: int) -> Any:
    """The space group's operations, built once per process (they are slow to make)."""
    from pymatgen.symmetry.groups import SpaceGroup

    return SpaceGroup.from_int_number(number)


def _evaluate(value: float | str, params: dict[str, float], name: str) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(eval(value, {"__builtins__": {}}, dict(params)))  # noqa: S307 - own data
    except Exception as exc:
        raise ValueError(f"prototype {name}: cannot evaluate coordinate {value!r}: {exc}") from exc


@lru_cache(maxsize=1)
def load_prototypes() -> dict[str, Prototype]:
    """The bundled prototype library, by lower-case name (aliases included)."""
    raw = json.loads(resources.files("matloop.data").joinpath("prototypes.json").read_text())
    library: dict[str, Prototype] = {}
    for name, spec in raw.items():
        proto = _prototype_from_dict(name, spec)
        for key in (name, *proto.aliases):
            library[key.lower()] = proto
    return library


def _prototype_from_dict(name: str, spec: dict[str, Any]) -> Prototype:
    return Prototype(
        name=name,
        spacegroup=int(spec["spacegroup"]),
        system=spec["system"],
        sites=tuple(
            PrototypeSite(label=s["label"], wyckoff=s["wyckoff"], coords=tuple(s["coords"]))
            for s in spec["sites"]
        ),
        params=dict(spec.get("params", {})),
        aliases=tuple(spec.get("aliases", ())),
        description=spec.get("description", ""),
        c_over_a=spec.get("c_over_a"),
        b_over_a=spec.get("b_over_a"),
        beta=spec.get("beta"),
    )


def get_prototype(name: str) -> Prototype:
    """Look up a prototype by name or alias (case-insensitive).

    Raises:
        ValueError: Unknown name; the message lists the valid ones.
    """
    library = load_prototypes()
    try:
        return library[name.lower()]
    except KeyError:
        names = sorted({p.name for p in library.values()})
        raise ValueError(f"unknown prototype {name!r}; valid: {', '.join(names)}") from None

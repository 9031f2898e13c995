"""Decorations of pymatgen's bundled AFLOW prototype library (288 structures).

pymatgen ships ``analysis/prototypes/aflow_prototypes.json.gz``: one example structure per
AFLOW prototype (Mehl et al., Comput. Mater. Sci. 136, S1 (2017); Hicks et al. 161, S1 (2019)),
tagged with its AFLOW label, Pearson symbol, Strukturbericht designation and mineral name. It
is a second prototype source next to the project's 75 structure types and has many they lack
(H-phase / 211 MAX Cr2AlC, NaCrS2, the Heusler, Laves and A15 families, CuSbS2, zircon...).

For a target composition, every prototype with the same anonymised formula (AB2C4, ...) is a
candidate; the target's elements are put on the example's elements in every amount-preserving
way, ranked by :mod:`matloop.generation.similarity` (radius mismatch, electronegativity order,
substitution probability against the example's own species; no cation on an anion site), and
the best ``aflow_assignments`` per prototype are kept. The cell keeps the example's lattice and
positions and is rescaled so that its first-shell contacts match the new radii
(``scale_rule='bonds'``: geometric mean over contacts between different elements of the ratio
of summed radii, Shannon ionic radii for ionic pairs, metallic radii otherwise), or, when that
gives an implausible volume, to the radius-based volume estimate (``scale_rule='volume'``).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Composition, Structure

from matloop.generation.chemistry import estimated_volume_per_atom, species_radius
from matloop.generation.models import Candidate
from matloop.generation.similarity import AssignmentScore, ranked_assignments
from matloop.generation.targets import GenerationError

#: A rescaled cell whose volume per atom is outside this range times the radius estimate
#: falls back to the estimate (the bond rule failed, e.g. on a molecular example).
PLAUSIBLE_VOLUME_RATIO = (0.55, 1.8)


@dataclass(frozen=True)
class AflowPrototype:
    """One entry of the AFLOW prototype library."""

    index: int
    label: str
    pearson: str
    strukturbericht: str | None
    mineral: str | None
    spacegroup: int
    structure: Structure
    formula: str
    anonymous: str

    @property
    def name(self) -> str:
        """Readable name: label with Strukturbericht and mineral where given."""
        extra = ", ".join(x for x in (self.strukturbericht, self.mineral) if x)
        return f"{self.label} ({extra})" if extra else self.label

    @property
    def key(self) -> str:
        """Source-qualified id, as used by :func:`next_prototypes` (``aflow:<label>``)."""
        return f"aflow:{self.label}"


def _clean(text: Any) -> str | None:
    if text is None:
        return None
    value = str(text).replace("\\'", "'").replace('"', "").strip()
    return value if value and value.lower() != "none" else None


def library_path() -> Path:
    """The library file inside the installed pymatgen (found without importing
    ``pymatgen.analysis.prototypes``, whose import loads every data file, ~10 s)."""
    spec = importlib.util.find_spec("pymatgen")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        path = Path(root) / "analysis" / "prototypes" / "aflow_prototypes.json.gz"
        if path.exists():
            return path
    raise GenerationError("pymatgen's AFLOW prototype library was not found",
                          hint="install pymatgen >= 2024 (it ships "
                               "analysis/prototypes/aflow_prototypes.json.gz)")


@lru_cache(maxsize=1)
def aflow_library() -> tuple[AflowPrototype, ...]:
    """The AFLOW prototypes bundled with pymatgen (ordered ones only), in file order."""
    with gzip.open(library_path(), "rt", encoding="utf-8") as handle:
        raw = json.load(handle)
    out = []
    for i, entry in enumerate(raw):
        snl = entry.get("snl") or {}
        try:
            structure = Structure.from_dict({"lattice": snl["lattice"], "sites": snl["sites"],
                                             "charge": snl.get("charge")})
        except (KeyError, TypeError, ValueError):
            continue
        if not structure.is_ordered:
            continue
        tags = entry.get("tags", {})
        label = str(tags.get("aflow", f"entry{i}"))
        try:
            sg = int(label.split("_")[2])
        except (IndexError, ValueError):
            continue
        comp = structure.composition
        out.append(AflowPrototype(
            index=i, label=label, pearson=str(tags.get("pearson", "")),
            strukturbericht=_clean(tags.get("strukturbericht")),
            mineral=_clean(tags.get("mineral")),
            spacegroup=sg, structure=structure, formula=comp.reduced_formula,
            anonymous=comp.reduced_composition.anonymized_formula))
    return tuple(out)


@lru_cache(maxsize=1)
def _by_anonymous() -> dict[str, tuple[AflowPrototype, ...]]:
    groups: dict[str, list[AflowPrototype]] = {}
    for p in aflow_library():
        groups.setdefault(p.anonymous, []).append(p)
    return {k: tuple(v) for k, v in groups.items()}


def prototypes_for(composition: Composition) -> tuple[AflowPrototype, ...]:
    """AFLOW prototypes with the composition's anonymised formula."""
    return _by_anonymous().get(composition.reduced_composition.anonymized_formula, ())


@dataclass(frozen=True)
class AflowOption:
    """One decoration of one AFLOW prototype."""

    prototype: AflowPrototype
    composition: Composition
    assignment: AssignmentScore

    @property
    def score(self) -> float:
        """The assignment's score (lower is better)."""
        return self.assignment.score


def aflow_options(target: Any, *, exclusions: Any = None, max_assignments: int = 2,
                  compositions: list[Composition] | None = None) -> list[AflowOption]:
    """Every acceptable decoration for the target's compositions, best first.

    Args:
        target: Resolved request constraints (:class:`~matloop.generation.targets.Target`).
        exclusions: :class:`~matloop.generation.holdout.Exclusions` (held-out types).
        max_assignments: Most assignments kept per prototype and composition.
        compositions: Compositions to decorate (default: the target's).
    """
    options: list[AflowOption] = []
    for comp in compositions if compositions is not None else target.compositions(limit=200):
        for proto in prototypes_for(comp):
            if exclusions is not None and exclusions.excludes_aflow(proto.label):
                continue
            if len(proto.structure) > target.max_atoms:
                continue
            if target.spacegroups is not None and proto.spacegroup not in target.spacegroups:
                continue
            ranked = ranked_assignments(proto.structure.composition, comp)
            options.extend(AflowOption(proto, comp, a) for a in ranked[:max_assignments])
    options.sort(key=lambda o: (o.score, o.prototype.index, o.composition.reduced_formula))
    return options


def _radius(symbol: str, states: dict[str, int]) -> float:
    return species_radius(symbol, states.get(symbol, 0))


def bond_scale_factor(structure: Structure, mapping: dict[str, str], known_states: dict[str, int],
                      new_states: dict[str, int]) -> float | None:
    """Linear factor that makes the example's first-shell contacts fit the new radii.

    For every site, its contacts are the neighbours of another element within 1.15 times the
    nearest such distance (of any element when the cell has one element); the factor is the
    geometric mean over all contacts of (summed new radii) / (summed example radii). None when
    no contact is found.
    """
    species = [site.specie.symbol for site in structure]
    single = len(set(species)) == 1
    logs = []
    for i, el in enumerate(species):
        neighbours = [n for n in structure.get_neighbors(structure[i], 6.0)
                      if single or n.specie.symbol != el]
        if not neighbours:
            continue
        nearest = min(n.nn_distance for n in neighbours)
        for n in neighbours:
            if n.nn_distance > 1.15 * nearest:
                continue
            other = n.specie.symbol
            old = _radius(el, known_states) + _radius(other, known_states)
            new = _radius(mapping[el], new_states) + _radius(mapping[other], new_states)
            logs.append(math.log(new / old))
    return math.exp(sum(logs) / len(logs)) if logs else None


def decorate_aflow(option: AflowOption) -> tuple[Structure, dict[str, Any]]:
    """Build one decoration: the example with elements replaced, rescaled; and how."""
    proto, a = option.prototype, option.assignment
    structure = proto.structure.copy()
    factor = bond_scale_factor(structure, a.mapping, a.known_states, a.new_states)
    structure.replace_species(dict(a.mapping))
    estimate = estimated_volume_per_atom(structure.composition) * len(structure)
    rule = "bonds"
    volume = structure.volume * factor**3 if factor else math.nan
    lo, hi = PLAUSIBLE_VOLUME_RATIO
    if not (np.isfinite(volume) and lo <= volume / estimate <= hi):
        rule, volume = "volume", estimate
    structure.scale_lattice(volume)
    return structure, {"scale_rule": rule,
                       "scale_factor_linear": round((volume / proto.structure.volume) ** (1 / 3),
                                                    4)}


def provenance(option: AflowOption) -> dict[str, Any]:
    """Where a decoration came from: label, names, example, assignment and its score."""
    proto = option.prototype
    return {"aflow_label": proto.label, "prototype_key": proto.key,
            "strukturbericht": proto.strukturbericht, "mineral": proto.mineral,
            "pearson": proto.pearson, "spacegroup_prototype": proto.spacegroup,
            "prototype_formula": proto.formula,
            "source": "pymatgen analysis/prototypes/aflow_prototypes.json.gz",
            **option.assignment.as_dict(),
            "oxidation_states": option.assignment.new_states or None}


def aflow_generator(request: Any, context: Any) -> Iterator[Candidate]:
    """Decorations of the AFLOW prototype library, best-scored assignment first."""
    options = aflow_options(context.target, exclusions=getattr(context, "exclusions", None),
                            max_assignments=request.aflow_assignments)
    for option in options:
        try:
            structure, scaling = decorate_aflow(option)
        except Exception as exc:  # noqa: BLE001 - one odd library entry must not stop the run
            context.reject("aflow", f"{option.prototype.label} could not be decorated: {exc}")
            continue
        yield Candidate.from_structure(structure, method="aflow", provenance={
            **provenance(option), **scaling, "seed": request.seed})

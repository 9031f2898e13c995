"""Prototype decoration: charge-balanced element assignments on the project's structure types.

Every prototype of ``prototypes.json`` whose number of site labels equals the number of elements
is decorated with each permutation of the allowed elements. A decoration is kept when

* its composition is the requested one (or lies in the requested chemical system),
* it is an alloy (all metals) or a metallic compound (Ti2AlN, Co2MnSi: no charge balance, no
  anion labels), or it is charge balanced with common oxidation states and its anions (negative
  states) sit exactly on the prototype's anion labels (X, Y); compositions that are none of
  these (e.g. FeSi, MgB2) must pass SMACT's check;
* its prototype is not held out (``exclude_prototypes`` / ``exclude_structures``, see
  :mod:`matloop.generation.holdout`).

Decorations are ranked by how well their radii match the prototype's example decoration (mean
``|ln(r/r_example)|`` over labels), so a perovskite gets its big cation on A. The cell starts
from the example's lattice and free parameters, scaled by the ratio of summed ionic radii cubed.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from pymatgen.core import Composition, Structure

from matloop.generation.chemistry import (
    is_metallic,
    proposable,
    roles,
    species_radius,
    sphere_volume,
)
from matloop.generation.models import Candidate
from matloop.generation.targets import Target, centring
from matloop.materials.prototypes import Prototype, load_prototypes

ANION_LABELS = ("X", "Y")


@dataclass(frozen=True)
class Template:
    """A prototype with one known decoration and its lattice: the start of a decoration."""

    prototype: Prototype
    species: dict[str, str] | None
    lattice: dict[str, float]
    params: dict[str, float] | None
    source: str

    @property
    def label_atoms(self) -> dict[str, int]:
        """Atoms per label in the conventional cell (from Wyckoff multiplicities)."""
        counts: dict[str, int] = {}
        for site in self.prototype.sites:
            mult = int(re.match(r"\d+", site.wyckoff).group()) if re.match(r"\d+", site.wyckoff) \
                else 1
            counts[site.label] = counts.get(site.label, 0) + mult
        return counts

    def build(self, species: dict[str, str]) -> Structure:
        """Decorate with ``species`` on the template's lattice (not yet rescaled)."""
        lattice = dict(self.lattice)
        a = lattice.pop("a", 5.0)
        return self.prototype.build(species, a=a, params=self.params, **lattice)


def _raw_prototypes() -> dict[str, Any]:
    return json.loads(resources.files("matloop.data").joinpath("prototypes.json").read_text())


@lru_cache(maxsize=1)
def templates() -> tuple[Template, ...]:
    """One template per prototype: its ``example`` decoration, else a starter-library entry of
    that type, else the bare prototype (lattice from a volume estimate)."""
    from matloop.materials.references import starter_entries

    raw = _raw_prototypes()
    starters: dict[str, dict[str, Any]] = {}
    for entry in starter_entries():
        starters.setdefault(entry.get("prototype", ""), entry)
    seen: set[str] = set()
    out = []
    for proto in load_prototypes().values():
        if proto.name in seen:
            continue
        seen.add(proto.name)
        example = raw.get(proto.name, {}).get("example")
        source = f"prototype:{proto.name}"
        if not example or "species" not in example or "a" not in example:
            example = starters.get(proto.name)
            source = f"starter:{example['formula']}:{proto.name}" if example else source
        if example:
            lattice = {k: float(example[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma")
                       if k in example}
            out.append(Template(proto, dict(example["species"]), lattice,
                                example.get("params"), source))
        else:
            out.append(Template(proto, None, {"a": 5.0}, None, source))
    return tuple(out)


def _label_radii(species: dict[str, str], comp_states: dict[str, int]) -> dict[str, float]:
    return {label: species_radius(el, comp_states.get(el, 0)) for label, el in species.items()}


@lru_cache(maxsize=512)
def _template_radii(index: int) -> tuple[dict[str, float], float] | None:
    t = templates()[index]
    if t.species is None:
        return None
    counts = t.label_atoms
    amounts: dict[str, float] = {}
    for label, el in t.species.items():
        amounts[el] = amounts.get(el, 0) + counts.get(label, 0)
    comp = Composition(amounts)
    _, states = roles(comp)
    return _label_radii(t.species, states), sphere_volume(amounts, states)


@lru_cache(maxsize=256)
def example_structure(index: int) -> Structure:
    """The template's own decoration, built once (conventional cell; do not modify)."""
    t = templates()[index]
    if t.species is None:
        raise ValueError(f"prototype {t.prototype.name} has no example decoration")
    return t.build(t.species)


def decorations(target: Target, exclusions: Any = None,
                ) -> list[tuple[float, int, dict[str, str], Composition, dict[str, int]]]:
    """Every acceptable decoration: (score, template index, label->element, composition,
    oxidation states), best first; prototypes held out by ``exclusions`` are skipped."""
    options = []
    for index, t in enumerate(templates()):
        if exclusions is not None and exclusions.excludes_prototype(t.prototype.name):
            continue
        labels = t.prototype.labels
        counts = t.label_atoms
        primitive_atoms = sum(counts.values()) / centring(t.prototype.spacegroup)
        if primitive_atoms > target.max_atoms:
            continue
        if target.spacegroups is not None and t.prototype.spacegroup not in target.spacegroups:
            continue
        for els in target.element_sets(len(labels)):
            for perm in itertools.permutations(els):
                mapping = dict(zip(labels, perm, strict=True))
                comp = Composition({el: counts[label] for label, el in mapping.items()})
                if target.accepts(comp) is not None:
                    continue
                kind, states = roles(comp)
                if kind == "ionic" and not is_metallic(comp):
                    anions = {el for el, q in states.items() if q < 0}
                    on_anion_sites = {mapping[lb] for lb in labels if lb in ANION_LABELS}
                    if anions != on_anion_sites:
                        continue
                elif kind == "other" and not proposable(comp):
                    continue
                ref = _template_radii(index)
                if ref is None:
                    score = 1.0
                else:
                    radii = _label_radii(mapping, states)
                    score = sum(abs(math.log(radii[lb] / ref[0][lb]))
                                for lb in labels) / len(labels)
                options.append((round(score, 6), index, mapping, comp, states))
    options.sort(key=lambda o: (o[0], o[1], tuple(o[2].values())))
    return options


def decorate(index: int, mapping: dict[str, str], states: dict[str, int]) -> Structure:
    """Build one decoration with its volume rescaled from the template's."""
    from matloop.generation.chemistry import estimated_volume_per_atom

    t = templates()[index]
    structure = t.build(mapping)
    ref = _template_radii(index)
    if ref is None:
        volume = estimated_volume_per_atom(structure.composition) * len(structure)
    else:
        template_structure = example_structure(index)
        template_comp = template_structure.composition
        ratio = sphere_volume(structure.composition.get_el_amt_dict(), states) / sphere_volume(
            template_comp.get_el_amt_dict(), roles(template_comp)[1])
        volume = template_structure.volume * ratio
    structure.scale_lattice(volume)
    return structure


def prototype_generator(request: Any, context: Any) -> Iterator[Candidate]:
    """Decorations of the prototype library, best radius match first."""
    for score, index, mapping, _comp, states in decorations(
            context.target, getattr(context, "exclusions", None)):
        t = templates()[index]
        try:
            structure = decorate(index, mapping, states)
        except Exception as exc:  # noqa: BLE001 - a broken library entry must not stop the run
            context.reject("prototype", f"prototype {t.prototype.name} could not be built: {exc}")
            continue
        yield Candidate.from_structure(structure, method="prototype", provenance={
            "prototype": t.prototype.name,
            "prototype_key": f"prototype:{t.prototype.name}",
            "template": t.source,
            "template_species": t.species,
            "decoration": mapping,
            "oxidation_states": {el: q for el, q in states.items()},
            "radius_mismatch": score,
            "spacegroup_prototype": t.prototype.spacegroup,
            "seed": request.seed,
        })

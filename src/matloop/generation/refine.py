r"""Refinement moves around a good candidate, for the expansion step of a search.

Three moves, each a function returning new :class:`~matloop.generation.models.Candidate`\\ s
(primitive cells, validity checked, de-duplicated among themselves, provenance naming the move
and the parent):

* :func:`distort`: symmetry-lowering distortions of a near-hull structure. A maximal
  translationengleiche subgroup of its space group (pyxtal ``subgroup_once``, random
  displacements of ``displacement`` in fractional units along the freed coordinates), or a
  supercell (doubling one axis, when it fits ``max_atoms``) with random Cartesian displacements;
  every cell also gets a random symmetric strain of at most ``strain``. Relaxing these finds
  lower-symmetry minima (octahedral tilts, Jahn-Teller, charge order) the parent's symmetry
  forbids.
* :func:`neighbour_substitutions`: one element swapped for its most probable substitutes
  (Hautier et al. probabilities) among the allowed elements; ionic compounds keep charge
  balance with the ion's sign, alloys and metallic compounds need none.
* :func:`next_prototypes`: for a composition that came close, the best-ranked prototypes of
  both libraries (75 types and AFLOW) not tried yet; a tried type also rules out the same
  structure in the other library.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pymatgen.core import Composition, Element, Structure

from matloop.generation.chemistry import (
    check_validity,
    common_oxidation_states,
    is_alloy,
    is_metallic,
    oxidation_assignments,
    proposable,
    roles,
    sphere_volume,
)
from matloop.generation.matching import UniqueIndex
from matloop.generation.models import Candidate
from matloop.generation.similarity import pair_probability, score_assignment
from matloop.logs import quiet_third_party


def _wrap(structure: Structure, method: str, provenance: dict[str, Any], *, max_atoms: int,
          unique: UniqueIndex | set[str], keep_invalid: bool = False) -> Candidate | None:
    """Primitive cell, size, uniqueness (a StructureMatcher index, or a set of ids for
    distortions, which the loose matcher would call the same as their parent) and validity."""
    from matloop.generation.registry import primitive_cell, spacegroup_number

    cell = primitive_cell(structure)
    if len(cell) > max_atoms:
        return None
    if isinstance(unique, UniqueIndex):
        if not unique.add(cell):
            return None
    else:
        key = Candidate.from_structure(cell, method=method).id
        if key in unique:
            return None
        unique.add(key)
    valid, notes = check_validity(cell)
    if not valid and not keep_invalid:
        return None
    candidate = Candidate.from_structure(cell, method=method, provenance=provenance,
                                         spacegroup=spacegroup_number(cell))
    candidate.valid, candidate.validity_notes = valid, notes
    return candidate


def _as_structure(item: Candidate | Structure) -> tuple[Structure, str | None]:
    if isinstance(item, Candidate):
        return item.get_structure(), item.id
    return item, None


def random_strain(structure: Structure, rng: np.random.Generator, strain: float) -> Structure:
    """A copy with a random symmetric strain (components uniform in +-``strain``)."""
    e = rng.uniform(-strain, strain, size=(3, 3))
    e = (e + e.T) / 2
    out = structure.copy()
    out.apply_strain(e)
    return out


def distort(parent: Candidate | Structure, *, n: int = 4, seed: int = 0, max_atoms: int = 20,
            displacement: float = 0.1, strain: float = 0.03,
            keep_invalid: bool = False) -> list[Candidate]:
    """Symmetry-lowering distortions of a structure (see the module docstring).

    The distortions are small on purpose: under the shared StructureMatcher settings (stol
    0.3) they still match their parent and each other, so they are de-duplicated by exact
    fingerprint only; do not pass them through structure-level de-duplication against the
    parent.

    Args:
        parent: The structure (or candidate) to distort, ideally relaxed and near the hull.
        n: How many distortions to return (at most).
        seed: Random seed.
        max_atoms: Largest primitive cell returned.
        displacement: Subgroup moves: pyxtal's perturbation of the freed coordinates
            (fractional); supercell moves: standard deviation of the Cartesian displacement, Å.
        strain: Largest strain component of the random cell strain.
        keep_invalid: Also return distortions that fail the validity checks (flagged).
    """
    from pyxtal import pyxtal

    from matloop.generation.registry import spacegroup_number

    structure, parent_id = _as_structure(parent)
    parent_sg = spacegroup_number(structure)
    rng = np.random.default_rng(seed)
    unique: set[str] = set()
    out: list[Candidate] = []
    base = {"move": "distort", "parent": parent_id,
            "parent_formula": structure.composition.reduced_formula,
            "parent_spacegroup": parent_sg, "strain_max": strain, "seed": seed}
    seeded = None
    with quiet_third_party(), contextlib.redirect_stdout(io.StringIO()):
        try:
            seeded = pyxtal(random_state=np.random.default_rng(seed))
            seeded.from_seed(structure, tol=0.1)
        except Exception:  # noqa: BLE001 - pyxtal cannot read every cell; fall back below
            seeded = None
    for attempt in range(8 * n):
        if len(out) >= n:
            break
        kind = "subgroup" if seeded is not None and attempt % 2 == 0 else "supercell"
        cell, extra = None, {}
        if kind == "subgroup":
            with quiet_third_party(), contextlib.redirect_stdout(io.StringIO()):
                try:
                    sub = seeded.subgroup_once(eps=displacement, group_type="t", max_cell=1)
                    if sub is not None:
                        cell = sub.to_pymatgen()
                        extra = {"subgroup": int(sub.group.number), "group_type": "t",
                                 "displacement_fractional": displacement}
                except Exception:  # noqa: BLE001 - no valid splitter for this group
                    cell = None
        if cell is None:
            kind = "supercell"
            axis = int(rng.integers(3))
            scale = [1, 1, 1]
            if 2 * len(structure) <= max_atoms:
                scale[axis] = 2
            cell = structure * scale
            disp = rng.normal(0.0, displacement, size=(len(cell), 3))
            for i in range(len(cell)):
                cell.translate_sites([i], disp[i], frac_coords=False, to_unit_cell=True)
            extra = {"supercell": scale, "displacement_sigma_angstrom": displacement}
        cell = random_strain(cell, rng, strain)
        c = _wrap(cell, "refine", {**base, "kind": kind, **extra, "attempt": attempt},
                  max_atoms=max_atoms, unique=unique, keep_invalid=keep_invalid)
        if c is not None:
            out.append(c)
    return out


def _new_states(old_states: dict[str, int], old: str, new: str,
                comp: Composition) -> dict[str, int] | None:
    """Oxidation states of the substituted composition that keep every ion's sign."""
    for states in oxidation_assignments(comp):
        if all((states[new if el == old else el] > 0) == (q > 0)
               for el, q in old_states.items()):
            return states
    return None


def neighbour_substitutions(parent: Candidate | Structure, *, allowed_elements: Iterable[str],
                            n: int = 6, per_element: int = 2, min_probability: float = 1e-5,
                            max_atoms: int = 20, keep_invalid: bool = False,
                            ) -> list[Candidate]:
    """Swap one element of a good structure for its most probable substitutes.

    Args:
        parent: The structure (or candidate).
        allowed_elements: Elements a substitute may be (those already present are skipped).
        n: Most candidates returned, most probable first.
        per_element: Most substitutes per element of the parent.
        min_probability: Substitutions less likely than this are not made.
        max_atoms: Largest primitive cell returned.
        keep_invalid: Also return candidates that fail the validity checks (flagged).
    """
    structure, parent_id = _as_structure(parent)
    comp = structure.composition
    present = {el.symbol for el in comp.elements}
    allowed = sorted({e for e in allowed_elements if Element.is_valid_symbol(e)} - present)
    kind, old_states = roles(comp)
    amounts = comp.get_el_amt_dict()
    options: list[tuple[float, str, str, dict[str, int]]] = []
    for old in sorted(present):
        found = []
        for new in allowed:
            new_comp = Composition({new if e == old else e: a for e, a in amounts.items()})
            if kind == "ionic":
                states = _new_states(old_states, old, new, new_comp)
                if states is None:
                    continue
                p = pair_probability(old, old_states[old], new, states[new])
            elif kind in ("alloy", "metallic"):
                if not (is_alloy(new_comp) or is_metallic(new_comp)):
                    continue
                states = dict.fromkeys(new_comp.get_el_amt_dict(), 0)
                p = pair_probability(old, 0, new, 0)
            else:
                if not proposable(new_comp):
                    continue
                states = dict.fromkeys(new_comp.get_el_amt_dict(), 0)
                p = pair_probability(old, 0, new, 0)
            if p >= min_probability:
                found.append((p, old, new, states))
        found.sort(key=lambda f: (-f[0], f[2]))
        options += found[:per_element]
    options.sort(key=lambda f: (-f[0], f[1], f[2]))
    unique = UniqueIndex()
    out: list[Candidate] = []
    old_volume = sphere_volume(amounts, old_states)
    for p, old, new, states in options:
        if len(out) >= n:
            break
        cell = structure.copy()
        cell.replace_species({old: new})
        new_volume = sphere_volume(cell.composition.get_el_amt_dict(), states)
        cell.scale_lattice(cell.volume * new_volume / old_volume)
        c = _wrap(cell, "refine", {
            "move": "neighbour_substitution", "parent": parent_id,
            "parent_formula": comp.reduced_formula, "swap": {old: new},
            "probability": p, "oxidation_states": states if kind == "ionic" else None,
            "common_states_of_new": list(common_oxidation_states(new))},
            max_atoms=max_atoms, unique=unique, keep_invalid=keep_invalid)
        if c is not None:
            out.append(c)
    return out


def _tried_names(tried: Iterable[Any]) -> list[str]:
    names = []
    for item in tried:
        if isinstance(item, Candidate):
            prov = item.provenance
            item = prov.get("prototype_key") or (
                f"prototype:{prov['prototype']}" if prov.get("prototype") else None)
            if item is None:
                continue
        text = str(item)
        names.append(text.split(":", 1)[1] if text.startswith(("prototype:", "aflow:")) else text)
    return names


def prototype_options(composition: Composition | str, *, max_atoms: int = 20,
                      exclusions: Any = None, aflow_assignments: int = 2,
                      ) -> list[tuple[float, str, Any]]:
    """Decorations of both prototype libraries for one composition on one scale, best first:
    (score, prototype key, option). 75-type options are ``(index, mapping, states)`` tuples,
    AFLOW ones :class:`~matloop.generation.aflow.AflowOption`; both are scored with
    :func:`~matloop.generation.similarity.score_assignment` against the example."""
    from matloop.generation.aflow import aflow_options
    from matloop.generation.models import GenerationRequest
    from matloop.generation.prototype import decorations, example_structure, templates
    from matloop.generation.targets import resolve

    target = resolve(GenerationRequest(composition=str(Composition(composition).formula),
                                       max_atoms=max_atoms))
    comp = target.composition
    out: list[tuple[float, str, Any]] = []
    for radius, index, mapping, _c, states in decorations(target, exclusions):
        t = templates()[index]
        example = example_structure(index).composition
        element_map: dict[str, str] = {}
        for label, new in mapping.items():
            old = t.species[label] if t.species else None
            if old is None or element_map.get(old, new) != new:
                element_map = {}
                break
            element_map[old] = new
        scored = score_assignment(example, comp, element_map) if (
            element_map and len(set(element_map.values())) == len(element_map)) else None
        score = scored.score if scored is not None else radius + 0.5
        out.append((score, f"prototype:{t.prototype.name}", (index, mapping, states)))
    for option in aflow_options(target, exclusions=exclusions, max_assignments=aflow_assignments):
        out.append((option.score, option.prototype.key, option))
    out.sort(key=lambda o: (o[0], o[1]))
    return out


def next_prototypes(composition: Composition | str, *, tried: Sequence[Any] = (), n: int = 3,
                    max_atoms: int = 20, exclusions: Any = None,
                    keep_invalid: bool = False) -> list[Candidate]:
    """The next best-ranked prototypes for a composition, skipping those already tried.

    Args:
        composition: The composition that came close to the hull.
        tried: Prototypes already tried: candidates (their provenance names the prototype),
            keys (``prototype:spinel``, ``aflow:A2BC4_cF56_227_d_a_e``) or bare names/labels.
        n: How many new prototypes (one decoration each, the best).
        max_atoms: Largest primitive cell.
        exclusions: Held-out types that stay out
            (:class:`~matloop.generation.holdout.Exclusions`).
        keep_invalid: Also return decorations that fail the validity checks (flagged).

    Raises:
        GenerationError: A tried name that is no known prototype; a composition that cannot
            be resolved (unknown element, larger than ``max_atoms``).
    """
    from matloop.generation.aflow import decorate_aflow, provenance
    from matloop.generation.holdout import Exclusions, resolve_exclusions
    from matloop.generation.prototype import decorate, templates

    names = _tried_names(tried)
    seen = resolve_exclusions(prototypes=names) if names else Exclusions()
    held = exclusions or Exclusions()
    combined = Exclusions(seen.prototype_names | held.prototype_names,
                          seen.aflow_labels | held.aflow_labels, held.structures, held.formulas)
    done: set[str] = set()
    unique = UniqueIndex()
    out: list[Candidate] = []
    for rank, (score, key, option) in enumerate(prototype_options(
            composition, max_atoms=max_atoms, exclusions=combined)):
        if len(out) >= n:
            break
        if key in done:
            continue
        try:
            if key.startswith("aflow:"):
                structure, scaling = decorate_aflow(option)
                method, prov = "aflow", {**provenance(option), **scaling}
            else:
                index, mapping, states = option
                structure = decorate(index, mapping, states)
                method = "prototype"
                prov = {"prototype": templates()[index].prototype.name, "decoration": mapping,
                        "oxidation_states": states, "prototype_key": key}
        except Exception as exc:  # noqa: BLE001 - a broken entry is skipped, not fatal
            warnings.warn(f"{key} could not be built: {exc}", stacklevel=2)
            continue
        c = _wrap(structure, method, {**prov, "move": "next_prototype", "rank": rank,
                                      "unified_score": round(score, 4),
                                      "tried": sorted(names)},
                  max_atoms=max_atoms, unique=unique, keep_invalid=keep_invalid)
        if c is not None:
            done.add(key)
            out.append(c)
    return out

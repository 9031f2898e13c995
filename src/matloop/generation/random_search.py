"""Symmetric random search (AIRSS-like) with pyxtal.

Each attempt draws a composition (the requested one, or one of the chemical system's
charge-balanced compositions), a number of formula units and a space group (from the allowed
list, else 2-230), and asks pyxtal for a random crystal with atoms on that group's Wyckoff
positions at pyxtal's default volume estimate. The MLIP relaxation that makes this a search
happens downstream (``sun_metrics`` or the engine's ``predict``). Attempt ``i`` uses the seed
``seed * 1_000_003 + i``, so a request and its seed give the same candidates.

With ``random_prior`` the space group (and, half of the time, the whole Wyckoff pattern and
number of formula units) comes from known structures of similar chemistry instead
(:mod:`matloop.generation.priors`); ``random_explore_fraction`` of the attempts stay uniform.
Each candidate's provenance records the draw (prior kind, analogue, its probability).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import numpy as np

from matloop.generation.models import Candidate
from matloop.generation.targets import centring
from matloop.logs import quiet_third_party

#: Attempts per requested candidate before the generator gives up.
ATTEMPTS_PER_CANDIDATE = 25


def random_crystal(spacegroup: int, species: list[str], counts: list[int], seed: int, *,
                   sites: list[list[str]] | None = None) -> Any:
    """One pyxtal random crystal as a pymatgen Structure, or None when pyxtal cannot place it.

    ``sites``: Wyckoff sites per species (e.g. ``[["8a"], ["16d"], ["32e"]]``), or None to let
    pyxtal choose.
    """
    from pyxtal import pyxtal

    crystal = pyxtal()
    with quiet_third_party(), contextlib.redirect_stdout(io.StringIO()):
        try:
            crystal.from_random(3, spacegroup, species, counts, random_state=seed, sites=sites)
        except Exception:  # noqa: BLE001 - incompatible Wyckoff counts and the like
            return None
        if not crystal.valid:
            return None
        return crystal.to_pymatgen()


def random_generator(request: Any, context: Any) -> Iterator[Candidate]:
    """Random symmetric crystals, one attempt at a time (uniform, or from the prior)."""
    target = context.target
    compositions = target.compositions(limit=200)
    groups = sorted(target.spacegroups) if target.spacegroups else list(range(2, 231))
    rng = np.random.default_rng(request.seed)
    analogues = None
    priors: dict[str, Any] = {}
    if getattr(request, "random_prior", False):
        from matloop.generation.priors import known_analogues

        analogues = known_analogues(context.store, n_elements=set(target.sizes),
                                    exclusions=getattr(context, "exclusions", None))
    for attempt in range(ATTEMPTS_PER_CANDIDATE * request.n):
        comp = compositions[int(rng.integers(len(compositions)))]
        draw = None
        if analogues is not None:
            from matloop.generation.priors import build_prior

            prior = priors.get(comp.reduced_formula)
            if prior is None:
                prior = priors[comp.reduced_formula] = build_prior(comp, analogues)
            draw = prior.sample(rng, groups=groups, max_atoms=target.max_atoms,
                                explore_fraction=request.random_explore_fraction)
            sg = draw.spacegroup
        else:
            sg = int(groups[int(rng.integers(len(groups)))])
        per_cell = target.max_atoms * centring(sg)
        z_max = int(per_cell // comp.num_atoms)
        if z_max < 1:
            continue
        if draw is not None and draw.z_conventional is not None:
            z = draw.z_conventional
        else:
            z = int(rng.integers(1, min(z_max, 8) + 1))
        amounts = comp.get_el_amt_dict()
        species = sorted(amounts)
        counts = [int(round(amounts[s] * z)) for s in species]
        seed = request.seed * 1_000_003 + attempt
        structure = random_crystal(sg, species, counts, seed,
                                   sites=draw.sites if draw is not None else None)
        if structure is None:
            continue
        provenance = {
            "spacegroup_requested": sg,
            "formula_units_conventional": z,
            "composition": comp.reduced_formula,
            "seed": seed,
            "attempt": attempt,
            "generator": "pyxtal.from_random",
        }
        if draw is not None:
            provenance.update(draw.provenance())
            provenance["explore_fraction"] = request.random_explore_fraction
        else:
            provenance["prior"] = "uniform (no prior)"
        yield Candidate.from_structure(structure, method="random", provenance=provenance)

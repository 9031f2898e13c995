"""Symmetric random search (AIRSS-like) with pyxtal.

Each attempt draws a composition (the requested one, or one of the chemical system's
charge-balanced compositions), a number of formula units and a space group (from the allowed
list, else 2-230), and asks pyxtal for a random crystal with atoms on that group's Wyckoff
positions at pyxtal's default volume estimate. The MLIP relaxation that makes this a search
happens downstream (``sun_metrics`` or the engine's ``predict``). Attempt ``i`` uses the seed
``seed * 1_000_003 + i``, so a request and its seed give the same candidates.
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


def random_crystal(spacegroup: int, species: list[str], counts: list[int], seed: int) -> Any:
    """One pyxtal random crystal as a pymatgen Structure, or None when pyxtal cannot place it."""
    from pyxtal import pyxtal

    crystal = pyxtal()
    with quiet_third_party(), contextlib.redirect_stdout(io.StringIO()):
        try:
            crystal.from_random(3, spacegroup, species, counts, random_state=seed)
        except Exception:  # noqa: BLE001 - incompatible Wyckoff counts and the like
            return None
        if not crystal.valid:
            return None
        return crystal.to_pymatgen()


def random_generator(request: Any, context: Any) -> Iterator[Candidate]:
    """Random symmetric crystals, one attempt at a time."""
    target = context.target
    compositions = target.compositions(limit=200)
    groups = sorted(target.spacegroups) if target.spacegroups else list(range(2, 231))
    rng = np.random.default_rng(request.seed)
    for attempt in range(ATTEMPTS_PER_CANDIDATE * request.n):
        comp = compositions[int(rng.integers(len(compositions)))]
        sg = int(groups[int(rng.integers(len(groups)))])
        per_cell = target.max_atoms * centring(sg)
        z_max = int(per_cell // comp.num_atoms)
        if z_max < 1:
            continue
        z = int(rng.integers(1, min(z_max, 8) + 1))
        amounts = comp.get_el_amt_dict()
        species = sorted(amounts)
        counts = [int(round(amounts[s] * z)) for s in species]
        seed = request.seed * 1_000_003 + attempt
        structure = random_crystal(sg, species, counts, seed)
        if structure is None:
            continue
        yield Candidate.from_structure(structure, method="random", provenance={
            "spacegroup_requested": sg,
            "formula_units_conventional": z,
            "composition": comp.reduced_formula,
            "seed": seed,
            "attempt": attempt,
            "generator": "pyxtal.from_random",
        })

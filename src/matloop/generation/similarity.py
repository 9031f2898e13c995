"""How well one element assignment fits a known structure: probability, electronegativity, radii.

A known structure (a prototype's example, a substitution parent, a random-search analogue) has
its own species; putting the target's elements on its sites is an *assignment*, one known
element to one target element with the same amount in the reduced formula. Assignments are
scored the same way wherever they are ranked (AFLOW prototypes, "next prototypes", analogue
weights), lower is better:

* ``radius_mismatch``: mean ``|ln(r_new / r_known)|`` over the known elements, Shannon ionic
  radii when both compounds are ionic, metallic/atomic radii otherwise;
* ``discordance``: share of element pairs whose Pauling electronegativity order flips;
* ``log_probability``: mean ``log10`` of the Hautier et al. substitution probability of each
  pair (species level when both are ionic, element level otherwise, 1 for the same species);
* a penalty when an ionic compound goes onto a non-ionic structure or back, and assignments
  that put a cation on an anion site are not made at all.

``score = radius_mismatch + 0.5 discordance - 0.1 log_probability (+ 0.3 kind penalty)``:
weights chosen so that one flipped pair in three counts like a 15 % radius mismatch, and an
unseen substitution (1e-6) like a 60 % one.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pymatgen.core import Composition, Element, Species

from matloop.generation.chemistry import (
    common_oxidation_states,
    is_metallic,
    roles,
    species_radius,
)

_UNSEEN = 1e-6  # species pymatgen's table does not know


@lru_cache(maxsize=1)
def _table() -> Any:
    from pymatgen.analysis.structure_prediction.substitution_probability import (
        SubstitutionProbability,
    )

    return SubstitutionProbability()


@lru_cache(maxsize=200_000)
def species_probability(parent: str, parent_q: int, new: str, new_q: int) -> float:
    """Conditional substitution probability of ``new`` (fixed) by ``parent`` (variable)."""
    table = _table()
    if parent_q == 0 or new_q == 0:
        return element_probability(parent, new)
    a, b = Species(parent, parent_q), Species(new, new_q)
    if a not in table.species or b not in table.species:
        return _UNSEEN
    try:
        return float(table.cond_prob(a, b))
    except (KeyError, ValueError, ArithmeticError):
        return _UNSEEN


@lru_cache(maxsize=50_000)
def element_probability(parent: str, new: str) -> float:
    """Element-level probability: the best over the two elements' common positive ions."""
    best = _UNSEEN
    for qp in common_oxidation_states(parent):
        for qn in common_oxidation_states(new):
            if qp > 0 and qn > 0:
                best = max(best, species_probability(parent, qp, new, qn))
    return best


#: Weights of the score terms (see the module docstring).
DISCORDANCE_WEIGHT = 0.5
PROBABILITY_WEIGHT = 0.1
KIND_PENALTY = 0.3
#: Floor of a pair probability (pymatgen's table has no entry).
UNSEEN_PROBABILITY = 1e-6


@dataclass(frozen=True)
class AssignmentScore:
    """One assignment of target elements to a known structure's elements, and its score."""

    mapping: dict[str, str]
    score: float
    radius_mismatch: float
    discordance: float
    log10_probability: float
    kind_penalty: float
    known_states: dict[str, int] = field(default_factory=dict)
    new_states: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly summary for provenance."""
        return {"assignment": dict(self.mapping), "score": round(self.score, 4),
                "radius_mismatch": round(self.radius_mismatch, 4),
                "electronegativity_discordance": round(self.discordance, 4),
                "mean_log10_substitution_probability": round(self.log10_probability, 3),
                "kind_penalty": self.kind_penalty}


def pair_probability(known: str, known_q: int, new: str, new_q: int) -> float:
    """Substitution probability of ``new`` for ``known``: 1 for the same element (and state),
    species level for two ions of the same sign, element level for neutral (metallic) ones."""
    if known == new and (known_q == new_q or 0 in (known_q, new_q)):
        return 1.0
    if known_q and new_q:
        if (known_q > 0) != (new_q > 0):
            return UNSEEN_PROBABILITY
        return max(species_probability(known, known_q, new, new_q), UNSEEN_PROBABILITY)
    return max(element_probability(known, new), UNSEEN_PROBABILITY)


def amount_preserving_maps(known: Composition, new: Composition) -> list[dict[str, str]]:
    """Every one-to-one map of ``known``'s elements onto ``new``'s with equal amounts in the
    reduced formulas (empty when the anonymised formulas differ)."""
    a = known.reduced_composition.get_el_amt_dict()
    b = new.reduced_composition.get_el_amt_dict()
    if sorted(a.values()) != sorted(b.values()):
        return []
    out: list[dict[str, str]] = []
    src = sorted(a)
    for perm in itertools.permutations(sorted(b)):
        if all(abs(a[s] - b[t]) < 1e-8 for s, t in zip(src, perm, strict=True)):
            out.append(dict(zip(src, perm, strict=True)))
    return out


@lru_cache(maxsize=4096)
def _roles(formula: str) -> tuple[str, tuple[tuple[str, int], ...], bool]:
    comp = Composition(formula)
    kind, states = roles(comp)
    return kind, tuple(sorted(states.items())), is_metallic(comp)


def _electronegativity(symbol: str) -> float | None:
    x = Element(symbol).X
    return None if x is None or math.isnan(x) else float(x)


def score_assignment(known: Composition, new: Composition, mapping: dict[str, str],
                     ) -> AssignmentScore | None:
    """Score one assignment (known element -> new element); None when it would put a cation
    on an anion site (or the reverse) of an ionic structure."""
    k_kind, k_states_t, _ = _roles(known.reduced_formula)
    n_kind, n_states_t, n_metallic = _roles(new.reduced_formula)
    k_states, n_states = dict(k_states_t), dict(n_states_t)
    ionic = k_kind == "ionic" and n_kind == "ionic"
    if ionic and not n_metallic and any(
            (k_states[k] > 0) != (n_states[v] > 0) for k, v in mapping.items()):
        return None
    penalty = 0.0 if (k_kind == "ionic") == (n_kind == "ionic") or n_metallic else KIND_PENALTY
    mismatches, logs = [], []
    for k, v in mapping.items():
        qk = k_states.get(k, 0) if ionic else 0
        qv = n_states.get(v, 0) if ionic else 0
        mismatches.append(abs(math.log(species_radius(v, qv) / species_radius(k, qk))))
        logs.append(math.log10(pair_probability(k, qk, v, qv)))
    flips = pairs = 0
    for a, b in itertools.combinations(sorted(mapping), 2):
        xa, xb = _electronegativity(a), _electronegativity(b)
        ya, yb = _electronegativity(mapping[a]), _electronegativity(mapping[b])
        if None in (xa, xb, ya, yb) or xa == xb or ya == yb:
            continue
        pairs += 1
        flips += (xa > xb) != (ya > yb)
    discordance = flips / pairs if pairs else 0.0
    radius = sum(mismatches) / len(mismatches)
    log_p = sum(logs) / len(logs)
    total = radius + DISCORDANCE_WEIGHT * discordance - PROBABILITY_WEIGHT * log_p + penalty
    return AssignmentScore(dict(mapping), total, radius, discordance, log_p, penalty,
                           k_states if ionic else {}, n_states if ionic else {})


def ranked_assignments(known: Composition, new: Composition) -> list[AssignmentScore]:
    """Every acceptable amount-preserving assignment of ``new`` onto ``known``, best first."""
    scored = [s for m in amount_preserving_maps(known, new)
              if (s := score_assignment(known, new, m)) is not None]
    scored.sort(key=lambda s: (s.score, tuple(sorted(s.mapping.items()))))
    return scored


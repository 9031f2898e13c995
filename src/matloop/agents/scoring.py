"""How well a candidate meets the objective: one score and a yes/no, both explained."""

from __future__ import annotations

import math

from matloop.schemas import CandidateResult, Objective, PropertyTarget


def target_value(candidate: CandidateResult, target: PropertyTarget) -> float | None:
    """The candidate's value for a target, in the target's unit, or None if not evaluated."""
    key = target.key
    value = getattr(candidate, key, None)
    if value is None:
        value = candidate.properties.get(key, candidate.properties.get(target.name))
    return None if value is None else float(value)


def score(candidate: CandidateResult, objective: Objective) -> tuple[float | None, bool | None]:
    """(objective_score, meets_objective).

    The score is minus the hull distance in units of the threshold (0 on or below the hull)
    minus each target's shortfall in units of its range width (or a quarter of its bound),
    minus 0.25 for each target that could not be evaluated. ``meets_objective`` is True when the
    candidate is stable (if required) and meets every target; False when it fails one; None
    when it fails none but some target was not evaluated.
    """
    if candidate.status != "ok" or candidate.e_above_hull_ev_per_atom is None:
        return None, None
    threshold = max(objective.stability_threshold_ev_per_atom, 1e-3)
    total = -max(candidate.e_above_hull_ev_per_atom, 0.0) / threshold
    stable = candidate.e_above_hull_ev_per_atom <= objective.stability_threshold_ev_per_atom
    meets: bool | None = stable or not objective.require_stable
    unknown = False
    for target in objective.property_targets:
        if target.name == "e_above_hull":
            continue
        value = target_value(candidate, target)
        if value is None:
            total -= 0.25
            unknown = True
            continue
        miss = target.distance(value)
        total -= miss / target.scale()
        if miss > 0:
            meets = False
    if meets and unknown:
        meets = None
    return round(total, 6), meets


def _normal_cdf(x: float, mean: float, sigma: float) -> float:
    return 0.5 * (1.0 + math.erf((x - mean) / (sigma * math.sqrt(2.0))))


def target_probability(candidate: CandidateResult, objective: Objective) -> float | None:
    """Probability that the candidate meets every property target, given its values' 1-sigma.

    Each target's probability is the Gaussian mass of ``value ± sigma`` inside the target's
    range (a value without an uncertainty counts as exact: 0 or 1); targets multiply, as their
    models' errors are taken as independent. None when a target was not evaluated; 1.0 when
    the objective has no property target.
    """
    p = 1.0
    for target in objective.property_targets:
        if target.name == "e_above_hull":
            continue
        one = probability_in_target(candidate, target)
        if one is None:
            return None
        p *= one
    return round(p, 4)


def probability_in_target(candidate: CandidateResult, target: PropertyTarget) -> float | None:
    """Gaussian mass of the candidate's ``value ± sigma`` inside one target's range (exact,
    0 or 1, without an uncertainty); None when the target was not evaluated."""
    value = target_value(candidate, target)
    if value is None:
        return None
    sigma = candidate.property_uncertainties.get(target.key)
    if not sigma or sigma <= 0:
        return float(target.contains(value))
    upper = _normal_cdf(target.max, value, sigma) if target.max is not None else 1.0
    lower = _normal_cdf(target.min, value, sigma) if target.min is not None else 0.0
    return max(upper - lower, 0.0)


def objective_distances(candidate: CandidateResult, objective: Objective,
                        targets: list[PropertyTarget]) -> tuple[float, ...] | None:
    """(hull distance, each target's shortfall in units of its scale): all to be minimised.

    An unevaluated target counts as infinitely far; None for a candidate without a usable
    energy.
    """
    if candidate.status != "ok" or candidate.e_above_hull_ev_per_atom is None:
        return None
    out = [max(candidate.e_above_hull_ev_per_atom, 0.0)]
    for target in targets:
        value = target_value(candidate, target)
        out.append(math.inf if value is None else target.distance(value) / target.scale())
    return tuple(out)


def evaluated_targets(candidates: list[CandidateResult],
                      objective: Objective) -> list[PropertyTarget]:
    """The property targets at least one candidate has a value for (the Pareto axes)."""
    return [t for t in objective.property_targets if t.name != "e_above_hull"
            and any(target_value(c, t) is not None for c in candidates)]


def pareto_ranks(candidates: list[CandidateResult], objective: Objective) -> dict[str, int]:
    """Non-dominated sorting over hull distance and each evaluated target's shortfall.

    Rank 1 is the Pareto front: no other candidate is at least as good on every axis and
    better on one. Rank k+1 is the front once ranks 1..k are removed. Candidates without a
    usable energy get no rank.
    """
    targets = evaluated_targets(candidates, objective)
    points = {c.id: d for c in candidates
              if (d := objective_distances(c, objective, targets)) is not None}

    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    ranks: dict[str, int] = {}
    left = dict(points)
    front = 1
    while left:
        layer = [i for i, p in left.items()
                 if not any(dominates(q, p) for j, q in left.items() if j != i)]
        for i in layer:
            ranks[i] = front
            del left[i]
        front += 1
    return ranks

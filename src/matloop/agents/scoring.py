"""How well a candidate meets the objective: one score and a yes/no, both explained."""

from __future__ import annotations

from matloop.schemas import CandidateResult, Objective, PropertyTarget

#: Candidate property keys for each target name (values carry the unit in the key).
PROPERTY_KEYS = {
    "band_gap": "band_gap_ev",
    "bulk_modulus": "bulk_modulus_gpa",
    "formation_energy": "formation_energy_ev_per_atom",
    "e_above_hull": "e_above_hull_ev_per_atom",
    "energy_per_atom": "energy_per_atom_ev",
    "magnetic_moment": "magnetic_moment_bohr_per_atom",
}


def target_value(candidate: CandidateResult, target: PropertyTarget) -> float | None:
    """The candidate's value for a target, in the target's unit, or None if not evaluated."""
    key = PROPERTY_KEYS.get(target.name, target.name)
    value = getattr(candidate, key, None)
    if value is None:
        value = candidate.properties.get(key, candidate.properties.get(target.name))
    return None if value is None else float(value)


def _scale(target: PropertyTarget) -> float:
    if target.min is not None and target.max is not None and target.max > target.min:
        return target.max - target.min
    bound = target.min if target.min is not None else target.max
    return max(abs(bound or 0.0) * 0.25, 0.1)


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
        total -= miss / _scale(target)
        if miss > 0:
            meets = False
    if meets and unknown:
        meets = None
    return round(total, 6), meets

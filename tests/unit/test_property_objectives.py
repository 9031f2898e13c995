"""Property targets beyond band gap and bulk modulus: how questions are read, how the plan
evaluates them, how candidates are scored against several targets (Pareto fronts, the
probability of meeting a target given its model's uncertainty)."""

from __future__ import annotations

import math

import pytest

from matloop.agents.planner import OfflinePlanner
from matloop.agents.query_parser import parse_query
from matloop.agents.scoring import pareto_ranks, score, target_probability
from matloop.schemas import CandidateResult, Hypothesis, Objective, PropertyTarget
from tests.unit.test_offline_planner import _tools


def targets(query: str) -> dict[str, tuple[float | None, float | None, str]]:
    return {t.name: (t.min, t.max, t.unit) for t in parse_query(query).property_targets}


@pytest.mark.parametrize(("query", "expected"), [
    ("superhard borides with a Vickers hardness above 30 GPa",
     {"hardness": (30.0, None, "GPa")}),
    ("stiff carbides with shear modulus over 200 GPa", {"shear_modulus": (200.0, None, "GPa")}),
    ("oxides with a density below 3 g/cm3", {"density": (None, 3.0, "g/cm3")}),
    ("ferromagnets with a magnetic moment of at least 1.5 μB/atom",
     {"magnetic_moment": (1.5, None, "bohr_per_atom")}),
    ("hard coatings with hardness between 20 and 40 GPa and bulk modulus above 250 GPa",
     {"hardness": (20.0, 40.0, "GPa"), "bulk_modulus": (250.0, None, "GPa")}),
])
def test_mechanical_density_and_magnetic_targets_are_read(query, expected) -> None:
    assert targets(query) == expected


def test_an_explicit_hardness_replaces_the_bulk_modulus_implied_by_hard() -> None:
    implied = parse_query("superhard materials for cutting tools")
    assert [t.describe() for t in implied.property_targets] == ["bulk_modulus >= 200 GPa"]
    explicit = parse_query("superhard materials with hardness above 25 GPa")
    assert [t.describe() for t in explicit.property_targets] == ["hardness >= 25 GPa"]


def test_a_density_in_another_unit_is_a_problem_not_a_target() -> None:
    objective = parse_query("light alloys with density below 3 GPa")
    assert "density" not in {t.name for t in objective.property_targets}


@pytest.mark.parametrize(("query", "any_of"), [
    ("phosphide or nitride solar absorbers", ["P", "N"]),
    ("oxides, sulfides and selenides for photocatalysis", ["O", "S", "Se"]),
    ("borides/carbides for armour", ["B", "C"]),
])
def test_compound_classes_given_as_alternatives_are_an_or_list(query, any_of) -> None:
    objective = parse_query(query)
    assert objective.required_any_of == any_of
    assert not set(any_of) & set(objective.required_elements)


def test_one_compound_class_is_still_required() -> None:
    objective = parse_query("stable nitrides for LEDs")
    assert objective.required_elements == ["N"] and objective.required_any_of == []
    assert parse_query("oxynitride photocatalysts").required_elements == ["N", "O"]


def plan_steps(objective: Objective) -> list:
    hypothesis = Hypothesis(id="H1", justification="j", statement="s", chemical_system="B-W",
                            methods=["prototype"], test_plan="t", status="approved")
    return OfflinePlanner().make_plan(objective, [hypothesis], remaining_evaluations=12,
                                      tools=_tools(), property_models=set(), seed=0,
                                      feedback=[]).steps


def test_a_hardness_target_gets_one_elastic_step_on_the_best_stable_candidates() -> None:
    objective = parse_query("W-B compounds with hardness above 30 GPa and shear modulus above "
                            "200 GPa")
    steps = plan_steps(objective)
    elastic = [s for s in steps if s.inputs.get("elastic")]
    assert len(elastic) == 1  # one tensor gives both shear modulus and hardness
    relax = [s.id for s in steps if s.tool == "predict_properties" and not s.inputs.get(
        "elastic")]
    assert elastic[0].depends_on == relax
    assert all(":stable:" in ref for ref in elastic[0].inputs["structures"])
    plain = plan_steps(parse_query("stable compounds in the W-B system"))
    assert not any(s.inputs.get("elastic") for s in plain)


def cand(cid: str, e_hull: float, **props: float) -> CandidateResult:
    return CandidateResult(id=cid, formula="X", chemical_system="A-B", n_atoms=2,
                           method="prototype", status="ok", e_above_hull_ev_per_atom=e_hull,
                           formation_energy_ev_per_atom=-1.0, properties=props)


GAP = PropertyTarget(name="band_gap", unit="eV", min=1.1, max=1.8)
HARD = PropertyTarget(name="hardness", unit="GPa", min=20.0)


def objective_of(*ts: PropertyTarget) -> Objective:
    return Objective(query="q", interpretation="i", property_targets=list(ts))


def test_pareto_fronts_trade_stability_against_the_targets() -> None:
    objective = objective_of(GAP, HARD)
    cands = [
        cand("on_hull_off_gap", 0.0, band_gap_ev=2.5, vickers_hardness_gpa=25.0),
        cand("in_window_above_hull", 0.08, band_gap_ev=1.5, vickers_hardness_gpa=22.0),
        cand("dominated", 0.09, band_gap_ev=2.6, vickers_hardness_gpa=21.0),
        cand("soft", 0.0, band_gap_ev=2.5, vickers_hardness_gpa=5.0),
        cand("no_hardness", 0.05, band_gap_ev=2.5),
    ]
    ranks = pareto_ranks(cands, objective)
    assert ranks["on_hull_off_gap"] == ranks["in_window_above_hull"] == 1
    assert ranks["dominated"] == 2  # worse than on_hull_off_gap on every axis
    assert ranks["soft"] == 2  # same hull and gap as on_hull_off_gap, softer
    # an unevaluated target counts as infinitely far: dominated, but ranked
    assert ranks["no_hardness"] == 3  # behind "soft", which is as far off the gap and closer
    failed = cand("failed", 0.0).model_copy(update={"status": "failed"})
    assert "failed" not in pareto_ranks([*cands, failed], objective)


def test_target_probability_uses_each_models_sigma() -> None:
    objective = objective_of(GAP)
    centre = cand("c", 0.0, band_gap_ev=1.45).model_copy(
        update={"property_uncertainties": {"band_gap_ev": 0.35}})
    # the window 1.1-1.8 is centre ± 1 sigma: 68.3 % of a Gaussian
    assert target_probability(centre, objective) == pytest.approx(math.erf(1 / math.sqrt(2)),
                                                                  abs=1e-3)
    outside = centre.model_copy(update={"properties": {"band_gap_ev": 2.5}})
    # 2.5 eV is 2 sigma above the window's top: the Gaussian tail below it is 2.3 %
    assert target_probability(outside, objective) == pytest.approx(
        0.5 * math.erfc(2 / math.sqrt(2)), abs=1e-3)
    exact = cand("e", 0.0, band_gap_ev=1.5)  # no sigma: counts as exact
    assert target_probability(exact, objective) == 1.0
    assert target_probability(cand("none", 0.0), objective) is None
    both = objective_of(GAP, HARD)
    hard = centre.model_copy(update={"properties": {"band_gap_ev": 1.45,
                                                    "vickers_hardness_gpa": 10.0}})
    assert target_probability(hard, both) == 0.0  # a missed exact target


def test_scores_read_hardness_shear_and_density_values() -> None:
    objective = objective_of(PropertyTarget(name="hardness", unit="GPa", min=20.0),
                             PropertyTarget(name="shear_modulus", unit="GPa", min=150.0),
                             PropertyTarget(name="density", unit="g/cm3", max=5.0))
    good = cand("g", 0.0, vickers_hardness_gpa=25.0, shear_modulus_gpa=180.0,
                density_g_per_cm3=4.0)
    assert score(good, objective) == (0.0, True)
    heavy = cand("h", 0.0, vickers_hardness_gpa=25.0, shear_modulus_gpa=180.0,
                 density_g_per_cm3=7.0)
    assert score(heavy, objective)[1] is False

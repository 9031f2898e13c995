"""The offline planner's generation steps stay within what the generation tool accepts."""

from __future__ import annotations

from matloop.agents.planner import PRESCREEN_FACTOR, OfflinePlanner
from matloop.schemas import Hypothesis, Objective
from matloop.tools.base import Toolbox
from matloop.tools.generation import GenerateArgs, generation_tools
from matloop.tools.materials import materials_tools


class _Engine:
    store = None
    mp_structures = None


def _tools() -> Toolbox:
    from matloop.files import FileAccess

    box = Toolbox()
    for spec in [*generation_tools(_Engine()), *materials_tools(
            _Engine(), run_dir=None, access=FileAccess.working_directory())]:
        if spec.name in ("generate_candidates", "predict_properties"):
            box.add(spec)
    return box


def plan_for(remaining: int, feedback: list[str] | None = None):
    objective = Objective(query="q", interpretation="i", chemical_systems=["Ba-O-Ti"])
    hypothesis = Hypothesis(id="H1", justification="j", statement="s", chemical_system="Ba-O-Ti",
                            methods=["prototype"], test_plan="t", status="approved")
    return OfflinePlanner().make_plan(objective, [hypothesis], remaining_evaluations=remaining,
                                      tools=_tools(), property_models=set(), seed=0,
                                      feedback=feedback or [])


def test_generation_asks_for_more_than_it_relaxes_and_stays_valid() -> None:
    for remaining in (12, 1000):
        (gen,) = [s for s in plan_for(remaining).steps if s.tool == "generate_candidates"]
        args = GenerateArgs.model_validate(gen.inputs)  # n <= 100 and prescreen_keep <= 100
        assert args.prescreen_keep == min(remaining, 100)
        assert args.n == min(100, PRESCREEN_FACTOR * args.prescreen_keep)


def test_feedback_of_a_rejected_plan_changes_the_next_plan() -> None:
    plain = plan_for(40)
    (gen,) = [s for s in plain.steps if s.tool == "generate_candidates"]
    revised = plan_for(40, ["too many candidates: use fewer, and only prototype"])
    (gen2,) = [s for s in revised.steps if s.tool == "generate_candidates"]
    assert gen2.inputs["prescreen_keep"] == gen.inputs["prescreen_keep"] // 2
    assert gen2.inputs["methods"] == ["prototype"]
    assert "feedback applied" in revised.reasoning
    unread = plan_for(40, ["please consider entropy"])
    assert "no rule applies" in unread.reasoning


def test_a_small_share_looks_at_more_compositions_once_each() -> None:
    """Breadth first: with fewer relaxations than target compositions, the first compositions
    get one relaxation each (not two structures of the first and none of the rest)."""
    objective = Objective(query="q", interpretation="i", chemical_systems=["Sn-Sr"])
    targets = ["SrSn3", "Sr3Sn", "SrSn2", "SrSn", "Sr5Sn3"]
    hypothesis = Hypothesis(id="H1", justification="j", statement="s", chemical_system="Sn-Sr",
                            target_compositions=targets, methods=["prototype"],
                            test_plan="t", status="approved")

    def kept(remaining: int) -> dict[str, int]:
        plan = OfflinePlanner().make_plan(objective, [hypothesis], remaining_evaluations=remaining,
                                          tools=_tools(), property_models=set(), seed=0,
                                          feedback=[])
        return {s.inputs["composition"]: s.inputs["prescreen_keep"] for s in plan.steps
                if s.tool == "generate_candidates"}

    assert kept(3) == {"SrSn3": 1, "Sr3Sn": 1, "SrSn2": 1}
    assert kept(5) == dict.fromkeys(targets, 1)
    larger = kept(12)
    assert set(larger) == set(targets) and sum(larger.values()) == 12
    assert larger["SrSn3"] == max(larger.values())


def test_property_steps_and_relaxations_fit_the_budget_together() -> None:
    """A bulk-modulus target reserves evaluations for its steps; when the budget cannot hold
    every hypothesis with its steps, the lowest-priority ones are left out (said in the
    reasoning) and the plan fits the budget, so the critic can approve it."""
    from matloop.agents.critic import OfflineCritic
    from matloop.schemas import PropertyTarget

    objective = Objective(query="q", interpretation="i", chemical_systems=["N-Ti-Zr"],
                          property_targets=[PropertyTarget(name="bulk_modulus", min=200.0,
                                                          unit="GPa")])
    hypotheses = [Hypothesis(id=f"H{k}", justification="j", statement="s",
                             chemical_system=system, target_compositions=[formula],
                             methods=["prototype"], test_plan="t", status="approved",
                             priority=priority)
                  for k, (system, formula, priority) in enumerate(
                      [("N-Ti", "Ti4N3", 0.5), ("Ti-Zr", "Zr2Ti", 0.38),
                       ("N-Ti-Zr", "Zr4TiN3", 0.29)], start=3)]
    for remaining in (4, 10, 30):
        plan = OfflinePlanner().make_plan(objective, hypotheses, remaining_evaluations=remaining,
                                          tools=_tools(), property_models=set(), seed=0,
                                          feedback=[])
        assert plan.expected_evaluations <= remaining, (remaining, plan.expected_evaluations)
        review = OfflineCritic().review_plan(plan, tool_names={"generate_candidates",
                                                               "predict_properties"},
                                             remaining_evaluations=remaining)
        assert review.approved, review.issues
        planned = {s.hypothesis_id for s in plan.steps}
        assert "H3" in planned  # the highest priority is never the one left out
        assert any(s.inputs.get("bulk_modulus") for s in plan.steps)
        if len(planned) < 3:
            assert "left out of this plan" in plan.reasoning
    small = OfflinePlanner().make_plan(objective, hypotheses, remaining_evaluations=4,
                                       tools=_tools(), property_models=set(), seed=0, feedback=[])
    assert {s.hypothesis_id for s in small.steps} == {"H3", "H4"}
    assert "H5 left out of this plan" in small.reasoning
    roomy = OfflinePlanner().make_plan(objective, hypotheses, remaining_evaluations=30,
                                       tools=_tools(), property_models=set(), seed=0, feedback=[])
    relaxations = sum(s.inputs["prescreen_keep"] for s in roomy.steps
                      if s.tool == "generate_candidates")
    assert relaxations >= 20 and roomy.expected_evaluations <= 30


def test_one_composition_does_not_crowd_out_the_others() -> None:
    """A high-priority hypothesis about one composition gets at most two relaxations of it
    while the other hypotheses can use the rest; alone, it keeps the whole share."""
    from matloop.agents.planner import spread

    objective = Objective(query="q", interpretation="i", chemical_systems=["Ge-I-K"])
    near_miss = Hypothesis(id="H3", justification="j", statement="s", chemical_system="Ge-I-K",
                           target_compositions=["KGeI5"], methods=["prototype"], test_plan="t",
                           status="approved", priority=1.39)
    fresh = Hypothesis(id="H4", justification="j", statement="s", chemical_system="Ge-I-Rb",
                       target_compositions=["RbGeI3", "RbGeI5", "Rb2GeI4"],
                       methods=["prototype"], test_plan="t", status="approved", priority=0.4)
    assert spread([5, 1], [near_miss, fresh]) == [2, 4]
    assert spread([6], [near_miss]) == [6]
    assert spread([9, 3], [near_miss, fresh]) == [6, 6]  # H4 full: the rest goes back to H3
    plan = OfflinePlanner().make_plan(objective, [near_miss, fresh], remaining_evaluations=6,
                                      tools=_tools(), property_models=set(), seed=0,
                                      feedback=[])
    keep = {s.inputs["composition"]: s.inputs["prescreen_keep"] for s in plan.steps
            if s.tool == "generate_candidates"}
    assert keep["KGeI5"] == 2 and sum(keep.values()) == 6

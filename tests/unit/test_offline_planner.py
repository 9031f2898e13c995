"""The offline planner's generation steps stay within what the generation tool accepts."""

from __future__ import annotations

from matloop.agents.offline import PRESCREEN_FACTOR, OfflinePlanner
from matloop.schemas import Hypothesis, Objective
from matloop.tools.generation import GenerateArgs


def plan_for(remaining: int):
    objective = Objective(query="q", interpretation="i", chemical_systems=["Ba-O-Ti"])
    hypothesis = Hypothesis(id="H1", justification="j", statement="s", chemical_system="Ba-O-Ti",
                            methods=["prototype"], test_plan="t", status="approved")
    return OfflinePlanner().make_plan(objective, [hypothesis], remaining_evaluations=remaining,
                                      tool_names={"generate_candidates", "predict_properties"},
                                      property_models=set(), seed=0, feedback=[])


def test_generation_asks_for_more_than_it_relaxes_and_stays_valid() -> None:
    for remaining in (12, 1000):
        (gen,) = [s for s in plan_for(remaining).steps if s.tool == "generate_candidates"]
        args = GenerateArgs.model_validate(gen.inputs)  # n <= 100 and prescreen_keep <= 100
        assert args.prescreen_keep == min(remaining, 100)
        assert args.n == min(100, PRESCREEN_FACTOR * args.prescreen_keep)

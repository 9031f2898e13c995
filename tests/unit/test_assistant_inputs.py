"""Step inputs that refer to earlier steps' outputs ($Sx[:selector])."""

from __future__ import annotations

import pytest

from matloop.agents.assistant import StepInputError, resolve_inputs
from matloop.schemas import PlanStep

GENERATED = {"result": {"candidates": [{"cif_path": "a.cif"}, {"cif_path": "b.cif", "valid": False},
                                       {"cif_path": "c.cif"}]}}
RELAXED = {"result": {"results": [
    {"status": "ok", "relaxed_cif_path": "r1.cif", "is_stable": True,
     "e_above_hull_ev_per_atom": 0.05},
    {"status": "ok", "relaxed_cif_path": "r2.cif", "is_stable": True,
     "e_above_hull_ev_per_atom": -0.01},
    {"status": "ok", "relaxed_cif_path": "r3.cif", "is_stable": False,
     "e_above_hull_ev_per_atom": 0.4},
    {"status": "not_converged"}]}}


def step(**inputs) -> PlanStep:
    return PlanStep(id="S3", purpose="test", tool="predict_properties", inputs=inputs)


def test_references_resolve_to_files_with_selectors() -> None:
    outputs = {"S1": GENERATED, "S2": RELAXED}
    assert resolve_inputs(step(structures="$S1"), outputs)["structures"] == ["a.cif", "c.cif"]
    assert resolve_inputs(step(structures="$S2:ok"), outputs)["structures"] == [
        "r1.cif", "r2.cif", "r3.cif"]
    assert resolve_inputs(step(structures="$S2:stable:1"), outputs)["structures"] == ["r2.cif"]
    assert resolve_inputs(step(structures=["$S1", "x.cif"], relax=True), outputs) == {
        "structures": ["a.cif", "c.cif", "x.cif"], "relax": True}


def test_a_reference_to_nothing_is_a_clear_step_error() -> None:
    empty = {"S1": {"result": {"candidates": []}}}
    with pytest.raises(StepInputError, match="names no structures"):
        resolve_inputs(step(structures="$S1"), empty)
    with pytest.raises(StepInputError, match="refers to a step with no output"):
        resolve_inputs(step(structures="$S9"), empty)

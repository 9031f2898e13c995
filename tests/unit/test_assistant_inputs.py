"""Step inputs that refer to earlier steps' outputs ($Sx[:selector])."""

from __future__ import annotations

import pytest

from matloop.agents.assistant import StepInputError, resolve_inputs
from matloop.files import FileAccess
from matloop.schemas import PlanStep, ToolRecord
from matloop.tools.base import Toolbox
from matloop.tools.generation import GeneratedRow, GenerateOutput, generation_tools
from matloop.tools.materials import PredictionRow, PredictOutput, materials_tools


class _Engine:
    store = None
    mp_structures = None


TOOLS = Toolbox()
for _spec in [*generation_tools(_Engine()),
              *materials_tools(_Engine(), run_dir=None, access=FileAccess.working_directory())]:
    TOOLS.add(_spec)


def record(step_id: str, tool: str, result, status: str = "ok") -> ToolRecord:
    return ToolRecord(id=f"T-{step_id}", step_id=step_id, tool=tool, arguments={},
                      status=status, summary="", result=result, duration_s=0.0)


GENERATED = record("S1", "generate_candidates", GenerateOutput(candidates=[
    GeneratedRow(id="a", formula="NaCl", method="prototype", cif_path="a.cif"),
    GeneratedRow(id="b", formula="NaCl", method="prototype", cif_path="b.cif", valid=False),
    GeneratedRow(id="c", formula="NaCl", method="prototype", cif_path="c.cif")]))
RELAXED = record("S2", "predict_properties", PredictOutput(results=[
    PredictionRow(index=0, relaxed_cif_path="r1.cif", is_stable=True, energy_per_atom_ev=-3.0,
                  e_above_hull_ev_per_atom=0.05),
    PredictionRow(index=1, relaxed_cif_path="r2.cif", is_stable=True, energy_per_atom_ev=-3.0,
                  e_above_hull_ev_per_atom=-0.01),
    PredictionRow(index=2, relaxed_cif_path="r3.cif", is_stable=False, energy_per_atom_ev=-3.0,
                  e_above_hull_ev_per_atom=0.4),
    PredictionRow(index=3, outcome="not_converged")]))


def step(**inputs) -> PlanStep:
    return PlanStep(id="S3", purpose="test", tool="predict_properties", inputs=inputs)


def test_references_resolve_to_files_with_selectors() -> None:
    outputs = {"S1": GENERATED, "S2": RELAXED}
    assert resolve_inputs(step(structures="$S1"), outputs, TOOLS)["structures"] == \
        ["a.cif", "c.cif"]
    assert resolve_inputs(step(structures="$S2:ok"), outputs, TOOLS)["structures"] == [
        "r1.cif", "r2.cif", "r3.cif"]
    assert resolve_inputs(step(structures="$S2:stable:1"), outputs, TOOLS)["structures"] == \
        ["r2.cif"]
    assert resolve_inputs(step(structures=["$S1", "x.cif"], relax=True), outputs, TOOLS) == {
        "structures": ["a.cif", "c.cif", "x.cif"], "relax": True}
    # checkpoints hold results as plain dicts: they resolve the same
    as_dicts = {k: v.model_copy(update={"result": v.result.model_dump()})
                for k, v in outputs.items()}
    assert resolve_inputs(step(structures="$S2:stable:1"), as_dicts, TOOLS)["structures"] == \
        ["r2.cif"]


def test_a_reference_to_nothing_is_a_clear_step_error() -> None:
    empty = {"S1": record("S1", "generate_candidates", GenerateOutput())}
    with pytest.raises(StepInputError, match="names no structures: the step it refers to "
                                             "produced none"):
        resolve_inputs(step(structures="$S1"), empty, TOOLS)
    with pytest.raises(StepInputError, match="refers to a step with no output"):
        resolve_inputs(step(structures="$S9"), empty, TOOLS)
    failed = {"S1": record("S1", "generate_candidates",
                           GenerateOutput(status="error", message="no candidate"), "error")}
    failed["S1"] = failed["S1"].model_copy(update={"summary": "error: no candidate"})
    with pytest.raises(StepInputError, match=r"the step it refers to failed \(error: no "):
        resolve_inputs(step(structures="$S1"), failed, TOOLS)

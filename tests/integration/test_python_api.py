"""The public Python API (issue 18): top-level exports, ASE ``Atoms`` and pymatgen
``Structure`` in, pymatgen ``Structure`` / ``ComputedStructureEntry`` out, DataFrame, CSV and
extxyz exports, trajectories, and the CLI's defaults.

Reference values: rock-salt NaCl with a = 5.64 Å (experiment); CHGNet puts it near
-3.8 eV/atom (same bound as ``test_cli.py::test_predict_json_fields``).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from ase.build import bulk
from ase.io import read as ase_read
from pymatgen.core import Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

import matloop
from matloop.errors import StructureInputError
from tests.conftest import DATA


def test_top_level_exports_and_py_typed() -> None:
    for name in ("run_campaign", "MaterialsEngine", "read_structure", "DiscoveryReport",
                 "Budget", "Settings", "MatloopError", "Prediction", "as_structure"):
        assert name in matloop.__all__
        assert getattr(matloop, name) is not None
    assert (Path(matloop.__file__).parent / "py.typed").is_file()
    with pytest.raises(AttributeError):
        _ = matloop.not_a_name  # type: ignore[attr-defined]


def test_run_campaign_has_explicit_parameters_and_cli_defaults() -> None:
    params = inspect.signature(matloop.run_campaign).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    for name in ("budget", "llm", "mlip", "seed", "max_atoms", "out_dir",
                 "accept_assumptions"):
        assert name in params
    assert params["seed"].default == 0 and params["max_atoms"].default == 20
    budget = matloop.Budget()
    assert (budget.max_iterations, budget.max_evaluations) == (3, 60)
    # the engine relaxes by default, as `matloop predict` does
    assert inspect.signature(matloop.MaterialsEngine.predict).parameters["relax"].default is True


def test_as_structure_accepts_ase_atoms_and_refuses_other_objects() -> None:
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    structure = matloop.as_structure(atoms)
    assert isinstance(structure, Structure)
    assert structure.composition.reduced_formula == "NaCl"
    assert structure.volume == pytest.approx(atoms.get_volume())
    molecule = atoms.copy()
    molecule.pbc = False
    with pytest.raises(StructureInputError, match="not periodic"):
        matloop.as_structure(molecule)
    with pytest.raises(StructureInputError, match="expected a pymatgen Structure"):
        matloop.as_structure(42)


def test_engine_predict_ase_atoms_without_relaxing(tmp_path: Path) -> None:
    engine = matloop.MaterialsEngine()
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    structure = matloop.read_structure(DATA / "NaCl_rocksalt.cif")
    preds = engine.predict([atoms, structure], relax=False)
    assert [p.source for p in preds] == ["structure-0", "structure-1"]
    for p in preds:
        assert p.status == "ok" and not p.relaxed
        assert p.relaxed_cif is None  # a single point never poses as a relaxed cell
        assert -4.5 < p.energy_per_atom_ev < -3.0
    out = preds[0].structure()
    assert isinstance(out, Structure)
    assert out.volume == pytest.approx(atoms.get_volume(), rel=1e-6)
    entry = preds[0].entry()
    assert isinstance(entry, ComputedStructureEntry)
    assert entry.energy == pytest.approx(preds[0].energy_per_atom_ev * len(out))
    assert entry.parameters["mlip"] == "chgnet"

    frame = matloop.predictions_dataframe(preds)
    assert list(frame["formula"]) == ["NaCl", "NaCl"]
    assert "energy_per_atom_ev" in frame.columns
    csv = matloop.write_predictions(preds, tmp_path / "p.csv")
    assert csv.read_text().splitlines()[0].startswith("source,")
    xyz = matloop.write_predictions(preds, tmp_path / "p.extxyz")
    images = ase_read(str(xyz), index=":")
    assert len(images) == 2
    assert images[0].info["energy_per_atom_ev"] == pytest.approx(preds[0].energy_per_atom_ev)


def test_engine_trajectory_when_asked(tmp_path: Path) -> None:
    engine = matloop.MaterialsEngine()
    strained = bulk("NaCl", "rocksalt", a=5.9)
    (p,) = engine.predict(strained, trajectory=True)
    assert p.status == "ok" and p.relaxed and p.trajectory
    path = matloop.write_trajectory(p, tmp_path / "t.extxyz")
    frames = ase_read(str(path), index=":")
    assert len(frames) == len(p.trajectory) >= 2
    # relaxation lowers the energy from the strained start
    assert frames[-1].info["energy_ev"] <= frames[0].info["energy_ev"]

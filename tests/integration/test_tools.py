from __future__ import annotations

import json
from pathlib import Path

import pytest

from matloop.config import get_settings
from matloop.files import FileAccess
from matloop.materials.engine import MaterialsEngine
from matloop.materials.references import ReferencePhase
from matloop.tools.materials import materials_tools
from tests.conftest import DATA

SNAPSHOT = Path(__file__).parents[1] / "data" / "tool_schemas.json"


@pytest.fixture
def tools(tmp_path):
    engine = MaterialsEngine(get_settings())
    specs = materials_tools(engine, run_dir=tmp_path / "run",
                            access=FileAccess([DATA, tmp_path]))
    return {t.name: t.as_langchain() for t in specs}, engine


def test_tool_schemas_match_snapshot(tools) -> None:
    by_name, _ = tools
    schemas = {name: t.args_schema.model_json_schema() for name, t in sorted(by_name.items())}
    descriptions = {name: t.description for name, t in sorted(by_name.items())}
    current = {"schemas": schemas, "descriptions": descriptions}
    if not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True))
        pytest.fail(f"wrote a new snapshot to {SNAPSHOT}; review and commit it")
    assert json.loads(SNAPSHOT.read_text()) == json.loads(json.dumps(current, sort_keys=True))


def test_relax_structure_tool_writes_cif(tools, tmp_path) -> None:
    by_name, _ = tools
    out = json.loads(by_name["relax_structure"].invoke(
        {"structure": str(DATA / "NaCl_rocksalt.cif")}))
    assert out["status"] == "ok" and out["formula"] == "NaCl"
    assert out["energy_per_atom_ev"] < -3.5
    assert Path(out["relaxed_cif_path"]).is_file()


def test_batch_results_name_novelty_and_never_overwrite_each_other(tools, tmp_path) -> None:
    from pymatgen.core import Lattice, Structure

    by_name, _ = tools
    # Rocksalt NaCl is a starter-library phase: known at structure level after relaxation.
    first = json.loads(by_name["predict_properties"].invoke(
        {"structures": [str(DATA / "NaCl_rocksalt.cif")]}))
    (row,) = first["results"]
    assert row["novelty"].startswith("known phase (matches starter:NaCl")
    assert Path(row["relaxed_cif_path"]).name == "relaxed-NaCl_rocksalt_NaCl.cif"
    # CsCl-type NaCl is not in the starter library; a second call at the same index must
    # not overwrite the first call's file.
    cscl = Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    path = tmp_path / "cscl.cif"
    cscl.to(filename=str(path))
    (other,) = json.loads(by_name["predict_properties"].invoke(
        {"structures": [str(path)]}))["results"]
    assert other["novelty"].startswith("known composition (Materials Project composition; no "
                                       "mp-id shipped); structure not among the 1 local "
                                       "structure reference(s) of NaCl")
    assert other["relaxed_cif_path"] != row["relaxed_cif_path"]
    assert Path(row["relaxed_cif_path"]).is_file() and Path(other["relaxed_cif_path"]).is_file()


def test_tools_report_bad_input_as_status(tools) -> None:
    by_name, _ = tools
    out = json.loads(by_name["relax_structure"].invoke(
        {"structure": str(DATA / "close_atoms.cif")}))
    assert out["status"] == "error" and "closer than 0.5" in out["message"]
    batch = json.loads(by_name["predict_properties"].invoke(
        {"structures": [str(DATA / "garbage.cif"), str(DATA / "NaCl_rocksalt.cif")]}))
    assert batch["status"] == "partial" and batch["evaluated"] == 1
    assert batch["results"][0]["outcome"] == "error"
    assert batch["results"][1]["outcome"] == "ok"
    bad = json.loads(by_name["check_stability"].invoke(
        {"formula": "Qq2O", "energy_per_atom_ev": -5.0}))
    assert bad["status"] == "error" and "Qq" in bad["message"]


def test_check_stability_and_lookup_on_imported_mp_scale(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MATLOOP_MP_REFERENCES", "false")  # only what the test imports
    get_settings.cache_clear()
    engine = MaterialsEngine(get_settings())
    by_name = {t.name: t.as_langchain() for t in materials_tools(
        engine, run_dir=tmp_path / "run", access=FileAccess([DATA, tmp_path]))}
    engine.store.add([
        ReferencePhase("mp", "na", "Na1", -1.3, "total", "mp2020"),
        ReferencePhase("mp", "cl", "Cl2", -1.8, "total", "mp2020"),
        ReferencePhase("mp", "nacl", "Na1Cl1", -2.1, "formation", "mp2020"),
    ])
    out = json.loads(by_name["check_stability"].invoke(
        {"formula": "NaCl", "energy_per_atom_ev": -3.60}))
    assert out["status"] == "ok"
    assert out["e_above_hull_ev_per_atom"] == pytest.approx(0.05)
    assert out["energy_scale"].startswith("mp2020")
    phases = json.loads(by_name["lookup_known_phases"].invoke({"chemsys": "Na-Cl"}))
    assert phases["status"] == "ok" and phases["chemsys"] == "Cl-Na"
    assert {p["formula"] for p in phases["phases"]} >= {"NaCl", "Na", "Cl2"}
    by_formula = json.loads(by_name["lookup_known_phases"].invoke({"chemsys": "NaCl"}))
    assert by_formula["chemsys"] == "Cl-Na"

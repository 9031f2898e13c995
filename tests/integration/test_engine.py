"""MLIP behaviour with the real CHGNet / SevenNet models shipped in their wheels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from matloop.config import get_settings
from matloop.materials.cache import EvaluationCache
from matloop.materials.engine import MaterialsEngine
from matloop.materials.evaluation import Evaluator
from matloop.materials.mlip import BackendSpec, RelaxResult, get_mlip, register_backend
from matloop.materials.structures import read_structure
from tests.conftest import DATA


def nacl(a: float = 5.64) -> Structure:
    return Structure.from_spacegroup(225, Lattice.cubic(a), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_chgnet_relaxes_rocksalt_nacl_close_to_experiment() -> None:
    # Experiment: a = 5.640 Å (room temperature). CHGNet lands within ~1%.
    result = get_mlip("chgnet").relax(nacl(5.40), fmax=0.02, steps=300)
    assert result.status == "converged" and result.converged
    assert result.final_structure().lattice.a == pytest.approx(5.64, rel=0.02)
    assert result.max_force_ev_per_angstrom < 0.02
    # CHGNet 0.3.0 sits on the MP2020-corrected scale: about -3.67 eV/atom for NaCl.
    assert result.energy_per_atom_ev == pytest.approx(-3.67, abs=0.05)
    assert result.mlip == "chgnet" and result.mlip_model == "CHGNet-0.3.0"
    assert result.mlip_version and result.energy_scale == "mp2020"
    assert result.magmoms_bohr is not None and len(result.magmoms_bohr) == 8
    assert result.wall_time_s > 0 and result.steps > 0


def test_sevenn_gives_raw_gga_energies() -> None:
    sp = get_mlip("sevenn").single_point(nacl())
    # Raw GGA: about 0.3 eV/atom above CHGNet's corrected value (the MP2020 Cl correction).
    assert sp.energy_per_atom_ev == pytest.approx(-3.38, abs=0.05)
    assert sp.energy_scale == "gga_raw" and sp.magmoms_bohr is None


def test_bulk_modulus_of_nacl() -> None:
    mlip = get_mlip("chgnet")
    relaxed = mlip.relax(nacl(), fmax=0.02).final_structure()
    bm = mlip.bulk_modulus(relaxed)
    # Experiment: 24-25 GPa (e.g. 24.9 GPa, ultrasonic). MLIPs trained on PBE soften it a bit.
    assert 18 < bm.bulk_modulus_gpa < 30
    assert len(bm.volumes_a3) == 7 and bm.equilibrium_volume_a3 == pytest.approx(
        relaxed.volume, rel=0.03)


def test_step_limit_is_reported_as_not_converged() -> None:
    strained = nacl(6.3)
    strained.perturb(0.1, min_distance=0.05)
    result = get_mlip("chgnet").relax(strained, fmax=0.001, steps=2)
    assert result.status == "not_converged" and not result.converged
    assert "after 2 steps" in result.message


class _ExplodingCalculator:
    """An ASE calculator that returns a non-finite energy, as a broken model would."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self) -> None:
        from ase.calculators.calculator import Calculator

        class Exploding(Calculator):
            implemented_properties = ["energy", "forces", "stress"]

            def calculate(self, atoms=None, properties=None, system_changes=None):
                super().calculate(atoms, properties, system_changes)
                n = len(self.atoms)
                self.results = {"energy": float("nan"), "forces": np.zeros((n, 3)),
                                "stress": np.zeros(6)}

        self.calc = Exploding()


def test_divergence_is_reported_not_returned_as_a_result() -> None:
    register_backend(BackendSpec(name="test-exploding", model="nan-model", package="ase",
                                 energy_scale="mp2020",
                                 factory=lambda: _ExplodingCalculator().calc))
    result = get_mlip("test-exploding").relax(nacl())
    assert result.status == "diverged"
    assert "not physical" in result.message
    engine = MaterialsEngine(get_settings(), mlip="test-exploding")
    (pred,) = engine.predict([nacl()])
    assert pred.status == "diverged" and pred.energy_per_atom_ev is None
    assert pred.e_above_hull_ev_per_atom is None


def test_cache_answers_repeat_work_without_the_model(isolated_data_dir) -> None:
    cache = EvaluationCache(isolated_data_dir / "cache.sqlite")
    ev = Evaluator("chgnet", cache=cache)
    first = ev.relax(nacl(), steps=200)
    assert ev.computed == 1 and ev.cache_hits == 0
    # A new evaluator (as in a new process) with the same cache file computes nothing.
    again = Evaluator("chgnet", cache=EvaluationCache(isolated_data_dir / "cache.sqlite"))
    second = again.relax(nacl(), steps=200)
    assert again.computed == 0 and again.cache_hits == 1
    assert second.energy_per_atom_ev == first.energy_per_atom_ev
    # Different settings are a different evaluation.
    again.relax(nacl(), steps=150)
    assert again.computed == 1
    # Batches reuse the cache and compute duplicates once.
    results = again.relax_many([nacl(), nacl(5.5), nacl(5.5)], steps=200)
    assert again.computed == 2 and all(isinstance(r, RelaxResult) for r in results)
    assert results[1].energy_per_atom_ev == results[2].energy_per_atom_ev


def test_predict_reads_files_and_reports_provenance() -> None:
    engine = MaterialsEngine(get_settings())
    (pred,) = engine.predict([read_structure(DATA / "NaCl_rocksalt.cif")], sources=["NaCl.cif"],
                             bulk_modulus=True)
    assert pred.status == "ok"
    assert math.isfinite(pred.energy_per_atom_ev)
    assert pred.bulk_modulus_gpa is not None and pred.bulk_modulus_gpa > 10
    assert pred.mlip == "chgnet" and pred.settings["relax_cell"] is True
    assert "data_" in pred.relaxed_cif

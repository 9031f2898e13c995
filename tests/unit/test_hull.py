from __future__ import annotations

import pytest
from pymatgen.core import Composition, Lattice, Structure

from matloop.errors import ReferenceDataError
from matloop.materials.energy_scale import mp2020_correction_ev, to_mp2020_energy_per_atom
from matloop.materials.hull import (
    choose_scale,
    stability_from_formation_energies,
    stability_mlip_consistent,
    stability_mp2020,
)
from matloop.materials.references import ReferencePhase, ReferenceStore


def _rocksalt(a: str, x: str, lattice: float) -> Structure:
    return Structure.from_spacegroup(225, Lattice.cubic(lattice), [a, x],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_hull_of_a_toy_binary() -> None:
    refs = [(Composition("NaCl"), -1.0), (Composition("Na2Cl"), -0.5)]
    # Na2Cl (x_Cl = 1/3) lies 1/6 eV/atom above the Na + NaCl tie line at -2/3 eV/atom.
    above = stability_from_formation_energies("Na2Cl", -0.5, refs)
    assert above.e_above_hull_ev_per_atom == pytest.approx(1 / 6, abs=1e-9)
    assert above.is_stable is False  # 0.167 > 0.1 eV/atom default threshold
    assert set(above.decomposition) == {"Na", "NaCl"}
    assert above.decomposition["NaCl"] == pytest.approx(2 / 3, abs=1e-6)
    assert above.decomposition["Na"] == pytest.approx(1 / 3, abs=1e-6)
    below = stability_from_formation_energies("NaCl", -1.2, refs)
    assert below.e_above_hull_ev_per_atom == pytest.approx(-0.2)
    assert below.is_stable
    loose = stability_from_formation_energies("Na2Cl", -0.5, refs, threshold_ev_per_atom=0.2)
    assert loose.is_stable


def test_mp2020_correction_matches_published_values() -> None:
    # MP2020: oxide anion -0.687 eV/O, Ni GGA+U mixing -2.541 eV/Ni, chloride -0.614 eV/Cl.
    nio = _rocksalt("Ni", "O", 4.2)
    assert mp2020_correction_ev(nio, -40.0) == pytest.approx(4 * (-0.687 - 2.541), abs=2e-3)
    nacl = _rocksalt("Na", "Cl", 5.6)
    assert mp2020_correction_ev(nacl, -30.0) == pytest.approx(4 * -0.614, abs=2e-3)
    assert to_mp2020_energy_per_atom(nacl, -3.38, "mp2020") == -3.38
    assert to_mp2020_energy_per_atom(nacl, -3.38, "gga_raw") == pytest.approx(-3.38 - 0.307,
                                                                              abs=1e-3)


def test_mp2020_scale_uses_store_references(tmp_path) -> None:
    store = ReferenceStore(tmp_path / "s.sqlite", shipped=False)
    store.add([
        ReferencePhase("mp", "na", "Na1", -1.3, "total", "mp2020"),
        ReferencePhase("mp", "cl", "Cl2", -1.8, "total", "mp2020"),
        ReferencePhase("mp", "nacl", "Na1Cl1", -2.1, "formation", "mp2020"),
    ])
    assert choose_scale(store, ["Cl", "Na"], "auto") == "mp2020"
    assert choose_scale(store, ["K", "Cl"], "auto") == "mlip"
    nacl = _rocksalt("Na", "Cl", 5.64)
    # A CHGNet-scale energy of -3.60 eV/atom: E_form = -3.60 - (-1.3 - 1.8)/2 = -2.05.
    res = stability_mp2020(nacl, -3.60, "mp2020", store)
    assert res.formation_energy_ev_per_atom == pytest.approx(-2.05)
    assert res.e_above_hull_ev_per_atom == pytest.approx(0.05)
    assert res.is_stable and "mp2020" in res.energy_scale
    with pytest.raises(ReferenceDataError, match="K"):
        stability_mp2020(_rocksalt("K", "Cl", 6.3), -3.5, "mp2020", store)


def test_mlip_consistent_hull_needs_every_element(tmp_path) -> None:
    nacl = _rocksalt("Na", "Cl", 5.64)
    na = ReferencePhase("starter", "Na", "Na2")
    cl = ReferencePhase("starter", "Cl", "Cl2")
    res = stability_mlip_consistent(nacl, -3.7, [na, cl], [-1.3, -1.8], mlip_label="test")
    assert res.formation_energy_ev_per_atom == pytest.approx(-3.7 + 1.55)
    assert res.e_above_hull_ev_per_atom == pytest.approx(-2.15)
    assert res.energy_scale.startswith("mlip:test")
    with pytest.raises(ReferenceDataError, match="Cl"):
        stability_mlip_consistent(nacl, -3.7, [na], [-1.3], mlip_label="test")

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from matloop.errors import StructureInputError
from matloop.materials.structures import read_structure, structure_fingerprint, validate_structure
from tests.conftest import DATA


@pytest.mark.parametrize("name", ["NaCl_rocksalt.cif", "POSCAR_NaCl", "NaCl.extxyz", "NaCl.json"])
def test_reads_every_supported_format(name: str) -> None:
    s = read_structure(DATA / name)
    assert s.composition.reduced_formula == "NaCl"
    assert len(s) == 8
    assert s.lattice.a == pytest.approx(5.64, abs=1e-3)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        pytest.param("garbage.cif", "not a readable CIF", id="unparseable"),
        pytest.param("zero_volume.vasp", "zero or negative", id="zero-volume"),
        pytest.param("close_atoms.cif", "closer than 0.5", id="close-atoms"),
        pytest.param("unknown_element.cif", "unknown element 'Qz'", id="unknown-element"),
        pytest.param("disordered_CuAu.cif", "partially occupied", id="disordered"),
    ],
)
def test_bad_files_fail_with_a_named_reason(name: str, fragment: str) -> None:
    with pytest.raises(StructureInputError) as info:
        read_structure(DATA / name)
    assert fragment in str(info.value)
    assert name in str(info.value)


def test_disordered_error_says_what_to_do() -> None:
    with pytest.raises(StructureInputError) as info:
        read_structure(DATA / "disordered_CuAu.cif")
    assert info.value.hint and "order" in info.value.hint.lower()


def test_unknown_suffix_lists_formats(tmp_path) -> None:
    f = tmp_path / "structure.pdb"
    f.write_text("ATOM")
    with pytest.raises(StructureInputError, match=r"\.cif"):
        read_structure(f)


def test_missing_and_empty_files(tmp_path) -> None:
    with pytest.raises(StructureInputError, match="no such file"):
        read_structure(tmp_path / "nope.cif")
    empty = tmp_path / "empty.cif"
    empty.write_text("")
    with pytest.raises(StructureInputError, match="empty"):
        read_structure(empty)


def test_too_many_atoms_is_configurable(monkeypatch) -> None:
    s = read_structure(DATA / "NaCl_rocksalt.cif")
    big = s * (2, 2, 2)
    with pytest.raises(StructureInputError, match="64 atoms exceeds the limit of 50"):
        validate_structure(big, max_atoms=50)
    assert validate_structure(big, max_atoms=64) is big
    monkeypatch.setenv("MATLOOP_MAX_ATOMS", "5")
    from matloop.config import get_settings

    get_settings.cache_clear()
    with pytest.raises(StructureInputError, match="limit of 5"):
        validate_structure(s)


def test_fingerprint_ignores_site_order_and_origin() -> None:
    s = read_structure(DATA / "NaCl_rocksalt.cif")
    shuffled = Structure(s.lattice, [site.specie for site in s][::-1],
                         s.frac_coords[::-1])
    shifted = s.copy()
    shifted.translate_sites(list(range(len(s))), [0.25, 0.1, 0.0])
    assert structure_fingerprint(s) == structure_fingerprint(shuffled)
    assert structure_fingerprint(s) == structure_fingerprint(shifted)
    strained = s.copy()
    strained.scale_lattice(s.volume * 1.05)
    assert structure_fingerprint(s) != structure_fingerprint(strained)
    swapped = s.copy()
    swapped.replace_species({"Na": "K"})
    assert structure_fingerprint(s) != structure_fingerprint(swapped)


def test_single_atom_cell_is_valid() -> None:
    s = Structure(Lattice.cubic(2.87), ["Fe"], [[0, 0, 0]])
    assert validate_structure(s) is s
    assert np.isfinite(s.volume)

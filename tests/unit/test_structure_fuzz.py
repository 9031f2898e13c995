"""Fuzzing the structure readers: random bytes and mutated CIF, POSCAR, extended XYZ and
pymatgen JSON never raise anything but a MatloopError, and never echo a marker planted in the
input. Derandomized (the same examples on every run) with a bounded number of examples."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Structure

from matloop.errors import MatloopError
from matloop.files import FileAccess, load_structure
from matloop.materials.structures import read_structure
from tests.conftest import DATA

FUZZ = settings(max_examples=120, deadline=timedelta(seconds=10), derandomize=True,
                database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])
MARKER = "QzX9SECRETv7"
SEEDS = {name: (DATA / name).read_text() for name in
         ("NaCl_rocksalt.cif", "POSCAR_NaCl", "NaCl.extxyz", "NaCl.json")}
SUFFIX = {"NaCl_rocksalt.cif": "x.cif", "POSCAR_NaCl": "POSCAR", "NaCl.extxyz": "x.extxyz",
          "NaCl.json": "x.json"}
#: Tokens a mutation may write into the text: numbers parsers choke on, structure keywords,
#: markup, the marker.
TOKENS = ["nan", "inf", "-inf", "1e308", "-1", "0", "-0.0", "1e-300", "999999999999", "Xx",
          "Na", "Cl", "loop_", "_atom_site_fract_x", "data_", "Direct", "Cartesian", "S",
          "{", "}", "[", "]", '"', "'", "\x00", "\ufffd", "\n", " ", "Lattice=", MARKER]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str]:
    """(seed file name, its text after a few token-level mutations)."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    parts = SEEDS[name].replace("\n", " \n ").split(" ")
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "duplicate", "truncate"]))
        i = draw(st.integers(0, max(0, len(parts) - 1)))
        if op == "replace" and parts:
            parts[i] = draw(st.sampled_from(TOKENS))
        elif op == "insert":
            parts.insert(i, draw(st.sampled_from(TOKENS)))
        elif op == "delete" and len(parts) > 1:
            del parts[i]
        elif op == "duplicate" and parts:
            parts[i:i] = parts[i:i + draw(st.integers(1, 40))]
        elif op == "truncate":
            parts = parts[:i + 1]
    return name, " ".join(parts).replace(" \n ", "\n")


def _only_matloop_errors(call: object, *args: object, **kwargs: object) -> None:
    try:
        result = call(*args, **kwargs)  # type: ignore[operator]
    except MatloopError as exc:
        assert MARKER not in str(exc), str(exc)
        return
    assert isinstance(result, Structure) and len(result) > 0


@FUZZ
@given(data=st.binary(max_size=2048), name=st.sampled_from(sorted(SUFFIX.values())))
def test_random_bytes_in_structure_files(tmp_path: Path, data: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    _only_matloop_errors(read_structure, path)


@FUZZ
@given(case=mutated())
def test_mutated_structure_files(tmp_path: Path, case: tuple[str, str]) -> None:
    seed, text = case
    path = tmp_path / SUFFIX[seed]
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _only_matloop_errors(read_structure, path)


@FUZZ
@given(case=mutated())
def test_mutated_structure_text(tmp_path: Path, case: tuple[str, str]) -> None:
    _only_matloop_errors(load_structure, case[1], access=FileAccess([tmp_path]))


@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_strings_as_path_or_text(tmp_path: Path, text: str) -> None:
    _only_matloop_errors(load_structure, text, access=FileAccess([tmp_path]))


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_the_unmutated_seeds_are_valid(name: str) -> None:
    # Guards the fuzz tests: mutations start from files that parse.
    assert read_structure(DATA / name).composition.reduced_formula == "NaCl"

"""The bundled prototype library and the offline starter reference set (fast, no MLIP)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np
import pytest
from pymatgen.core import Composition, Element, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from matloop.errors import StructureInputError
from matloop.materials.prototypes import Prototype, get_prototype, load_prototypes

CATEGORIES = {
    "element", "oxide", "halide", "chalcogenide", "nitride", "pnictide", "carbide", "boride",
    "hydride", "intermetallic", "other",
}
# Elements whose ground state (or stand-in) must be in the offline reference set.
REQUIRED_ELEMENTS = (
    "H Li Be B C N O F Na Mg Al Si P Cl K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Rb Sr Y "
    "Zr Nb Mo Ru Rh Pd Ag Cd In Sn Sb Te I Cs Ba La Hf Ta W Re Os Ir Pt Au Pb Bi"
).split()
# Elements that must have an entry even if it is only a stand-in for the true ground state.
STAND_IN_ELEMENTS = ("S",)
# Elemental solids whose real atomic volume is above the generic 80 A^3/atom bound.
LARGE_VOLUME_ELEMENTS = {"Rb": 120.0, "Cs": 120.0}
MOLECULE_PROTOTYPES = {"dimer_box"}
MAX_ATOMS_PRIMITIVE = 60


def _raw_prototypes() -> dict:
    return json.loads(resources.files("matloop.data").joinpath("prototypes.json").read_text())


@lru_cache(maxsize=1)
def _starter() -> list[dict]:
    return json.loads(resources.files("matloop.data").joinpath("starter_library.json").read_text())


def _lattice_kw(entry: dict) -> dict:
    return {k: entry[k] for k in ("b", "c", "beta") if k in entry}


def _min_distance(structure: Structure) -> float:
    if len(structure) == 1:
        return min(structure.lattice.abc)
    dm = structure.distance_matrix + np.eye(len(structure)) * 1e6
    return float(dm.min())


def _entry_id(entry: dict) -> str:
    return f"{entry['formula']}-{entry['prototype']}"


def _elemental_symbol(entry: dict) -> str | None:
    comp = Composition(entry["formula"])
    return comp.elements[0].symbol if len(comp.elements) == 1 else None


PROTOTYPE_NAMES = sorted(_raw_prototypes())
STARTER = _starter()


# ------------------------------------------------------------------------- prototypes
def test_prototype_library_size_and_unique_keys() -> None:
    raw = _raw_prototypes()
    assert len(raw) >= 45
    keys = [name.lower() for name in raw]
    for spec in raw.values():
        keys.extend(alias.lower() for alias in spec.get("aliases", []))
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"name/alias used twice (lookups would shadow each other): {duplicates}"
    assert len({p.name for p in load_prototypes().values()}) == len(raw)


@pytest.mark.parametrize("name", PROTOTYPE_NAMES)
def test_prototype_entry_is_complete(name: str) -> None:
    spec = _raw_prototypes()[name]
    for key in ("spacegroup", "system", "sites", "aliases", "description", "example"):
        assert key in spec, f"{name} lacks {key!r}"
    assert spec["description"] and "\n" not in spec["description"]
    for site in spec["sites"]:
        assert set(site) == {"label", "wyckoff", "coords"}
        assert len(site["coords"]) == 3
    proto = get_prototype(name)
    assert set(spec["example"]["species"]) == set(proto.labels)


@pytest.mark.parametrize("name", PROTOTYPE_NAMES)
def test_prototype_example_builds_with_formula_and_spacegroup(name: str) -> None:
    proto = get_prototype(name)
    example = _raw_prototypes()[name]["example"]
    structure = proto.build(
        example["species"], a=example["a"], params=example.get("params"), **_lattice_kw(example)
    )
    assert structure.composition.reduced_formula == example["formula"]
    assert SpacegroupAnalyzer(structure, symprec=0.01).get_space_group_number() == proto.spacegroup
    bound = 0.7 if name in MOLECULE_PROTOTYPES else 1.0
    assert _min_distance(structure) > bound


def test_aliases_resolve_to_their_prototype() -> None:
    assert get_prototype("NaCl").name == "rocksalt"
    assert get_prototype("b1").name == "rocksalt"
    assert get_prototype("MgAl2O4").name == "spinel"
    assert get_prototype("Cu3Au").name == "L1_2"
    assert isinstance(get_prototype("PEROVSKITE"), Prototype)


def test_unknown_prototype_lists_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        get_prototype("nope")
    message = str(info.value)
    assert "nope" in message
    for name in ("rocksalt", "spinel", "perovskite", "wurtzite"):
        assert name in message


def test_missing_label_raises_structure_input_error() -> None:
    with pytest.raises(StructureInputError) as info:
        get_prototype("perovskite").build({"A": "Sr", "B": "Ti"}, a=3.905)
    assert "X" in str(info.value)


# ------------------------------------------------------------------------- starter library
def test_starter_library_size() -> None:
    assert len(STARTER) >= 160


@pytest.mark.parametrize("entry", STARTER, ids=_entry_id)
def test_starter_entry_fields(entry: dict) -> None:
    for key in ("formula", "prototype", "species", "a", "category", "lattice_is_experimental",
                "ground_state"):
        assert key in entry, f"{_entry_id(entry)} lacks {key!r}"
    assert entry["category"] in CATEGORIES
    assert isinstance(entry["lattice_is_experimental"], bool)
    assert isinstance(entry["ground_state"], bool)
    proto = get_prototype(entry["prototype"])
    assert proto.name == entry["prototype"], "use the canonical prototype name, not an alias"
    assert set(entry["species"]) == set(proto.labels)
    unknown = set(entry.get("params", {})) - set(proto.params)
    assert not unknown, f"parameters {unknown} are not free parameters of {proto.name}"
    for symbol in entry["species"].values():
        Element(symbol)
    if entry["prototype"] in MOLECULE_PROTOTYPES:
        assert "molecule" in entry.get("note", "").lower(), "molecule-in-box entries must say so"


@pytest.mark.parametrize("entry", STARTER, ids=_entry_id)
def test_starter_entry_builds_physically(entry: dict) -> None:
    proto = get_prototype(entry["prototype"])
    structure = proto.build(
        entry["species"], a=entry["a"], params=entry.get("params"), **_lattice_kw(entry)
    )
    assert structure.composition.reduced_formula == entry["formula"]
    is_molecule = entry["prototype"] in MOLECULE_PROTOTYPES
    assert _min_distance(structure) > (0.7 if is_molecule else 0.9)
    if not is_molecule:
        upper = LARGE_VOLUME_ELEMENTS.get(_elemental_symbol(entry) or "", 80.0)
        assert 5.0 <= structure.volume / len(structure) <= upper
    n_atoms = len(structure) if len(structure) <= MAX_ATOMS_PRIMITIVE else len(
        structure.get_primitive_structure()
    )
    assert n_atoms <= MAX_ATOMS_PRIMITIVE


def test_starter_covers_elemental_ground_states() -> None:
    covered = sorted(
        {sym for e in STARTER if e["ground_state"] and (sym := _elemental_symbol(e))},
        key=lambda s: Element(s).Z,
    )
    print(f"\n{len(covered)} elemental ground states: {' '.join(covered)}")
    assert len(covered) >= 60
    missing = [el for el in REQUIRED_ELEMENTS if el not in covered]
    assert not missing, f"no elemental ground-state entry for {missing}"
    with_entry = {_elemental_symbol(e) for e in STARTER}
    assert all(el in with_entry for el in STAND_IN_ELEMENTS)


def test_starter_has_one_ground_state_per_elemental_polymorph_set() -> None:
    by_element: dict[str, int] = {}
    for entry in STARTER:
        symbol = _elemental_symbol(entry)
        if symbol and entry["ground_state"]:
            by_element[symbol] = by_element.get(symbol, 0) + 1
    assert all(count == 1 for count in by_element.values()), by_element


def test_starter_has_enough_experimental_lattices() -> None:
    experimental = [e for e in STARTER if e["lattice_is_experimental"]]
    assert len(experimental) >= 30
    assert len({e["prototype"] for e in experimental}) >= 20


def test_starter_uses_many_prototypes() -> None:
    assert len({e["prototype"] for e in STARTER}) >= 45

"""The Materials Project references shipped with the package: content, hulls and labels."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from importlib import resources

import pytest
from pymatgen.core import Composition, Lattice, Structure

from matloop.generation.matching import NoveltyIndex, novelty_label
from matloop.materials.hull import choose_scale, stability_from_formation_energies
from matloop.materials.mp_pack import ELEMENT_SOURCE, SOURCE, mp_compositions
from matloop.materials.references import ReferencePhase, ReferenceStore


def test_shipped_set_is_complete_attributed_and_checksummed() -> None:
    pack = mp_compositions()
    meta = pack.meta
    assert len(pack) > 95_000
    assert "CC BY 4.0" in meta["licence"] and "Jain" in meta["attribution"]
    assert len(pack.elements) == 89
    raw = resources.files("matloop.data").joinpath("mp_compositions.csv.gz").read_bytes()
    assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == meta["sha256"]
    # Common compounds that the roost file alone lacks are there (the matbench file has them).
    for formula in ("NaCl", "MgO", "SrTiO3", "BaTiO3", "Fe2O3", "GaAs", "TiO2", "LiFePO4"):
        assert pack.get(formula) is not None, formula
    # Ba2TiO4 is mp-3397 and on the MP hull
    assert pack.get("Ba2TiO4").mp_id == "mp-3397"


def test_formation_energies_are_on_the_mp2020_scale() -> None:
    pack = mp_compositions()
    # NaCl: -2.105 eV/atom in matbench (legacy) and the same under MP2020 (no Cl change
    # beyond the fitted-gas term, which is small); CsI gains the MP2020 iodide correction.
    nacl = pack.get("NaCl").formation_energy_ev_per_atom
    assert nacl == pytest.approx(-2.105, abs=0.06)
    # Legacy MP put iodides 0.15-0.3 eV/atom too high; MP2020 CsI is about -1.8 eV/atom
    # (MP mp-614603 at the time of writing, -1.79 eV/atom with MP2020 corrections).
    assert pack.get("CsI").formation_energy_ev_per_atom == pytest.approx(-1.8, abs=0.1)


def test_store_answers_with_the_shipped_set_and_hides_held_out(tmp_path) -> None:
    store = ReferenceStore(tmp_path / "refs.sqlite")
    phases = store.phases(["Ba", "Ti", "O"])
    formulas = {p.composition.reduced_formula for p in phases if p.source == SOURCE}
    assert {"BaTiO3", "Ba2TiO4", "TiO2", "BaO"} <= formulas
    elements = {p.formula for p in phases if p.source == ELEMENT_SOURCE}
    assert elements == {"Ba", "Ti", "O"}
    assert store.known_composition("Ba2TiO4").meta["mp_id"] == "mp-3397"
    # BaTiO3's energy comes from the matbench file, which has no ids (the roost file lacks it)
    assert store.known_composition("BaTiO3").meta == {"mp_id": None, "origin": "matbench"}
    store.hold_out(["Ba2TiO4"], reason="test")
    assert "Ba2TiO4" not in {p.composition.reduced_formula for p in store.phases(["Ba", "Ti",
                                                                                    "O"])}
    assert store.known_composition("Ba2TiO4") is None
    off = ReferenceStore(tmp_path / "other.sqlite", shipped=False)
    assert off.phases(["Ba", "Ti", "O"]) == []


def test_mp2020_hull_of_one_system_is_fast_and_puts_ground_states_on_it(tmp_path) -> None:
    store = ReferenceStore(tmp_path / "refs.sqlite")
    for system in (["Ba", "Ti", "O"], ["Li", "Fe", "P", "O"]):
        started = time.perf_counter()
        refs = [(p.composition, p.energy_ev_per_atom) for p in
                store.phases(system, energy_kind="formation")]
        result = stability_from_formation_energies(
            "BaTiO3" if "Ba" in system else "LiFePO4",
            dict((c.reduced_formula, e) for c, e in refs)["BaTiO3" if "Ba" in system else
                                                          "LiFePO4"], refs)
        assert time.perf_counter() - started < 1.0, system
        assert result.e_above_hull_ev_per_atom == pytest.approx(0.0, abs=1e-6)


def test_auto_scale_is_mp2020_unless_the_user_supplied_structures(tmp_path) -> None:
    store = ReferenceStore(tmp_path / "refs.sqlite")
    store.ensure_starter_library()
    assert choose_scale(store, ["Ba", "Ti", "O"], "auto") == "mp2020"
    nacl = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    store.add([ReferencePhase(source="cif:mine", source_id="NaCl.cif", formula="NaCl",
                              structure=nacl.as_dict())])
    assert choose_scale(store, ["Na", "Cl"], "auto") == "mlip"
    assert choose_scale(store, ["Ba", "Ti", "O"], "auto") == "mp2020"


def _perovskite(a: float = 4.0) -> Structure:
    return Structure(Lattice.cubic(a), ["Ba", "Ti", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def test_novelty_labels_say_what_they_were_checked_against(tmp_path) -> None:
    store = ReferenceStore(tmp_path / "refs.sqlite")
    store.ensure_starter_library()
    index = NoveltyIndex(store, elements=["Ba", "Ti", "O"])
    # the starter library holds cubic perovskite BaTiO3: a known phase
    label = novelty_label(index.assess(_perovskite(4.01)))
    assert label.startswith("known phase (matches starter:")
    # Ba2TiO4 as a rocksalt-like decoration: MP lists the composition, the structure differs
    odd = Structure(Lattice.cubic(6.0), ["Ba", "Ba", "Ti", "O", "O", "O", "O"],
                    [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.25, 0.25, 0.25],
                     [0.75, 0.75, 0.25], [0.75, 0.25, 0.75]])
    label = novelty_label(index.assess(odd))
    assert label.startswith("known composition (mp-3397 (Materials Project)); structure not "
                            "among the 0 local structure reference(s) of Ba2TiO4 (not checked "
                            "against MP structures)")
    # a composition MP does not list
    new = Structure(Lattice.cubic(7.0), ["Ba"] * 5 + ["Ti"] * 3 + ["O"] * 2,
                    [[i / 10, i / 10, i / 10] for i in range(10)])
    assert mp_compositions().get(new.composition.reduced_formula) is None
    label = novelty_label(index.assess(new))
    assert label.startswith("new composition (not among the ")
    assert f"{len(mp_compositions()):,}"[:3] in label


def test_online_structure_check_is_used_when_given(tmp_path) -> None:
    store = ReferenceStore(tmp_path / "refs.sqlite")
    asked = []

    def mp_structures(formula: str) -> list[tuple[str, Structure]]:
        asked.append(formula)
        return [("mp-2998", _perovskite(4.03))] if formula == "BaTiO3" else []

    index = NoveltyIndex(store, elements=["Ba", "Ti", "O"], mp_structures=mp_structures)
    assert novelty_label(index.assess(_perovskite(3.98))) == \
        "known phase (matches mp-2998 (Materials Project structure))"
    hexagonal = Structure(Lattice.hexagonal(5.7, 14.0), ["Ba", "Ti", "O", "O", "O"],
                          [[0, 0, 0.25], [0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0.5, 0.5, 0.1]])
    label = novelty_label(index.assess(hexagonal))
    assert "not among the 1 Materials Project structures of BaTiO3" in label
    assert asked == ["BaTiO3", "BaTiO3"]


def test_pack_rebuild_reproduces_rows(shared_data) -> None:
    """The shipped values equal the lowest legacy value per formula plus the MP2020 shift,
    recomputed here from the shared matbench file for a sample of formulas."""
    import pandas as pd

    from matloop.materials.energy_scale import legacy_mp_shift_ev_per_atom
    from matloop.materials.mp_pack import chemsys_of_formula
    from matloop.materials.references import (
        lowest_elemental_energies,
        read_computed_entries_json,
    )

    pack = mp_compositions()
    df = pd.read_csv(shared_data / "hull/matbench_mp_e_form_compositions.csv.gz",
                     keep_default_na=False)
    mu = lowest_elemental_energies(read_computed_entries_json(
        shared_data / "hull/mp_elemental_reference_entries_2023-02-07.json.gz"))
    df["system"] = df["formula"].map(chemsys_of_formula)
    sample = [f for f in df["formula"].sample(400, random_state=0)
              if len(Composition(f)) > 1]
    checked = 0
    for formula in sample:
        reduced = Composition(formula).reduced_formula
        row = pack.get(reduced)
        if row is None or row.origin != "matbench":
            continue
        system = chemsys_of_formula(reduced)
        same = df[df["system"] == system]
        lowest = min(float(t) for f, t in zip(same["formula"], same["target"], strict=True)
                     if Composition(f).reduced_formula == reduced)
        expected = lowest + legacy_mp_shift_ev_per_atom(reduced, mu)
        assert row.formation_energy_ev_per_atom == pytest.approx(expected, abs=6e-5), reduced
        checked += 1
        if checked >= 25:
            break
    assert checked >= 20


def test_label_file_compositions_are_known(shared_data) -> None:
    """At least 99% of 500 random compositions of the MP e_above_hull labels are known to the
    shipped set (the rest are MP entries newer than both energy exports)."""
    import pandas as pd

    labels = pd.read_csv(shared_data / "hull/mp_e_above_hull_compositions_crabnet.csv.gz",
                         keep_default_na=False).sample(500, random_state=1)
    pack = mp_compositions()
    known = sum(pack.get(Composition(f).reduced_formula) is not None or
                len(Composition(f)) == 1 for f in labels["formula"])
    assert known / 500 >= 0.99, known


def test_shipped_metadata_names_its_inputs() -> None:
    meta = json.loads(resources.files("matloop.data").joinpath("mp_references.json").read_text())
    assert meta["build"].startswith("python -m matloop.materials.mp_pack")
    assert set(meta["inputs"]) == {"matbench", "roost", "elements"}

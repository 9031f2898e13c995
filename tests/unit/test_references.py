from __future__ import annotations

import json

import pytest

from matloop.errors import ReferenceDataError
from matloop.materials.references import (
    ReferenceStore,
    import_references,
    starter_phases,
    sub_chemsys,
)
from tests.conftest import DATA


def test_sub_chemsys_enumerates_every_subsystem() -> None:
    assert sub_chemsys(["O", "Li", "Fe"]) == [
        "Fe", "Li", "O", "Fe-Li", "Fe-O", "Li-O", "Fe-Li-O"]


def test_import_csv_and_query_by_chemical_system(tmp_path) -> None:
    csv = tmp_path / "refs.csv"
    csv.write_text("task_id,composition,formation_energy_per_atom\n"
                   "mp-22862,NaCl,-2.105\nmp-1,Na2O,-1.38\nmp-2,Cl2O,0.3\nmp-3,KCl,-2.2\n")
    store = ReferenceStore(tmp_path / "refs.sqlite", shipped=False)
    assert import_references(store, csv) == 4
    got = {p.composition.reduced_formula for p in store.phases(["Na", "Cl"])}
    assert got == {"NaCl"}
    got = {p.composition.reduced_formula for p in store.phases(["Na", "Cl", "O"])}
    assert got == {"NaCl", "Na2O", "Cl2O"}
    # Re-importing the same file replaces rows instead of duplicating them.
    import_references(store, csv)
    assert store.count() == 4
    (row,) = [r for r in store.status() if r["source"] == "file:refs.csv"]
    assert row["energy_kind"] == "formation" and row["energy_scale"] == "mp2020"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param("name,value\nNaCl,1\n", "needs a formula column", id="missing-columns"),
        pytest.param("composition,formation_energy_per_atom\nNaCl,abc\n", "line 2",
                     id="bad-number"),
        pytest.param("composition,formation_energy_per_atom\nXyz9,-1\n", "line 2",
                     id="bad-formula"),
    ],
)
def test_bad_csv_names_the_problem(tmp_path, content: str, fragment: str) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    with pytest.raises(ReferenceDataError, match=fragment):
        import_references(ReferenceStore(tmp_path / "s.sqlite", shipped=False), csv)


def test_import_computed_entries_and_cifs(tmp_path) -> None:
    from pymatgen.entries.computed_entries import ComputedEntry

    entries = {"Na": ComputedEntry("Na", -1.3, entry_id="mp-127").as_dict(),
               "Cl": ComputedEntry("Cl2", -3.6, entry_id="mp-22848").as_dict()}
    path = tmp_path / "elements.json"
    path.write_text(json.dumps(entries))
    store = ReferenceStore(tmp_path / "s.sqlite", shipped=False)
    assert import_references(store, path) == 2
    totals = {p.formula: p.energy_ev_per_atom for p in store.phases(["Na", "Cl"],
                                                                     energy_kind="total")}
    assert totals == {"Na1": pytest.approx(-1.3), "Cl2": pytest.approx(-1.8)}
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "NaCl.cif").write_text((DATA / "NaCl_rocksalt.cif").read_text())
    assert import_references(store, folder) == 1
    (phase,) = store.phases(["Na", "Cl"], with_structure=True)
    assert phase.get_structure().composition.reduced_formula == "NaCl"


def test_invalid_cif_in_folder_is_named(tmp_path) -> None:
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "broken.cif").write_text((DATA / "garbage.cif").read_text())
    with pytest.raises(ReferenceDataError, match="broken.cif"):
        import_references(ReferenceStore(tmp_path / "s.sqlite", shipped=False), folder)


def test_starter_library_is_seeded_once(tmp_path) -> None:
    store = ReferenceStore(tmp_path / "s.sqlite", shipped=False)
    n = store.ensure_starter_library()
    assert n == len(starter_phases()) and store.count() == n
    store.ensure_starter_library()
    assert store.count() == n


def test_held_out_formulas_leave_the_store_and_stay_out(tmp_path) -> None:
    csv = tmp_path / "refs.csv"
    csv.write_text("task_id,composition,formation_energy_per_atom\n"
                   "mp-22862,NaCl,-2.105\nmp-1,Na2O,-1.38\n")
    store = ReferenceStore(tmp_path / "refs.sqlite", shipped=False)
    store.ensure_starter_library()
    import_references(store, csv)
    # Every phase of the formula goes: the MP energy and the starter-library structure.
    assert store.hold_out(["Na2Cl2"], reason="rediscovery target") == 2
    assert store.held_out() == {"NaCl"}
    assert {p.composition.reduced_formula for p in store.phases(["Na", "Cl", "O"])} == {
        "Na", "Na2O", "Cl2", "O2"}
    # Re-importing and re-checking the starter library do not bring it back.
    import_references(store, csv)
    store.ensure_starter_library()
    assert "NaCl" not in {p.composition.reduced_formula for p in store.phases(["Na", "Cl"])}
    # The hold-out lives in the file: a second connection sees it.
    assert ReferenceStore(tmp_path / "refs.sqlite", shipped=False).held_out() == {"NaCl"}


# --- legacy MP formation energies -------------------------------------------------------------
# Values by hand from pymatgen's MPCompatibility.yaml (legacy) and MP2020Compatibility.yaml.
F2_DFT = -1.9114789675          # MP2020 elemental F2 entry (2023-02-07), eV/atom
F2_LEGACY_FIT = -1.42055013381  # legacy fitted F2 energy, eV/atom


@pytest.mark.parametrize(
    ("formula", "shift"),
    [
        # no legacy iodide correction; MP2020 I: -0.379 eV per I
        pytest.param("LiI", -0.379 / 2, id="iodide"),
        # oxide -0.70229 -> -0.687 per O; Fe U correction -2.733 -> -2.256 per Fe
        pytest.param("Fe2O3", ((-0.687 * 3 - 2.256 * 2) - (-0.70229 * 3 - 2.733 * 2)) / 5,
                     id="Fe-oxide"),
        # legacy sulfide -0.66346 -> MP2020 S -0.503 per S
        pytest.param("ZnS", (-0.503 + 0.66346) / 2, id="sulfide"),
        # MP2020 F -0.462 per F; the legacy scheme used a fitted F2 energy instead
        pytest.param("LiF", -0.462 / 2 - 0.5 * (F2_DFT - F2_LEGACY_FIT), id="fluoride"),
    ],
)
def test_legacy_mp_shift_matches_the_two_correction_schemes(formula: str, shift: float) -> None:
    from matloop.materials.energy_scale import legacy_mp_shift_ev_per_atom

    assert legacy_mp_shift_ev_per_atom(formula, {"F": F2_DFT}) == pytest.approx(shift, abs=2e-4)


def test_legacy_shift_needs_the_gas_reference() -> None:
    from matloop.materials.energy_scale import legacy_mp_shift_ev_per_atom

    with pytest.raises(ReferenceDataError, match="elemental Cl"):
        legacy_mp_shift_ev_per_atom("NaCl", {})


def test_legacy_csv_is_converted_to_mp2020_on_import(tmp_path) -> None:
    from pymatgen.entries.computed_entries import ComputedEntry

    store = ReferenceStore(tmp_path / "s.sqlite", shipped=False)
    csv = tmp_path / "legacy.csv"
    csv.write_text("formula,target\nLiI,-1.2357\nLiF,-3.1809\n")
    # LiF needs the DFT F2 energy: without it the import names what to import first.
    with pytest.raises(ReferenceDataError, match="elemental F"):
        import_references(store, csv, scale="mp-legacy")
    entries = tmp_path / "elements.json"
    entries.write_text(json.dumps([ComputedEntry("F2", 2 * F2_DFT, entry_id="mp-561203")
                                   .as_dict()]))
    import_references(store, entries)
    assert import_references(store, csv, scale="mp-legacy") == 2
    got = {p.composition.reduced_formula: p for p in store.phases(["Li", "I", "F"],
                                                                  energy_kind="formation")}
    assert got["LiI"].energy_ev_per_atom == pytest.approx(-1.2357 - 0.1895, abs=1e-4)
    assert got["LiI"].energy_scale == "mp2020"
    assert got["LiI"].meta["converted_from"] == "mp-legacy"
    assert got["LiI"].meta["value_as_given_ev_per_atom"] == pytest.approx(-1.2357)
    assert got["LiF"].energy_ev_per_atom == pytest.approx(-3.1809 + 0.01446, abs=2e-4)
    with pytest.raises(ReferenceDataError, match="unknown formation-energy scale"):
        import_references(store, csv, scale="dft")

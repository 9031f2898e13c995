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
    store = ReferenceStore(tmp_path / "refs.sqlite")
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
        pytest.param("composition,formation_energy_per_atom\nNaCl,abc\n", "line 2", id="bad-number"),
        pytest.param("composition,formation_energy_per_atom\nXyz9,-1\n", "line 2", id="bad-formula"),
    ],
)
def test_bad_csv_names_the_problem(tmp_path, content: str, fragment: str) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    with pytest.raises(ReferenceDataError, match=fragment):
        import_references(ReferenceStore(tmp_path / "s.sqlite"), csv)


def test_import_computed_entries_and_cifs(tmp_path) -> None:
    from pymatgen.entries.computed_entries import ComputedEntry

    entries = {"Na": ComputedEntry("Na", -1.3, entry_id="mp-127").as_dict(),
               "Cl": ComputedEntry("Cl2", -3.6, entry_id="mp-22848").as_dict()}
    path = tmp_path / "elements.json"
    path.write_text(json.dumps(entries))
    store = ReferenceStore(tmp_path / "s.sqlite")
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
        import_references(ReferenceStore(tmp_path / "s.sqlite"), folder)


def test_starter_library_is_seeded_once(tmp_path) -> None:
    store = ReferenceStore(tmp_path / "s.sqlite")
    n = store.ensure_starter_library()
    assert n == len(starter_phases()) and store.count() == n
    store.ensure_starter_library()
    assert store.count() == n


def test_held_out_formulas_leave_the_store_and_stay_out(tmp_path) -> None:
    csv = tmp_path / "refs.csv"
    csv.write_text("task_id,composition,formation_energy_per_atom\n"
                   "mp-22862,NaCl,-2.105\nmp-1,Na2O,-1.38\n")
    store = ReferenceStore(tmp_path / "refs.sqlite")
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
    assert ReferenceStore(tmp_path / "refs.sqlite").held_out() == {"NaCl"}

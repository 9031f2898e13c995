"""The Materials Project client, against a fake MPRester that returns mp-api's entry objects."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from matloop.errors import ReferenceDataError
from matloop.materials.mp_client import fetch_chemsys
from matloop.materials.references import ReferenceStore


def _entry(species, coords, a, energy_per_atom, mp_id):
    s = Structure(Lattice.cubic(a), species, coords)
    e = ComputedStructureEntry(s, energy_per_atom * len(s), entry_id=f"{mp_id}-GGA",
                               data={"material_id": mp_id})
    return e


class FakeRester:
    """Stands in for mp_api.client.MPRester: same context manager and method signature."""

    calls: list = []

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def get_entries_in_chemsys(self, elements, compatible_only=True, additional_criteria=None):
        FakeRester.calls.append((sorted(elements), compatible_only, additional_criteria))
        return [
            _entry(["Na"], [[0, 0, 0]], 4.2, -1.31, "mp-10172"),
            _entry(["Cl", "Cl"], [[0, 0, 0], [0.2, 0, 0]], 6.0, -1.85, "mp-22848"),
            _entry(["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]], 3.5, -3.69, "mp-22862"),
        ]


def test_fetch_stores_formation_and_total_energies(tmp_path) -> None:
    store = ReferenceStore(tmp_path / "s.sqlite", shipped=False)
    n = fetch_chemsys(store, "Na-Cl", api_key="secret", rester_factory=FakeRester)
    assert n == 6  # every entry as a total energy and as a formation energy
    assert FakeRester.calls[-1][0] == ["Cl", "Na"]
    assert FakeRester.calls[-1][2] == {"thermo_types": ["GGA_GGA+U"]}
    (nacl,) = [p for p in store.phases(["Na", "Cl"], energy_kind="formation")
               if p.composition.reduced_formula == "NaCl"]
    assert nacl.energy_ev_per_atom == pytest.approx(-3.69 - (-1.31 - 1.85) / 2)
    assert nacl.meta["material_id"] == "mp-22862" and nacl.structure is not None


def test_fetch_without_key_or_with_failures_explains(tmp_path) -> None:
    store = ReferenceStore(tmp_path / "s.sqlite", shipped=False)
    with pytest.raises(ReferenceDataError, match="API key"):
        fetch_chemsys(store, "Na-Cl", api_key=None, rester_factory=FakeRester)

    class Down(FakeRester):
        def get_entries_in_chemsys(self, *a, **k):
            raise ConnectionError("Max retries exceeded")

    with pytest.raises(ReferenceDataError, match="Max retries") as info:
        fetch_chemsys(store, "Na-Cl", api_key="k", rester_factory=Down)
    assert "secret" not in str(info.value)


class SummaryRester(FakeRester):
    """Stands in for MPRester with ``materials.summary.search`` (recorded-style documents)."""

    searches: list = []

    class _Summary:
        def search(self, formula, fields):
            SummaryRester.searches.append((formula, tuple(fields)))
            if formula != "NaCl":
                return []
            s = Structure(Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
            rocksalt = Structure.from_spacegroup(225, Lattice.cubic(5.69), ["Na", "Cl"],
                                                 [[0, 0, 0], [0.5, 0.5, 0.5]])
            return [{"material_id": "mp-22862", "structure": rocksalt.as_dict()},
                    {"material_id": "mp-22851", "structure": s.as_dict()}]

    @property
    def materials(self):
        return type("Materials", (), {"summary": SummaryRester._Summary()})()


def test_mp_structure_index_fetches_once_and_matches(tmp_path) -> None:
    from matloop.generation.matching import NoveltyIndex, novelty_label
    from matloop.materials.mp_client import MPStructureIndex

    index = MPStructureIndex(tmp_path / "mp.sqlite", api_key="secret",
                             rester_factory=SummaryRester)
    got = index("NaCl")
    assert [m for m, _ in got] == ["mp-22862", "mp-22851"]
    assert [m for m, _ in index("NaCl")] == ["mp-22862", "mp-22851"]
    assert SummaryRester.searches == [("NaCl", ("material_id", "structure"))]
    # a fresh process reads the cache file, not the network
    again = MPStructureIndex(tmp_path / "mp.sqlite", api_key="secret",
                             rester_factory=SummaryRester)
    assert len(again("NaCl")) == 2 and len(SummaryRester.searches) == 1
    store = ReferenceStore(tmp_path / "s.sqlite")
    novelty = NoveltyIndex(store, elements=["Na", "Cl"], mp_structures=index)
    rocksalt = Structure.from_spacegroup(225, Lattice.cubic(5.6), ["Na", "Cl"],
                                         [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert novelty_label(novelty.assess(rocksalt)) == \
        "known phase (matches mp-22862 (Materials Project structure))"


def test_mp_structure_failure_is_reported_in_the_label(tmp_path) -> None:
    from matloop.generation.matching import NoveltyIndex, novelty_label
    from matloop.materials.mp_client import MPStructureIndex

    def down(api_key):
        raise ConnectionError("no route to host")

    index = MPStructureIndex(tmp_path / "mp.sqlite", api_key="secret", rester_factory=down)
    store = ReferenceStore(tmp_path / "s.sqlite")
    novelty = NoveltyIndex(store, elements=["Na", "Cl"], mp_structures=index)
    wurtzite = Structure.from_spacegroup(186, Lattice.hexagonal(4.1, 6.7), ["Na", "Cl"],
                                         [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.38]])
    label = novelty_label(novelty.assess(wurtzite))
    assert label.startswith("known composition (")
    assert "MP structure check failed: Materials Project structure lookup for NaCl failed: " \
           "ConnectionError" in label

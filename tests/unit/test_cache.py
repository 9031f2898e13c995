from __future__ import annotations

from matloop.materials.cache import EvaluationCache, evaluation_key
from matloop.materials.structures import read_structure
from tests.conftest import DATA


def test_results_survive_reopening(tmp_path) -> None:
    s = read_structure(DATA / "NaCl_rocksalt.cif")
    path = tmp_path / "cache.sqlite"
    settings = {"fmax_ev_per_angstrom": 0.05, "steps": 10, "relax_cell": True}
    key = evaluation_key(s, kind="relax", mlip="chgnet", mlip_version="0.4.2", settings=settings)
    cache = EvaluationCache(path)
    assert cache.get(key) is None
    cache.put(key, kind="relax", structure=s, mlip="chgnet", mlip_version="0.4.2",
              settings=settings, result={"energy_per_atom_ev": -3.67})
    # No close(): a killed process never gets to close; the row must already be committed.
    reopened = EvaluationCache(path)
    assert reopened.get(key) == {"energy_per_atom_ev": -3.67}
    assert reopened.count("relax") == 1


def test_key_depends_on_structure_backend_and_settings() -> None:
    s = read_structure(DATA / "NaCl_rocksalt.cif")
    base = dict(kind="relax", mlip="chgnet", mlip_version="0.4.2", settings={"fmax": 0.05})
    k = evaluation_key(s, **base)
    assert k == evaluation_key(s.copy(), **base)
    assert k != evaluation_key(s, **{**base, "mlip": "sevenn"})
    assert k != evaluation_key(s, **{**base, "mlip_version": "0.5.0"})
    assert k != evaluation_key(s, **{**base, "settings": {"fmax": 0.01}})
    assert k != evaluation_key(s, **{**base, "kind": "single_point"})
    other = s.copy()
    other.scale_lattice(s.volume * 1.1)
    assert k != evaluation_key(other, **base)

"""Batch execution: a real Dask LocalCluster, and a killed run that resumes from the cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from pymatgen.core import Lattice, Structure

from matloop.materials.cache import EvaluationCache
from matloop.materials.evaluation import Evaluator
from matloop.materials.mlip import RelaxResult


def _cells() -> list[Structure]:
    out = []
    for a, (x, y) in zip([5.5, 5.8, 6.4, 4.3], [("Na", "Cl"), ("Na", "Cl"), ("K", "Cl"),
                                                  ("Mg", "O")], strict=True):
        out.append(Structure.from_spacegroup(225, Lattice.cubic(a), [x, y],
                                             [[0, 0, 0], [0.5, 0.5, 0.5]]))
    return out


@pytest.mark.slow
def test_dask_local_cluster_matches_in_process(isolated_data_dir) -> None:
    from distributed import Client, LocalCluster

    cells = _cells()
    local = Evaluator("chgnet", cache=None).relax_many(cells, steps=150)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        cache = EvaluationCache(isolated_data_dir / "c.sqlite")
        ev = Evaluator("chgnet", cache=cache)
        seen = []
        remote = ev.relax_many(cells, steps=150, client=client,
                               progress=lambda done, total: seen.append((done, total)))
    assert all(isinstance(r, RelaxResult) for r in remote)
    for a, b in zip(local, remote, strict=True):
        assert b.energy_per_atom_ev == pytest.approx(a.energy_per_atom_ev, abs=2e-4)
        assert b.formula == a.formula
    assert cache.count("relax") == len(cells)  # stored on arrival by the client
    assert seen[-1] == (len(cells), len(cells))


@pytest.mark.slow
def test_killed_batch_keeps_finished_work(isolated_data_dir, tmp_path) -> None:
    """SIGKILL a batch after its first result is stored; a rerun computes only the rest."""
    cache_path = isolated_data_dir / "kill.sqlite"
    script = tmp_path / "batch.py"
    script.write_text(textwrap.dedent(f"""
        from pymatgen.core import Lattice, Structure
        from matloop.materials.cache import EvaluationCache
        from matloop.materials.evaluation import Evaluator
        cells = [Structure.from_spacegroup(225, Lattice.cubic(5.3 + 0.1 * i), ["Na", "Cl"],
                                           [[0, 0, 0], [0.5, 0.5, 0.5]]) * (2, 1, 1)
                 for i in range(12)]
        Evaluator("chgnet", cache=EvaluationCache({str(cache_path)!r})).relax_many(
            cells, steps=400, fmax=0.005)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ})
    deadline = time.time() + 240
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        if cache_path.exists():
            stored = EvaluationCache(cache_path).count("relax")
            if stored >= 1:
                break
        time.sleep(0.5)
    assert proc.poll() is None, "the batch finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = EvaluationCache(cache_path).count("relax")
    assert 1 <= kept < 12
    cells = [Structure.from_spacegroup(225, Lattice.cubic(5.3 + 0.1 * i), ["Na", "Cl"],
                                       [[0, 0, 0], [0.5, 0.5, 0.5]]) * (2, 1, 1)
             for i in range(3)]
    ev = Evaluator("chgnet", cache=EvaluationCache(cache_path))
    ev.relax_many(cells[:kept] if kept <= 3 else cells, steps=400, fmax=0.005)
    assert ev.computed == 0 and ev.cache_hits == min(kept, 3)

"""Benchmark 4: relaxation throughput, sequential in-process against Dask process parallelism.

32 perturbed perovskite supercells (10 and 20 atoms) from Perov-5 are relaxed twice in one run
with the same settings and no cache: once in this process (torch using all cores), once on a
Dask LocalCluster (one worker per core, one torch thread each). Prints structures per minute,
the ratio, and peak resident memory of the process tree.

    .venv/bin/python -m evals.throughput [--n 32] [--mlip chgnet]
"""

from __future__ import annotations

import argparse
import gzip
import io
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Structure

from evals.common import DEFAULT_DATA, PeakMemory, write_json
from matloop.materials.evaluation import Evaluator
from matloop.materials.mlip import RelaxResult, get_mlip


def load_structures(data_dir: Path, n: int, seed: int) -> list[Structure]:
    """n perovskite supercells of 10 or 20 atoms, rattled by 0.05 Å."""
    with gzip.open(data_dir / "crystals" / "perov_5_test.csv.gz", "rb") as f:
        frame = pd.read_csv(io.BytesIO(f.read()), keep_default_na=False)
    rows = frame.sample(n=n, random_state=seed)
    rng = np.random.default_rng(seed)
    out = []
    for i, cif in enumerate(rows["cif"]):
        s = Structure.from_str(cif, fmt="cif")
        s = s * ((2, 1, 1) if i % 2 == 0 else (2, 2, 1))
        s.perturb(0.05, min_distance=0.0)
        s.translate_sites(list(range(len(s))), rng.normal(0, 1e-3, 3), frac_coords=False)
        out.append(s)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--mlip", default="chgnet")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    structures = load_structures(args.data_dir, args.n, args.seed)
    atoms = [len(s) for s in structures]
    get_mlip(args.mlip)  # load the model outside the timed region
    ev = Evaluator(args.mlip, cache=None)

    with PeakMemory() as mem_seq:
        t0 = time.perf_counter()
        seq = ev.relax_many(structures, steps=args.steps)
        t_seq = time.perf_counter() - t0

    from distributed import Client, LocalCluster

    with PeakMemory() as mem_par:
        t0 = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            # Warm each worker (model load) so the timed batch measures relaxations.
            client.run(lambda name=args.mlip: bool(get_mlip(name)))
            t_start = time.perf_counter() - t0
            t1 = time.perf_counter()
            par = ev.relax_many(structures, steps=args.steps, client=client)
            t_par = time.perf_counter() - t1

    ok_seq = [r for r in seq if isinstance(r, RelaxResult)]
    ok_par = [r for r in par if isinstance(r, RelaxResult)]
    diffs = [abs(a.energy_per_atom_ev - b.energy_per_atom_ev)
             for a, b in zip(seq, par, strict=True)
             if isinstance(a, RelaxResult) and isinstance(b, RelaxResult)]
    result = {
        "mlip": args.mlip,
        "n_structures": len(structures),
        "atoms_per_structure": {"min": min(atoms), "max": max(atoms),
                                "median": statistics.median(atoms)},
        "settings": {"steps": args.steps, "fmax_ev_per_angstrom": ev.relax_settings()[
            "fmax_ev_per_angstrom"], "workers": args.workers, "threads_per_worker": 1},
        "sequential": {"wall_s": t_seq, "structures_per_min": 60 * len(structures) / t_seq,
                       "peak_rss_mib": mem_seq.peak_mib,
                       "converged": sum(r.status == "converged" for r in ok_seq)},
        "dask_parallel": {"wall_s": t_par, "structures_per_min": 60 * len(structures) / t_par,
                          "cluster_start_and_model_load_s": t_start,
                          "peak_rss_mib": mem_par.peak_mib,
                          "converged": sum(r.status == "converged" for r in ok_par)},
        "speedup": t_seq / t_par,
        "speedup_including_cluster_start": t_seq / (t_par + t_start),
        "median_abs_energy_diff_ev_per_atom": statistics.median(diffs) if diffs else None,
        "median_steps": statistics.median(r.steps for r in ok_seq),
    }
    path = write_json("throughput", result, args.out)
    print(f"{len(structures)} structures ({min(atoms)}-{max(atoms)} atoms), {args.mlip}, "
          f"steps<={args.steps}")
    print(f"  sequential : {result['sequential']['structures_per_min']:.1f} structures/min "
          f"({t_seq:.0f} s), peak RSS {mem_seq.peak_mib:.0f} MiB")
    print(f"  dask x{args.workers}    : {result['dask_parallel']['structures_per_min']:.1f} "
          f"structures/min ({t_par:.0f} s + {t_start:.0f} s start), peak RSS "
          f"{mem_par.peak_mib:.0f} MiB")
    print(f"  speedup    : {result['speedup']:.2f}x "
          f"({result['speedup_including_cluster_start']:.2f}x with cluster start)")
    print(f"  same answers: median |dE| = "
          f"{result['median_abs_energy_diff_ev_per_atom']:.2e} eV/atom")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()

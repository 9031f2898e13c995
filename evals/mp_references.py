"""The shipped Materials Project reference set: coverage, verdicts, costs.

What it measures (``python -m evals.mp_references``, results in
``evals/results/mp_references.json``):

* coverage: of 500 random compositions of the MP e_above_hull label file
  (``hull/mp_e_above_hull_compositions_crabnet.csv.gz``), how many the shipped set knows (the
  label file comes from a later MP version than the two energy exports, so a few are missing;
  they are listed);
* verdicts: for the labelled compositions of the systems :mod:`evals.hull_labels` selects (at
  least 1,000), the energy above the hull computed from the *shipped* energies (MP2020 scale,
  lowest per formula) against the label: stable/unstable agreement at 0 and 0.1 eV/atom;
* costs: time to load the shipped set, time to build one chemical system's hull through the
  reference store (median and 90th percentile over ternary and quaternary systems), and the
  bytes the package data adds to a wheel.

The label file and the energies come from different MP database versions and correction
schemes; the differences that remain are explained in ``evals.hull_labels``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from evals.common import DEFAULT_DATA, write_json
from evals.hull_labels import (
    LABEL_FILE,
    _within,
    evaluate,
    load_labels,
    metrics,
    select_systems,
)

#: Package data files added for the shipped references and literature.
SHIPPED_FILES = ("mp_compositions.csv.gz", "mp_references.json", "synthesis_recipes.jsonl.gz",
                 "synthesis_recipes.json", "element_substitution_similarity.json")


def coverage(data: Path, n: int, seed: int) -> dict[str, Any]:
    """How many of ``n`` random labelled compositions the shipped set knows."""
    from matloop.materials.mp_pack import mp_compositions

    labels = pd.read_csv(data / LABEL_FILE, keep_default_na=False).sample(n, random_state=seed)
    pack = mp_compositions()
    unknown = []
    for formula, e_hull in zip(labels["formula"], labels["e_above_hull"], strict=True):
        comp = Composition(formula)
        if len(comp.elements) > 1 and pack.get(comp.reduced_formula) is None:
            unknown.append({"formula": comp.reduced_formula,
                            "label_e_above_hull_ev_per_atom": float(e_hull)})
    return {"n": n, "seed": seed, "known": n - len(unknown),
            "known_fraction": (n - len(unknown)) / n, "unknown": unknown}


def verdicts(data: Path, n_systems: int, seed: int) -> dict[str, Any]:
    """Stable/unstable verdicts from the shipped energies against the MP labels."""
    from matloop.materials.mp_pack import chemsys_of_formula, mp_compositions

    labels_all = load_labels(data)
    systems = select_systems(labels_all, n_systems, seed, min_compositions=1000)
    labels = labels_all[_within(labels_all["chemsys"], systems)].copy()
    labels["rf"] = [Composition(f).reduced_formula for f in labels["formula"]]
    pack = mp_compositions()
    allowed = {"-".join(sorted(c)) for s in systems for c in _subsets(s.split("-"))}
    rows = [(r.formula, chemsys_of_formula(r.formula), r.formation_energy_ev_per_atom)
            for r in pack.in_systems(allowed)]
    refs = pd.DataFrame(rows, columns=["rf", "chemsys", "e"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate(labels, refs)
    ok = ~result["e_hull"].isna().to_numpy()
    label = labels["e_above_hull"].to_numpy(dtype=float)
    computed = result["e_hull"].to_numpy(dtype=float)
    out = metrics(label[ok], computed[ok])
    out["n_labelled"] = int(len(labels))
    out["n_skipped_formula_not_shipped"] = int((~ok).sum())
    out["systems"] = systems
    worst = np.argsort(-np.abs(np.where(ok, computed - label, 0.0)))[:10]
    out["worst"] = [{"formula": labels["rf"].iloc[i], "label": float(label[i]),
                     "computed": float(computed[i])} for i in worst if ok[i]]
    # The labels predate MP2020: put the shipped energies back on the legacy scheme (undo the
    # build-time shift) to see how many disagreements the correction scheme alone explains.
    from matloop.materials.energy_scale import legacy_mp_shift_ev_per_atom

    mu = {el: ref["energy_per_atom_ev"] for el, ref in pack.elements.items()}
    legacy = refs.copy()
    legacy["e"] = [e - (legacy_mp_shift_ev_per_atom(f, mu) if "-" in c else 0.0)
                   for f, c, e in legacy[["rf", "chemsys", "e"]].itertuples(index=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy_result = evaluate(labels, legacy)
    legacy_computed = legacy_result["e_hull"].to_numpy(dtype=float)
    legacy_metrics = metrics(label[ok], legacy_computed[ok])
    out["on_the_labels_legacy_scheme"] = {
        "description": "the same shipped energies with the legacy-to-MP2020 shift undone, i.e. "
                       "on the correction scheme the labels were computed with",
        "stability_at_0": legacy_metrics["stability_at_0"],
        "stability_at_0.1": legacy_metrics["stability_at_0.1"],
        "mae_ev_per_atom": legacy_metrics["mae_ev_per_atom"],
        "verdicts_changed_by_the_scheme": int(np.sum(
            (legacy_computed[ok] <= 1e-6) != (computed[ok] <= 1e-6))),
    }
    return out


def _subsets(elements: list[str]) -> list[tuple[str, ...]]:
    import itertools

    return [c for r in range(1, len(elements) + 1) for c in itertools.combinations(elements, r)]


def costs(n_systems: int, seed: int) -> dict[str, Any]:
    """Load time, per-system hull time through the reference store, wheel bytes."""
    import subprocess
    import sys
    import tempfile

    from matloop.materials.hull import stability_from_formation_energies
    from matloop.materials.mp_pack import mp_compositions
    from matloop.materials.references import ReferenceStore

    code = ("import time; t=time.perf_counter(); "
            "from matloop.materials.mp_pack import mp_compositions; mp_compositions(); "
            "print(time.perf_counter()-t)")
    loads = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(3)]
    pack = mp_compositions()
    rng = np.random.default_rng(seed)
    ternary = sorted(s for s in pack.by_chemsys if s.count("-") == 2 and len(
        pack.by_chemsys[s]) >= 5)
    quaternary = sorted(s for s in pack.by_chemsys if s.count("-") == 3 and len(
        pack.by_chemsys[s]) >= 3)
    chosen = [ternary[i] for i in rng.choice(len(ternary), n_systems, replace=False)] + \
        [quaternary[i] for i in rng.choice(len(quaternary), n_systems, replace=False)]
    times: dict[str, list[float]] = {"ternary": [], "quaternary": []}
    sizes: dict[str, list[int]] = {"ternary": [], "quaternary": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = ReferenceStore(Path(tmp) / "refs.sqlite")
        for system in chosen:
            kind = "ternary" if system.count("-") == 2 else "quaternary"
            t0 = time.perf_counter()
            phases = store.phases(system.split("-"), energy_kind="formation")
            refs = [(p.composition, float(p.energy_ev_per_atom)) for p in phases]
            target = pack.in_systems([system])[0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stability_from_formation_energies(target.formula,
                                                  target.formation_energy_ev_per_atom, refs)
            times[kind].append(time.perf_counter() - t0)
            sizes[kind].append(len(refs))
    data = resources.files("matloop.data")
    files = {name: len(data.joinpath(name).read_bytes()) for name in SHIPPED_FILES}
    return {
        "load_seconds_median": statistics.median(loads), "load_seconds_runs": loads,
        "hull_seconds": {k: {"median": statistics.median(v), "p90": float(np.percentile(v, 90)),
                             "max": max(v), "n_systems": len(v),
                             "median_reference_phases": statistics.median(sizes[k])}
                         for k, v in times.items()},
        "package_data_bytes": files, "package_data_total_mib": sum(files.values()) / 2**20,
        "note": "the .gz files are stored as they are in the wheel (a zip does not shrink "
                "them), so the wheel grows by about the total",
    }


def run(data: Path, *, n_coverage: int = 500, n_systems: int = 30, seed: int = 0,
        ) -> dict[str, Any]:
    """All three parts."""
    from matloop.materials.mp_pack import mp_compositions

    t0 = time.perf_counter()
    return {
        "shipped_set": {"compositions": len(mp_compositions()),
                        "elements": len(mp_compositions().elements),
                        "counts": mp_compositions().meta["counts"]},
        "coverage": coverage(data, n_coverage, seed + 1),
        "verdicts": verdicts(data, n_systems, seed),
        "costs": costs(20, seed),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--systems", type=int, default=30)
    args = parser.parse_args(argv)
    if not (args.data / LABEL_FILE).exists():
        print(f"data not found under {args.data}; pass --data")
        return 2
    result = run(args.data, n_systems=args.systems, seed=args.seed)
    path = write_json("mp_references", result, args.out)
    cov, ver, cost = result["coverage"], result["verdicts"], result["costs"]
    print(f"coverage: {cov['known']}/{cov['n']} known ({cov['known_fraction']:.1%})")
    legacy = ver["on_the_labels_legacy_scheme"]
    for t in ("0", "0.1"):
        print(f"verdict agreement at {t} eV/atom: "
              f"{ver[f'stability_at_{t}']['agreement']:.1%} of {ver['n']} (MP2020 scheme), "
              f"{legacy[f'stability_at_{t}']['agreement']:.1%} on the labels' legacy scheme")
    print(f"load {cost['load_seconds_median']:.2f} s; hull per system "
          + ", ".join(f"{k} median {v['median'] * 1000:.0f} ms (p90 {v['p90'] * 1000:.0f} ms)"
                      for k, v in cost["hull_seconds"].items())
          + f"; package data {cost['package_data_total_mib']:.2f} MiB")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

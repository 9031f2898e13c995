"""Benchmarks 1 and 3: MLIP lattice constants against experiment, formation energies against MP.

1. Every starter-library compound whose lattice constants are experimental values is relaxed
   with each backend; the relaxed a, b, c are compared with experiment (mean absolute % error).
2. Formation energies of the starter compounds that appear in the MP formation-energy files
   (lowest energy per reduced formula = MP ground state, converted from the files' legacy MP
   corrections to MP2020) are computed two ways and compared with MP:
   * mp2020 scale: MLIP total energy, put on the MP2020 scale (SevenNet corrected, CHGNet as
     is), minus MP2020 elemental reference energies;
   * the same without the scale handling (CHGNet with corrections applied twice, SevenNet
     uncorrected) to show which scale each backend predicts;
   * mlip-consistent: minus the same MLIP's energies of the starter elemental ground states.

    .venv/bin/python -m evals.mlip_accuracy [--mlip chgnet sevenn]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path

from pymatgen.core import Composition

from evals.common import DEFAULT_DATA, RESULTS, mp_formation_energies, write_json
from matloop.materials.cache import EvaluationCache
from matloop.materials.energy_scale import mp2020_correction_ev, to_mp2020_energy_per_atom
from matloop.materials.evaluation import Evaluator
from matloop.materials.references import (
    build_starter_structure,
    starter_entries,
    starter_relax_cell,
)


def mp_elemental_energies(data_dir: Path) -> dict[str, float]:
    """MP2020 total energies per atom of the elemental ground states (2023-02-07 entries)."""
    with gzip.open(data_dir / "hull" / "mp_elemental_reference_entries_2023-02-07.json.gz") as f:
        raw = json.load(f)
    return {el: d["energy"] / sum(d["composition"].values()) for el, d in raw.items()}


def mean_abs(values: list[float]) -> float | None:
    return statistics.fmean(abs(v) for v in values) if values else None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mlip", nargs="+", default=["chgnet", "sevenn"])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=RESULTS / "cache" / "evaluations.sqlite")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--max-atoms", type=int, default=12,
                        help="skip starter entries with larger cells (time)")
    parser.add_argument("--all", action="store_true",
                        help="every starter entry, not only experimental lattices and elements")
    args = parser.parse_args(argv)

    entries, structures = [], []
    for entry in starter_entries():
        s = build_starter_structure(entry)
        elemental = len(Composition(entry["formula"]).elements) == 1
        wanted = args.all or entry.get("lattice_is_experimental") or (
            elemental and entry.get("ground_state"))
        if len(s) <= args.max_atoms and wanted:
            entries.append(entry)
            structures.append(s)
    mp = mp_formation_energies(args.data_dir, formulas={
        Composition(e["formula"]).reduced_formula for e in entries})
    mu_mp = mp_elemental_energies(args.data_dir)
    cache = EvaluationCache(args.cache)
    report: dict = {"backends": {}, "max_atoms": args.max_atoms,
                    "selection": "all" if args.all else
                    "experimental lattices and elemental ground states",
                    "n_starter_entries_used": len(entries),
                    "mp_reference": "lowest formation energy per formula of the matbench (MP "
                                    "2018) and roost (MP 2019) files, converted from the legacy "
                                    "MP corrections to MP2020"}
    for name in args.mlip:
        ev = Evaluator(name, cache=cache)
        t0 = time.perf_counter()
        results: list = []
        for entry, s in zip(entries, structures, strict=True):
            results.append(ev.relax(s, relax_cell=starter_relax_cell(entry)))
        wall = time.perf_counter() - t0

        lattice_rows = []
        for entry, _s, r in zip(entries, structures, results, strict=True):
            if not entry.get("lattice_is_experimental") or r.status != "converged":
                continue
            final = r.final_structure()
            errs = [100 * (b / a - 1) for a, b in zip(s.lattice.abc, final.lattice.abc,
                                                       strict=True)]
            lattice_rows.append({"formula": entry["formula"], "prototype": entry["prototype"],
                                 "experimental_abc": s.lattice.abc,
                                 "relaxed_abc": final.lattice.abc, "error_percent": errs})
        all_errs = [e for row in lattice_rows for e in row["error_percent"]]

        # Elemental energies from the same MLIP (ground-state starter entries).
        mu_mlip: dict[str, float] = {}
        for entry, r in zip(entries, results, strict=True):
            comp = Composition(entry["formula"])
            if len(comp.elements) == 1 and entry.get("ground_state") and r.status == "converged":
                el = comp.elements[0].symbol
                mu_mlip[el] = min(mu_mlip.get(el, float("inf")), r.energy_per_atom_ev)

        fe_rows = []
        for entry, _s, r in zip(entries, structures, results, strict=True):
            comp = Composition(entry["formula"])
            key = comp.reduced_formula
            if len(comp.elements) < 2 or key not in mp or not entry.get("ground_state", True):
                continue
            if r.status != "converged":
                continue
            final = r.final_structure()
            frac = comp.fractional_composition
            ref_mp = sum(frac[el] * mu_mp[el.symbol] for el in comp.elements)
            e = r.energy_per_atom_ev
            on_scale = to_mp2020_energy_per_atom(final, e, ev.energy_scale)
            n = len(final)
            # The opposite choice: correct CHGNet (twice) / leave SevenNet raw.
            other = e if ev.energy_scale == "gga_raw" else \
                e + mp2020_correction_ev(final, e * n) / n
            row = {"formula": key, "mp_ev_per_atom": mp[key],
                   "mp2020_scale": on_scale - ref_mp, "wrong_scale": other - ref_mp}
            if all(el.symbol in mu_mlip for el in comp.elements):
                row["mlip_consistent"] = e - sum(frac[el] * mu_mlip[el.symbol]
                                                 for el in comp.elements)
            fe_rows.append(row)

        def mae(key: str, rows: list[dict] = fe_rows) -> float | None:
            return mean_abs([row[key] - row["mp_ev_per_atom"] for row in rows if key in row])

        report["backends"][name] = {
            "mlip_version": ev.mlip_version,
            "energy_scale": ev.energy_scale,
            "relaxations": len(results),
            "converged": sum(r.status == "converged" for r in results),
            "not_converged": [e["formula"] for e, r in zip(entries, results, strict=True)
                              if r.status != "converged"],
            "relax_wall_s": wall,
            "lattice": {"n_compounds": len(lattice_rows),
                        "mean_abs_error_percent": mean_abs(all_errs),
                        "median_abs_error_percent": statistics.median(abs(e) for e in all_errs)
                        if all_errs else None,
                        "rows": lattice_rows},
            "formation_energy": {
                "n_compounds": len(fe_rows),
                "mae_ev_per_atom_mp2020_scale": mae("mp2020_scale"),
                "mae_ev_per_atom_wrong_scale": mae("wrong_scale"),
                "mae_ev_per_atom_mlip_consistent": mae("mlip_consistent"),
                "n_mlip_consistent": sum("mlip_consistent" in r for r in fe_rows),
                "rows": fe_rows,
            },
        }
        b = report["backends"][name]
        print(f"{name} ({ev.mlip_version}, native scale {ev.energy_scale}): "
              f"{b['converged']}/{len(results)} relaxations converged in {wall:.0f} s")
        print(f"  lattice constants, {len(lattice_rows)} compounds: mean |error| "
              f"{b['lattice']['mean_abs_error_percent']:.2f}% "
              f"(median {b['lattice']['median_abs_error_percent']:.2f}%)")
        fe = b["formation_energy"]
        print(f"  formation energy vs MP, {len(fe_rows)} compounds: MAE "
              f"{fe['mae_ev_per_atom_mp2020_scale']:.3f} eV/atom on the MP2020 scale; "
              f"{fe['mae_ev_per_atom_wrong_scale']:.3f} with the opposite scale assumption; "
              f"{fe['mae_ev_per_atom_mlip_consistent']:.3f} against the MLIP's own elements "
              f"({fe['n_mlip_consistent']} compounds)")
    path = write_json("mlip_accuracy", report, args.out)
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()

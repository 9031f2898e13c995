"""Rediscovery benchmark: does a campaign find known stable compounds it was not told about?

For each system of ``evals/data/rediscovery_systems.json`` (binary and ternary oxides, halides,
chalcogenides, nitrides, pnictides, intermetallics) the targets, compositions with
e_above_hull = 0 in ``hull/mp_e_above_hull_compositions_crabnet.csv.gz``, are held out of a fresh
reference store (``ReferenceStore.hold_out``: their MP energies and their starter-library
structures go, and stay out when the starter library is re-checked). The store keeps the rest of
the system's MP formation energies (matbench and roost files, lowest per formula) and the MP2020
elemental references, so hulls are on the ``mp2020`` scale that CHGNet energies share.

Three approaches then get the same budget of N MLIP relaxations (cells of at most 10 atoms):

* ``campaign``: an offline campaign asked "Find new stable compounds in the X-Y system"
  (``Budget(max_evaluations=N, max_iterations=2)``);
* ``random``: pyxtal random search (``generate`` method ``random``): each attempt draws one of the
  system's charge-balanced compositions uniformly (the enumeration the campaign's generators use,
  up to 200) and a space group uniformly from 2-230;
* ``substitution``: data-mined ion substitution (method ``substitution``), most probable first.

A target is rediscovered when a relaxed candidate with its reduced formula lies at most
0.05 eV/atom above the hull of the remaining phases. Also recorded: the gap between the
candidate's formation energy and MP's for the held-out target (a stricter test: with one
compound per binary the remaining hull is only the elements), and a structure-level match
(StructureMatcher ltol 0.2, stol 0.3, angle_tol 5) against the starter library's structure of
the target where it has one, and the stricter count of hits whose formation energy is within
0.05 eV/atom of MP's. Evaluations per rediscovery count relaxations in the order they
were run, up to and including the first hit.

What the generators still know: the prototype library (75 structure types with one example
decoration each) is built into the prototype method and is not held out, so a target whose
structure type is a prototype can be rebuilt by decoration; substitution starts from every
structure left in the store (other systems' compounds), never from a held-out one.

Relaxations are cached in ``evals/results/cache/rediscovery.sqlite``. Run from the repository
root::

    OMP_NUM_THREADS=1 .venv/bin/python -m evals.rediscovery [--budget 12] [--systems Cl-Na,Mg-O]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.common import (
    REPO,
    RESULTS,
    PeakMemory,
    cache_entries,
    load_mp_phases,
    parse_benchmark_args,
    write_json,
)

SYSTEMS_FILE = REPO / "evals" / "data" / "rediscovery_systems.json"
LABELS = "hull/mp_e_above_hull_compositions_crabnet.csv.gz"
CACHE = RESULTS / "cache" / "rediscovery.sqlite"
THRESHOLD_EV_PER_ATOM = 0.05
APPROACHES = ("campaign", "random", "substitution")
QUERY = "Find new stable compounds in the {system} system"


@dataclass(frozen=True)
class System:
    """One benchmark system and its held-out targets (reduced formulas)."""

    chemsys: str
    kind: str
    targets: tuple[str, ...]

    @property
    def query(self) -> str:
        """The question the campaign is asked."""
        return QUERY.format(system=self.chemsys)


def load_systems(path: Path = SYSTEMS_FILE) -> list[System]:
    """Systems from the data file, with targets as reduced formulas."""
    from pymatgen.core import Composition

    from matloop.errors import MatloopError

    raw = json.loads(path.read_text())
    out = []
    for i, entry in enumerate(raw.get("systems", [])):
        missing = {"chemsys", "kind", "targets"} - set(entry)
        if missing:
            raise MatloopError(f"{path}: system {i} lacks {', '.join(sorted(missing))}",
                               hint="each system needs chemsys, kind and targets")
        els = entry["chemsys"].split("-")
        chemsys = "-".join(sorted(els))
        targets = tuple(Composition(t).reduced_formula for t in entry["targets"])
        for t in targets:
            if {e.symbol for e in Composition(t).elements} - set(els):
                raise MatloopError(f"{path}: target {t} is not in the {chemsys} system")
        out.append(System(chemsys, entry["kind"], targets))
    if not out:
        raise MatloopError(f"{path}: no systems", hint='add {"chemsys", "kind", "targets"} items')
    return out


def check_targets(systems: list[System], data_dir: Path) -> dict[str, float]:
    """MP e_above_hull label of every target; each must be 0 (on the hull)."""
    import pandas as pd
    from pymatgen.core import Composition

    from matloop.errors import MatloopError

    df = pd.read_csv(data_dir / LABELS, keep_default_na=False)
    wanted = {t for s in systems for t in s.targets}
    labels: dict[str, float] = {}
    for formula, e_hull in zip(df["formula"], df["e_above_hull"], strict=True):
        rf = Composition(formula).reduced_formula
        if rf in wanted:
            labels[rf] = min(labels.get(rf, float("inf")), float(e_hull))
    bad = sorted(t for t in wanted if labels.get(t, 1.0) > 1e-9)
    if bad:
        raise MatloopError(f"targets not on the MP hull in {LABELS}: {', '.join(bad)}",
                           hint="targets must have e_above_hull = 0 in the labels file")
    return labels


def prepare_store(system: System, data_dir: Path, store_path: Path) -> dict[str, Any]:
    """Reference store for one system with its targets held out; returns what was held out."""
    from matloop.materials.references import ReferenceStore, starter_phases

    phases = load_mp_phases(data_dir, [system.chemsys])
    mp_e_form = {p.formula: p.energy_ev_per_atom for p in phases
                 if p.energy_kind == "formation" and p.formula in system.targets}
    store = ReferenceStore(store_path)
    store.add(phases)
    store.ensure_starter_library()
    removed = store.hold_out(system.targets, reason="rediscovery target")
    reference_structures = {t: [p.get_structure() for p in starter_phases()
                                if p.composition.reduced_formula == t] for t in system.targets}
    left = {p.composition.reduced_formula for p in store.phases(system.chemsys.split("-"))}
    if leaked := left & set(system.targets):
        raise RuntimeError(f"held-out targets {sorted(leaked)} are still in the store")
    status = store.status()
    store.close()
    return {"mp_formation_ev_per_atom": mp_e_form, "removed_phases": removed,
            "reference_structures": reference_structures, "store": status}


# -- approaches ---------------------------------------------------------------------------------

def run_campaign_approach(system: System, budget: int, *, out_dir: Path, max_atoms: int,
                          seed: int) -> dict[str, Any]:
    """An offline campaign; rows of evaluated candidates in evaluation order."""
    from pymatgen.core import Structure

    from matloop.app.campaign import start_campaign
    from matloop.config import get_settings
    from matloop.runtime import Budget, EventLog

    run = start_campaign(system.query, out_dir=out_dir, seed=seed, max_atoms=max_atoms,
                         budget=Budget(max_evaluations=budget, max_iterations=2),
                         settings=get_settings(), campaign_id=f"rediscovery-{system.chemsys}")
    report = run.run()
    by_cif = {c.provenance.get("generated_cif"): c for c in report.candidates}
    rows = []
    for event in EventLog(run.run_dir / "events.jsonl").read():
        args = event.get("arguments") or {}
        if event.get("type") != "tool_call" or event.get("tool") != "predict_properties" or \
                args.get("bulk_modulus") or not isinstance(args.get("structures"), list):
            continue
        for path in args["structures"]:
            c = by_cif.get(path)
            if c is None:
                continue
            structure = Structure.from_file(c.cif_path) if c.status == "ok" and c.cif_path \
                else None
            rows.append({"formula": c.formula, "status": c.status, "method": c.method,
                         "e_above_hull_ev_per_atom": c.e_above_hull_ev_per_atom,
                         "formation_energy_ev_per_atom": c.formation_energy_ev_per_atom,
                         "parent": c.provenance.get("parent"), "structure": structure})
    return {"rows": rows, "status": report.status, "usage": report.usage.model_dump(),
            "run_dir": str(run.run_dir)}


def run_generator_approach(system: System, method: str, budget: int, *, max_atoms: int,
                           seed: int) -> dict[str, Any]:
    """Generate ``budget`` candidates with one method and relax them all, in generation order."""
    from pymatgen.core import Structure

    from matloop.config import get_settings
    from matloop.generation import GenerationError, GenerationRequest, generate_report
    from matloop.materials.engine import MaterialsEngine

    engine = MaterialsEngine(get_settings())
    request = GenerationRequest(chemsys=system.chemsys, methods=[method], n=budget,
                                max_atoms=max_atoms, seed=seed)
    try:
        report = generate_report(request, store=engine.store)
    except GenerationError as exc:
        return {"rows": [], "status": f"no candidates: {exc}"}
    valid = [c for c in report.candidates if c.valid]
    preds = engine.predict([c.get_structure() for c in valid], sources=[c.id for c in valid])
    rows = [{"formula": p.formula, "status": p.status, "method": method,
             "e_above_hull_ev_per_atom": p.e_above_hull_ev_per_atom,
             "formation_energy_ev_per_atom": p.formation_energy_ev_per_atom,
             "parent": c.provenance.get("parent"),
             "structure": Structure.from_str(p.relaxed_cif, fmt="cif") if p.relaxed_cif else None}
            for c, p in zip(valid, preds, strict=True)]
    return {"rows": rows, "status": f"{len(report.candidates)} candidates "
                                    f"({len(report.candidates) - len(valid)} invalid)"}


def score(rows: list[dict[str, Any]], system: System, held: dict[str, Any]) -> dict[str, Any]:
    """Which targets came out within the threshold, after how many evaluations."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)
    per_target = {}
    for target in system.targets:
        hits = [(i + 1, r) for i, r in enumerate(rows) if r["formula"] == target
                and r["status"] == "ok" and r["e_above_hull_ev_per_atom"] is not None
                and r["e_above_hull_ev_per_atom"] <= THRESHOLD_EV_PER_ATOM]
        tried = [r for r in rows if r["formula"] == target and r["status"] == "ok"
                 and r["formation_energy_ev_per_atom"] is not None]
        mp = held["mp_formation_ev_per_atom"].get(target)
        best = min(tried, key=lambda r: r["formation_energy_ev_per_atom"], default=None)
        refs = held["reference_structures"].get(target) or []
        matched = None
        if refs:
            matched = any(r["structure"] is not None and matcher.fit(r["structure"], ref)
                          for _, r in hits for ref in refs)
        per_target[target] = {
            "rediscovered": bool(hits),
            "evaluations_to_first": hits[0][0] if hits else None,
            "candidates_with_formula": sum(r["formula"] == target for r in rows),
            "best_e_above_hull_ev_per_atom": min(
                (r["e_above_hull_ev_per_atom"] for r in tried
                 if r["e_above_hull_ev_per_atom"] is not None), default=None),
            "formation_gap_to_mp_ev_per_atom": None if best is None or mp is None else round(
                best["formation_energy_ev_per_atom"] - mp, 4),
            # The stricter test: a hit whose formation energy is within the threshold of MP's
            # for the held-out target (with one compound per binary, the remaining hull is
            # only the elements and a poor polymorph can still lie below it).
            "hit_within_threshold_of_mp": bool(hits) and mp is not None and min(
                h["formation_energy_ev_per_atom"] for _, h in hits) - mp
            <= THRESHOLD_EV_PER_ATOM,
            "structure_match": matched,
            "found_by": None if not hits else {"method": hits[0][1]["method"],
                                               "parent": hits[0][1]["parent"]},
        }
    return per_target


def run(systems: list[System], budget: int, *, data_dir: Path, max_atoms: int, seed: int,
        approaches: tuple[str, ...]) -> dict[str, Any]:
    """Every approach on every system; per-system and overall figures."""
    from matloop.config import get_settings

    CACHE.parent.mkdir(parents=True, exist_ok=True)
    per_system: dict[str, Any] = {}
    for system in systems:
        tmp = Path(tempfile.mkdtemp(prefix=f"matloop-rediscovery-{system.chemsys}-"))
        # The campaign opens its engine from the settings: point them at the held-out store.
        os.environ.update({"MATLOOP_DATA_DIR": str(tmp), "MATLOOP_EVALUATION_CACHE": str(CACHE),
                           "MATLOOP_REFERENCE_SCALE": "mp2020"})
        get_settings.cache_clear()
        held = prepare_store(system, data_dir, get_settings().reference_path)
        entry: dict[str, Any] = {"kind": system.kind, "targets": list(system.targets),
                                 "query": system.query,
                                 "held_out_phases": held["removed_phases"],
                                 "mp_formation_ev_per_atom": held["mp_formation_ev_per_atom"],
                                 "approaches": {}}
        for approach in approaches:
            t0, cached0 = time.perf_counter(), cache_entries(CACHE)
            if approach == "campaign":
                out = run_campaign_approach(system, budget, out_dir=tmp / "runs",
                                            max_atoms=max_atoms, seed=seed)
            else:
                out = run_generator_approach(system, approach, budget, max_atoms=max_atoms,
                                             seed=seed)
            wall = time.perf_counter() - t0
            targets = score(out["rows"], system, held)
            found = [t for t, v in targets.items() if v["rediscovered"]]
            entry["approaches"][approach] = {
                "status": out["status"], "evaluations": len(out["rows"]),
                "formulas_evaluated": sorted({r["formula"] for r in out["rows"]}),
                "rediscovered": found, "rate": round(len(found) / len(system.targets), 3),
                "targets": targets, "wall_seconds": round(wall, 1),
                "mlip_results_computed": cache_entries(CACHE) - cached0,
                **({"usage": out["usage"]} if "usage" in out else {}),
            }
            print(f"[{system.chemsys}] {approach:<12} {len(found)}/{len(system.targets)} "
                  f"rediscovered in {len(out['rows'])} evaluations, {wall:.0f} s", flush=True)
        per_system[system.chemsys] = entry
    return {"per_system": per_system, "overall": overall(per_system, approaches)}


def overall(per_system: dict[str, Any], approaches: tuple[str, ...]) -> dict[str, Any]:
    """Totals per approach over systems."""
    out = {}
    for a in approaches:
        rows = [s["approaches"][a] for s in per_system.values() if a in s["approaches"]]
        n_targets = sum(len(r["targets"]) for r in rows)
        found = sum(len(r["rediscovered"]) for r in rows)
        evaluations = sum(r["evaluations"] for r in rows)
        firsts = [t["evaluations_to_first"] for r in rows for t in r["targets"].values()
                  if t["evaluations_to_first"] is not None]
        matches = [t["structure_match"] for r in rows for t in r["targets"].values()
                   if t["structure_match"] is not None]
        strict = sum(t["hit_within_threshold_of_mp"] for r in rows for t in r["targets"].values())
        out[a] = {
            "systems": len(rows), "targets": n_targets, "rediscovered": found,
            "rate": round(found / n_targets, 3) if n_targets else None,
            "rediscovered_within_threshold_of_mp": strict,
            "systems_with_a_rediscovery": sum(bool(r["rediscovered"]) for r in rows),
            "evaluations": evaluations,
            "evaluations_per_rediscovery": round(evaluations / found, 1) if found else None,
            "mean_evaluations_to_first_hit": round(sum(firsts) / len(firsts), 1) if firsts
            else None,
            "structure_matches": f"{sum(matches)}/{len(matches)} targets with a reference "
                                 "structure",
            "wall_seconds": round(sum(r["wall_seconds"] for r in rows), 1),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=10,
                        help="MLIP relaxations per approach per system (default 10)")
    parser.add_argument("--systems", default=None,
                        help="comma-separated chemical systems from the data file (default all)")
    parser.add_argument("--approaches", default=",".join(APPROACHES),
                        help=f"comma-separated subset of {', '.join(APPROACHES)}")
    parser.add_argument("--max-atoms", type=int, default=10, help="most atoms per cell")
    parser.add_argument("--relax-steps", type=int, default=300,
                        help="optimiser steps per relaxation (not converged: not a hit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--systems-file", type=Path, default=SYSTEMS_FILE)
    args = parse_benchmark_args(parser, argv)
    if args is None:
        return 2
    approaches = tuple(a.strip() for a in args.approaches.split(","))
    if unknown := set(approaches) - set(APPROACHES):
        print(f"unknown approaches {sorted(unknown)}; valid: {', '.join(APPROACHES)}",
              file=sys.stderr)
        return 2
    systems = load_systems(args.systems_file)
    if args.systems:
        wanted = {"-".join(sorted(s.strip().split("-"))) for s in args.systems.split(",")}
        if unknown := wanted - {s.chemsys for s in systems}:
            print(f"systems not in {args.systems_file}: {sorted(unknown)}", file=sys.stderr)
            return 2
        systems = [s for s in systems if s.chemsys in wanted]
    labels = check_targets(systems, args.data)
    warnings.filterwarnings("ignore")
    os.environ["MATLOOP_RELAX_STEPS"] = str(args.relax_steps)
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    with PeakMemory() as mem:
        result = run(systems, args.budget, data_dir=args.data, max_atoms=args.max_atoms,
                     seed=args.seed, approaches=approaches)
    wall = time.perf_counter() - start
    print(f"\n{'approach':<14}{'targets':>8}{'found':>7}{'rate':>7}{'near MP':>8}{'evals':>7}"
          f"{'evals/hit':>10}{'to 1st':>7}{'wall s':>8}")
    for a, r in result["overall"].items():
        per = "-" if r["evaluations_per_rediscovery"] is None else r["evaluations_per_rediscovery"]
        first = "-" if r["mean_evaluations_to_first_hit"] is None else \
            r["mean_evaluations_to_first_hit"]
        print(f"{a:<14}{r['targets']:>8}{r['rediscovered']:>7}{r['rate']:>7.0%}"
              f"{r['rediscovered_within_threshold_of_mp']:>8}{r['evaluations']:>7}{per!s:>10}"
              f"{first!s:>7}{r['wall_seconds']:>8.0f}")
    from matloop.materials.engine import MaterialsEngine

    path = write_json("rediscovery", {
        "settings": {"budget_per_approach": args.budget, "max_atoms": args.max_atoms,
                     "relax_steps": args.relax_steps, "fmax_ev_per_angstrom": 0.05,
                     "seed": args.seed, "approaches": list(approaches),
                     "threshold_ev_per_atom": THRESHOLD_EV_PER_ATOM,
                     "reference_scale": "mp2020", "torch_threads": 1,
                     "mlip": MaterialsEngine().mlip_label,
                     "systems_file": str(args.systems_file.relative_to(REPO))
                     if args.systems_file.is_relative_to(REPO) else str(args.systems_file),
                     "target_labels_e_above_hull": labels,
                     "campaign": "offline policies, Budget(max_evaluations=budget, "
                                 "max_iterations=2)",
                     "random": "pyxtal, composition uniform over the system's charge-balanced "
                               "compositions (<=200), space group uniform 2-230",
                     "substitution": "Hautier data-mined substitution, most probable first",
                     "structure_match": "StructureMatcher ltol 0.2, stol 0.3, angle_tol 5 vs "
                                        "the starter library's structure"},
        **result, "wall_seconds": round(wall, 1), "peak_memory_mib": round(mem.peak_mib),
    }, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

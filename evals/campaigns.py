"""Campaign quality: five end-to-end offline campaigns, one per kind of question.

The queries and their stated constraints (machine-checkable predicates) are in
``evals/data/campaign_queries.json``: stability in a chemical system, a band-gap window, a
mechanical target, a composition constraint (lead-free) and a synthesis question. Each runs as
an offline campaign (``Budget(max_evaluations=N, max_iterations=2)``, cells of at most 10 atoms)
in one data directory under ``evals/results/cache/campaigns/``. References and literature are
the package's defaults (the shipped Materials Project compositions on the MP2020 scale, and
the shipped text-mined synthesis recipes); the one preparation step is a band-gap surrogate
trained on ``experimental/matbench_expt_gap_compositions.csv.gz`` (composition features,
3-fold CV).

Per campaign: wall time, MLIP evaluations (and how many MLIP results were computed rather than
read from the cache ``evals/results/cache/campaigns.sqlite``: wall times are only comparable
between cold runs), LLM calls / tokens / cost (zero offline), the SUN
fraction of the top 10 (valid: relaxed without failure; unique: no StructureMatcher match with a
better-ranked candidate; novel: composition absent from the reference store; stable: within
0.1 eV/atom of the hull), the grounded fraction of the numbers and citations of ``report.md``
(see :mod:`evals.grounding`), and for every constraint whether it holds for every candidate the
report claims (``meets_objective``), plus the fraction of the top 10 that satisfy it. A claimed
candidate whose property was never computed does not satisfy that property's constraint.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python -m evals.campaigns [--budget 12] [--queries stability]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from evals.common import (
    REPO,
    RESULTS,
    PeakMemory,
    cache_entries,
    parse_benchmark_args,
    write_json,
)

QUERIES_FILE = REPO / "evals" / "data" / "campaign_queries.json"
WORKDIR = RESULTS / "cache" / "campaigns"
GAP_DATA = "experimental/matbench_expt_gap_compositions.csv.gz"
STABLE_EV_PER_ATOM = 0.1
CONSTRAINTS = ("within_chemsys", "excluded_elements", "required_any_of",
               "max_e_above_hull_ev_per_atom", "band_gap_ev", "bulk_modulus_gpa",
               "synthesis_route")


def load_queries(path: Path = QUERIES_FILE) -> list[dict[str, Any]]:
    """Queries with their constraints; unknown constraint names are an error."""
    from matloop.errors import MatloopError

    queries = json.loads(path.read_text())["queries"]
    for q in queries:
        if unknown := set(q.get("constraints", {})) - set(CONSTRAINTS):
            raise MatloopError(f"{path}: query {q.get('name')} has unknown constraints "
                               f"{sorted(unknown)}", hint=f"valid: {', '.join(CONSTRAINTS)}")
    return queries


# -- the data directory -------------------------------------------------------------------------

def prepare(workdir: Path, data: Path) -> dict[str, Any]:
    """The data directory: the band-gap surrogate, trained once.

    References (the Materials Project compositions shipped with matloop) and literature (the
    shipped synthesis recipes, indexed per chemical system as campaigns search) need no step.
    """
    notes: dict[str, Any] = {}
    done = workdir / "prepared.json"
    state = json.loads(done.read_text()) if done.exists() else {}
    if state.get("band_gap") != GAP_DATA:
        from matloop.surrogates.training import train_surrogate

        t0 = time.perf_counter()
        train_surrogate("band_gap", data / GAP_DATA, features="composition", target="gap_expt_eV",
                        unit="eV", folds=3, seed=0, n_jobs=1)
        state["band_gap"] = GAP_DATA
        notes["band_gap_training_seconds"] = round(time.perf_counter() - t0, 1)
    done.write_text(json.dumps(state))
    return notes


# -- scoring ------------------------------------------------------------------------------------

def _elements(formula: str) -> set[str]:
    from pymatgen.core import Composition

    return {e.symbol for e in Composition(formula).elements}


def _prop(candidate: Any, prefix: str) -> float | None:
    for key, value in candidate.properties.items():
        if key.startswith(prefix):
            return float(value)
    return None


def _within(value: float | None, window: list[float | None]) -> bool:
    lo, hi = window
    return value is not None and (lo is None or value >= lo) and (hi is None or value <= hi)


def check_constraint(name: str, spec: Any, candidate: Any, report: Any) -> bool:
    """Whether one stated constraint holds for one reported candidate."""
    els = _elements(candidate.formula)
    if name == "within_chemsys":
        return els <= set(spec.split("-"))
    if name == "excluded_elements":
        return not els & set(spec)
    if name == "required_any_of":
        return bool(els & set(spec))
    if name == "max_e_above_hull_ev_per_atom":
        e = candidate.e_above_hull_ev_per_atom
        return e is not None and e <= spec
    if name == "band_gap_ev":
        return _within(_prop(candidate, "band_gap"), spec)
    if name == "bulk_modulus_gpa":
        return _within(_prop(candidate, "bulk_modulus"), spec)
    if name == "synthesis_route":
        # Analogues are found by composition, so a route covers every polymorph of it.
        formula_of = {c.id: c.formula for c in report.candidates}
        has = any(formula_of.get(s.candidate_id) == candidate.formula for s in report.synthesis)
        return has == bool(spec)
    raise ValueError(f"unknown constraint {name!r}; valid: {', '.join(CONSTRAINTS)}")


def constraint_checks(report: Any, constraints: dict[str, Any]) -> dict[str, Any]:
    """Per constraint: holds for every claimed candidate, and the fraction of the top 10."""
    ok = [c for c in report.candidates if c.status == "ok"]
    claimed = [c for c in ok if c.meets_objective]
    top = ok[:10]
    out: dict[str, Any] = {}
    for name, spec in constraints.items():
        failing = [c.id for c in claimed if not check_constraint(name, spec, c, report)]
        out[name] = {"spec": spec, "claimed": len(claimed),
                     "holds_for_every_claimed": not failing, "claimed_failing": failing,
                     "top10_fraction": round(sum(check_constraint(name, spec, c, report)
                                                 for c in top) / len(top), 3) if top else None}
    return out


def sun_top10(report: Any, store: Any) -> dict[str, Any]:
    """Valid / unique / novel / stable counts over the report's top 10 candidates."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    matcher = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)
    top = report.candidates[:10]
    seen: list[Any] = []
    flags = []
    for c in top:
        valid = c.status == "ok" and bool(c.cif_path)
        structure = Structure.from_file(c.cif_path) if valid else None
        unique = valid and not any(matcher.fit(structure, s) for s in seen)
        if structure is not None:
            seen.append(structure)
        known = {p.composition.reduced_formula for p in store.phases(sorted(_elements(c.formula)))}
        novel = c.formula not in known
        stable = c.e_above_hull_ev_per_atom is not None and \
            c.e_above_hull_ev_per_atom <= STABLE_EV_PER_ATOM
        flags.append({"id": c.id, "formula": c.formula, "valid": valid, "unique": unique,
                      "novel": novel, "stable": stable})
    n = len(flags)
    counts = {k: sum(f[k] for f in flags) for k in ("valid", "unique", "novel", "stable")}
    sun = sum(f["valid"] and f["unique"] and f["novel"] and f["stable"] for f in flags)
    return {"n": n, **counts, "sun": sun, "sun_fraction": round(sun / n, 3) if n else None,
            "candidates": flags}


def second_mlip_check(report: Any, sun: dict[str, Any], engine: Any) -> dict[str, Any]:
    """Re-relax the report's stable new candidates (SUN in the top 10) with a second MLIP and
    place them on the same reference hull: how many stay within the stability threshold."""
    from pymatgen.core import Structure

    by_id = {c.id: c for c in report.candidates}
    chosen = [by_id[f["id"]] for f in sun["candidates"]
              if f["valid"] and f["unique"] and f["novel"] and f["stable"]]
    rows = []
    if chosen:
        predictions = engine.predict([Structure.from_file(c.cif_path) for c in chosen],
                                     sources=[c.id for c in chosen])
        for c, p in zip(chosen, predictions, strict=True):
            e_hull = p.e_above_hull_ev_per_atom
            rows.append({"id": c.id, "formula": c.formula,
                         "chgnet_e_above_hull_ev_per_atom": c.e_above_hull_ev_per_atom,
                         "second_e_above_hull_ev_per_atom": e_hull,
                         "stays_stable": e_hull is not None and e_hull <= STABLE_EV_PER_ATOM})
    return {"mlip": engine.mlip_label, "checked": len(rows),
            "stay_within_threshold": sum(r["stays_stable"] for r in rows), "candidates": rows}


# -- one campaign -------------------------------------------------------------------------------

def run_query(q: dict[str, Any], budget: int, *, runs: Path, max_atoms: int,
              seed: int, second_mlip: str | None = None) -> dict[str, Any]:
    """Run one campaign from scratch (relaxations come from the cache) and score it."""
    from evals.grounding import grounded_fraction
    from matloop.app.campaign import start_campaign
    from matloop.config import get_settings
    from matloop.materials.references import ReferenceStore
    from matloop.reports import to_markdown
    from matloop.runtime import Budget

    campaign_id = f"bench-{q['name']}"
    shutil.rmtree(runs / campaign_id, ignore_errors=True)
    t0, cached0 = time.perf_counter(), cache_entries(get_settings().cache_path)
    run = start_campaign(q["query"], out_dir=runs, seed=seed, max_atoms=max_atoms,
                         budget=Budget(max_evaluations=budget, max_iterations=2),
                         settings=get_settings(), campaign_id=campaign_id)
    report = run.run()
    wall = time.perf_counter() - t0
    markdown = to_markdown(report)
    (run.run_dir / "report.md").write_text(markdown)
    store = ReferenceStore(get_settings().reference_path)
    sun = sun_top10(report, store)
    store.close()
    checks = constraint_checks(report, q.get("constraints", {}))
    second = None
    if second_mlip:
        from matloop.materials.engine import MaterialsEngine

        second = second_mlip_check(report, sun, MaterialsEngine(mlip=second_mlip))
    grounding = grounded_fraction(run.run_dir, report=report, state=run.state())
    u = report.usage
    return {
        "kind": q["kind"], "query": q["query"], "status": report.status,
        "wall_seconds": round(wall, 1), "mlip_evaluations": u.mlip_evaluations,
        "mlip_results_computed": cache_entries(get_settings().cache_path) - cached0,
        "llm": {"calls": u.llm_calls, "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens, "cost_usd": round(u.cost_usd, 4),
                "models": report.methods.get("models")},
        "candidates": len(report.candidates),
        "claimed": sum(bool(c.meets_objective) for c in report.candidates),
        "sun_top10": sun, "second_mlip": second, "grounding": grounding, "constraints": checks,
        "all_constraints_hold": all(v["holds_for_every_claimed"] for v in checks.values()),
        "run_dir": str(run.run_dir.relative_to(REPO)) if run.run_dir.is_relative_to(REPO)
        else str(run.run_dir),
    }


def overall(results: dict[str, Any]) -> dict[str, Any]:
    """Aggregate SUN in the top 10, second-MLIP agreement and wall times over the campaigns."""
    n = sum(r["sun_top10"]["n"] for r in results.values())
    sun = sum(r["sun_top10"]["sun"] for r in results.values())
    checked = sum((r.get("second_mlip") or {}).get("checked", 0) for r in results.values())
    kept = sum((r.get("second_mlip") or {}).get("stay_within_threshold", 0)
               for r in results.values())
    walls = sorted(r["wall_seconds"] for r in results.values())
    return {"campaigns": len(results), "top10_candidates": n, "sun": sun,
            "sun_fraction": round(sun / n, 3) if n else None,
            "second_mlip_checked": checked, "second_mlip_stay_stable": kept,
            "wall_seconds_per_campaign": walls,
            "median_wall_seconds": walls[len(walls) // 2] if walls else None}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=12,
                        help="MLIP relaxations per campaign (default 12)")
    parser.add_argument("--queries", default=None,
                        help="comma-separated query names (default: all five)")
    parser.add_argument("--max-atoms", type=int, default=10)
    parser.add_argument("--relax-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--second-mlip", default="sevenn",
                        help="re-relax the stable new candidates with this MLIP ('' to skip)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR,
                        help="data directory prepared once and reused")
    args = parse_benchmark_args(parser, argv)
    if args is None:
        return 2
    queries = load_queries()
    if args.queries:
        wanted = {n.strip() for n in args.queries.split(",")}
        if unknown := wanted - {q["name"] for q in queries}:
            print(f"unknown queries {sorted(unknown)}; valid: "
                  f"{', '.join(q['name'] for q in queries)}", file=sys.stderr)
            return 2
        queries = [q for q in queries if q["name"] in wanted]
    warnings.filterwarnings("ignore")
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update({"MATLOOP_DATA_DIR": str(args.workdir),
                       "MATLOOP_EVALUATION_CACHE": str(RESULTS / "cache" / "campaigns.sqlite"),
                       "MATLOOP_REFERENCE_SCALE": "mp2020",
                       "MATLOOP_RELAX_STEPS": str(args.relax_steps)})
    from matloop.config import get_settings

    get_settings.cache_clear()
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    with PeakMemory() as mem:
        prep = prepare(args.workdir, args.data)
        results = {}
        for q in queries:
            results[q["name"]] = r = run_query(q, args.budget, runs=args.workdir / "runs",
                                               max_atoms=args.max_atoms, seed=args.seed,
                                               second_mlip=args.second_mlip or None)
            g = r["grounding"]
            print(f"[{q['name']}] {r['status']}: {r['mlip_evaluations']} evaluations, "
                  f"{r['wall_seconds']:.0f} s, SUN top10 {r['sun_top10']['sun']}/"
                  f"{r['sun_top10']['n']}, grounded numbers {g['numbers_grounded']}/"
                  f"{g['numbers']}, citations {g['citations_grounded']}/{g['citations']}, "
                  f"constraints hold: {r['all_constraints_hold']} ({r['claimed']} claimed)",
                  flush=True)
    wall = time.perf_counter() - start
    from matloop.materials.engine import MaterialsEngine

    path = write_json("campaigns", {
        "settings": {"budget_per_campaign": args.budget, "max_iterations": 2,
                     "max_atoms": args.max_atoms, "relax_steps": args.relax_steps,
                     "seed": args.seed, "llm": "none (offline policies)",
                     "mlip": MaterialsEngine().mlip_label, "reference_scale": "mp2020",
                     "stable_ev_per_atom": STABLE_EV_PER_ATOM,
                     "queries_file": str(QUERIES_FILE.relative_to(REPO)),
                     "sun": "top 10 of the report; novel = composition absent from the "
                            "reference store (MP matbench + roost + starter library)"},
        "preparation": prep, "campaigns": results, "overall": overall(results),
        "wall_seconds": round(wall, 1),
        "peak_memory_mib": round(mem.peak_mib),
    }, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

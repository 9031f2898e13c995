"""MADE-protocol benchmark: how many ground-truth hull phases does each approach find, starting
from the elements, under an oracle budget, and how much faster and further than random search?

The protocol follows MADE (Malik et al. 2026, "MADE: Benchmark Environments for Closed-Loop
Materials Discovery", arXiv 2601.20996; code at github.com/whalesyong/MADE, MIT), read from:

* ``src/made/envs/convex_hull.py`` (``ConvexHullEnvironment``): the observed phase diagram starts
  from the elemental references only; each proposal is evaluated by the oracle and added to it;
  the ground truth is the set of formulas within ``stability_tolerance`` of the ground-truth
  hull (``include_near_stable_from_ground_truth``), filtered to cells of at most
  ``max_stoichiometry`` atoms; ``num_correct_stable_formulas`` after a query is the number of
  ground-truth formulas (absent at the start) that have an entry within ``stability_tolerance``
  of the *observed* hull; ``num_newly_discovered_stable`` is the number of structurally novel
  proposals (StructureMatcher ltol 0.2, stol 0.3, angle_tol 5 against the initial structures and
  earlier novel proposals) within ``stability_tolerance`` of the observed hull.
* ``configs/environment/convex_hull.yaml``: ``stability_tolerance: 0.1`` eV/atom,
  ``include_near_stable_from_ground_truth: true``, ``filter_by_smact: true`` (alloys pass),
  ``max_stoichiometry: 20``. README: budget 50, 5 episodes, the systems files below.
* ``src/made/evaluation/metrics.py`` (``DiscoveryCurveMetrics``), the metrics of the curve
  ``c(q)`` of discoveries after ``q`` queries, with ``c(0) = 0`` prepended:

  - **acceleration factor** AF = ``q_random / q_agent``, the first query at which the random
    baseline's curve reaches its own final value, over the first query at which the agent's
    curve reaches it; 1 when both reach it at query 0 (the baseline found nothing), 0 when the
    agent never reaches it;
  - **enhancement factor** EF = ``c_agent(Q) / max(c_random(Q), 1e-8)`` at the agent's last
    query ``Q`` (the baseline's curve interpolated there), capped at 100.

  ``notebooks/results_analysis_utils.py`` computes both per episode against the random
  generator baseline (``random_generator_baseline``) with ``num_newly_discovered_stable`` as the
  curve and reports their mean over episodes. Systems: ``data/systems_10_mp_20/
  systems_{ternary,quaternary}_n10_maxatoms20_intermetallic_smact.json`` (copied, element lists
  only, to ``evals/data/made_systems.json``).

Here the ground truth is the hull of the shipped MP composition energies
(:func:`matloop.materials.mp_pack.mp_compositions`, MP2020 scale) with the elements at zero, and
the oracle is a CHGNet relaxation (:class:`matloop.materials.engine.MaterialsEngine`, MP2020
scale). The reference store the generators see holds out every MP compound of the system and
its sub-systems (``ReferenceStore.hold_out``), so they start from the elements as MADE does, and
those formulas are ``holdout_formulas`` (no substitution parent of them). Each generator is run
on every sub-system of two or more elements (a chemical-system request requires all its
elements) and its candidates are proposed round-robin over the sub-systems, each sub-system's in
the generator's own order, one relaxation at a time. AF and EF are computed for both curves:
ground-truth phases found (``num_correct_stable_formulas``, the headline asked for) and MADE's
default ``num_newly_discovered_stable``.

Approaches: ``random`` (pyxtal, space group uniform: the baseline), ``prototype``, ``aflow``,
``substitution``, ``random_prior`` and ``campaign`` (the offline campaign, "Find new stable
compounds in the X system", ``Budget(max_evaluations=N, max_iterations=2)``), via
:mod:`evals.rediscovery`. Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python -m evals.made --systems Mg-Sn-Sr,Al-Li-V,Hf-Ni-Zr,\
Ba-Be-Hf-Li --budget 20 --approaches random,prototype,aflow,substitution

Relaxations are cached in ``evals/results/cache/made.sqlite``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from evals.common import REPO, RESULTS, PeakMemory, cache_entries, parse_subset, write_json
from evals.rediscovery import System, _how, run_campaign_approach

SYSTEMS_FILE = REPO / "evals" / "data" / "made_systems.json"
CACHE = RESULTS / "cache" / "made.sqlite"
#: MADE configs/environment/convex_hull.yaml: stability_tolerance, max_stoichiometry.
TOLERANCE_EV_PER_ATOM = 0.1
MAX_ATOMS = 20
#: MADE src/made/evaluation/metrics.py: enhancement_factor(cap=100.0), the 1e-8 floor.
EF_CAP = 100.0
APPROACHES = ("random", "prototype", "aflow", "substitution", "random_prior", "campaign")
BASELINE = "random"
CURVES = ("gt_found", "stable_novel")

#: What MADE publishes that could sit beside our numbers (see ``published`` in the JSON).
PUBLISHED: dict[str, Any] = {
    "found": "no per-system AF/EF table of the paper was readable here: the arXiv text was not "
             "in the stored sources and the repository ships no results of the random or "
             "Chemeleon baselines; its only shipped results, notebooks/data/"
             "qwen3dot5-122b-reflx-tracking/overall_summary/per_system_summary.csv (an LLM "
             "orchestrator, start_with_all_stable, Mg-Sn-Sr and Au-K-Tb, 5 episodes, budget 50),"
             " are quoted below; they are not comparable (that run starts from every MP stable "
             "phase, so no ground-truth formula is missing and AF/EF are 0 by construction)",
    "qwen3.5-122b_llm_orchestrator_start_with_all_stable": {
        "Mg-Sn-Sr": {"queries_used": 50, "num_ground_truth_stable_formulas": 29,
                     "num_newly_discovered_stable_mean": 21.4,
                     "discovery_curve_acceleration_factor": 0.0,
                     "discovery_curve_enhancement_factor": 0.0},
        "Au-K-Tb": {"queries_used": 50, "discovery_curve_acceleration_factor": 0.0,
                    "discovery_curve_enhancement_factor": 0.0},
    },
}


# -- ground truth and metrics -------------------------------------------------------------------

def sub_systems(chemsys: str, *, min_elements: int = 2) -> list[str]:
    """Sorted '-'-joined sub-systems with at least ``min_elements`` elements, smallest first."""
    els = sorted(chemsys.split("-"))
    return ["-".join(c) for r in range(min_elements, len(els) + 1)
            for c in itertools.combinations(els, r)]


def ground_truth(chemsys: str, *, tolerance_ev_per_atom: float = TOLERANCE_EV_PER_ATOM,
                 max_atoms: int = MAX_ATOMS) -> dict[str, Any]:
    """MADE's ground truth from the shipped MP energies: compounds within the tolerance of the
    hull (elements at zero formation energy) whose formula unit fits in ``max_atoms``.

    Returns the ground-truth formulas, the strictly stable ones, every MP compound of the
    system (what the store holds out) and the MP hull distances (eV/atom).
    """
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    from matloop.materials.mp_pack import mp_compositions

    rows = mp_compositions().in_systems(sub_systems(chemsys))
    elements = [PDEntry(Composition(e), 0.0) for e in chemsys.split("-")]
    compounds = [PDEntry(Composition(r.formula), r.formation_energy_ev_per_atom
                         * Composition(r.formula).num_atoms) for r in rows]
    pd = PhaseDiagram(elements + compounds)
    e_hull = {e.composition.reduced_formula: round(float(pd.get_e_above_hull(e)), 4)
              for e in compounds}
    formulas = sorted(f for f, e in e_hull.items() if e <= tolerance_ev_per_atom
                      and Composition(f).num_atoms <= max_atoms)
    return {"formulas": formulas, "strict": sorted(f for f in formulas if e_hull[f] <= 1e-8),
            "compounds": sorted(e_hull), "mp_e_above_hull_ev_per_atom": e_hull}


def discovery_curves(rows: list[dict[str, Any]], chemsys: str, gt_formulas: list[str], *,
                     tolerance_ev_per_atom: float = TOLERANCE_EV_PER_ATOM) -> dict[str, Any]:
    """MADE's two discovery curves after each query (one row per query, in order).

    ``gt_found[q-1]``: ground-truth formulas with an entry within the tolerance of the hull of
    the elements and the first ``q`` proposals (``num_correct_stable_formulas``);
    ``stable_novel[q-1]``: structurally novel proposals among the first ``q`` within the
    tolerance of that hull (``num_newly_discovered_stable``). A row without a formation energy
    (relaxation failed) uses up its query and adds no entry. Also the query at which each
    ground-truth formula was first counted.
    """
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Composition

    matcher = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5, primitive_cell=True)
    gt = set(gt_formulas)
    entries = [PDEntry(Composition(e), 0.0) for e in chemsys.split("-")]
    novel: list[tuple[PDEntry, Any]] = []
    gt_found: list[int] = []
    stable_novel: list[int] = []
    first: dict[str, int] = {}
    found: set[str] = set()
    for q, row in enumerate(rows, start=1):
        e_form = row.get("formation_energy_ev_per_atom")
        if row.get("status") == "ok" and e_form is not None:
            comp = Composition(row["formula"])
            entry = PDEntry(comp, float(e_form) * comp.num_atoms)
            entries.append(entry)
            s = row.get("structure")
            if s is None or not any(matcher.fit(s, t) for _, t in novel if t is not None):
                novel.append((entry, s))
        pd = PhaseDiagram(entries)
        stable = {e.composition.reduced_formula for e in entries
                  if len(e.composition.elements) > 1
                  and pd.get_e_above_hull(e, allow_negative=True) <= tolerance_ev_per_atom}
        found = stable & gt
        for f in found:
            first.setdefault(f, q)
        gt_found.append(len(found))
        stable_novel.append(int(sum(pd.get_e_above_hull(e, allow_negative=True)
                                    <= tolerance_ev_per_atom for e, _ in novel)))
    return {"gt_found": gt_found, "stable_novel": stable_novel,
            "found": sorted(found),
            "first_query": dict(sorted(first.items()))}


def _with_origin(curve: list[int]) -> tuple[list[int], list[float]]:
    """Queries 0..N and the curve with c(0) = 0 prepended (MADE ``_extract_discovery_curve``)."""
    return list(range(len(curve) + 1)), [0.0, *map(float, curve)]


def acceleration_factor(agent: list[int], baseline: list[int]) -> float:
    """MADE's AF: baseline queries to reach the baseline's final count over the agent's.

    ``agent`` and ``baseline`` are cumulative counts after queries 1..N.
    """
    qa, ca = _with_origin(agent)
    qb, cb = _with_origin(baseline)
    target = cb[-1]
    q_agent = next((q for q, c in zip(qa, ca, strict=True) if c >= target), None)
    q_base = next((q for q, c in zip(qb, cb, strict=True) if c >= target), None)
    if q_agent == 0 and q_base == 0:
        return 1.0
    if q_agent == 0:
        return float("inf")
    if q_agent is None or q_base is None:
        return 0.0
    return q_base / q_agent


def enhancement_factor(agent: list[int], baseline: list[int], *, cap: float = EF_CAP) -> float:
    """MADE's EF: the agent's count at its last query over the baseline's there (linear
    interpolation, the baseline's last value beyond its end, floor 1e-8), capped."""
    import numpy as np

    qa, ca = _with_origin(agent)
    qb, cb = _with_origin(baseline)
    base = float(np.interp(qa[-1], qb, cb, left=0.0, right=cb[-1]))
    return float(min(ca[-1] / max(base, 1e-8), cap))


# -- approaches ---------------------------------------------------------------------------------

def prepare_store(chemsys: str, held: list[str], store_path: Path) -> dict[str, Any]:
    """A reference store without any compound of the system: MADE starts from the elements."""
    from matloop.materials.references import ReferenceStore

    store = ReferenceStore(store_path)
    store.ensure_starter_library()
    removed = store.hold_out(held, reason="MADE protocol: start from the elemental references")
    left = sorted({p.composition.reduced_formula for p in store.phases(chemsys.split("-"))
                   if len(p.composition.elements) > 1})
    store.close()
    if left:
        raise RuntimeError(f"compounds {left} of {chemsys} are still in the store")
    return {"held_out_formulas": len(held), "removed_phases": removed}


def propose(approach: str, chemsys: str, budget: int, *, max_atoms: int, seed: int,
            held: list[str], store: Any) -> tuple[list[Any], dict[str, Any]]:
    """Up to ``budget`` valid candidates of one generator, round-robin over the sub-systems."""
    from matloop.generation import GenerationError, GenerationRequest, generate_report

    systems = sub_systems(chemsys)
    per = -(-budget // len(systems)) + 2
    queues, notes = [], {}
    for sub in systems:
        request = GenerationRequest(chemsys=sub, methods=["random" if approach.startswith(
            "random") else approach], n=per, max_atoms=max_atoms, seed=seed,
            random_prior=approach == "random_prior", holdout_formulas=held)
        try:
            report = generate_report(request, store=store)
        except GenerationError as exc:
            notes[sub] = f"no candidates: {exc}"
            queues.append([])
            continue
        valid = [c for c in report.candidates if c.valid]
        notes[sub] = f"{len(valid)} valid of {len(report.candidates)}"
        queues.append(valid)
    ordered = [c for group in itertools.zip_longest(*queues) for c in group if c is not None]
    return ordered[:budget], notes


def run_generator(approach: str, chemsys: str, budget: int, *, max_atoms: int, seed: int,
                  held: list[str]) -> dict[str, Any]:
    """Generate, then relax the proposals one at a time in proposal order."""
    from pymatgen.core import Structure

    from matloop.config import get_settings
    from matloop.materials.engine import MaterialsEngine

    engine = MaterialsEngine(get_settings())
    t0 = time.perf_counter()
    candidates, notes = propose(approach, chemsys, budget, max_atoms=max_atoms, seed=seed,
                                held=held, store=engine.store)
    generation_s = time.perf_counter() - t0
    rows = []
    for c in candidates:
        p = engine.predict([c.get_structure()], sources=[c.id])[0]
        rows.append({"formula": p.formula, "status": p.status, "method": approach,
                     "formation_energy_ev_per_atom": p.formation_energy_ev_per_atom,
                     "how": _how(c), "n_atoms": c.n_atoms,
                     "structure": Structure.from_str(p.relaxed_cif, fmt="cif")
                     if p.relaxed_cif else None})
    return {"rows": rows, "generation_seconds": round(generation_s, 1), "sub_systems": notes,
            "status": f"{len(candidates)} proposals"}


def run(systems: list[str], budget: int, *, approaches: tuple[str, ...], max_atoms: int,
        seed: int, tolerance_ev_per_atom: float) -> dict[str, Any]:
    """Every approach on every system; curves, found phases, AF and EF against random."""
    from matloop.config import get_settings

    CACHE.parent.mkdir(parents=True, exist_ok=True)
    per_system: dict[str, Any] = {}
    for chemsys in systems:
        gt = ground_truth(chemsys, tolerance_ev_per_atom=tolerance_ev_per_atom,
                          max_atoms=max_atoms)
        tmp = Path(tempfile.mkdtemp(prefix=f"matloop-made-{chemsys}-"))
        os.environ.update({"MATLOOP_DATA_DIR": str(tmp), "MATLOOP_EVALUATION_CACHE": str(CACHE),
                           "MATLOOP_REFERENCE_SCALE": "mp2020"})
        get_settings.cache_clear()
        store = prepare_store(chemsys, gt["compounds"], get_settings().reference_path)
        entry: dict[str, Any] = {"ground_truth": gt["formulas"],
                                 "ground_truth_strict": gt["strict"],
                                 "n_ground_truth": len(gt["formulas"]), "store": store,
                                 "approaches": {}}
        for approach in approaches:
            t0, cached0 = time.perf_counter(), cache_entries(CACHE)
            if approach == "campaign":
                system = System(chemsys, f"{len(chemsys.split('-'))}-ary", tuple(gt["formulas"]))
                out = run_campaign_approach(system, budget, out_dir=tmp / "runs",
                                            max_atoms=max_atoms, seed=seed)
                out["rows"] = out["rows"][:budget]
            else:
                out = run_generator(approach, chemsys, budget, max_atoms=max_atoms, seed=seed,
                                    held=gt["compounds"])
            curves = discovery_curves(out["rows"], chemsys, gt["formulas"],
                                      tolerance_ev_per_atom=tolerance_ev_per_atom)
            wall = time.perf_counter() - t0
            entry["approaches"][approach] = {
                "status": out.get("status"), "queries": len(out["rows"]),
                "found": curves["found"], "n_found": len(curves["found"]),
                "first_query": curves["first_query"],
                "curves": {k: curves[k] for k in CURVES},
                "proposals": [{"formula": r["formula"], "status": r["status"],
                               "formation_energy_ev_per_atom": r["formation_energy_ev_per_atom"]}
                              for r in out["rows"]],
                "wall_seconds": round(wall, 1),
                "mlip_results_computed": cache_entries(CACHE) - cached0,
                **{k: out[k] for k in ("generation_seconds", "sub_systems", "usage")
                   if k in out},
            }
            print(f"[{chemsys}] {approach:<13} {len(curves['found'])}/{len(gt['formulas'])} "
                  f"ground-truth phases in {len(out['rows'])} queries, {wall:.0f} s", flush=True)
        per_system[chemsys] = entry
    add_factors(per_system)
    return {"per_system": per_system, "overall": overall(per_system)}


def add_factors(per_system: dict[str, Any]) -> None:
    """AF and EF of every approach against the random baseline of the same system, and which
    found phases came out below the elements (formation energy < 0; MADE's tolerance also
    counts a phase up to 0.1 eV/atom above the hull of the agent's own entries)."""
    for entry in per_system.values():
        base = entry["approaches"].get(BASELINE)
        for result in entry["approaches"].values():
            best: dict[str, float] = {}
            for p in result["proposals"]:
                if p["formation_energy_ev_per_atom"] is not None:
                    best[p["formula"]] = min(best.get(p["formula"], float("inf")),
                                             p["formation_energy_ev_per_atom"])
            result["found_below_elements"] = [f for f in result["found"] if best.get(f, 0) < 0]
            result["factors"] = None if base is None else {
                curve: {"acceleration_factor": acceleration_factor(result["curves"][curve],
                                                                   base["curves"][curve]),
                        "enhancement_factor": round(enhancement_factor(
                            result["curves"][curve], base["curves"][curve]), 3)}
                for curve in CURVES}


def overall(per_system: dict[str, Any]) -> dict[str, Any]:
    """Per approach: phases found over all systems, and MADE's mean AF / EF over systems."""
    names = [a for a in APPROACHES if any(a in e["approaches"] for e in per_system.values())]
    out: dict[str, Any] = {}
    for a in names:
        rows = [(e, e["approaches"][a]) for e in per_system.values() if a in e["approaches"]]
        r: dict[str, Any] = {"systems": len(rows),
                             "found": sum(x["n_found"] for _, x in rows),
                             "found_below_elements": sum(len(x["found_below_elements"])
                                                         for _, x in rows),
                             "ground_truth": sum(e["n_ground_truth"] for e, _ in rows),
                             "queries": sum(x["queries"] for _, x in rows),
                             "wall_seconds": round(sum(x["wall_seconds"] for _, x in rows), 1)}
        for curve in CURVES:
            f = [x["factors"][curve] for _, x in rows if x.get("factors")]
            for k, short in (("acceleration_factor", "af"), ("enhancement_factor", "ef")):
                vals = [v[k] for v in f]
                r[f"{short}_{curve}_mean"] = round(statistics.fmean(vals), 3) if vals else None
                r[f"{short}_{curve}_per_system"] = vals
        out[a] = r
    return out


def merge(paths: list[Path]) -> dict[str, Any]:
    """One result from runs of disjoint systems or approaches (same settings)."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    per_system: dict[str, Any] = {}
    for part in parts:
        for name, entry in part["per_system"].items():
            have = per_system.setdefault(name, json.loads(json.dumps(entry)))
            if have is not entry:
                have["approaches"].update(entry["approaches"])
    add_factors(per_system)
    settings = dict(parts[0]["settings"])
    settings["merged_from"] = [str(p) for p in paths]
    settings["systems"] = list(per_system)
    settings["approaches"] = [a for a in APPROACHES if any(
        a in e["approaches"] for e in per_system.values())]
    return {"settings": settings, "per_system": per_system, "overall": overall(per_system),
            "published": PUBLISHED,
            "wall_seconds": round(sum(p.get("wall_seconds", 0.0) for p in parts), 1),
            "wall_seconds_note": "sum over the merged runs (they may have run in parallel)",
            "peak_memory_mib": max(p.get("peak_memory_mib", 0) for p in parts)}


def _table(result: dict[str, Any]) -> None:
    print(f"\n{'approach':<14}{'found':>10}{'queries':>9}{'AF gt':>8}{'EF gt':>8}"
          f"{'AF sn':>8}{'EF sn':>8}{'wall s':>8}")
    for a, r in result["overall"].items():
        print(f"{a:<14}{r['found']:>5}/{r['ground_truth']:<4}{r['queries']:>9}"
              f"{r['af_gt_found_mean']!s:>8}{r['ef_gt_found_mean']!s:>8}"
              f"{r['af_stable_novel_mean']!s:>8}{r['ef_stable_novel_mean']!s:>8}"
              f"{r['wall_seconds']:>8.0f}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    known = json.loads(SYSTEMS_FILE.read_text())
    default = [*known["ternary"][:1], "Al-Li-V", "Hf-Ni-Zr", "Ba-Be-Hf-Li"]
    parser.add_argument("--systems", default=",".join(default),
                        help="comma-separated systems (default: 3 ternary + 1 quaternary of "
                             "MADE's systems files)")
    parser.add_argument("--budget", type=int, default=20, help="oracle queries per approach "
                        "per system (MADE: 50)")
    parser.add_argument("--approaches", default="random,prototype,aflow,substitution",
                        help=f"comma-separated subset of {', '.join(APPROACHES)} (random, the "
                             "baseline, is needed for AF/EF)")
    parser.add_argument("--max-atoms", type=int, default=MAX_ATOMS,
                        help="most atoms per cell of proposals and ground-truth formula units")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE_EV_PER_ATOM,
                        help="stability tolerance, eV/atom (MADE: 0.1)")
    parser.add_argument("--relax-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="merge result files of disjoint runs (written to --out) and exit")
    args = parser.parse_args(argv)
    if args.merge:
        result = merge(args.merge)
        _table(result)
        print(f"wrote {write_json('made', result, args.out)}")
        return 0
    approaches = parse_subset(args.approaches, APPROACHES)
    if approaches is None:
        return 2
    systems = ["-".join(sorted(s.strip().split("-"))) for s in args.systems.split(",")]
    if bad := [s for s in systems if len(s.split("-")) < 2]:
        print(f"not chemical systems: {bad}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    os.environ["MATLOOP_RELAX_STEPS"] = str(args.relax_steps)
    import torch

    torch.set_num_threads(1)
    from matloop.materials.engine import MaterialsEngine

    start = time.perf_counter()
    with PeakMemory() as mem:
        result = run(systems, args.budget, approaches=approaches, max_atoms=args.max_atoms,
                     seed=args.seed, tolerance_ev_per_atom=args.tolerance)
    wall = time.perf_counter() - start
    _table(result)
    path = write_json("made", {
        "settings": {
            "systems": systems, "budget_per_approach": args.budget,
            "approaches": list(approaches), "baseline": BASELINE, "episodes": 1,
            "seed": args.seed, "max_atoms": args.max_atoms,
            "tolerance_ev_per_atom": args.tolerance, "relax_steps": args.relax_steps,
            "fmax_ev_per_angstrom": 0.05, "mlip": MaterialsEngine().mlip_label,
            "reference_scale": "mp2020", "torch_threads": 1,
            "ground_truth": "shipped MP composition energies (matloop.materials.mp_pack), "
                            "compounds within the tolerance of the hull with the elements at "
                            "zero and at most max_atoms atoms per formula unit",
            "found": "MADE num_correct_stable_formulas: ground-truth formula with an entry "
                     "within the tolerance of the hull of the elements and the proposals so far",
            "curves": {"gt_found": "num_correct_stable_formulas",
                       "stable_novel": "num_newly_discovered_stable (MADE's AF/EF default)"},
            "factors": "MADE DiscoveryCurveMetrics: AF = q_random/q_agent to reach the random "
                       "curve's final value; EF = c_agent(Q)/max(c_random(Q), 1e-8), cap 100; "
                       "mean over systems (one episode each)",
            "proposals": "each generator on every sub-system of >= 2 elements, round-robin; "
                         "store without any MP compound of the system (hold_out), which are "
                         "also holdout_formulas",
            "campaign": "offline policies, Budget(max_evaluations=budget, max_iterations=2)",
        },
        **result, "published": PUBLISHED, "wall_seconds": round(wall, 1),
        "peak_memory_mib": round(mem.peak_mib),
    }, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Do application campaigns find what a chemist would accept? End-to-end runs, answers held out.

Each question of ``evals/data/application_campaigns.json`` (21: three per application class:
photovoltaic absorbers, transparent conductors, superhard materials, battery cathodes,
dielectrics, thermoelectrics, magnets) comes with known good answers: compounds the Materials
Project lists on or near its hull that the literature uses for that application. For its run
they are **held out** of a fresh reference store (``ReferenceStore.hold_out``: their MP energies
and starter-library structures go; the composition prior then ranks blind to them), and an
offline campaign runs as ``matloop campaign`` would (``Budget(max_evaluations=N,
max_iterations=2)``, cells of at most ``--max-atoms`` atoms, seed 0).

Recorded per run, from the report's top 10 relaxed candidates:

* **hit**: a held-out known-good compound itself (same reduced formula), or its chemical
  analogue: the same stoichiometry with exactly one element exchanged for one that the
  data-mined substitution table of Hautier et al. (pymatgen's lambda table, as used by the
  substitution generator) puts at a pair probability of at least ``ANALOGUE_MIN_PROBABILITY``
  (e.g. NaCrO2 for NaFeO2, CsGeI3 for CsSnI3; not NaCl for NaF... both elements differ in role);
* **meets the targets**: every property target of the parsed objective (explicit or implied by
  the application) evaluated by the run's models and met by the value, and the candidate within
  0.1 eV/atom of the hull of *all* shipped MP compositions (the held-out ones restored);
  with the models' uncertainty, the probability that every target is met (Gaussian, 1-sigma
  from the model; a value without an uncertainty counts as exact) is recorded too;
* **on topic**: the parsed application is the question's, and no candidate contains an
  excluded element;
* wall time of the run (process start-up and model loading not included).

Run from the repository root (about 2-4 minutes per question on 2 cores)::

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python -m evals.application_campaigns \
        [--budget 10] [--max-atoms 12] [--only pv_halide_perovskite,cathode_na]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from evals.common import REPO, RESULTS, write_json

QUERIES = REPO / "evals" / "data" / "application_campaigns.json"
WORK = RESULTS / "cache" / "application_campaigns"
CACHE = RESULTS / "cache" / "application_campaigns.sqlite"
STABLE_EV_PER_ATOM = 0.1
ANALOGUE_MIN_PROBABILITY = 0.03
#: Data-directory items trained at first use that every run may share (the questions' held-out
#: compounds are handled by the composition prior's blind retraining, not by these files).
SHARED = ("default_models",)
#: The engine's application profile each class of question should be read as.
APPLICATION = {"photovoltaic absorber": "photovoltaic absorber",
               "transparent conductor": "transparent conductor",
               "superhard material": "hard material", "battery cathode": "battery cathode",
               "dielectric": "dielectric", "thermoelectric": "thermoelectric",
               "magnet": "permanent magnet"}


def load_queries(path: Path = QUERIES) -> list[dict[str, Any]]:
    """The questions, each with its known good answers (reduced formulas)."""
    from pymatgen.core import Composition

    queries = json.loads(path.read_text())["queries"]
    for q in queries:
        q["known_good"] = [Composition(f).reduced_formula for f in q["known_good"]]
        q.setdefault("application", APPLICATION[q["category"]])
    return queries


# -- judging ------------------------------------------------------------------------------------

def analogue_of(formula: str, known: list[str]) -> str | None:
    """The known-good compound that ``formula`` is a one-element chemical analogue of, if any."""
    from pymatgen.core import Composition

    from matloop.generation.similarity import element_probability

    comp = Composition(formula).reduced_composition
    for k in known:
        kc = Composition(k).reduced_composition
        if kc.anonymized_formula != comp.anonymized_formula:
            continue
        a = {e.symbol: comp[e] for e in comp.elements}
        b = {e.symbol: kc[e] for e in kc.elements}
        only_a, only_b = set(a) - set(b), set(b) - set(a)
        if len(only_a) != 1 or len(only_b) != 1:
            continue
        (new,), (old,) = only_a, only_b
        if any(abs(a[e] - b[e]) > 1e-6 for e in set(a) & set(b)) or \
                abs(a[new] - b[old]) > 1e-6:
            continue
        if element_probability(old, new) >= ANALOGUE_MIN_PROBABILITY:
            return k
    return None


class MPHull:
    """Hull distances against every shipped MP composition (nothing held out)."""

    def __init__(self, path: Path) -> None:
        from matloop.materials.references import ReferenceStore

        self.store = ReferenceStore(path)

    def e_above_hull(self, formula: str, formation_energy_ev_per_atom: float) -> float:
        from pymatgen.core import Composition

        from matloop.materials.hull import stability_from_formation_energies

        comp = Composition(formula)
        phases = self.store.phases([e.symbol for e in comp.elements])
        refs = [(p.composition, p.energy_ev_per_atom) for p in phases
                if p.energy_kind == "formation"]
        return stability_from_formation_energies(
            comp, formation_energy_ev_per_atom, refs).e_above_hull_ev_per_atom


def target_checks(candidate: Any, objective: Any) -> dict[str, Any]:
    """Per target: value, 1-sigma, met, probability of being met
    (:func:`matloop.agents.scoring.probability_in_target`)."""
    from matloop.agents.scoring import probability_in_target, target_value

    out: dict[str, Any] = {}
    for t in objective.property_targets:
        if t.name == "e_above_hull":
            continue
        value = target_value(candidate, t)
        if value is None:
            out[t.name] = {"value": None, "met": False, "probability": 0.0}
            continue
        sigma = candidate.property_uncertainties.get(t.key)
        out[t.name] = {"value": round(value, 4), "sigma": round(sigma, 4) if sigma else None,
                       "met": t.contains(value),
                       "probability": round(probability_in_target(candidate, t) or 0.0, 3)}
    return out


def judge(report: Any, query: dict[str, Any], hull: MPHull) -> dict[str, Any]:
    """Hits, target fit and topicality of one report's top 10."""
    objective = report.objective
    top = [c for c in report.candidates if c.status == "ok"
           and c.formation_energy_ev_per_atom is not None][:10]
    rows = []
    for c in top:
        e_mp = hull.e_above_hull(c.formula, c.formation_energy_ev_per_atom)
        checks = target_checks(c, objective) if objective else {}
        p_all = math.prod(v["probability"] for v in checks.values()) if checks else 1.0
        exact = c.formula in query["known_good"]
        rows.append({
            "id": c.id, "formula": c.formula, "method": c.method,
            "e_above_run_hull_ev_per_atom": round(c.e_above_hull_ev_per_atom, 4),
            "e_above_mp_hull_ev_per_atom": round(e_mp, 4),
            "novelty": c.novelty, "targets": checks,
            "meets_targets": all(v["met"] for v in checks.values()),
            "meets_targets_and_mp_hull": all(v["met"] for v in checks.values())
            and e_mp <= STABLE_EV_PER_ATOM,
            "probability_targets_met": round(p_all, 3),
            "known_good": exact,
            "analogue_of": None if exact else analogue_of(c.formula, query["known_good"])})
    excluded = set(objective.excluded_elements) if objective else set()
    from pymatgen.core import Composition

    off = [r["formula"] for r in rows
           if {e.symbol for e in Composition(r["formula"]).elements} & excluded]
    n = len(rows)
    return {
        "application_parsed": objective.application if objective else None,
        "application_recognised": bool(objective) and objective.application
        == query["application"],
        "targets": [t.describe() for t in objective.property_targets] if objective else [],
        "top10": rows, "non_empty": n > 0,
        "on_topic": n > 0 and not off and bool(objective)
        and objective.application == query["application"],
        "excluded_element_candidates": off,
        "hit_exact": sorted({r["formula"] for r in rows if r["known_good"]}),
        "hit_analogue": sorted({f"{r['formula']} ~ {r['analogue_of']}" for r in rows
                                if r["analogue_of"]}),
        "hit": any(r["known_good"] or r["analogue_of"] for r in rows),
        "top10_meeting_targets_and_mp_hull": sum(r["meets_targets_and_mp_hull"] for r in rows),
        "top10_expected_meeting": round(sum(
            r["probability_targets_met"] for r in rows
            if r["e_above_mp_hull_ev_per_atom"] <= STABLE_EV_PER_ATOM), 2),
        "top10_count": n,
    }


# -- running ------------------------------------------------------------------------------------

def run_one(query: dict[str, Any], *, budget: int, max_atoms: int, seed: int,
            mp_hull: MPHull) -> dict[str, Any]:
    """One held-out campaign and its judgement."""
    from matloop.app.campaign import start_campaign
    from matloop.config import get_settings
    from matloop.materials.references import ReferenceStore
    from matloop.runtime import Budget

    data = WORK / query["name"]
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    template = WORK / "_template"
    for item in SHARED:
        if (template / item).exists():
            shutil.copytree(template / item, data / item)
    os.environ.update({"MATLOOP_DATA_DIR": str(data), "MATLOOP_EVALUATION_CACHE": str(CACHE),
                       "MATLOOP_REFERENCE_SCALE": "mp2020"})
    get_settings.cache_clear()
    store = ReferenceStore(get_settings().reference_path)
    store.ensure_starter_library()
    removed = store.hold_out(query["known_good"], reason="application benchmark answer")
    leaked = [f for f in query["known_good"] if store.known_composition(f) is not None]
    store.close()
    if leaked:
        raise RuntimeError(f"held-out answers still known to the store: {leaked}")
    t0 = time.perf_counter()
    run = start_campaign(query["query"], out_dir=data / "runs", seed=seed, max_atoms=max_atoms,
                         budget=Budget(max_evaluations=budget, max_iterations=2),
                         settings=get_settings(), campaign_id=query["name"])
    report = run.run()
    wall = time.perf_counter() - t0
    for item in SHARED:
        if (data / item).exists() and not (template / item).exists():
            template.mkdir(parents=True, exist_ok=True)
            shutil.copytree(data / item, template / item)
    result = judge(report, query, mp_hull)
    return {"query": query["query"], "category": query["category"],
            "known_good_held_out": query["known_good"], "held_out_phases": removed,
            "status": report.status, "wall_s": round(wall, 1),
            "mlip_evaluations": report.usage.mlip_evaluations,
            "systems": sorted({c.chemical_system for c in report.candidates}),
            **result}


def summarise(per_query: dict[str, Any]) -> dict[str, Any]:
    """Rates over the runs, and per application class."""
    runs = list(per_query.values())
    top = [r for q in runs for r in q["top10"]]

    def rates(qs: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [r for q in qs for r in q["top10"]]
        return {"runs": len(qs), "hit_rate": round(sum(q["hit"] for q in qs) / len(qs), 3),
                "exact_hit_rate": round(sum(bool(q["hit_exact"]) for q in qs) / len(qs), 3),
                "top10_meeting_targets_and_mp_hull": round(
                    sum(r["meets_targets_and_mp_hull"] for r in rows) / len(rows), 3)
                if rows else None}

    by_class: dict[str, list[dict[str, Any]]] = {}
    for q in runs:
        by_class.setdefault(q["category"], []).append(q)
    walls = [q["wall_s"] for q in runs]
    return {
        **rates(runs),
        "non_empty_rate": round(sum(q["non_empty"] for q in runs) / len(runs), 3),
        "on_topic_rate": round(sum(q["on_topic"] for q in runs) / len(runs), 3),
        "application_recognised_rate": round(
            sum(q["application_recognised"] for q in runs) / len(runs), 3),
        "top10_candidates": len(top),
        "top10_within_mp_hull_0.1": round(sum(r["e_above_mp_hull_ev_per_atom"]
                                              <= STABLE_EV_PER_ATOM for r in top) / len(top), 3)
        if top else None,
        "top10_meeting_targets_by_value": round(sum(r["meets_targets"] for r in top) / len(top),
                                                3) if top else None,
        "top10_expected_meeting_with_uncertainty": round(
            sum(q["top10_expected_meeting"] for q in runs) / len(top), 3) if top else None,
        "median_wall_s": round(statistics.median(walls), 1),
        "max_wall_s": round(max(walls), 1),
        "by_class": {k: rates(v) for k, v in sorted(by_class.items())},
    }


def main(argv: list[str] | None = None) -> None:
    """Run the questions (all, or ``--only``) and write ``application_campaigns.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=10, help="MLIP evaluations per run")
    parser.add_argument("--max-atoms", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="comma-separated question names")
    parser.add_argument("--out", type=Path, default=None, help="result file (default: "
                        "evals/results/application_campaigns.json)")
    parser.add_argument("--merge", nargs="*", type=Path, default=[],
                        help="result files of partial runs to merge before writing")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    queries = load_queries()
    if args.only:
        wanted = set(args.only.split(","))
        if unknown := wanted - {q["name"] for q in queries}:
            raise SystemExit(f"unknown questions: {sorted(unknown)}")
        queries = [q for q in queries if q["name"] in wanted]
    per_query: dict[str, Any] = {}
    for path in args.merge:
        per_query.update(json.loads(path.read_text())["per_query"])
    WORK.mkdir(parents=True, exist_ok=True)
    hull = MPHull(WORK / "mp_hull.sqlite")
    settings = {"budget_mlip_evaluations": args.budget, "max_iterations": 2,
                "max_atoms": args.max_atoms, "seed": args.seed,
                "stable_ev_per_atom": STABLE_EV_PER_ATOM,
                "analogue_min_probability": ANALOGUE_MIN_PROBABILITY,
                "queries_file": str(QUERIES.relative_to(REPO)), "reference_scale": "mp2020",
                "evaluation_cache": str(CACHE.relative_to(REPO))}
    t0 = time.perf_counter()
    for q in queries:
        print(f"== {q['name']}: {q['query']}", flush=True)
        per_query[q["name"]] = run_one(q, budget=args.budget, max_atoms=args.max_atoms,
                                       seed=args.seed, mp_hull=hull)
        r = per_query[q["name"]]
        print(f"   hit={r['hit']} exact={r['hit_exact']} analogue={r['hit_analogue']} "
              f"meeting={r['top10_meeting_targets_and_mp_hull']}/{r['top10_count']} "
              f"wall={r['wall_s']} s", flush=True)
        write_json("application_campaigns", {
            "settings": settings, "summary": summarise(per_query), "per_query": per_query,
            "wall_seconds": round(time.perf_counter() - t0, 1), "complete": False}, args.out)
    write_json("application_campaigns", {
        "settings": settings, "summary": summarise(per_query), "per_query": per_query,
        "wall_seconds": round(time.perf_counter() - t0, 1), "complete": True}, args.out)


if __name__ == "__main__":
    main()

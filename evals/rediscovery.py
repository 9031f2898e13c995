"""Rediscovery benchmark: do the generators and a campaign find known stable compounds they
were not told about, when the target's own structure type is hidden too?

For each system of ``evals/data/rediscovery_systems.json`` (binary, ternary and quaternary
oxides, halides, chalcogenides, nitrides, pnictides, intermetallics, Zintl and MAX phases) the
targets, compositions with e_above_hull = 0 in ``hull/mp_e_above_hull_compositions_crabnet.csv.gz``
and a formation energy in the MP files, are held out of a fresh reference store
(``ReferenceStore.hold_out``: their MP energies and their starter-library structures go, and
stay out when the starter library is re-checked). The store keeps the rest of the system's MP
formation energies (matbench and roost files, lowest per formula) and the MP2020 elemental
references, so hulls are on the ``mp2020`` scale that CHGNet energies share.

Each target's own structure type (``structure_types`` in the data file: names of the 75-type
library or AFLOW labels) is removed from every prototype source of the generators
(``GenerationRequest.exclude_prototypes``; the same structure in the other library goes too),
the starter-library structure of the target is an ``exclude_structures`` entry, and the targets
are ``holdout_formulas`` (no substitution parent or random-search analogue of that formula).
Other known compounds of the held-out type stay in the store (substitution may start from them;
``--strict`` removes them too).

Approaches, each with the same budget of N MLIP relaxations (default 20):

* ``prototype``: decorations of the 75-type library; ``aflow``: of pymatgen's AFLOW library;
* ``substitution``: data-mined ion substitution from every source (store, both libraries);
* ``random_prior``: pyxtal random search with space groups and Wyckoff patterns drawn from
  known structures of similar chemistry (25 % of draws uniform);
* ``random``: pyxtal random search, space group uniform over 2-230;
* ``campaign``: the offline campaign, unchanged ("Find new stable compounds in the X system",
  ``Budget(max_evaluations=N, max_iterations=2)``); it cannot be told to hide structure types,
  so it still sees every prototype. Chemical-system mode only.

Two modes: ``chemsys`` (the generator is given the chemical system and must also find the
composition, as the campaign must) writes ``rediscovery.json``; ``composition`` (the generator is
given the target's formula: structure search proper, one search per target) writes
``rediscovery_composition.json``. Candidates are relaxed in generation order, one at a time,
and an approach stops once every target of its request has been hit.

A target is rediscovered when a relaxed candidate with its reduced formula lies at most
0.05 eV/atom above the hull of the remaining phases. Also recorded: the first-hit index, the
gap between the candidate's formation energy and MP's for the held-out target (a stricter test:
with one compound per binary the remaining hull is only the elements), a structure-level match
(StructureMatcher ltol 0.2, stol 0.3, angle_tol 5) against the starter library's structure of
the target where it has one, whether the hit has the held-out structure type, and how the hit
was made (method, parent, prototype, prior draw).

Relaxations are cached in ``evals/results/cache/rediscovery.sqlite``. Run from the repository
root (the full run, both modes, every approach and system)::

    OMP_NUM_THREADS=1 .venv/bin/python -m evals.rediscovery --mode both

    # a subset: --systems Cl-Na,Al-Mg-O --approaches aflow,random --budget 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.common import (
    REPO,
    RESULTS,
    PeakMemory,
    cache_entries,
    load_mp_phases,
    mp_formation_energies,
    parse_benchmark_args,
    parse_subset,
    write_json,
)

SYSTEMS_FILE = REPO / "evals" / "data" / "rediscovery_systems.json"
LABELS = "hull/mp_e_above_hull_compositions_crabnet.csv.gz"
CACHE = RESULTS / "cache" / "rediscovery.sqlite"
THRESHOLD_EV_PER_ATOM = 0.05
APPROACHES = ("campaign", "prototype", "aflow", "substitution", "random_prior", "random")
GENERATOR_APPROACHES = APPROACHES[1:]
MODES = ("chemsys", "composition")
RESULT_NAMES = {"chemsys": "rediscovery", "composition": "rediscovery_composition"}
QUERY = "Find new stable compounds in the {system} system"
#: Candidates relaxed per batch before checking whether every target has been hit (1: the
#: count stops exactly at the hit; relaxations run one after another in any case).
CHUNK = 1


@dataclass(frozen=True)
class System:
    """One benchmark system, its held-out targets (reduced formulas) and their types."""

    chemsys: str
    kind: str
    targets: tuple[str, ...]
    structure_types: dict[str, tuple[str, ...]] = field(default_factory=dict)
    max_atoms: int | None = None
    note: str = ""

    @property
    def query(self) -> str:
        """The question the campaign is asked."""
        return QUERY.format(system=self.chemsys)

    def types_of(self, targets: tuple[str, ...] | None = None) -> list[str]:
        """Structure types to hide for some (default all) targets."""
        out: list[str] = []
        for t in targets or self.targets:
            out += [x for x in self.structure_types.get(t, ()) if x not in out]
        return out


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
        types = {Composition(t).reduced_formula: tuple(v)
                 for t, v in (entry.get("structure_types") or {}).items()}
        if unknown := set(types) - set(targets):
            raise MatloopError(f"{path}: structure_types of {sorted(unknown)}, which are not "
                               f"targets of {chemsys}")
        out.append(System(chemsys, entry["kind"], targets, types, entry.get("max_atoms"),
                          entry.get("note", "")))
    if not out:
        raise MatloopError(f"{path}: no systems", hint='add {"chemsys", "kind", "targets"} items')
    return out


def check_targets(systems: list[System], data_dir: Path) -> dict[str, float]:
    """MP e_above_hull label of every target; each must be 0 (on the hull) and have an MP
    formation energy; every held-out structure type must be a known name."""
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
    energies = mp_formation_energies(data_dir, formulas=wanted)
    if missing := sorted(wanted - set(energies)):
        raise MatloopError(f"targets without an MP formation energy: {', '.join(missing)}",
                           hint="targets must be in the matbench or roost formation files")
    from matloop.generation.holdout import resolve_exclusions

    for system in systems:
        resolve_exclusions(prototypes=system.types_of())  # raises on an unknown name
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


def holdout_options(system: System, held: dict[str, Any], targets: tuple[str, ...], *,
                    strict: bool) -> dict[str, Any]:
    """GenerationRequest fields that hide the targets, their structures and types."""
    return {"exclude_prototypes": system.types_of(targets),
            "exclude_structures": [s.as_dict() for t in targets
                                   for s in held["reference_structures"].get(t) or []],
            "holdout_formulas": list(system.targets), "holdout_strict": strict}


def _how(candidate: Any) -> dict[str, Any]:
    """The provenance that says how a candidate was made (kept short)."""
    prov = candidate.provenance
    keys = ("parent", "parent_source", "prototype", "aflow_label", "prior", "analogue",
            "spacegroup_requested", "probability", "score")
    return {k: prov[k] for k in keys if prov.get(k) is not None}


STOPS = ("hit", "near_mp", "budget")


def _is_hit(row: dict[str, Any], target: str, held: dict[str, Any], stop: str) -> bool:
    """Whether a relaxed row ends the search for a target under a stop rule."""
    e_hull = row["e_above_hull_ev_per_atom"]
    if row["formula"] != target or row["status"] != "ok" or e_hull is None \
            or e_hull > THRESHOLD_EV_PER_ATOM:
        return False
    if stop == "near_mp":
        mp = held["mp_formation_ev_per_atom"].get(target)
        return mp is not None and row["formation_energy_ev_per_atom"] - mp \
            <= THRESHOLD_EV_PER_ATOM
    return stop == "hit"


def run_generator_approach(system: System, approach: str, budget: int, *, max_atoms: int,
                           seed: int, held: dict[str, Any], targets: tuple[str, ...] | None = None,
                           strict: bool = False, stop: str = "hit") -> dict[str, Any]:
    """Generate ``budget`` candidates with one generator and relax them in generation order,
    :data:`CHUNK` at a time, until every wanted target is hit.

    ``targets``: the composition to search (composition mode, one target), or None for the
    whole chemical system. ``stop``: ``hit`` (within 0.05 eV/atom of the remaining hull),
    ``near_mp`` (also within 0.05 eV/atom of MP's formation energy of the target) or
    ``budget`` (relax every candidate).
    """
    from pymatgen.core import Structure

    from matloop.config import get_settings
    from matloop.generation import GenerationError, GenerationRequest, generate_report
    from matloop.materials.engine import MaterialsEngine

    engine = MaterialsEngine(get_settings())
    wanted = targets or system.targets
    where = {"composition": targets[0]} if targets else {"chemsys": system.chemsys}
    method = "random" if approach.startswith("random") else approach
    request = GenerationRequest(**where, methods=[method], n=budget, max_atoms=max_atoms,
                                seed=seed, random_prior=approach == "random_prior",
                                **holdout_options(system, held, wanted, strict=strict))
    t0 = time.perf_counter()
    try:
        report = generate_report(request, store=engine.store)
    except GenerationError as exc:
        return {"rows": [], "status": f"no candidates: {exc}", "generation_seconds":
                round(time.perf_counter() - t0, 1)}
    generation_seconds = time.perf_counter() - t0
    valid = [c for c in report.candidates if c.valid]
    rows: list[dict[str, Any]] = []
    for start in range(0, len(valid), CHUNK):
        chunk = valid[start:start + CHUNK]
        preds = engine.predict([c.get_structure() for c in chunk], sources=[c.id for c in chunk])
        for c, p in zip(chunk, preds, strict=True):
            rows.append({
                "formula": p.formula, "status": p.status, "method": approach,
                "e_above_hull_ev_per_atom": p.e_above_hull_ev_per_atom,
                "formation_energy_ev_per_atom": p.formation_energy_ev_per_atom,
                "parent": c.provenance.get("parent"), "how": _how(c),
                "spacegroup_initial": c.spacegroup, "n_atoms": c.n_atoms,
                "structure": Structure.from_str(p.relaxed_cif, fmt="cif") if p.relaxed_cif
                else None})
        if stop != "budget" and all(any(_is_hit(r, t, held, stop) for r in rows)
                                     for t in wanted):
            break
    return {"rows": rows, "generation_seconds": round(generation_seconds, 1),
            "status": f"{len(report.candidates)} candidates ({len(report.candidates) - len(valid)}"
                      f" invalid), {len(rows)} relaxed", "notes": report.notes}


def score(rows: list[dict[str, Any]], system: System, held: dict[str, Any], *,
          targets: tuple[str, ...] | None = None,
          type_structures: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """Which targets came out within the threshold, after how many evaluations.

    ``targets``: the targets searched for (default every target of the system);
    ``type_structures``: per target, example structures of its held-out types (a hit of the
    same structure type, StructureMatcher ``fit_anonymous``, is flagged).
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from matloop.generation.holdout import same_structure_type

    matcher = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)
    per_target = {}
    for target in targets or system.targets:
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
        types = (type_structures or {}).get(target) or []
        first = hits[0][1] if hits else None
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
            "hit_has_held_out_type": None if first is None or not types
            or first["structure"] is None else any(
                same_structure_type(first["structure"], t) for t in types),
            "found_by": None if first is None else {"method": first["method"],
                                                    "parent": first["parent"],
                                                    **({"how": first["how"]}
                                                       if first.get("how") else {})},
        }
    return per_target


def _searches(system: System, mode: str) -> list[tuple[str, tuple[str, ...] | None]]:
    """(label, targets) of the searches of one system: the chemical system, or each target."""
    if mode == "chemsys":
        return [(system.chemsys, None)]
    return [(t, (t,)) for t in system.targets]


def run(systems: list[System], budget: int, *, data_dir: Path, max_atoms: int, seed: int,
        approaches: tuple[str, ...], mode: str = "chemsys", strict: bool = False,
        stop: str = "hit") -> dict[str, Any]:
    """Every approach on every system (each target, in composition mode); per-system and
    overall figures."""
    from matloop.config import get_settings
    from matloop.generation.holdout import resolve_exclusions

    CACHE.parent.mkdir(parents=True, exist_ok=True)
    if mode == "composition":
        approaches = tuple(a for a in approaches if a != "campaign")
    per_system: dict[str, Any] = {}
    for system in systems:
        tmp = Path(tempfile.mkdtemp(prefix=f"matloop-rediscovery-{system.chemsys}-"))
        # The campaign opens its engine from the settings: point them at the held-out store.
        os.environ.update({"MATLOOP_DATA_DIR": str(tmp), "MATLOOP_EVALUATION_CACHE": str(CACHE),
                           "MATLOOP_REFERENCE_SCALE": "mp2020"})
        get_settings.cache_clear()
        held = prepare_store(system, data_dir, get_settings().reference_path)
        cell = system.max_atoms or max_atoms
        types = {t: list(resolve_exclusions(prototypes=system.types_of((t,))).type_structures)
                 for t in system.targets}
        entry: dict[str, Any] = {"kind": system.kind, "targets": list(system.targets),
                                 "query": system.query, "max_atoms": cell,
                                 "held_out_structure_types": {t: list(v) for t, v in
                                                              system.structure_types.items()},
                                 "held_out_phases": held["removed_phases"],
                                 "mp_formation_ev_per_atom": held["mp_formation_ev_per_atom"],
                                 **({"note": system.note} if system.note else {}),
                                 "approaches": {}}
        for approach in approaches:
            rows: list[dict[str, Any]] = []
            targets: dict[str, Any] = {}
            statuses, extra = [], {}
            t0, cached0 = time.perf_counter(), cache_entries(CACHE)
            for label, wanted in _searches(system, mode):
                if approach == "campaign":
                    out = run_campaign_approach(system, budget, out_dir=tmp / "runs",
                                                max_atoms=cell, seed=seed)
                    extra = {"usage": out["usage"], "hides_structure_types": False}
                else:
                    out = run_generator_approach(system, approach, budget, max_atoms=cell,
                                                 seed=seed, held=held, targets=wanted,
                                                 strict=strict, stop=stop)
                rows += out["rows"]
                statuses.append(f"{label}: {out['status']}")
                targets.update(score(out["rows"], system, held, targets=wanted,
                                     type_structures=types))
            wall = time.perf_counter() - t0
            found = [t for t, v in targets.items() if v["rediscovered"]]
            entry["approaches"][approach] = {
                "status": "; ".join(statuses), "evaluations": len(rows),
                "formulas_evaluated": sorted({r["formula"] for r in rows}),
                "rediscovered": found, "rate": round(len(found) / len(system.targets), 3),
                "targets": targets, "wall_seconds": round(wall, 1),
                "mlip_results_computed": cache_entries(CACHE) - cached0, **extra,
            }
            print(f"[{system.chemsys}] {approach:<13} {len(found)}/{len(system.targets)} "
                  f"rediscovered in {len(rows)} evaluations, {wall:.0f} s", flush=True)
        per_system[system.chemsys] = entry
    return {"per_system": per_system, "overall": overall(per_system, approaches)}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def overall(per_system: dict[str, Any], approaches: tuple[str, ...]) -> dict[str, Any]:
    """Totals per approach over systems, and ratios against uniform random search."""
    out = {}
    for a in approaches:
        rows = [s["approaches"][a] for s in per_system.values() if a in s["approaches"]]
        if not rows:
            continue
        per_target = [t for r in rows for t in r["targets"].values()]
        n_targets = len(per_target)
        found = sum(len(r["rediscovered"]) for r in rows)
        evaluations = sum(r["evaluations"] for r in rows)
        firsts = [t["evaluations_to_first"] for t in per_target
                  if t["evaluations_to_first"] is not None]
        matches = [t["structure_match"] for t in per_target if t["structure_match"] is not None]
        strict = sum(t["hit_within_threshold_of_mp"] for t in per_target)
        own_type = [t["hit_has_held_out_type"] for t in per_target
                    if t.get("hit_has_held_out_type") is not None]
        out[a] = {
            "systems": len(rows), "targets": n_targets, "rediscovered": found,
            "rate": round(found / n_targets, 3) if n_targets else None,
            "rediscovered_within_threshold_of_mp": strict,
            "systems_with_a_rediscovery": sum(bool(r["rediscovered"]) for r in rows),
            "evaluations": evaluations,
            "evaluations_per_rediscovery": round(evaluations / found, 1) if found else None,
            "mean_evaluations_to_first_hit": round(sum(firsts) / len(firsts), 1) if firsts
            else None,
            "median_evaluations_to_first_hit": _median(firsts),
            "hits_in_held_out_type": f"{sum(own_type)}/{len(own_type)} hits with a held-out "
                                     "type to compare",
            "structure_matches": f"{sum(matches)}/{len(matches)} targets with a reference "
                                 "structure",
            "wall_seconds": round(sum(r["wall_seconds"] for r in rows), 1),
        }
    base = out.get("random", {}).get("evaluations_per_rediscovery")
    for r in out.values():
        per = r["evaluations_per_rediscovery"]
        r["evaluations_per_rediscovery_vs_random"] = round(per / base, 2) if per and base \
            else None
    return out


def _table(result: dict[str, Any]) -> None:
    print(f"\n{'approach':<14}{'targets':>8}{'found':>7}{'rate':>7}{'near MP':>8}{'evals':>7}"
          f"{'evals/hit':>10}{'1st med':>8}{'1st mean':>9}{'wall s':>8}")
    for a, r in result["overall"].items():
        per = "-" if r["evaluations_per_rediscovery"] is None else r["evaluations_per_rediscovery"]
        med = "-" if r["median_evaluations_to_first_hit"] is None else \
            r["median_evaluations_to_first_hit"]
        mean = "-" if r["mean_evaluations_to_first_hit"] is None else \
            r["mean_evaluations_to_first_hit"]
        print(f"{a:<14}{r['targets']:>8}{r['rediscovered']:>7}{r['rate']:>7.0%}"
              f"{r['rediscovered_within_threshold_of_mp']:>8}{r['evaluations']:>7}{per!s:>10}"
              f"{med!s:>8}{mean!s:>9}{r['wall_seconds']:>8.0f}")


def merge(paths: list[Path]) -> dict[str, Any]:
    """One result from runs of disjoint parts (other systems, or other approaches of the same
    systems; same mode and settings), e.g. run in parallel with ``--systems``,
    ``--approaches`` and ``--out``; the overall figures are recomputed."""
    from matloop.errors import MatloopError

    parts = [json.loads(Path(p).read_text()) for p in paths]
    modes = {p["settings"]["mode"] for p in parts}
    if len(modes) != 1:
        raise MatloopError(f"cannot merge results of different modes {sorted(modes)}",
                           hint="merge chemsys and composition runs separately")
    per_system: dict[str, Any] = {}
    for part in parts:
        for name, entry in part["per_system"].items():
            if name not in per_system:
                per_system[name] = json.loads(json.dumps(entry))
                continue
            have = per_system[name]["approaches"]
            if clash := set(have) & set(entry["approaches"]):
                raise MatloopError(f"{name}: approaches {sorted(clash)} are in more than one "
                                   "file", hint="merge runs of disjoint systems or approaches")
            have.update(entry["approaches"])
    approaches = tuple(a for a in APPROACHES if any(a in p["overall"] for p in parts))
    settings = dict(parts[0]["settings"])
    settings["approaches"] = list(approaches)
    settings["merged_from"] = [str(p) for p in paths]
    settings["max_atoms_per_system"] = {k: v for p in parts
                                        for k, v in p["settings"].get("max_atoms_per_system",
                                                                      {}).items()}
    return {"settings": settings, "per_system": per_system,
            "overall": overall(per_system, approaches),
            "wall_seconds": round(sum(p.get("wall_seconds", 0.0) for p in parts), 1),
            "wall_seconds_note": "sum over the merged runs (they may have run in parallel)",
            "peak_memory_mib": max(p.get("peak_memory_mib", 0) for p in parts)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=(*MODES, "both"), default="chemsys",
                        help="chemsys: search the chemical system (rediscovery.json); "
                             "composition: search each target's formula "
                             "(rediscovery_composition.json); both: one after the other")
    parser.add_argument("--budget", type=int, default=20,
                        help="MLIP relaxations per approach per search (default 20)")
    parser.add_argument("--systems", default=None,
                        help="comma-separated chemical systems from the data file (default all)")
    parser.add_argument("--approaches", default=",".join(APPROACHES),
                        help=f"comma-separated subset of {', '.join(APPROACHES)}")
    parser.add_argument("--max-atoms", type=int, default=20,
                        help="most atoms per cell (a system's own max_atoms wins)")
    parser.add_argument("--relax-steps", type=int, default=300,
                        help="optimiser steps per relaxation (not converged: not a hit)")
    parser.add_argument("--strict", action="store_true",
                        help="also drop every known structure of a held-out type from "
                             "substitution parents and random-search analogues")
    parser.add_argument("--stop", choices=STOPS, default="hit",
                        help="when a generator search stops: at the first hit (default), at "
                             "the first hit within 0.05 eV/atom of MP's formation energy, or "
                             "after the whole budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--systems-file", type=Path, default=SYSTEMS_FILE)
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="merge result files of disjoint --systems runs into one "
                             "(written to --out, or the mode's default file) and exit")
    args = parse_benchmark_args(parser, argv)
    if args is None:
        return 2
    if args.merge:
        result = merge(args.merge)
        _table(result)
        path = write_json(RESULT_NAMES[result["settings"]["mode"]], result, args.out)
        print(f"wrote {path}")
        return 0
    approaches = parse_subset(args.approaches, APPROACHES)
    if approaches is None:
        return 2
    systems = load_systems(args.systems_file)
    if args.systems:
        wanted = {"-".join(sorted(s.strip().split("-"))) for s in args.systems.split(",")}
        if unknown := wanted - {s.chemsys for s in systems}:
            print(f"systems not in {args.systems_file}: {sorted(unknown)}", file=sys.stderr)
            return 2
        systems = [s for s in systems if s.chemsys in wanted]
    if args.out is not None and args.mode == "both":
        print("--out needs one --mode (chemsys or composition)", file=sys.stderr)
        return 2
    labels = check_targets(systems, args.data)
    warnings.filterwarnings("ignore")
    os.environ["MATLOOP_RELAX_STEPS"] = str(args.relax_steps)
    import torch

    torch.set_num_threads(1)
    from matloop.materials.engine import MaterialsEngine

    for mode in (MODES if args.mode == "both" else (args.mode,)):
        start = time.perf_counter()
        with PeakMemory() as mem:
            result = run(systems, args.budget, data_dir=args.data, max_atoms=args.max_atoms,
                         seed=args.seed, approaches=approaches, mode=mode, strict=args.strict,
                         stop=args.stop)
        wall = time.perf_counter() - start
        print(f"\nmode {mode}")
        _table(result)
        path = write_json(RESULT_NAMES[mode], {
            "settings": {"mode": mode, "budget_per_approach": args.budget,
                         "max_atoms": args.max_atoms,
                         "max_atoms_per_system": {s.chemsys: s.max_atoms for s in systems
                                                  if s.max_atoms},
                         "relax_steps": args.relax_steps, "fmax_ev_per_angstrom": 0.05,
                         "seed": args.seed, "approaches": list(result["overall"]),
                         "threshold_ev_per_atom": THRESHOLD_EV_PER_ATOM,
                         "reference_scale": "mp2020", "torch_threads": 1,
                         "mlip": MaterialsEngine().mlip_label, "strict_holdout": args.strict,
                         "relaxation_batches": CHUNK,
                         "stop": f"{args.stop}: a generator search stops once every target of "
                                 "it is hit (hit), hit near MP's formation energy (near_mp), "
                                 "or never (budget); the campaign runs its whole budget",
                         "systems_file": str(args.systems_file.relative_to(REPO))
                         if args.systems_file.is_relative_to(REPO) else str(args.systems_file),
                         "target_labels_e_above_hull": labels,
                         "holdout": "targets' structure types out of both prototype libraries "
                                    "(exclude_prototypes), their starter structures "
                                    "(exclude_structures) and formulas (holdout_formulas)",
                         "campaign": "offline policies, Budget(max_evaluations=budget, "
                                     "max_iterations=2); sees every prototype",
                         "prototype": "75-type library decorations, radius match first",
                         "aflow": "AFLOW library decorations, assignment score first",
                         "substitution": "Hautier data-mined substitution from the store and "
                                         "both libraries, most probable first",
                         "random_prior": "pyxtal, space group / Wyckoff pattern from analogues "
                                         "(25 % uniform)",
                         "random": "pyxtal, space group uniform 2-230",
                         "structure_match": "StructureMatcher ltol 0.2, stol 0.3, angle_tol 5 "
                                            "vs the starter library's structure"},
            **result, "wall_seconds": round(wall, 1), "peak_memory_mib": round(mem.peak_mib),
        }, args.out)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

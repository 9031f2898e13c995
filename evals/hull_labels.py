"""Composition-level check of the project's convex-hull code against Materials Project labels.

No MLIP is involved. For every labelled composition in a deterministic selection of chemical
systems we take its DFT formation energy from reference files, build the hull of every reference
in its chemical system (subsystems included) with
:func:`matloop.materials.hull.stability_from_formation_energies`, and compare the computed energy
above the hull with the label from a separate MP e_above_hull file.

Data (see ``shared/data/MANIFEST.md``, section "2. hull/"):

* references: ``matbench_mp_e_form_compositions.csv.gz`` (MP 2018, formula/target) and
  ``mp_formation_energies_roost_2020.csv.gz`` (MP ~2019/2020, composition/
  formation_energy_per_atom); the headline uses their union, lowest energy per reduced formula;
* labels: ``mp_e_above_hull_compositions_crabnet.csv.gz`` (formula, e_above_hull).

Run from the repository root::

    .venv/bin/python -m evals.hull_labels [--systems 30] [--seed 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from matloop.materials.hull import stability_from_formation_energies

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "evals" / "results" / "hull_labels.json"

LABEL_FILE = "hull/mp_e_above_hull_compositions_crabnet.csv.gz"
MATBENCH_FILE = "hull/matbench_mp_e_form_compositions.csv.gz"
ROOST_FILE = "hull/mp_formation_energies_roost_2020.csv.gz"

#: Well-known systems evaluated first (sorted chemsys spelling), then a seeded sample.
ANCHOR_SYSTEMS = ("Fe-Li-O", "Ba-O-Ti", "Li-Mn-O", "Cu-O-Sr", "Ga-N", "Fe-O", "Al-Ni", "Cs-I-Pb")
KINDS = ("oxide", "halide", "chalcogenide", "nitride", "pnictide", "intermetallic", "other")
HALOGENS = {"F", "Cl", "Br", "I"}
CHALCOGENS = {"S", "Se", "Te"}
PNICTOGENS = {"P", "As", "Sb"}
NONMETALS = {"H", "He", "B", "C", "N", "O", "F", "Ne", "Si", "P", "S", "Cl", "Ar", "As", "Se",
             "Br", "Kr", "Te", "I", "Xe", "At", "Rn"}

#: A value <= this (eV/atom) counts as "on the hull" (labels' smallest non-zero value is 1.8e-6).
ON_HULL_TOL = 1e-6
STABILITY_THRESHOLDS = (0.0, 0.1)
ERROR_WINDOWS = (0.02, 0.05)
REFERENCE_CHOICES = ("union", "matbench", "roost")

EXPLANATION = (
    "The hull construction itself is exact; the residual differences come from the data. "
    "(1) The label file holds one e_above_hull per formula, and for formulas with several "
    "polymorphs it is not always the lowest one, while the computed value uses the lowest "
    "reference energy of the formula: the largest disagreements match, to within a few meV/atom, "
    "the e_above_hull of a higher-energy polymorph of the same formula in the matbench file "
    "(see polymorph_diagnostic and worst[].label_matches_higher_polymorph). "
    "(2) The labels (CrabNet mp_e_hull) and the formation energies "
    "(matbench_mp_e_form = MP 2018; roost mp-formation = MP about 2019/2020) come from different "
    "Materials Project database versions. Between versions, phases were added or removed, "
    "polymorphs were recomputed (a new lowest polymorph lowers a formula's energy), and the "
    "correction scheme / GGA vs GGA+U mixing changed, which shifts formation energies of oxides, "
    "fluorides and transition-metal compounds by tens of meV/atom. Any such change moves either "
    "the compound or its competing phases, so computed and labelled e_above_hull differ even "
    "though the hull construction is exact. With a single file the hull also lacks phases the "
    "file does not hold: roost alone misses many common compounds (NaCl, MgO, TiO2, ...), so "
    "compounds look too stable and formulas absent from it are skipped."
)


# -- data loading ---------------------------------------------------------------------------

def _read_csv(path: Path) -> pd.DataFrame:
    # keep_default_na=False: the formula "NaN" (sodium nitride) must not become a float NaN.
    return pd.read_csv(path, keep_default_na=False)


def _chemsys_column(formulas: pd.Series) -> pd.Series:
    """Chemical system of each formula from its element symbols (fast, no Composition)."""
    return formulas.str.findall(r"[A-Z][a-z]?").map(lambda els: "-".join(sorted(set(els))))


def _within(chemsys: pd.Series, systems: Sequence[str]) -> pd.Series:
    """True where the chemical system is a (non-strict) subsystem of one of ``systems``."""
    allowed = {"-".join(c) for s in systems for r in range(1, len(s.split("-")) + 1)
               for c in itertools.combinations(s.split("-"), r)}
    return chemsys.isin(allowed)


def _reduce(df: pd.DataFrame, formula_col: str, energy_col: str) -> pd.DataFrame:
    """Lowest formation energy per reduced formula: columns rf, chemsys, e."""
    out = pd.DataFrame({
        "rf": [Composition(f).reduced_formula for f in df[formula_col]],
        "chemsys": df["chemsys"].to_numpy(),
        "e": df[energy_col].astype(float).to_numpy(),
    })
    return out.groupby(["rf", "chemsys"], as_index=False)["e"].min()


def load_references(data_dir: Path, systems: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Reference formation energies (eV/atom) inside ``systems``, per reference choice."""
    mb = _read_csv(data_dir / MATBENCH_FILE)
    mb["chemsys"] = _chemsys_column(mb["formula"])
    mb = _reduce(mb[_within(mb["chemsys"], systems)], "formula", "target")
    ro = _read_csv(data_dir / ROOST_FILE)
    ro["chemsys"] = _chemsys_column(ro["composition"])
    ro = _reduce(ro[_within(ro["chemsys"], systems)], "composition", "formation_energy_per_atom")
    union = pd.concat([mb, ro]).groupby(["rf", "chemsys"], as_index=False)["e"].min()
    return {"union": union, "matbench": mb, "roost": ro}


def load_polymorph_energies(data_dir: Path, systems: Sequence[str]) -> dict[str, list[float]]:
    """Every formation energy (all polymorphs, both files) per reduced formula in ``systems``."""
    out: dict[str, list[float]] = {}
    for name, fcol, ecol in ((MATBENCH_FILE, "formula", "target"),
                             (ROOST_FILE, "composition", "formation_energy_per_atom")):
        df = _read_csv(data_dir / name)
        df = df[_within(_chemsys_column(df[fcol]), systems)]
        for f, e in zip(df[fcol], df[ecol], strict=True):
            out.setdefault(Composition(f).reduced_formula, []).append(float(e))
    return {k: sorted(set(round(x, 6) for x in v)) for k, v in out.items()}


def load_labels(data_dir: Path) -> pd.DataFrame:
    """Labelled compositions: formula, e_above_hull, chemsys, n_elements."""
    lab = _read_csv(data_dir / LABEL_FILE)
    lab["chemsys"] = _chemsys_column(lab["formula"])
    lab["n_elements"] = lab["chemsys"].str.count("-") + 1
    return lab


# -- system selection -----------------------------------------------------------------------

def system_kind(chemsys: str) -> str:
    """Coarse family of a chemical system (first matching rule wins)."""
    els = set(chemsys.split("-"))
    if "O" in els:
        return "oxide"
    if els & HALOGENS:
        return "halide"
    if els & CHALCOGENS:
        return "chalcogenide"
    if "N" in els:
        return "nitride"
    if els & PNICTOGENS:
        return "pnictide"
    if not els & NONMETALS:
        return "intermetallic"
    return "other"


def select_systems(labels: pd.DataFrame, n_systems: int, seed: int, *, min_labels: int = 8,
                   max_elements: int = 4, min_compositions: int = 0) -> list[str]:
    """Anchor systems first, then a seeded round-robin sample over (kind, n_elements) strata.

    The pool is every chemical system with 2..max_elements elements and at least ``min_labels``
    labelled compositions of exactly that system. When the chosen systems (subsystems included)
    hold fewer than ``min_compositions`` labelled compositions, systems are added in the same
    seeded order until they do. The selection never looks at errors.
    """
    counts = labels.groupby("chemsys").size()
    present = set(counts.index)
    order = [s for s in ANCHOR_SYSTEMS if s in present]
    rng = np.random.default_rng(seed)
    pool = sorted(s for s, n in counts.items()
                  if n >= min_labels and 2 <= s.count("-") + 1 <= max_elements and s not in order)
    strata: dict[tuple[str, int], list[str]] = {}
    for s in pool:
        strata.setdefault((system_kind(s), s.count("-") + 1), []).append(s)
    for key in strata:
        members = strata[key]
        strata[key] = [members[i] for i in rng.permutation(len(members))]
    keys = [(k, a) for k in KINDS for a in range(2, max_elements + 1) if (k, a) in strata]
    while any(strata[k] for k in keys):
        for key in keys:
            if strata[key]:
                order.append(strata[key].pop(0))
    chosen = order[:n_systems]
    rest = order[n_systems:]
    while rest and int(_within(labels["chemsys"], chosen).sum()) < min_compositions:
        chosen.append(rest.pop(0))
    return chosen


# -- evaluation -----------------------------------------------------------------------------

def _sub_chemsys(chemsys: str) -> list[str]:
    els = chemsys.split("-")
    return ["-".join(c) for r in range(1, len(els) + 1) for c in itertools.combinations(els, r)]


def evaluate(labels: pd.DataFrame, refs: pd.DataFrame) -> pd.DataFrame:
    """Computed e_above_hull for each labelled composition (NaN where the formula is absent)."""
    by_chemsys: dict[str, list[tuple[Composition, float]]] = {}
    for rf, cs, e in refs[["rf", "chemsys", "e"]].itertuples(index=False):
        by_chemsys.setdefault(cs, []).append((Composition(rf), float(e)))
    energy = dict(zip(refs["rf"], refs["e"], strict=True))
    rows = []
    for rf, cs in labels[["rf", "chemsys"]].itertuples(index=False):
        if rf not in energy:
            rows.append({"e_form": math.nan, "e_hull": math.nan, "decomposition": None})
            continue
        references = [r for sub in _sub_chemsys(cs) for r in by_chemsys.get(sub, [])]
        res = stability_from_formation_energies(rf, float(energy[rf]), references,
                                                threshold_ev_per_atom=0.0)
        rows.append({"e_form": res.formation_energy_ev_per_atom,
                     "e_hull": res.e_above_hull_ev_per_atom,
                     "decomposition": res.decomposition})
    return pd.DataFrame(rows, index=labels.index)


def polymorph_matched(label: np.ndarray, computed: np.ndarray, e_min: np.ndarray,
                      polymorphs: Sequence[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Computed e_above_hull of the polymorph closest to the label, and its formation energy.

    A polymorph k of the same formula lies ``e_k - e_min`` above the lowest one, so its
    e_above_hull is ``computed + e_k - e_min`` (same hull). Diagnostic only: picking the best of
    several polymorphs is optimistic by construction.
    """
    best = np.empty_like(computed)
    best_e = np.empty_like(computed)
    for i, (lab, comp, emin, polys) in enumerate(zip(label, computed, e_min, polymorphs,
                                                     strict=True)):
        cands = [(comp, emin)] + [(comp + e - emin, e) for e in polys if e > emin + 1e-5]
        best[i], best_e[i] = min(cands, key=lambda c: abs(c[0] - lab))
    return best, best_e


def metrics(label: np.ndarray, computed: np.ndarray) -> dict[str, Any]:
    """Error and stable/unstable agreement of computed vs labelled e_above_hull (eV/atom)."""
    n = int(len(label))
    if n == 0:
        return {"n": 0}
    err = computed - label
    ae = np.abs(err)
    out: dict[str, Any] = {
        "n": n,
        "mae_ev_per_atom": float(ae.mean()),
        "median_abs_error_ev_per_atom": float(np.median(ae)),
        "rmse_ev_per_atom": float(np.sqrt((err ** 2).mean())),
        "mean_signed_error_ev_per_atom": float(err.mean()),
        "max_abs_error_ev_per_atom": float(ae.max()),
    }
    for w in ERROR_WINDOWS:
        out[f"frac_abs_error_le_{w:g}"] = float((ae <= w + 1e-12).mean())
    for t in STABILITY_THRESHOLDS:
        cut = max(t, ON_HULL_TOL)
        ls, cs = label <= cut, computed <= cut
        out[f"stability_at_{t:g}"] = {
            "definition": f"stable <=> e_above_hull <= {cut:g} eV/atom, applied to label and "
                          "computed value alike",
            "agreement": float((ls == cs).mean()),
            "both_stable": int((ls & cs).sum()),
            "both_unstable": int((~ls & ~cs).sum()),
            "label_stable_computed_unstable": int((ls & ~cs).sum()),
            "label_unstable_computed_stable": int((~ls & cs).sum()),
            "disagreements_with_both_within_0.01_of_threshold": int(
                ((ls != cs) & (np.abs(label - cut) <= 0.01) & (np.abs(computed - cut) <= 0.01)
                 ).sum()),
        }
    return out


def _fmt(x: float | None, nd: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def run(data_dir: Path, n_systems: int, seed: int, *, min_compositions: int = 1000,
        max_elements: int = 4, min_labels: int = 8, n_worst: int = 10) -> dict[str, Any]:
    """Run the benchmark and return the results dictionary."""
    t0 = time.perf_counter()
    labels_all = load_labels(data_dir)
    systems = select_systems(labels_all, n_systems, seed, min_labels=min_labels,
                             max_elements=max_elements, min_compositions=min_compositions)
    labels = labels_all[_within(labels_all["chemsys"], systems)].copy()
    labels["rf"] = [Composition(f).reduced_formula for f in labels["formula"]]
    refs = load_references(data_dir, systems)
    polys = load_polymorph_energies(data_dir, systems)
    t_load = time.perf_counter() - t0

    results: dict[str, pd.DataFrame] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for choice in REFERENCE_CHOICES:
            results[choice] = evaluate(labels, refs[choice])
    label = labels["e_above_hull"].to_numpy(dtype=float)

    per_choice: dict[str, Any] = {}
    ok = {c: ~results[c]["e_hull"].isna().to_numpy() for c in REFERENCE_CHOICES}
    common = np.logical_and.reduce([ok[c] for c in REFERENCE_CHOICES])
    for choice in REFERENCE_CHOICES:
        comp = results[choice]["e_hull"].to_numpy(dtype=float)
        m = metrics(label[ok[choice]], comp[ok[choice]])
        m["n_skipped_formula_not_in_references"] = int((~ok[choice]).sum())
        m["n_reference_formulas"] = int(len(refs[choice]))
        m["on_common_subset"] = metrics(label[common], comp[common])
        per_choice[choice] = m

    # polymorph diagnostic (union): does a higher polymorph of the formula explain the label?
    u_ok = ok["union"]
    u_comp = results["union"]["e_hull"].to_numpy(dtype=float)
    u_emin = results["union"]["e_form"].to_numpy(dtype=float)
    pm_hull = np.full_like(u_comp, np.nan)
    pm_e = np.full_like(u_comp, np.nan)
    idx = np.flatnonzero(u_ok)
    pm_hull[idx], pm_e[idx] = polymorph_matched(
        label[idx], u_comp[idx], u_emin[idx], [polys.get(labels["rf"].iloc[i], []) for i in idx])
    higher = u_ok & (pm_e > u_emin + 1e-6) & (np.abs(pm_hull - label) <= 0.02)
    large = u_ok & (np.abs(u_comp - label) > 0.05)
    pm_metrics = metrics(label[u_ok], pm_hull[u_ok])
    per_choice["union"]["polymorph_diagnostic"] = {
        "description": "optimistic diagnostic: for each formula, the e_above_hull of the "
                       "polymorph (any formation energy of that formula in either file) closest "
                       "to the label; not a headline metric",
        "n_formulas_with_several_polymorphs": int(sum(len(polys.get(labels["rf"].iloc[i], []))
                                                      > 1 for i in idx)),
        "n_abs_error_gt_0.05": int(large.sum()),
        "n_abs_error_gt_0.05_matched_by_higher_polymorph_within_0.02": int((large & higher).sum()),
        "mae_ev_per_atom": pm_metrics["mae_ev_per_atom"],
        "frac_abs_error_le_0.02": pm_metrics["frac_abs_error_le_0.02"],
        "agreement_at_0": pm_metrics["stability_at_0"]["agreement"],
    }

    # per-system table (each system: its labelled compositions, subsystems included)
    per_system = []
    for s in systems:
        mask = _within(labels["chemsys"], [s]).to_numpy()
        row: dict[str, Any] = {
            "chemsys": s, "kind": system_kind(s), "n_elements": s.count("-") + 1,
            "n_labelled": int(mask.sum()),
            "n_labelled_exact_system": int((labels["chemsys"] == s).sum()),
        }
        for choice in REFERENCE_CHOICES:
            sel = mask & ok[choice]
            comp = results[choice]["e_hull"].to_numpy(dtype=float)
            ae = np.abs(comp[sel] - label[sel])
            row[f"n_evaluated_{choice}"] = int(sel.sum())
            row[f"mae_{choice}"] = float(ae.mean()) if sel.any() else None
            if choice == "union":
                row["max_abs_error_union"] = float(ae.max()) if sel.any() else None
                t = ON_HULL_TOL
                row["agreement_at_0_union"] = (float(((label[sel] <= t) == (comp[sel] <= t)).mean())
                                               if sel.any() else None)
        per_system.append(row)

    # largest disagreements (union)
    uni = results["union"]
    err = uni["e_hull"].to_numpy(dtype=float) - label
    order = np.argsort(-np.nan_to_num(np.abs(err), nan=-1.0))[:n_worst]
    mb_e = dict(zip(refs["matbench"]["rf"], refs["matbench"]["e"], strict=True))
    ro_e = dict(zip(refs["roost"]["rf"], refs["roost"]["e"], strict=True))
    worst = []
    for i in order:
        if math.isnan(err[i]):
            break
        rf = labels["rf"].iloc[i]
        worst.append({
            "formula": rf,
            "chemsys": labels["chemsys"].iloc[i],
            "label_e_above_hull": float(label[i]),
            "computed_e_above_hull_union": float(uni["e_hull"].iloc[i]),
            "error": float(err[i]),
            "computed_e_above_hull_matbench": _none(results["matbench"]["e_hull"].iloc[i]),
            "computed_e_above_hull_roost": _none(results["roost"]["e_hull"].iloc[i]),
            "formation_energy_matbench": _none(mb_e.get(rf)),
            "formation_energy_roost": _none(ro_e.get(rf)),
            "decomposition_union": uni["decomposition"].iloc[i],
            "polymorph_formation_energies": polys.get(rf, []),
            "closest_polymorph_formation_energy": _none(pm_e[i]),
            "closest_polymorph_e_above_hull": _none(pm_hull[i]),
            "label_matches_higher_polymorph": bool(higher[i]),
        })

    skipped = labels.loc[~ok["union"], "rf"].tolist()
    return {
        "benchmark": "hull_labels: composition-level convex hull vs MP e_above_hull labels",
        "n_systems": len(systems),
        "systems": systems,
        "n_compositions": int(ok["union"].sum()),
        "n_labelled_compositions": int(len(labels)),
        "n_skipped": int((~ok["union"]).sum()),
        "skipped_formulas": skipped,
        "n_common_to_all_reference_choices": int(common.sum()),
        "metrics": per_choice,
        "per_system": per_system,
        "worst": worst,
        "explanation": EXPLANATION,
        "settings": {
            "seed": seed, "systems_requested": n_systems, "min_compositions": min_compositions,
            "max_elements": max_elements, "min_labels_per_system": min_labels,
            "anchor_systems": list(ANCHOR_SYSTEMS),
            "selection": "anchor systems present in the label file, then a seeded round-robin "
                         "over (kind, n_elements) strata of systems with >= min_labels labelled "
                         "compositions; topped up in the same order to reach min_compositions",
            "compositions": "every labelled composition whose elements lie within a chosen "
                            "system (subsystems included), each evaluated once",
            "formation_energy": "lowest reference formation energy for the reduced formula",
            "hull": "matloop.materials.hull.stability_from_formation_energies, references of the "
                    "composition's chemical system and all subsystems, elements at 0 eV/atom",
            "on_hull_tolerance_ev_per_atom": ON_HULL_TOL,
            "stability_thresholds_ev_per_atom": list(STABILITY_THRESHOLDS),
            "error_windows_ev_per_atom": list(ERROR_WINDOWS),
        },
        "data_dir": str(data_dir),
        "data_files": {"labels": LABEL_FILE, "matbench": MATBENCH_FILE, "roost": ROOST_FILE},
        "load_time_s": round(t_load, 2),
        "wall_time_s": round(time.perf_counter() - t0, 2),
    }


def _none(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def print_summary(res: dict[str, Any], out: Path) -> None:
    """Readable summary on stdout."""
    p = print
    p(f"hull_labels: {res['n_systems']} chemical systems, {res['n_labelled_compositions']} "
      f"labelled compositions, {res['n_compositions']} evaluated with the union, "
      f"{res['n_skipped']} skipped (formula not in references)")
    p("systems: " + ", ".join(res["systems"]))
    p("")
    hdr = (f"{'references':<10} {'n':>5} {'skip':>5} {'MAE':>7} {'median':>7} {'<=0.02':>7} "
           f"{'<=0.05':>7} {'agree@0':>8} {'agree@0.1':>9} | common n  MAE    agree@0")
    p(hdr)
    p("-" * len(hdr))
    for c, m in res["metrics"].items():
        cm = m["on_common_subset"]
        p(f"{c:<10} {m['n']:>5} {m['n_skipped_formula_not_in_references']:>5} "
          f"{m['mae_ev_per_atom']:>7.4f} {m['median_abs_error_ev_per_atom']:>7.4f} "
          f"{m['frac_abs_error_le_0.02']:>7.3f} {m['frac_abs_error_le_0.05']:>7.3f} "
          f"{m['stability_at_0']['agreement']:>8.3f} {m['stability_at_0.1']['agreement']:>9.3f} "
          f"| {cm['n']:>6} {cm['mae_ev_per_atom']:.4f} {cm['stability_at_0']['agreement']:.3f}")
    p("(errors in eV/atom; 'stable' means e_above_hull <= 1e-6 for agree@0 and <= 0.1 for "
      "agree@0.1, for label and computed value alike; 'common' = formulas present in all three)")
    su = res["metrics"]["union"]["stability_at_0"]
    p(f"union @0: both stable {su['both_stable']}, both unstable {su['both_unstable']}, "
      f"label stable/computed unstable {su['label_stable_computed_unstable']}, "
      f"label unstable/computed stable {su['label_unstable_computed_stable']}")
    pd_ = res["metrics"]["union"]["polymorph_diagnostic"]
    p(f"polymorph diagnostic (union): {pd_['n_abs_error_gt_0.05']} compositions with |error| > "
      f"0.05, of which {pd_['n_abs_error_gt_0.05_matched_by_higher_polymorph_within_0.02']} "
      "match (within 0.02) the e_above_hull of a HIGHER polymorph of the same formula; "
      f"closest-polymorph MAE {pd_['mae_ev_per_atom']:.4f}, agree@0 "
      f"{pd_['agreement_at_0']:.3f} (optimistic by construction)")
    p(f"stable/unstable disagreements @0 with both values within 0.01 of 0 (near-degenerate): "
      f"{su['disagreements_with_both_within_0.01_of_threshold']} of "
      f"{su['label_stable_computed_unstable'] + su['label_unstable_computed_stable']}")
    p("")
    p(f"{'system':<14} {'kind':<13} {'n':>4} {'MAE union':>9} {'matbench':>9} {'roost':>9} "
      f"{'max err':>8} {'agree@0':>8}")
    for r in res["per_system"]:
        p(f"{r['chemsys']:<14} {r['kind']:<13} {r['n_labelled']:>4} {_fmt(r['mae_union']):>9} "
          f"{_fmt(r['mae_matbench']):>9} {_fmt(r['mae_roost']):>9} "
          f"{_fmt(r['max_abs_error_union']):>8} {_fmt(r['agreement_at_0_union'], 3):>8}")
    p("")
    p("largest disagreements (union): formula, label, computed, error, "
      "E_form matbench / roost, computed with matbench / roost, decomposition")
    for w in res["worst"]:
        dec = " + ".join(f"{v:.2f} {k}" for k, v in (w["decomposition_union"] or {}).items())
        p(f"  {w['formula']:<14} label {w['label_e_above_hull']:.4f} computed "
          f"{w['computed_e_above_hull_union']:.4f} err {w['error']:+.4f} | E_form "
          f"{_fmt(w['formation_energy_matbench'])} / {_fmt(w['formation_energy_roost'])} | "
          f"{_fmt(w['computed_e_above_hull_matbench'])} / {_fmt(w['computed_e_above_hull_roost'])}"
          f" | {dec}")
        if w["label_matches_higher_polymorph"]:
            p(f"  {'':<14} label matches a higher polymorph (E_form "
              f"{w['closest_polymorph_formation_energy']:.4f}, e_above_hull "
              f"{w['closest_polymorph_e_above_hull']:.4f})")
    p("")
    p("Where the differences come from: " + res["explanation"])
    p("")
    p(f"wall time {res['wall_time_s']:.1f} s (loading {res['load_time_s']:.1f} s); "
      f"JSON written to {out}")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI entry point; returns the results dictionary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--systems", type=int, default=30, help="chemical systems to evaluate")
    ap.add_argument("--seed", type=int, default=0, help="seed of the system sample")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                    help="shared data folder holding hull/ (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    ap.add_argument("--min-compositions", type=int, default=1000,
                    help="add systems (same seeded order) until this many labelled "
                         "compositions are covered; 0 disables")
    ap.add_argument("--max-elements", type=int, default=4,
                    help="largest number of elements of a sampled system")
    args = ap.parse_args(argv)
    res = run(args.data_dir, args.systems, args.seed, min_compositions=args.min_compositions,
              max_elements=args.max_elements)
    from evals.common import write_json

    write_json("hull_labels", res, args.out)  # adds machine, package versions and date
    print_summary(res, args.out)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])

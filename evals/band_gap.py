"""Default band-gap model benchmark: candidates side by side, a sanity table, timings.

1. Grouped 5-fold cross-validation on the shipped experimental table
   (``matloop/data/band_gap_expt.csv.gz``: 4,921 compositions, 4,604 with a measured gap;
   Zhuo et al. 2018 via Matbench). Folds are drawn over composition keys, so one reduced
   formula never sits in train and test. Candidates:

   * ``et_regressor_all_rows``: the recipe of ``matloop models train`` (200 extremely
     randomized trees, trimmed mean, every row including the metals at 0 eV) on the Magpie
     features that recipe uses (here from the vectorised featurizer: same numbers);
   * ``hgb_regressor_all_rows``: scikit-learn's histogram gradient boosting on the same
     features;
   * ``gated_et_without_charge_balance``: the default model's gate (metal classifier, gap
     regressor on non-metals) without the ionic-character and charge-balance features;
   * ``default``: the default model exactly as shipped (``train_band_gap_model`` on the
     training folds, intervals from its own out-of-bag calibration), with interval coverage
     measured on the held-out fold.

   Also: the default model with folds drawn over chemical systems (stricter: no compound of
   the test system's elements in training) and two baselines (predict 0, predict the mean).
2. Sanity table: the default model's held-out prediction for well-known compounds (the
   compound's own row, when the table has one, is held out) next to literature values (cited
   per row) and the table's measured value.
3. Timings: first-use training in a fresh data directory, loading from the cache, one
   prediction, and the vectorised screen of a whole chemical system.

Run from the repository root (no shared data needed)::

    .venv/bin/python -m evals.band_gap [--folds 5] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evals.common import write_json

#: Literature band gaps (eV) of well-known compounds, with the source of each value.
SANITY: list[dict[str, Any]] = [
    {"formula": "Si", "gap_ev": 1.12, "ref": "Sze & Ng, Physics of Semiconductor Devices, "
     "3rd ed. (Wiley 2007), appendix: 300 K"},
    {"formula": "Ge", "gap_ev": 0.66, "ref": "Sze & Ng 2007, appendix: 300 K"},
    {"formula": "C", "gap_ev": 5.47, "ref": "Sze & Ng 2007, appendix: diamond, 300 K"},
    {"formula": "GaAs", "gap_ev": 1.42, "ref": "Sze & Ng 2007, appendix: 300 K"},
    {"formula": "GaN", "gap_ev": 3.44, "ref": "Vurgaftman & Meyer, J. Appl. Phys. 94, 3675 "
     "(2003): wurtzite, 3.51 eV at 0 K, 3.44 eV at 300 K with their Varshni parameters"},
    {"formula": "CdTe", "gap_ev": 1.5, "ref": "Madelung, Semiconductors: Data Handbook, 3rd "
     "ed. (Springer 2004): room temperature"},
    {"formula": "CdS", "gap_ev": 2.42, "ref": "Madelung 2004: wurtzite, room temperature"},
    {"formula": "ZnS", "gap_ev": 3.68, "ref": "Madelung 2004: zincblende, room temperature"},
    {"formula": "ZnO", "gap_ev": 3.37, "ref": "Özgür et al., J. Appl. Phys. 98, 041301 "
     "(2005): room temperature"},
    {"formula": "Cu2O", "gap_ev": 2.17, "ref": "Madelung 2004"},
    {"formula": "TiO2", "gap_ev": 3.03, "ref": "Pascual, Camassel & Mathieu, Phys. Rev. B "
     "18, 5606 (1978): rutile"},
    {"formula": "SrTiO3", "gap_ev": 3.25, "ref": "van Benthem, Elsässer & French, J. Appl. "
     "Phys. 90, 6156 (2001): indirect gap"},
    {"formula": "BaTiO3", "gap_ev": 3.2, "ref": "Wemple, Phys. Rev. B 2, 2679 (1970)"},
    {"formula": "CsPbI3", "gap_ev": 1.73, "ref": "Eperon et al., J. Mater. Chem. A 3, 19688 "
     "(2015): cubic black phase"},
    {"formula": "NaCl", "gap_ev": 8.5, "ref": "Poole et al., Phys. Rev. B 11, 5179 (1975)"},
    {"formula": "MgO", "gap_ev": 7.83, "ref": "Whited, Flaten & Walker, Solid State Commun. "
     "13, 1903 (1973)"},
    {"formula": "Al2O3", "gap_ev": 8.8, "ref": "French, J. Am. Ceram. Soc. 73, 477 (1990)"},
]
#: Compounds the previous composition surrogate got badly wrong (eV); see the report.
PREVIOUS = {"BaTiO3": 0.58}
#: A whole chemical system for the screening timing: Cs-Pb-Sn-Ge-I-Br-Cl candidates.
SCREEN_ELEMENTS = (("Cs", "Rb", "K"), ("Pb", "Sn", "Ge"), ("I", "Br", "Cl"))


def _round(d: Any, nd: int = 4) -> Any:
    if isinstance(d, float):
        return round(d, nd)
    if isinstance(d, dict):
        return {k: _round(v, nd) for k, v in d.items()}
    if isinstance(d, list | tuple):
        return [_round(v, nd) for v in d]
    return d


def _metrics(y: np.ndarray, value: np.ndarray, metal: np.ndarray,
             p_metal: np.ndarray | None, fold_of: np.ndarray, has: np.ndarray) -> dict[str, Any]:
    err = np.abs(value[has] - y[has])
    nonmetal = y[has] > 0
    predicted_metal = (p_metal >= 0.5) if p_metal is not None else (value <= 1e-9)
    return {
        "n": int(has.sum()), "mae": float(err.mean()), "rmse": float(np.sqrt((err ** 2).mean())),
        "mae_nonmetal": float(err[nonmetal].mean()), "mae_metal": float(err[~nonmetal].mean()),
        "median_abs_error": float(np.median(err)),
        "p90_abs_error": float(np.percentile(err, 90)),
        "p90_abs_error_nonmetal": float(np.percentile(err[nonmetal], 90)),
        "metal_accuracy": float((predicted_metal == metal.astype(bool)).mean()),
        "per_fold_mae": [float(np.abs(value[has & (fold_of == f)] - y[has & (fold_of == f)])
                               .mean()) for f in range(int(fold_of.max()) + 1)],
    }


class Bench:
    """The table, its features and the folds, shared by the candidates."""

    def __init__(self, folds: int, seed: int) -> None:
        from sklearn.model_selection import GroupKFold

        from matloop.surrogates import magpie
        from matloop.surrogates.band_gap_data import composition_key, load_table

        self.data = load_table()
        self.formulas = list(self.data.formulas)
        self.y = np.array([np.nan if g is None else g for g in self.data.gaps_ev])
        self.metal = np.array(self.data.is_metal, dtype=int)
        self.has = ~np.isnan(self.y)
        idx, frac, comps = magpie.parse_compositions(self.formulas)
        self.comps = comps
        self.table = table = magpie.ElementTable.from_matminer()
        self.X = magpie.features(idx, frac, table)
        labels = magpie.feature_labels(table)
        added = {"max ionic char", "avg ionic char", "charge balanced"}
        extra = set(magpie.EXTRA_PROPERTIES)
        #: The features of `matloop models train`: Magpie, stoichiometry, valence, fractions.
        self.cols_recipe = [i for i, lab in enumerate(labels)
                            if lab not in added and lab.split(" ")[-1] not in extra]
        self.cols_no_balance = [i for i, lab in enumerate(labels) if lab not in added]
        keys = [composition_key(c) for c in comps]
        order = np.random.default_rng(seed).permutation(len(keys))
        group = np.empty(len(keys), dtype=int)
        group[order] = np.arange(len(keys))
        self.folds = list(GroupKFold(folds).split(self.X, groups=group))
        systems = sorted({c.chemical_system for c in comps})
        rank = {s: r for r, s in enumerate(np.random.default_rng(seed).permutation(systems))}
        self.system_folds = list(GroupKFold(folds).split(
            self.X, groups=[rank[c.chemical_system] for c in comps]))
        self.fold_of = np.zeros(len(keys), dtype=int)
        for f, (_, test) in enumerate(self.folds):
            self.fold_of[test] = f

    def run(self, name: str, fit_predict: Callable[[np.ndarray, np.ndarray], tuple[Any, ...]],
            *, folds: list[tuple[np.ndarray, np.ndarray]] | None = None) -> dict[str, Any]:
        folds = folds or self.folds
        value = np.full(len(self.y), np.nan)
        p_metal = np.full(len(self.y), np.nan)
        extra: dict[str, list[Any]] = {}
        fold_of = np.zeros(len(self.y), dtype=int)
        start = time.perf_counter()
        for f, (train, test) in enumerate(folds):
            out = fit_predict(train, test)
            value[test], fold_of[test] = out[0], f
            if out[1] is not None:
                p_metal[test] = out[1]
            for k, v in (out[2] if len(out) > 2 else {}).items():
                extra.setdefault(k, []).append(v)
        elapsed = time.perf_counter() - start
        result = _metrics(self.y, value, self.metal,
                          None if np.isnan(p_metal).all() else p_metal, fold_of, self.has)
        result["cv_wall_s"] = elapsed
        if "inside68" in extra:
            inside68 = np.concatenate(extra["inside68"])
            inside95 = np.concatenate(extra["inside95"])
            result["coverage_68"] = float(inside68.mean())
            result["coverage_95"] = float(inside95.mean())
        print(f"{name:36s} MAE {result['mae']:.3f} (non-metals {result['mae_nonmetal']:.3f}) "
              f"metal acc {result['metal_accuracy']:.3f} in {elapsed:.0f} s", flush=True)
        self.last_value = value
        return result


def _trees(n: int) -> dict[str, Any]:
    return {"n_estimators": n, "max_features": 0.33, "random_state": 0, "n_jobs": -1}


def candidates(bench: Bench, quick: bool) -> tuple[dict[str, Any], np.ndarray]:
    """Cross-validate every candidate; return their metrics and the default's held-out values."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        HistGradientBoostingRegressor,
    )

    from matloop.surrogates.band_gap import (
        SETTINGS,
        train_band_gap_model,
        tree_predictions,
        trimmed_mean,
    )

    X, y, metal, has = bench.X, bench.y, bench.metal, bench.has
    out: dict[str, Any] = {}

    def recipe(train: np.ndarray, test: np.ndarray) -> tuple[Any, ...]:
        cols = bench.cols_recipe
        rows = train[has[train]]
        est = ExtraTreesRegressor(**_trees(200)).fit(X[rows][:, cols], y[rows])
        pred = trimmed_mean(tree_predictions(est, X[test][:, cols]), 0.2)
        return np.maximum(pred, 0.0), None

    out["et_regressor_all_rows"] = bench.run("ET200 regressor, all rows", recipe)
    out["et_regressor_all_rows"]["features"] = len(bench.cols_recipe)

    if not quick:
        def hgb(train: np.ndarray, test: np.ndarray) -> tuple[Any, ...]:
            cols = bench.cols_recipe
            rows = train[has[train]]
            est = HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05,
                                                random_state=0).fit(X[rows][:, cols], y[rows])
            return np.maximum(est.predict(X[test][:, cols]), 0.0), None

        out["hgb_regressor_all_rows"] = bench.run("HGB regressor, all rows", hgb)

        def gated_plain(train: np.ndarray, test: np.ndarray) -> tuple[Any, ...]:
            cols = bench.cols_no_balance
            kw = {**_trees(SETTINGS["n_estimators"]), "bootstrap": True,
                  "max_samples": SETTINGS["max_samples"]}
            clf = ExtraTreesClassifier(**kw).fit(X[train][:, cols], metal[train])
            rows = train[has[train] & (metal[train] == 0)]
            reg = ExtraTreesRegressor(**kw).fit(X[rows][:, cols], y[rows])
            p = tree_predictions(clf, X[test][:, cols], proba=True).mean(axis=0)
            mu = trimmed_mean(tree_predictions(reg, X[test][:, cols]), SETTINGS["trim"])
            return np.where(p >= 0.5, 0.0, np.maximum(mu, 0.0)), p

        out["gated_et_without_ionic_and_charge_balance"] = bench.run(
            "gated ET, no ionic/charge features", gated_plain)

    def default(train: np.ndarray, test: np.ndarray) -> tuple[Any, ...]:
        model = train_band_gap_model(exclude=[bench.formulas[i] for i in test])
        screen = model.screen([bench.comps[i] for i in test], domain=False)
        yt, ok = y[test], has[test]
        inside68 = (yt[ok] >= screen.lo68_ev[ok] - 1e-9) & (yt[ok] <= screen.hi68_ev[ok] + 1e-9)
        inside95 = (yt[ok] >= screen.lo95_ev[ok] - 1e-9) & (yt[ok] <= screen.hi95_ev[ok] + 1e-9)
        return screen.gap_ev, screen.metal_probability, {
            "inside68": inside68, "inside95": inside95,
            "fit_s": model.card["timings_s"]["total_s"]}

    out["default"] = bench.run("default (gated ET, as shipped)", default)
    out["default"]["settings"] = dict(SETTINGS)
    held_out = bench.last_value.copy()
    if not quick:
        out["default_leave_chemical_system_out"] = bench.run(
            "default, folds over chemical systems", default, folds=bench.system_folds)
    y0 = y[has]
    out["baseline_predict_zero"] = {"mae": float(np.abs(y0).mean())}
    out["baseline_predict_mean"] = {"mae": float(np.abs(y0 - y0.mean()).mean())}
    return out, held_out


def sanity(bench: Bench, held_out: np.ndarray) -> dict[str, Any]:
    """The default model's held-out value for each sanity compound, next to experiment."""
    from sklearn.ensemble import ExtraTreesRegressor

    from matloop.surrogates import magpie, predict_band_gap
    from matloop.surrogates.band_gap import tree_predictions, trimmed_mean
    from matloop.surrogates.band_gap_data import composition_key

    rows = {composition_key(f): i for i, f in enumerate(bench.formulas)}
    preds = predict_band_gap([s["formula"] for s in SANITY])
    # The previous recipe (ET200 on every row), fitted without the sanity compounds' rows.
    sanity_rows = {rows[k] for s in SANITY if (k := composition_key(s["formula"])) in rows}
    train = np.array([i for i in np.where(bench.has)[0] if i not in sanity_rows])
    cols = bench.cols_recipe
    est = ExtraTreesRegressor(**_trees(200)).fit(bench.X[train][:, cols], bench.y[train])
    idx, frac, _ = magpie.parse_compositions([s["formula"] for s in SANITY])
    recipe_all = trimmed_mean(
        tree_predictions(est, magpie.features(idx, frac, bench.table)[:, cols]), 0.2)
    out = []
    for ref, pred, old in zip(SANITY, preds, recipe_all, strict=True):
        i = rows.get(composition_key(ref["formula"]))
        out.append({
            "formula": ref["formula"], "experiment_ev": ref["gap_ev"], "reference": ref["ref"],
            "table_measured_ev": pred.measured_value,
            "table_note": pred.measured_note or ("" if i is not None else "not in the table"),
            "model_ev": pred.value, "model_held_out": pred.held_out,
            "model_uncertainty_ev": pred.uncertainty, "interval_95_ev": pred.interval_95,
            "metal_probability": pred.metal_probability, "in_domain": pred.in_domain,
            "cv_fold_ev": None if i is None else float(held_out[i]),
            "abs_error_ev": abs(pred.value - ref["gap_ev"]),
            "inside_95": pred.interval_95[0] <= ref["gap_ev"] <= pred.interval_95[1],
            "previous_recipe_ev": float(max(old, 0.0)),
            "recommended_ev": pred.recommended_value,
        })
    err = np.array([r["abs_error_ev"] for r in out])
    return {"rows": out, "mae_ev": float(err.mean()), "median_abs_error_ev": float(np.median(err)),
            "max_abs_error_ev": float(err.max()),
            "inside_95_fraction": float(np.mean([r["inside_95"] for r in out])),
            "previous_model_reported": PREVIOUS,
            "previous_recipe_note": "previous_recipe_ev: the et_regressor_all_rows recipe fitted "
                                    "on every row except the sanity compounds"}


def timings() -> dict[str, Any]:
    """First use (fresh data dir), load from cache, single prediction, system screen."""
    from matloop.config import get_settings
    from matloop.surrogates import band_gap

    old = os.environ.get("MATLOOP_DATA_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MATLOOP_DATA_DIR"] = tmp
        get_settings.cache_clear()
        band_gap._LOADED.clear()
        try:
            t0 = time.perf_counter()
            model = band_gap.default_band_gap_model()
            first = time.perf_counter() - t0
            path = band_gap.default_models_dir() / f"{band_gap.MODEL_NAME}-{model.version}.joblib"
            size_mb = path.stat().st_size / 1e6
            t0 = time.perf_counter()
            model = band_gap.load_band_gap_model(path)
            load = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("MATLOOP_DATA_DIR", None)
            else:
                os.environ["MATLOOP_DATA_DIR"] = old
            get_settings.cache_clear()
    model.predict(["BaTiO3"])
    single = []
    for formula in ("BaTiO3", "CsPbI3", "GaN", "Cs2AgBiBr6", "LiFePO4"):
        t0 = time.perf_counter()
        model.predict([formula])
        single.append(time.perf_counter() - t0)
    system = [f"{a}{x}{b}{y}{c}{z}" for a, b, c in itertools.product(*SCREEN_ELEMENTS)
              for x, y, z in itertools.product(range(1, 5), range(1, 4), range(1, 7))]
    screens = {}
    for dom in (True, False):
        t0 = time.perf_counter()
        model.screen(system, domain=dom)
        screens["with_domain" if dom else "without_domain"] = (time.perf_counter() - t0) \
            / len(system) * 1e3
    return {"first_use_s": first, "first_use_parts_s": model.card["timings_s"],
            "cache_file_mb": size_mb, "load_from_cache_s": load,
            "predict_one_median_ms": float(np.median(single) * 1e3),
            "screen_compositions": len(system), "screen_ms_per_composition": screens}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="only the recipe and the default candidates, no system folds")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    from matloop.surrogates.band_gap_data import load_metadata

    t_all = time.perf_counter()
    bench = Bench(args.folds, args.seed)
    cv, held_out = candidates(bench, args.quick)
    table = sanity(bench, held_out)
    for r in table["rows"]:
        print(f"  {r['formula']:7s} experiment {r['experiment_ev']:5.2f}  model "
              f"{r['model_ev']:5.2f} ± {r['model_uncertainty_ev']:.2f}  table "
              f"{r['table_measured_ev'] if r['table_measured_ev'] is not None else '—'}  "
              f"previous recipe {r['previous_recipe_ev']:.2f}")
    times = timings()
    meta = load_metadata()
    payload = {
        "data": {"file": "src/matloop/data/band_gap_expt.csv.gz", "rows": meta["rows"],
                 "csv_sha256": meta["csv_sha256"], "licence": meta["licence"]["summary"],
                 "citations": meta["citations"]},
        "folds": args.folds, "seed": args.seed,
        "split_note": "GroupKFold over composition keys (one row per reduced formula), rows "
                      "shuffled with the seed; 'default_leave_chemical_system_out' groups by "
                      "chemical system instead",
        "cv": cv, "sanity": table, "timings": times,
        "wall_time_s": time.perf_counter() - t_all,
    }
    path = write_json("band_gap", _round(payload), None if args.out is None else Path(args.out))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

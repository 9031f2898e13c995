"""The default band-gap model: works offline on first use, with no user step.

A metal / non-metal classifier gates a gap regressor, both extremely randomized trees on
Magpie composition features (:mod:`matloop.surrogates.magpie`):

* the classifier (100 trees) learns metal vs non-metal from all 4,921 compositions of the
  shipped experimental table (:mod:`matloop.surrogates.band_gap_data`);
* the regressor (100 trees, trimmed mean over the middle 60%) learns the gap of the 2,154
  measured non-metals;
* the prediction is 0 eV when the metal probability is at least 0.5, else the regressor's.

Both forests are bagged (each tree sees a bootstrap sample of 80% of the rows), so one fit
gives out-of-bag predictions: for each training composition, the prediction of the trees that
never saw its row. They serve three purposes: the held-out error in the model card, the
calibration of the intervals (split-conformal on out-of-bag residuals, see
:class:`GapCalibration`), and the honest model value of a compound that is in the table
(``held_out=True``), shown next to its measured value.

The model object lives in :mod:`matloop.surrogates.band_gap_model`, the ensemble arithmetic
and the calibration in :mod:`matloop.surrogates.gap_ensemble`; this module trains, caches
and serves it.

Training takes about 10 s on two cores (20-35 s when they are shared with other heavy
jobs; the features take under a second); the result is cached
under ``<data dir>/default_models/`` keyed by the table's checksum, this module's
:data:`CODE_VERSION`, the settings and the scikit-learn version, and kept in memory for the
rest of the process. A user-trained ``band_gap`` model takes precedence in
:func:`matloop.surrogates.find_surrogate`; :func:`predict_band_gap` and
:func:`band_gap_for_compositions` always use this one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from matloop.config import get_settings
from matloop.logs import quiet_third_party
from matloop.surrogates import magpie
from matloop.surrogates.band_gap_data import (
    CITATION,
    ExperimentalGaps,
    composition_key,
    load_table,
)
from matloop.surrogates.band_gap_model import DATA_LABEL, MODEL_NAME, BandGapModel, GapScreen
from matloop.surrogates.gap_ensemble import (
    SETTINGS,
    GapCalibration,
    out_of_bag,
    tree_predictions,
    trimmed_mean,
)
from matloop.surrogates.model import DOMAIN_PERCENTILE, Domain, PropertyPrediction

#: Bump when features, estimators or calibration change: the cache key includes it.
CODE_VERSION = "1"
_FORMAT = 1


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Training, caching, loading


def model_version(data: ExperimentalGaps | None = None) -> str:
    """Cache key: table checksum, code version, settings and scikit-learn version."""
    data = data or load_table()
    payload = json.dumps({"data": data.sha256, "code": CODE_VERSION, "settings": SETTINGS,
                          "scikit-learn": _version("scikit-learn"),
                          "features": list(magpie.MAGPIE_PROPERTIES + magpie.EXTRA_PROPERTIES)},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def default_models_dir() -> Path:
    """Return ``<data dir>/default_models`` (created when a model is cached)."""
    return get_settings().data_dir / "default_models"


def train_band_gap_model(data: ExperimentalGaps | None = None, *, exclude: Iterable[str] = (),
                         n_jobs: int = -1) -> BandGapModel:
    """Fit the default model on the shipped table (minus ``exclude`` formulas); not cached.

    Args:
        data: The table (default: the shipped one).
        exclude: Formulas whose rows are left out (e.g. held-out test compounds).
        n_jobs: Parallel jobs for the trees (-1: every core).

    """
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    start = time.perf_counter()
    data = data or load_table()
    drop = {composition_key(f) for f in exclude}
    keep = [i for i, f in enumerate(data.formulas) if composition_key(f) not in drop]
    formulas = [data.formulas[i] for i in keep]
    gaps = np.array([np.nan if data.gaps_ev[i] is None else data.gaps_ev[i] for i in keep])
    metal = np.array([data.is_metal[i] for i in keep], dtype=int)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    table = magpie.ElementTable.from_matminer()
    idx, frac, comps = magpie.parse_compositions(formulas)
    X = magpie.features(idx, frac, table)
    timings["features_s"] = time.perf_counter() - t0

    kw = {k: SETTINGS[k] for k in ("n_estimators", "max_features", "bootstrap", "max_samples")}
    t0 = time.perf_counter()
    classifier = ExtraTreesClassifier(random_state=SETTINGS["seed"], n_jobs=n_jobs, **kw)
    classifier.fit(X, metal)
    gap_rows = np.where(~np.isnan(gaps) & (metal == 0))[0]
    regressor = ExtraTreesRegressor(random_state=SETTINGS["seed"], n_jobs=n_jobs, **kw)
    regressor.fit(X[gap_rows], gaps[gap_rows])
    for forest in (classifier, regressor):
        forest.n_jobs = 1  # predictions go tree by tree (see tree_predictions)
    timings["fit_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    all_rows = np.arange(len(formulas))
    p_oob = np.nanmean(out_of_bag(tree_predictions(classifier, X, proba=True), classifier,
                                   all_rows), axis=0)
    per_tree = out_of_bag(tree_predictions(regressor, X), regressor, gap_rows)
    mu_oob = trimmed_mean(per_tree, SETTINGS["trim"])
    spread_oob = np.nanstd(per_tree, axis=0)
    value_oob = np.where(p_oob >= SETTINGS["metal_threshold"], 0.0, np.maximum(mu_oob, 0.0))
    has = ~np.isnan(gaps)
    calibration = GapCalibration.fit(gaps[has], value_oob[has], spread_oob[has], p_oob[has])
    held = _held_out_coverage(gaps[has], value_oob[has], spread_oob[has], p_oob[has])
    timings["out_of_bag_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    counts: dict[str, int] = {}
    for comp in comps:
        for el in comp.elements:
            counts[el.symbol] = counts.get(el.symbol, 0) + 1
    n_stats = len(magpie.feature_labels(table, element_fractions=False))
    domain = Domain.fit(X[:, :n_stats], [c.reduced_formula for c in comps], counts)
    timings["domain_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - start

    err = np.abs(value_oob[has] - gaps[has])
    nonmetal = gaps[has] > 0
    card: dict[str, Any] = {
        "name": MODEL_NAME, "property": "band_gap", "unit": "eV",
        "version": model_version(data) if not drop else model_version(data) + "-excl",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "description": "metal / non-metal classifier gating a gap regressor (extremely "
                       "randomized trees on Magpie composition features)",
        "features": {"kind": "composition", "count": int(X.shape[1]),
                     "description": "Magpie statistics of 28 element properties, "
                                    "stoichiometry p-norms, valence-orbital averages, ionic "
                                    "character, charge balance and element fractions "
                                    "(matloop.surrogates.magpie)"},
        "data": {"source": DATA_LABEL, "citation": CITATION, "sha256": data.sha256,
                 "rows": len(formulas), "rows_with_gap": int(has.sum()),
                 "regressor_rows": len(gap_rows), "excluded": sorted(drop),
                 "target_min": float(np.nanmin(gaps)), "target_max": float(np.nanmax(gaps)),
                 "elements": sorted(counts)},
        "estimator": dict(SETTINGS),
        "metrics": {"cv": {
            "method": "out-of-bag (each row predicted by the trees that never saw it)",
            "n": int(has.sum()), "mae": float(err.mean()),
            "rmse": float(np.sqrt((err ** 2).mean())),
            "mae_nonmetal": float(err[nonmetal].mean()),
            "mae_metal": float(err[~nonmetal].mean()),
            "p90_abs_error": float(np.percentile(err, 90)),
            "p90_abs_error_nonmetal": float(np.percentile(err[nonmetal], 90)),
            "std_abs_error_nonmetal": float(err[nonmetal].std()),
            "n_nonmetal": int(nonmetal.sum()),
            "fraction_nonmetal_above_2x_p90": float(
                (err[nonmetal] > 2 * np.percentile(err[nonmetal], 90)).mean()),
            "metal_accuracy": float(((p_oob >= SETTINGS["metal_threshold"]) == metal).mean()),
            **held}},
        "calibration": calibration.as_dict(),
        "domain": {"neighbours": domain.neighbours, "percentile": DOMAIN_PERCENTILE,
                   "threshold": domain.threshold},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "versions": {"matloop": _version("matloop"), "python": platform.python_version(),
                     "scikit-learn": _version("scikit-learn"), "numpy": _version("numpy"),
                     "matminer": _version("matminer")},
    }
    oob = {"p_metal": p_oob, "mu": mu_oob, "spread": spread_oob}
    return BandGapModel(card, classifier, regressor, calibration, domain, table, oob,
                        _subset(data, keep))


def _subset(data: ExperimentalGaps, keep: list[int]) -> ExperimentalGaps:
    if len(keep) == len(data):
        return data
    return ExperimentalGaps(tuple(data.formulas[i] for i in keep),
                            tuple(data.gaps_ev[i] for i in keep),
                            tuple(data.is_metal[i] for i in keep), data.sha256 + "-subset")


def _held_out_coverage(y: np.ndarray, value: np.ndarray, spread: np.ndarray,
                       p_metal: np.ndarray) -> dict[str, float]:
    """Interval coverage measured honestly: calibrate on one half, test on the other."""
    half = np.random.default_rng(0).permutation(len(y)) % 2 == 0
    inside68 = inside95 = 0
    for test in (half, ~half):
        cal = GapCalibration.fit(y[~test], value[~test], spread[~test], p_metal[~test])
        b = cal.intervals(value[test], spread[test], p_metal[test])
        inside68 += int(((y[test] >= b["lo68"] - 1e-9) & (y[test] <= b["hi68"] + 1e-9)).sum())
        inside95 += int(((y[test] >= b["lo95"] - 1e-9) & (y[test] <= b["hi95"] + 1e-9)).sum())
    return {"coverage_68": inside68 / len(y), "coverage_95": inside95 / len(y)}


def save_band_gap_model(model: BandGapModel, folder: Path | None = None) -> Path:
    """Write the model atomically; return the file."""
    import joblib

    folder = folder or default_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{MODEL_NAME}-{model.version}.joblib"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    joblib.dump({"format": _FORMAT, "card": model.card, "classifier": model.classifier,
                 "regressor": model.regressor, "calibration": model.gap_calibration,
                 "domain": model.domain, "table": model.table, "oob": model.oob}, tmp,
                compress=3)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps(model.card, indent=2, default=str))
    return path


def load_band_gap_model(path: Path) -> BandGapModel:
    """Read a cached model (written by :func:`save_band_gap_model` in this data directory)."""
    import joblib

    with quiet_third_party():
        payload = joblib.load(path)
    if payload.get("format") != _FORMAT:
        raise ValueError(f"{path}: format {payload.get('format')} (expected {_FORMAT})")
    return BandGapModel(payload["card"], payload["classifier"], payload["regressor"],
                        payload["calibration"], payload["domain"], payload["table"],
                        payload["oob"], load_table())


_LOCK = threading.Lock()
_LOADED: dict[str, BandGapModel] = {}


def default_band_gap_model() -> BandGapModel:
    """Return the default model: from memory, else from the data directory's cache, else train it.

    Training happens once per data directory (and at most once per process); a cache file
    that cannot be read is replaced by a fresh fit.
    """
    key = model_version()
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        path = default_models_dir() / f"{MODEL_NAME}-{key}.joblib"
        model = None
        if path.is_file():
            try:
                model = load_band_gap_model(path)
            except Exception as exc:  # a truncated or foreign file: retrain, say so
                warnings.warn(f"cached band-gap model {path} unreadable ({exc}); retraining",
                              stacklevel=2)
        if model is None:
            model = train_band_gap_model()
            save_band_gap_model(model)
        _LOADED[key] = model
        return model


def default_card() -> dict[str, Any]:
    """Return a light card for the default model (name, property, unit, features, version)."""
    return {"name": MODEL_NAME, "property": "band_gap", "unit": "eV",
            "version": model_version(), "features": {"kind": "composition"},
            "created_utc": "", "default": True}


def predict_band_gap(items: Iterable[Any]) -> list[PropertyPrediction]:
    """Band gaps (eV) of formulas, Compositions, CIF texts or Structures, with the default model.

    Each prediction carries the value, a calibrated 1-sigma uncertainty and 68%/95%
    intervals, ``in_domain`` with notes, the source string, the metal probability and, for
    compounds in the experimental table, the measured value (``measured_value``,
    ``measured_source``) with the model value held out (``held_out=True``). Show
    ``recommended_value``: the measured gap for a known compound, the model's for a new one.
    Structures are reduced to their composition: polymorphs get the same value.
    """
    return default_band_gap_model().predict(items)


def band_gap_for_compositions(formulas: Sequence[Any], *, domain: bool = True) -> GapScreen:
    """Vectorised gap pre-screen of many compositions (well under 1 ms each after loading).

    Args:
        formulas: Formulas or pymatgen Compositions, e.g. every candidate of a chemical system.
        domain: Also run the feature-space distance check (about a third of the time).

    """
    return default_band_gap_model().screen(formulas, domain=domain)


__all__ = ["CODE_VERSION", "MODEL_NAME", "SETTINGS", "BandGapModel", "GapCalibration",
           "GapScreen", "band_gap_for_compositions", "default_band_gap_model", "default_card",
           "load_band_gap_model", "model_version", "predict_band_gap", "save_band_gap_model",
           "train_band_gap_model", "tree_predictions", "trimmed_mean"]

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

Training takes about 5-20 s on two cores (the features take 0.2 s); the result is cached
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
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Element

from matloop.config import get_settings
from matloop.surrogates import magpie
from matloop.surrogates.band_gap_data import (
    CITATION,
    MEASURED_SOURCE,
    METAL_SOURCE,
    ExperimentalGaps,
    composition_key,
    load_table,
)
from matloop.surrogates.model import (
    DOMAIN_PERCENTILE,
    RARE_ELEMENT,
    Domain,
    PropertyPrediction,
    SurrogateModel,
    conformal_quantile,
)
from matloop.surrogates.table import MaterialInput, SurrogateDataError, as_inputs

MODEL_NAME = "band_gap_default"
#: Bump when features, estimators or calibration change: the cache key includes it.
CODE_VERSION = "1"
SETTINGS: dict[str, Any] = {
    "classifier": "ExtraTreesClassifier", "regressor": "ExtraTreesRegressor",
    "n_estimators": 100, "max_features": 0.33, "bootstrap": True, "max_samples": 0.8,
    "trim": 0.2, "metal_threshold": 0.5, "seed": 0,
}
DATA_LABEL = "matbench_expt_gap + matbench_expt_is_metal"
#: Metal-probability bins of the calibration: predicted metals, predicted non-metals.
METAL_EDGES = (0.5, 0.8, 0.95, 1.0)
GAP_EDGES = (0.0, 0.2, 0.5)
#: Fewest out-of-bag residuals in a bin before it falls back to its whole group.
MIN_BIN = 30
_FORMAT = 1


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Calibration


def _bin(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    return np.clip(np.searchsorted(np.asarray(edges[1:-1]), values, side="right"), 0,
                   len(edges) - 2)


@dataclass
class GapCalibration:
    """Interval half-widths from out-of-bag residuals (Mondrian split-conformal).

    Predicted metals (value 0) get ``[0, h]``, ``h`` the 68%/95% conformal quantile of the
    measured gaps of out-of-bag predicted metals in the same metal-probability bin. Predicted
    non-metals get ``value ± k (spread + floor)``, ``spread`` the standard deviation over the
    regressor's trees and ``k`` the conformal quantile of ``|residual| / (spread + floor)``
    over out-of-bag predicted non-metals in the same bin. Lower bounds are clipped at 0 eV.
    """

    metal_h68: list[float]
    metal_h95: list[float]
    gap_k68: list[float]
    gap_k95: list[float]
    spread_floor_ev: float
    threshold: float = SETTINGS["metal_threshold"]
    counts: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def fit(cls, y: np.ndarray, value: np.ndarray, spread: np.ndarray, p_metal: np.ndarray,
            *, threshold: float = SETTINGS["metal_threshold"]) -> GapCalibration:
        """Fit from measured gaps ``y`` and the out-of-bag predictions of those rows."""
        metal = p_metal >= threshold
        floor = max(0.05, float(np.percentile(spread[~metal], 10))) if (~metal).any() else 0.05
        resid = np.abs(y - value)
        h68, h95, n_metal = [], [], []
        bins = _bin(p_metal, METAL_EDGES)
        for b in range(len(METAL_EDGES) - 1):
            rows = metal & (bins == b)
            pool = resid[rows] if rows.sum() >= MIN_BIN else resid[metal]
            h68.append(conformal_quantile(pool, 0.68))
            h95.append(conformal_quantile(pool, 0.95))
            n_metal.append(int(rows.sum()))
        k68, k95, n_gap = [], [], []
        score = resid / (spread + floor)
        bins = _bin(p_metal, GAP_EDGES)
        for b in range(len(GAP_EDGES) - 1):
            rows = ~metal & (bins == b)
            pool = score[rows] if rows.sum() >= MIN_BIN else score[~metal]
            k68.append(conformal_quantile(pool, 0.68))
            k95.append(conformal_quantile(pool, 0.95))
            n_gap.append(int(rows.sum()))
        return cls(h68, h95, k68, k95, floor, threshold,
                   {"predicted_metal": n_metal, "predicted_nonmetal": n_gap})

    def intervals(self, value: np.ndarray, spread: np.ndarray, p_metal: np.ndarray,
                  ) -> dict[str, np.ndarray]:
        """Sigma (68% half-width) and the 68% / 95% bounds, in eV."""
        metal = p_metal >= self.threshold
        mb, gb = _bin(p_metal, METAL_EDGES), _bin(p_metal, GAP_EDGES)
        scale = spread + self.spread_floor_ev
        w68 = np.where(metal, np.asarray(self.metal_h68)[mb], np.asarray(self.gap_k68)[gb] * scale)
        w95 = np.where(metal, np.asarray(self.metal_h95)[mb], np.asarray(self.gap_k95)[gb] * scale)
        return {"sigma": w68, "lo68": np.maximum(value - w68, 0.0), "hi68": value + w68,
                "lo95": np.maximum(value - w95, 0.0), "hi95": value + w95}

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the model card."""
        return {"method": "Mondrian split-conformal on out-of-bag residuals",
                "metal_probability_edges_predicted_metal": list(METAL_EDGES),
                "metal_h68_ev": self.metal_h68, "metal_h95_ev": self.metal_h95,
                "metal_probability_edges_predicted_nonmetal": list(GAP_EDGES),
                "nonmetal_k68": self.gap_k68, "nonmetal_k95": self.gap_k95,
                "spread_floor_ev": self.spread_floor_ev, "rows_per_bin": self.counts}


# ---------------------------------------------------------------------------------------------
# Ensemble arithmetic


def trimmed_mean(per_tree: np.ndarray, trim: float) -> np.ndarray:
    """Return the column-wise mean after dropping ``trim`` of the values at each end.

    NaNs are ignored (they mark the trees that saw a row, for out-of-bag predictions).
    """
    ordered = np.sort(per_tree, axis=0)  # NaNs sort last
    count = (~np.isnan(per_tree)).sum(axis=0)
    cut = (trim * count).astype(int)
    cut = np.where(count - 2 * cut > 0, cut, 0)
    csum = np.vstack([np.zeros(per_tree.shape[1]), np.nancumsum(ordered, axis=0)])
    cols = np.arange(per_tree.shape[1])
    total = csum[count - cut, cols] - csum[cut, cols]
    return total / np.maximum(count - 2 * cut, 1)


def tree_predictions(forest: Any, X: np.ndarray, *, proba: bool = False) -> np.ndarray:
    """Return the prediction of every tree (rows) for every input (columns).

    The input is converted to float32 once and each tree is called with
    ``check_input=False``: scikit-learn's own validation costs about 1 ms per tree, which made
    a single prediction take 0.2 s. ``proba``: the class-1 probability of a binary classifier.
    """
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    if proba:
        return np.stack([tree.predict_proba(X32, check_input=False)[:, 1]
                         for tree in forest.estimators_])
    return np.stack([tree.predict(X32, check_input=False) for tree in forest.estimators_])


def _out_of_bag(per_tree: np.ndarray, forest: Any, rows: np.ndarray) -> np.ndarray:
    """``per_tree`` with the predictions of each tree on its own training rows set to NaN.

    ``rows`` maps the forest's training indices to columns of ``per_tree``.
    """
    masked = per_tree.copy()
    for t, sample in enumerate(forest.estimators_samples_):
        masked[t, rows[sample]] = np.nan
    return masked


# ---------------------------------------------------------------------------------------------
# The model


@dataclass
class GapScreen:
    """Vectorised band-gap estimates for many compositions (see :func:`band_gap_for_compositions`).

    Arrays align with ``formulas``; gaps and bounds in eV. ``gap_ev`` is the model value
    (out-of-bag for compositions in the table); ``recommended_gap_ev`` is the measured gap
    where the table has one, else ``gap_ev``.
    """

    formulas: list[str]
    gap_ev: np.ndarray
    uncertainty_ev: np.ndarray
    lo68_ev: np.ndarray
    hi68_ev: np.ndarray
    lo95_ev: np.ndarray
    hi95_ev: np.ndarray
    metal_probability: np.ndarray
    in_domain: np.ndarray
    held_out: np.ndarray
    measured_gap_ev: np.ndarray
    recommended_gap_ev: np.ndarray
    source: str

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per composition (NaN measured gaps become None)."""
        out = []
        for i, formula in enumerate(self.formulas):
            measured = float(self.measured_gap_ev[i])
            out.append({
                "formula": formula, "gap_ev": float(self.gap_ev[i]),
                "uncertainty_ev": float(self.uncertainty_ev[i]),
                "interval_68_ev": (float(self.lo68_ev[i]), float(self.hi68_ev[i])),
                "interval_95_ev": (float(self.lo95_ev[i]), float(self.hi95_ev[i])),
                "metal_probability": float(self.metal_probability[i]),
                "in_domain": bool(self.in_domain[i]), "held_out": bool(self.held_out[i]),
                "measured_gap_ev": None if np.isnan(measured) else measured,
                "recommended_gap_ev": float(self.recommended_gap_ev[i]),
            })
        return out

    def __len__(self) -> int:
        return len(self.formulas)


class BandGapModel(SurrogateModel):
    """The gated default model. Get it from :func:`default_band_gap_model`.

    Attributes:
        classifier: Metal / non-metal forest.
        regressor: Gap forest (non-metals).
        table: Element properties behind the features.
        data: The experimental table the model was trained on.
        oob: Out-of-bag ``p_metal``, ``mu`` (regressor centre) and ``spread`` per table row.

    """

    def __init__(self, card: dict[str, Any], classifier: Any, regressor: Any,
                 calibration: GapCalibration, domain: Domain, table: magpie.ElementTable,
                 oob: dict[str, np.ndarray], data: ExperimentalGaps) -> None:
        super().__init__(card, regressor, calibration, domain)  # type: ignore[arg-type]
        self.classifier = classifier
        self.regressor = regressor
        self.gap_calibration = calibration
        self.table = table
        self.oob = oob
        self.data = data
        self._rows = data.index()
        self._element_count = np.zeros(magpie.MAX_Z)
        for el, n in domain.element_counts.items():
            self._element_count[Element(el).Z - 1] = n

    @property
    def source(self) -> str:
        """``surrogate:<name> trained on <data> (CV MAE x eV)``."""
        cv = self.card["metrics"]["cv"]
        return (f"surrogate:{self.name} trained on {DATA_LABEL} ({CITATION}; "
                f"{self.card['data']['rows']} compositions) (CV MAE {cv['mae']:.2f} eV, "
                f"out-of-bag)")

    # -- core ---------------------------------------------------------------------------------
    def _raw(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Metal probability, regressor centre and tree spread for feature rows."""
        p_metal = tree_predictions(self.classifier, X, proba=True).mean(axis=0)
        per_tree = tree_predictions(self.regressor, X)
        return p_metal, trimmed_mean(per_tree, SETTINGS["trim"]), per_tree.std(axis=0)

    def _evaluate(self, comps: Sequence[Any], *, domain: bool = True) -> dict[str, Any]:
        idx, frac, comps = magpie.parse_compositions(comps)
        X = magpie.features(idx, frac, self.table)
        p_metal, mu, spread = self._raw(X)
        rows = np.array([self._rows.get(composition_key(c), -1) for c in comps])
        known = rows >= 0
        if known.any():
            p_metal[known] = self.oob["p_metal"][rows[known]]
            mu[known] = self.oob["mu"][rows[known]]
            spread[known] = self.oob["spread"][rows[known]]
        value = np.where(p_metal >= SETTINGS["metal_threshold"], 0.0, np.maximum(mu, 0.0))
        bounds = self.gap_calibration.intervals(value, spread, p_metal)
        counts = np.where(frac > 0, self._element_count[idx], np.inf).min(axis=1)
        result = {"comps": comps, "idx": idx, "frac": frac, "value": value,
                  "p_metal": p_metal, "bounds": bounds, "rows": rows, "known": known,
                  "min_element_count": counts}
        if domain:
            n_stats = len(magpie.feature_labels(self.table, element_fractions=False))
            ratio, nearest = self.domain.distances(X[:, :n_stats])
            result["ratio"], result["nearest"] = ratio, nearest
        return result

    def _measured(self, row: int) -> tuple[float | None, str | None, str | None]:
        if row < 0:
            return None, None, None
        gap = self.data.gaps_ev[row]
        if gap is not None:
            return gap, MEASURED_SOURCE, None
        label = "metal" if self.data.is_metal[row] else "non-metal"
        return None, METAL_SOURCE, (
            f"measured {label}; no gap in the table (Matbench dropped compositions whose "
            f"reported gaps spanned more than 0.1 eV)")

    # -- public -------------------------------------------------------------------------------
    def screen(self, formulas: Sequence[Any], *, domain: bool = True) -> GapScreen:
        """Vectorised estimates for formulas or Compositions (see :class:`GapScreen`).

        Raises:
            SurrogateDataError: A formula cannot be read or has an element beyond Lr.

        """
        try:
            r = self._evaluate(formulas, domain=domain)
        except (ValueError, KeyError) as exc:
            raise SurrogateDataError(f"cannot screen these formulas: {exc}",
                                     hint="pass chemical formulas such as 'BaTiO3'") from exc
        in_domain = r["min_element_count"] > 0
        if domain:
            in_domain &= r["ratio"] <= 1.0
        measured = np.array([g if (i >= 0 and (g := self.data.gaps_ev[i]) is not None)
                             else np.nan for i in r["rows"]], dtype=float)
        b = r["bounds"]
        return GapScreen(
            formulas=[c.reduced_formula for c in r["comps"]], gap_ev=r["value"],
            uncertainty_ev=b["sigma"], lo68_ev=b["lo68"], hi68_ev=b["hi68"],
            lo95_ev=b["lo95"], hi95_ev=b["hi95"], metal_probability=r["p_metal"],
            in_domain=in_domain, held_out=r["known"], measured_gap_ev=measured,
            recommended_gap_ev=np.where(np.isnan(measured), r["value"], measured),
            source=self.source)

    def predict(self, inputs: Iterable[Any], *, progress: Any = None,
                ) -> list[PropertyPrediction]:
        """Predictions for formulas, CIF texts, Compositions or Structures (composition only).

        Raises:
            SurrogateDataError: An input cannot be read.

        """
        items: list[MaterialInput] = as_inputs(inputs)
        if not items:
            return []
        try:
            r = self._evaluate([item.composition for item in items])
        except (ValueError, KeyError) as exc:
            raise SurrogateDataError(f"cannot predict a band gap: {exc}",
                                     hint="pass formulas, Compositions or Structures") from exc
        b = r["bounds"]
        source = self.source
        out = []
        for i, item in enumerate(items):
            notes = []
            for el in sorted(e.symbol for e in item.composition.elements):
                n = self.domain.element_counts.get(el, 0)
                if n == 0:
                    notes.append(f"element {el} not seen in training")
            near = [self.domain.labels[j] for j in r["nearest"][i][:3]]
            if r["ratio"][i] > 1.0:
                rare = "".join(
                    f"; element {el} is in only {self.domain.element_counts[el]} training "
                    f"input(s)" for el in sorted(e.symbol for e in item.composition.elements)
                    if 0 < self.domain.element_counts.get(el, 0) < RARE_ELEMENT)
                notes.append(
                    f"far from the training data: feature-space distance {r['ratio'][i]:.2f}x "
                    f"the {DOMAIN_PERCENTILE:g}th percentile of training inputs (nearest: "
                    f"{', '.join(near)}){rare}")
            measured, measured_source, note = self._measured(int(r["rows"][i]))
            value = float(r["value"][i])
            out.append(PropertyPrediction(
                property="band_gap", input=item.label or item.formula, formula=item.formula,
                value=value, uncertainty=float(b["sigma"][i]),
                interval_68=(float(b["lo68"][i]), float(b["hi68"][i])),
                interval_95=(float(b["lo95"][i]), float(b["hi95"][i])), unit="eV",
                in_domain=not notes, domain_notes=notes, domain_distance=float(r["ratio"][i]),
                nearest_training=near, source=source, model_name=self.name,
                model_version=self.version, features="composition",
                held_out=bool(r["known"][i]), metal_probability=float(r["p_metal"][i]),
                measured_value=measured, measured_source=measured_source, measured_note=note,
                recommended_value=measured if measured is not None else value,
                recommended_source=measured_source if measured is not None else source,
            ))
        return out

    def __repr__(self) -> str:
        return (f"BandGapModel({self.name!r}, version={self.version!r}, "
                f"cv_mae={self.card['metrics']['cv']['mae']:.3f})")


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
    p_oob = np.nanmean(_out_of_bag(tree_predictions(classifier, X, proba=True), classifier,
                                   all_rows), axis=0)
    per_tree = _out_of_bag(tree_predictions(regressor, X), regressor, gap_rows)
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

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
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


__all__ = ["BandGapModel", "GapCalibration", "GapScreen", "band_gap_for_compositions",
           "default_band_gap_model", "default_card", "predict_band_gap", "train_band_gap_model",
           "tree_predictions", "trimmed_mean"]

"""Ensemble arithmetic and interval calibration of the gated band-gap model.

Per-tree predictions of scikit-learn forests (fast path), trimmed means that ignore the
trees that saw a row (out-of-bag), and :class:`GapCalibration`, the Mondrian split-conformal
intervals built from out-of-bag residuals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matloop.surrogates.model import conformal_quantile

#: Settings of the default model (also its cache key); see :mod:`matloop.surrogates.band_gap`.
SETTINGS: dict[str, Any] = {
    "classifier": "ExtraTreesClassifier", "regressor": "ExtraTreesRegressor",
    "n_estimators": 100, "max_features": 0.33, "bootstrap": True, "max_samples": 0.8,
    "trim": 0.2, "metal_threshold": 0.5, "seed": 0,
}
#: Metal-probability bins of the calibration: predicted metals, predicted non-metals.
METAL_EDGES = (0.5, 0.8, 0.95, 1.0)
GAP_EDGES = (0.0, 0.2, 0.5)
#: Fewest out-of-bag residuals in a bin before it falls back to its whole group.
MIN_BIN = 30

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


def out_of_bag(per_tree: np.ndarray, forest: Any, rows: np.ndarray) -> np.ndarray:
    """``per_tree`` with the predictions of each tree on its own training rows set to NaN.

    ``rows`` maps the forest's training indices to columns of ``per_tree``.
    """
    masked = per_tree.copy()
    for t, sample in enumerate(forest.estimators_samples_):
        masked[t, rows[sample]] = np.nan
    return masked


__all__ = ["GAP_EDGES", "METAL_EDGES", "SETTINGS", "GapCalibration", "out_of_bag",
           "tree_predictions", "trimmed_mean"]

"""A trained property surrogate: tree ensemble, calibrated intervals and an applicability domain.

The point prediction is a trimmed mean over an ensemble of randomized trees (scikit-learn
ExtraTrees: the middle 60% of the tree predictions, robust to the few trees that put a metal
among semiconductors or the reverse); the spread over the trees is turned into intervals by
split-conformal calibration on out-of-fold residuals (see :class:`Calibration`). The domain
check names unseen elements and measures the distance, in standardized feature space, to the
nearest training inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from matloop.surrogates.features import FeatureKind, featurize
from matloop.surrogates.table import MaterialInput, as_inputs

#: Neighbours averaged for the feature-space distance.
DOMAIN_NEIGHBOURS = 5
#: Elements in fewer training inputs than this are named when an input is far from the data.
RARE_ELEMENT = 3
#: Training inputs farther from their neighbours than this percentile define the domain edge.
DOMAIN_PERCENTILE = 99.0


class PropertyPrediction(BaseModel):
    """One surrogate prediction with its uncertainty and where it stands against the training."""

    property: str = Field(description="Property name, e.g. band_gap.")
    input: str = Field(description="The input as given (formula, or formula of the structure).")
    formula: str = Field(description="Reduced formula of the input.")
    value: float = Field(description="Predicted value, in `unit`.")
    uncertainty: float = Field(description="Calibrated 1-sigma uncertainty: half-width of the "
                                           "68% interval, in `unit`.")
    interval_68: tuple[float, float] = Field(description="68% prediction interval, in `unit`.")
    interval_95: tuple[float, float] = Field(description="95% prediction interval, in `unit`.")
    unit: str = Field(description="Unit of value, uncertainty and intervals.")
    in_domain: bool = Field(description="False when the input has elements the model never saw "
                                        "or lies far from every training input.")
    domain_notes: list[str] = Field(default_factory=list,
                                    description="Why an input is (nearly) outside the domain.")
    domain_distance: float = Field(description="Mean distance to the nearest training inputs in "
                                               "standardized feature space, as a multiple of the "
                                               "domain edge (above 1: outside).")
    nearest_training: list[str] = Field(default_factory=list,
                                        description="Closest training inputs (labels).")
    source: str = Field(description="'surrogate:<model name>'.")
    model_name: str = Field(description="Model name.")
    model_version: str = Field(description="Content hash of data, features and settings.")
    features: str = Field(description="Feature kind: composition, structure or both.")
    held_out: bool = Field(
        default=False,
        description="True when `value` comes from trees that never saw this composition's own "
                    "training row (out-of-bag): a fair test of the model against "
                    "`measured_value`. False for new compositions (no row to hold out) and for "
                    "user-trained models.")
    metal_probability: float | None = Field(
        default=None, description="Probability that the compound is a metal (gap 0), from the "
                                  "metal / non-metal classifier of a gated model.")
    measured_value: float | None = Field(
        default=None, description="Measured value of this composition in the model's training "
                                  "table, in `unit`; None when the table has none.")
    measured_source: str | None = Field(
        default=None, description="Where `measured_value` (or a measured metal / non-metal "
                                  "label) comes from, e.g. 'experiment: Zhuo et al. ...'.")
    measured_note: str | None = Field(
        default=None, description="What the training table says about this composition when "
                                  "it has no number (e.g. a measured non-metal whose reports "
                                  "disagree).")
    recommended_value: float | None = Field(
        default=None, description="The value to show: `measured_value` for a known compound, "
                                  "else the model's `value`.")
    recommended_source: str | None = Field(
        default=None, description="Source of `recommended_value` (`measured_source` or "
                                  "`source`).")

    @model_validator(mode="after")
    def _recommend(self) -> PropertyPrediction:
        """Without a measured value the model's value is the one to show."""
        if self.recommended_value is None:
            self.recommended_value = self.value
            self.recommended_source = self.source
        return self


@dataclass
class Calibration:
    """Turns the spread over the trees into calibrated interval half-widths.

    Inputs on which every tree agrees (spread below ``tol``) form their own group with
    constant half-widths ``h68``/``h95`` (quantiles of their out-of-fold absolute residuals).
    For the others the half-width is ``k * spread`` with ``k68``/``k95`` the conformal
    quantiles of |residual| / spread. Calibrating the groups separately keeps a pile of exact
    agreements (metals with a zero gap) from shrinking every interval to nothing.
    """

    k68: float
    k95: float
    h68: float
    h95: float
    tol: float
    lower_bound: float | None = None

    def half_widths(self, spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """68% and 95% half-widths for these ensemble spreads."""
        spread = np.asarray(spread, dtype=float)
        agree = spread <= self.tol
        return (np.where(agree, self.h68, self.k68 * spread),
                np.where(agree, self.h95, self.k95 * spread))

    def intervals(self, mean: np.ndarray, spread: np.ndarray) -> dict[str, np.ndarray]:
        """Return sigma and the 68%/95% interval bounds (clipped at ``lower_bound``)."""
        w68, w95 = self.half_widths(spread)
        lo68, lo95 = mean - w68, mean - w95
        if self.lower_bound is not None:
            lo68 = np.maximum(lo68, self.lower_bound)
            lo95 = np.maximum(lo95, self.lower_bound)
        return {"sigma": w68, "lo68": lo68, "hi68": mean + w68, "lo95": lo95,
                "hi95": mean + w95}

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the model card."""
        return {"k68": self.k68, "k95": self.k95, "h68_unanimous": self.h68,
                "h95_unanimous": self.h95, "unanimous_tol": self.tol,
                "lower_bound": self.lower_bound}


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Return the ``ceil((n + 1) * level)``-th smallest score (split-conformal rule).

    Capped at the largest score when ``n`` is too small for the level.
    """
    scores = np.sort(np.asarray(scores, dtype=float))
    n = len(scores)
    if n == 0:
        return math.inf
    k = min(n, math.ceil((n + 1) * level))
    return float(scores[k - 1])


#: Fewest calibration points in a group before falling back to the pooled residuals.
_MIN_GROUP = 20


def fit_calibration(residuals: np.ndarray, spreads: np.ndarray, *, tol: float,
                    lower_bound: float | None = None) -> Calibration:
    """Calibration from out-of-fold absolute residuals and ensemble spreads."""
    residuals = np.abs(np.asarray(residuals, dtype=float))
    spreads = np.asarray(spreads, dtype=float)
    spread = spreads > tol
    if spread.sum() >= _MIN_GROUP:
        ratio = residuals[spread] / spreads[spread]
        k68, k95 = conformal_quantile(ratio, 0.68), conformal_quantile(ratio, 0.95)
    else:  # (almost) every tree agrees everywhere: scale by the typical spread instead
        scale = max(float(np.median(spreads)), tol) if len(spreads) else tol
        k68 = conformal_quantile(residuals, 0.68) / scale
        k95 = conformal_quantile(residuals, 0.95) / scale
    pool = residuals[~spread] if (~spread).sum() >= _MIN_GROUP else residuals
    return Calibration(k68=k68, k95=k95, h68=conformal_quantile(pool, 0.68),
                       h95=conformal_quantile(pool, 0.95), tol=tol, lower_bound=lower_bound)


def ensemble_predict(estimator: Any, X: np.ndarray, *, trim: float = 0.0,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Centre and spread of the tree predictions of a fitted forest.

    The centre is the mean after dropping the fraction ``trim`` of the trees at each end
    (per input); the spread is the standard deviation over all trees.
    """
    per_tree = np.stack([tree.predict(X) for tree in estimator.estimators_])
    spread = per_tree.std(axis=0)
    cut = int(trim * len(per_tree))
    if cut > 0 and len(per_tree) - 2 * cut > 0:
        per_tree = np.sort(per_tree, axis=0)[cut:len(per_tree) - cut]
    return per_tree.mean(axis=0), spread


@dataclass
class Domain:
    """Training inputs in standardized feature space, for the applicability-domain check."""

    center: np.ndarray
    scale: np.ndarray
    points: np.ndarray
    labels: list[str]
    element_counts: dict[str, int]
    threshold: float
    neighbours: int = DOMAIN_NEIGHBOURS

    @property
    def elements(self) -> frozenset[str]:
        """Elements present in at least one training input."""
        return frozenset(self.element_counts)

    @classmethod
    def fit(cls, X: np.ndarray, labels: Sequence[str], element_counts: dict[str, int], *,
            neighbours: int = DOMAIN_NEIGHBOURS,
            percentile: float = DOMAIN_PERCENTILE) -> Domain:
        """Standardize the training features and place the domain edge.

        The edge is the ``percentile`` of the training inputs' own mean distances to their
        ``neighbours`` nearest other training inputs.
        """
        center = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-12] = 1.0
        points = ((X - center) / scale).astype(np.float32)
        k = min(neighbours, len(points) - 1)
        dist, _ = _knn(points, points, k + 1)
        own = dist[:, 1:].mean(axis=1)  # drop the point itself
        threshold = float(np.percentile(own, percentile)) if len(own) else 0.0
        return cls(center=center, scale=scale, points=points, labels=list(labels),
                   element_counts=dict(element_counts), threshold=max(threshold, 1e-9),
                   neighbours=k)

    def distances(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean distance to the nearest training inputs (over the threshold) and their indices."""
        z = ((X - self.center) / self.scale).astype(np.float32)
        dist, idx = _knn(z, self.points, self.neighbours)
        return dist.mean(axis=1) / self.threshold, idx


def _knn(query: np.ndarray, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(points)
    return nn.kneighbors(query)


class SurrogateModel:
    """A trained surrogate. Get one from :func:`train_surrogate` or :func:`load_surrogate`.

    Attributes:
        card: The metadata card (name, property, unit, features, data hash, metrics, versions).
        estimator: The fitted scikit-learn forest.
        calibration: Interval calibration.
        domain: Applicability domain.

    """

    def __init__(self, card: dict[str, Any], estimator: Any, calibration: Calibration,
                 domain: Domain) -> None:
        self.card = card
        self.estimator = estimator
        self.calibration = calibration
        self.domain = domain

    @property
    def name(self) -> str:
        """Model name (file stem under the models directory)."""
        return str(self.card["name"])

    @property
    def unit(self) -> str:
        """Unit of the predictions."""
        return str(self.card["unit"])

    @property
    def features(self) -> FeatureKind:
        """Feature kind."""
        return self.card["features"]["kind"]

    @property
    def version(self) -> str:
        """Content hash of data, features and settings."""
        return str(self.card["version"])

    @property
    def needs_structure(self) -> bool:
        """Whether inputs must be structures (structure or both features)."""
        return self.features != "composition"

    def predict(self, inputs: Iterable[Any], *, progress: Any = None) -> list[PropertyPrediction]:
        """Predict for formulas, CIF texts, Compositions, Structures or MaterialInputs.

        Raises:
            SurrogateDataError: An input cannot be read, or a structure model got a formula.

        """
        items: list[MaterialInput] = as_inputs(inputs)
        if not items:
            return []
        X, _ = featurize(items, self.features, progress=progress)
        mean, spread = ensemble_predict(self.estimator, X,
                                        trim=float(self.card["estimator"].get("trim", 0.0)))
        if self.calibration.lower_bound is not None:
            mean = np.maximum(mean, self.calibration.lower_bound)
        bounds = self.calibration.intervals(mean, spread)
        ratio, nearest = self.domain.distances(X)
        out = []
        for i, item in enumerate(items):
            notes = []
            unseen = sorted({el.symbol for el in item.composition.elements}
                            - self.domain.elements)
            for el in unseen:
                notes.append(f"element {el} not seen in training")
            rare = sorted(el.symbol for el in item.composition.elements
                          if 0 < self.domain.element_counts.get(el.symbol, 0) < RARE_ELEMENT)
            near = [self.domain.labels[j] for j in nearest[i][:3]]
            if ratio[i] > 1.0:
                why = "".join(f"; element {el} is in only {self.domain.element_counts[el]} "
                              f"training input(s)" for el in rare)
                notes.append(
                    f"far from the training data: feature-space distance {ratio[i]:.2f}x the "
                    f"{DOMAIN_PERCENTILE:g}th percentile of training inputs "
                    f"(nearest: {', '.join(near)}){why}")
            out.append(PropertyPrediction(
                property=self.property, input=item.label or item.formula, formula=item.formula,
                value=float(mean[i]), uncertainty=float(bounds["sigma"][i]),
                interval_68=(float(bounds["lo68"][i]), float(bounds["hi68"][i])),
                interval_95=(float(bounds["lo95"][i]), float(bounds["hi95"][i])),
                unit=self.unit, in_domain=not notes, domain_notes=notes,
                domain_distance=float(ratio[i]), nearest_training=near,
                source=f"surrogate:{self.name}", model_name=self.name,
                model_version=self.version, features=self.features,
            ))
        return out

    @property
    def property(self) -> str:  # defined last: the name shadows the builtin in the class body
        """Property predicted."""
        return str(self.card["property"])

    def __repr__(self) -> str:
        metrics = self.card.get("metrics", {}).get("cv", {})
        return (f"SurrogateModel({self.name!r}, property={self.property!r}, "
                f"features={self.features!r}, cv_mae={metrics.get('mae')})")

"""The gated band-gap model object: predictions, held-out values, measured values, screening.

Built by :func:`matloop.surrogates.band_gap.train_band_gap_model` and normally obtained from
:func:`matloop.surrogates.band_gap.default_band_gap_model`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.core import Element

from matloop.surrogates import magpie
from matloop.surrogates.band_gap_data import (
    CITATION,
    MEASURED_SOURCE,
    METAL_SOURCE,
    ExperimentalGaps,
    composition_key,
)
from matloop.surrogates.gap_ensemble import (
    SETTINGS,
    GapCalibration,
    tree_predictions,
    trimmed_mean,
)
from matloop.surrogates.model import (
    DOMAIN_PERCENTILE,
    RARE_ELEMENT,
    Domain,
    PropertyPrediction,
    SurrogateModel,
)
from matloop.surrogates.table import MaterialInput, SurrogateDataError, as_inputs

MODEL_NAME = "band_gap_default"
DATA_LABEL = "matbench_expt_gap + matbench_expt_is_metal"

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


__all__ = ["DATA_LABEL", "MODEL_NAME", "BandGapModel", "GapScreen"]

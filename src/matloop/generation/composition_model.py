"""Formation energy of any composition with a calibrated uncertainty, from MP compositions.

Trained on the shipped Materials Project compositions (:mod:`matloop.materials.mp_pack`).

Model ``magpie-hgb-blind-folds``:

* features: Magpie element-property statistics, stoichiometry norms and valence-orbital
  fractions (146 numbers, :mod:`matloop.generation.composition_features`);
* ``N_FOLDS`` gradient-boosted tree models (scikit-learn ``HistGradientBoostingRegressor``,
  absolute-error loss), member *k* trained on every composition whose chemical system is not
  in fold *k* (fold = CRC-32 of the sorted chemical system, modulo ``N_FOLDS``). The prediction
  is their mean; member *k* alone is the **blind** prediction for fold *k*'s systems: a model
  that never saw any composition of that chemical system (used by benchmarks and when a
  reference store holds formulas out);
* uncertainty: the out-of-fold residuals (each composition predicted by the member that never
  saw its system) train a small tree model of the expected absolute error; its output is
  scaled so that the standardised residuals have a median absolute value of 0.6745 (the
  Gaussian's), and the quantiles of those standardised residuals are kept, so probabilities
  use the residuals' own (heavy-tailed) distribution rather than a Gaussian.

The model is shipped as ``matloop/data/composition_prior.npz`` (trees as arrays, no pickle)
with ``composition_prior.json`` (metadata: training set checksum, CV errors, settings). Rebuild
it exactly with ``python -m matloop.generation.composition_model`` (fixed seeds, one thread).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from matloop.errors import MatloopError, ReferenceDataError
from matloop.generation.composition_features import featurize

MODEL_NAME = "magpie-hgb-blind-folds"
#: Bump when features, settings or the training procedure change.
MODEL_VERSION = "1"
ARTEFACT = "composition_prior.npz"
META = "composition_prior.json"
N_FOLDS = 5
#: Feature columns used (Magpie statistics, stoichiometry, valence orbitals; not the 118
#: element fractions, which triple training time for 0.003 eV/atom).
N_FEATURES = 146
MEMBER_SETTINGS: dict[str, Any] = {
    "loss": "squared_error", "max_iter": 600, "learning_rate": 0.1, "max_leaf_nodes": 63,
    "min_samples_leaf": 20, "max_bins": 63, "early_stopping": False, "random_state": 0,
}
ERROR_SETTINGS: dict[str, Any] = {
    "loss": "squared_error", "max_iter": 80, "learning_rate": 0.1, "max_leaf_nodes": 15,
    "min_samples_leaf": 200, "max_bins": 63, "early_stopping": False, "random_state": 0,
}
#: Median |z| of a standard normal: the scale that calibrates the error model.
GAUSS_MEDIAN_ABS = 0.6744897501960817
BUILD_COMMAND = "python -m matloop.generation.composition_model"


def fold_of(chemsys: str, n_folds: int = N_FOLDS) -> int:
    """Fold of a chemical system ('Ba-O-Ti'): CRC-32 of the string modulo ``n_folds``."""
    return zlib.crc32(chemsys.encode()) % n_folds


def chemsys_of_formula(formula: str) -> str:
    """Sorted element symbols joined by '-'."""
    from matloop.generation.composition_features import parse_formula

    return "-".join(sorted(parse_formula(formula)))


# ---------------------------------------------------------------------------------------------
# Trees as arrays


@dataclass
class TreeArrays:
    """A boosted tree ensemble stored as flat arrays (one row per node), evaluated with numpy.

    Gives the same numbers as scikit-learn's predictor, without pickles.
    """

    feature: np.ndarray        # int16, -1 at leaves
    threshold: np.ndarray      # float64
    left: np.ndarray           # int32, global node index
    right: np.ndarray          # int32
    value: np.ndarray          # float64 (leaf values include the learning rate)
    missing_left: np.ndarray   # bool
    roots: np.ndarray          # int32, first node of each tree
    baseline: float
    depth: int

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeArrays:
        """Copy a fitted ``HistGradientBoostingRegressor`` (single output)."""
        parts, roots, offset, depth = [], [], 0, 0
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            roots.append(offset)
            parts.append((nodes, offset))
            offset += len(nodes)
            depth = max(depth, int(nodes["depth"].max()))
        nodes = np.concatenate([p for p, _ in parts])
        shift = np.concatenate([np.full(len(p), o, dtype=np.int64) for p, o in parts])
        leaf = nodes["is_leaf"].astype(bool)
        left = np.where(leaf, np.arange(len(nodes)), nodes["left"] + shift).astype(np.int32)
        right = np.where(leaf, np.arange(len(nodes)), nodes["right"] + shift).astype(np.int32)
        return cls(
            feature=np.where(leaf, -1, nodes["feature_idx"]).astype(np.int16),
            threshold=nodes["num_threshold"].astype(np.float64),
            left=left, right=right, value=np.where(leaf, nodes["value"], 0.0),
            missing_left=nodes["missing_go_to_left"].astype(bool),
            roots=np.asarray(roots, dtype=np.int32),
            baseline=float(np.asarray(model._baseline_prediction).ravel()[0]), depth=depth)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for feature rows ``x`` (n, features).

        Uses scikit-learn's compiled tree walker when this scikit-learn provides it (about
        ten times faster), otherwise :meth:`predict_numpy`; both give the same numbers.
        """
        compiled = self._compiled()
        if compiled is None:
            return self.predict_numpy(x)
        predictors, cats, fmap = compiled
        xs = np.ascontiguousarray(x, dtype=np.float64)
        out = np.full(len(xs), self.baseline)
        for tree in predictors:
            out += tree.predict(xs, cats, fmap, 1)
        return out

    def _compiled(self) -> tuple[list[Any], np.ndarray, np.ndarray] | None:
        cached = self.__dict__.get("_compiled_cache", False)
        if cached is not False:
            return cached
        try:
            from sklearn.ensemble._hist_gradient_boosting.common import (
                PREDICTOR_RECORD_DTYPE,
                X_BITSET_INNER_DTYPE,
            )
            from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

            ends = np.append(self.roots[1:], len(self.feature))
            bitsets = np.zeros((0, 8), dtype=X_BITSET_INNER_DTYPE)
            predictors = []
            for start, end in zip(self.roots, ends, strict=True):
                part = slice(int(start), int(end))
                nodes = np.zeros(int(end - start), dtype=PREDICTOR_RECORD_DTYPE)
                leaf = self.feature[part] < 0
                nodes["is_leaf"] = leaf
                nodes["value"] = self.value[part]
                nodes["feature_idx"] = np.where(leaf, 0, self.feature[part])
                nodes["num_threshold"] = self.threshold[part]
                nodes["missing_go_to_left"] = self.missing_left[part]
                nodes["left"] = np.where(leaf, 0, self.left[part] - start)
                nodes["right"] = np.where(leaf, 0, self.right[part] - start)
                predictors.append(TreePredictor(nodes, bitsets, bitsets))
            n_features = int(self.feature.max(initial=0)) + 1
            compiled: Any = (predictors, bitsets, np.zeros(max(n_features, N_FEATURES),
                                                            dtype=np.uint32))
            probe = np.zeros((1, max(n_features, N_FEATURES)))
            for tree in predictors[:1]:
                tree.predict(probe, bitsets, compiled[2], 1)
        except Exception:  # noqa: BLE001 - a scikit-learn without this private API
            compiled = None
        self.__dict__["_compiled_cache"] = compiled
        return compiled

    def predict_numpy(self, x: np.ndarray, *, chunk: int = 2000) -> np.ndarray:
        """Predictions with numpy alone (all trees advanced one level at a time)."""
        out = np.empty(len(x))
        for start in range(0, len(x), chunk):
            xs = np.asarray(x[start:start + chunk], dtype=np.float64)
            node = np.broadcast_to(self.roots[:, None], (len(self.roots), len(xs))).copy()
            cols = np.arange(len(xs))[None, :]
            for _ in range(self.depth):
                feat = self.feature[node]
                vals = xs[cols, np.maximum(feat, 0)]
                go_left = np.where(np.isnan(vals), self.missing_left[node],
                                   vals <= self.threshold[node])
                node = np.where(go_left, self.left[node], self.right[node])
            out[start:start + len(xs)] = self.baseline + self.value[node].sum(axis=0)
        return out

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Compact arrays to store (``prefix`` names the ensemble in the npz file).

        Per node: feature (int16, -1 at leaves), one float32 that is the split threshold of
        an internal node (rounded down to float32, which keeps every comparison with float32
        features exact) or the value of a leaf, children as uint8 offsets within the tree.
        """
        leaf = self.feature < 0
        thr32 = self.threshold.astype(np.float32)
        over = thr32.astype(np.float64) > self.threshold
        thr32[over] = np.nextafter(thr32[over], np.float32(-np.inf))
        split = np.where(leaf, self.value.astype(np.float32), thr32)
        tree_of = np.repeat(np.arange(len(self.roots)), np.diff(np.append(
            self.roots, len(self.feature))))
        base = self.roots[tree_of]
        if (self.left - base).max(initial=0) > 255 or (self.right - base).max(initial=0) > 255:
            raise ValueError("trees with more than 256 nodes cannot be stored compactly")
        return {f"{prefix}/feature": self.feature, f"{prefix}/split": split,
                f"{prefix}/left": np.where(leaf, 0, self.left - base).astype(np.uint8),
                f"{prefix}/right": np.where(leaf, 0, self.right - base).astype(np.uint8),
                f"{prefix}/missing_left": self.missing_left,
                f"{prefix}/roots": self.roots,
                f"{prefix}/scalars": np.array([self.baseline, self.depth], dtype=np.float64)}

    @classmethod
    def from_arrays(cls, data: Any, prefix: str) -> TreeArrays:
        """Inverse of :meth:`to_arrays`."""
        baseline, depth = data[f"{prefix}/scalars"]
        feature = data[f"{prefix}/feature"]
        split = data[f"{prefix}/split"].astype(np.float64)
        roots = data[f"{prefix}/roots"]
        leaf = feature < 0
        tree_of = np.repeat(np.arange(len(roots)), np.diff(np.append(roots, len(feature))))
        base = roots[tree_of].astype(np.int32)
        own = np.arange(len(feature), dtype=np.int32)
        return cls(feature=feature, threshold=np.where(leaf, 0.0, split),
                   left=np.where(leaf, own, base + data[f"{prefix}/left"]).astype(np.int32),
                   right=np.where(leaf, own, base + data[f"{prefix}/right"]).astype(np.int32),
                   value=np.where(leaf, split, 0.0), missing_left=data[f"{prefix}/missing_left"],
                   roots=roots, baseline=float(baseline), depth=int(depth))

    def stored(self) -> TreeArrays:
        """Return the ensemble as it reads back from storage (float32 leaves, thresholds)."""
        return TreeArrays.from_arrays(self.to_arrays("t"), "t")


# ---------------------------------------------------------------------------------------------
# The model


@dataclass
class Prediction:
    """Formation energies and their calibrated one-sigma uncertainties, eV/atom."""

    formation_energy_ev_per_atom: np.ndarray
    sigma_ev_per_atom: np.ndarray
    blind: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


@dataclass
class CompositionModel:
    """The composition formation-energy model: fold members, error model, calibration."""

    members: list[TreeArrays]
    error_model: TreeArrays
    sigma_scale: float
    z_quantiles: np.ndarray
    meta: dict[str, Any]

    @property
    def n_folds(self) -> int:
        """Number of fold members."""
        return len(self.members)

    def excluded(self) -> tuple[set[str], set[str]]:
        """Formulas and chemical systems left out of every member's training."""
        return set(self.meta.get("excluded_formulas", [])), set(
            self.meta.get("excluded_systems", []))

    def predict(self, formulas: Sequence[str], *, blind: bool | Sequence[bool] = False,
                ) -> Prediction:
        """Predict the formation energy (eV/atom) and one-sigma uncertainty of each formula.

        Args:
            formulas: Formulas (any spelling the feature parser reads).
            blind: Predict with the member that never saw the formula's chemical system (per
                formula, or for all), instead of the members' mean. Use it for compositions
                a benchmark or a reference store holds out.

        """
        x = featurize(list(formulas))[:, :N_FEATURES]
        flags = np.broadcast_to(np.asarray(blind, dtype=bool), (len(formulas),)).copy()
        sigma = self.sigma_scale * np.maximum(self.error_model.predict(x), 1e-3)
        mean = np.zeros(len(formulas))
        if (~flags).any():
            idx = np.flatnonzero(~flags)
            mean[idx] = np.mean([m.predict(x[idx]) for m in self.members], axis=0)
        if flags.any():
            folds = np.array([fold_of(chemsys_of_formula(f), self.n_folds) for f in formulas])
            for k, member in enumerate(self.members):
                idx = np.flatnonzero(flags & (folds == k))
                if len(idx):
                    mean[idx] = member.predict(x[idx])
        return Prediction(mean, sigma, flags)

    def probability_below(self, estimate: np.ndarray, sigma: np.ndarray, threshold: float,
                          ) -> np.ndarray:
        """Return P(true value <= threshold) for estimates with these sigmas.

        Uses the calibrated residual distribution (empirical quantiles of standardised
        out-of-fold residuals), not a Gaussian.
        """
        z = (threshold - np.asarray(estimate)) / np.asarray(sigma)
        levels = np.linspace(0.0, 1.0, len(self.z_quantiles))
        return np.interp(z, self.z_quantiles, levels, left=0.0, right=1.0)

    def provenance(self) -> dict[str, Any]:
        """Return what to record beside every prediction."""
        keys = ("name", "version", "training_compositions", "cv_grouped_mae_ev_per_atom",
                "training_set_sha256", "sklearn")
        return {k: self.meta[k] for k in keys if k in self.meta}

    # -- storage ---------------------------------------------------------------------------
    def save(self, folder: Path) -> tuple[Path, Path]:
        """Write the npz artefact and the JSON metadata (byte-stable for the same model)."""
        arrays: dict[str, np.ndarray] = {}
        for k, member in enumerate(self.members):
            arrays |= member.to_arrays(f"member{k}")
        arrays |= self.error_model.to_arrays("error")
        arrays["calibration/sigma_scale"] = np.array([self.sigma_scale])
        arrays["calibration/z_quantiles"] = self.z_quantiles
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        data = _zip_stable(buffer.getvalue())
        (folder / ARTEFACT).write_bytes(data)
        meta = dict(self.meta) | {"artefact_sha256": hashlib.sha256(data).hexdigest()}
        (folder / META).write_text(json.dumps(meta, indent=1) + "\n")
        return folder / ARTEFACT, folder / META

    @classmethod
    def load(cls, folder: Any) -> CompositionModel:
        """Read a saved model from a folder (a path or an importlib resource)."""
        meta = json.loads(folder.joinpath(META).read_text())
        raw = folder.joinpath(ARTEFACT).read_bytes()
        data = np.load(io.BytesIO(raw))
        members = [TreeArrays.from_arrays(data, f"member{k}") for k in range(meta["n_folds"])]
        return cls(members=members, error_model=TreeArrays.from_arrays(data, "error"),
                   sigma_scale=float(data["calibration/sigma_scale"][0]),
                   z_quantiles=data["calibration/z_quantiles"], meta=meta)


def _zip_stable(data: bytes) -> bytes:
    """Rewrite a zip archive with fixed timestamps so identical arrays give identical bytes."""
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in sorted(src.infolist(), key=lambda i: i.filename):
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


@lru_cache(maxsize=1)
def load_composition_model() -> CompositionModel:
    """Load the shipped model (once per process, well under a second).

    Raises:
        ReferenceDataError: The artefact is missing, or was trained on a different version of
            the shipped MP compositions than the one installed.

    """
    from matloop.materials.mp_pack import mp_compositions

    folder = resources.files("matloop.data")
    try:
        model = CompositionModel.load(folder)
    except (FileNotFoundError, OSError, KeyError) as exc:
        raise ReferenceDataError(
            f"the shipped composition model is missing or unreadable ({exc})",
            hint=f"reinstall matloop or rebuild it with `{BUILD_COMMAND}`") from exc
    pack_sha = mp_compositions().content_sha256()
    if model.meta.get("pack_sha256") != pack_sha or model.meta.get("version") != MODEL_VERSION:
        raise ReferenceDataError(
            "the shipped composition model was trained on another version of the MP "
            "compositions or of the model code",
            hint=f"rebuild it with `{BUILD_COMMAND}`")
    return model


# ---------------------------------------------------------------------------------------------
# Training


def training_set(*, exclude_formulas: Iterable[str] = (), exclude_systems: Iterable[str] = (),
                 ) -> tuple[list[str], np.ndarray]:
    """Formulas and MP2020 formation energies (eV/atom) of the shipped set, minus exclusions."""
    from matloop.materials.mp_pack import mp_compositions

    pack = mp_compositions()
    drop_f, drop_s = set(exclude_formulas), set(exclude_systems)
    formulas = [f for f in sorted(pack.formulas)
                if f not in drop_f and chemsys_of_formula(f) not in drop_s]
    energies = np.array([pack.get(f).formation_energy_ev_per_atom  # type: ignore[union-attr]
                         for f in formulas])
    return formulas, energies


def _fit(x: np.ndarray, y: np.ndarray, settings: dict[str, Any]) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # one thread: bit-identical rebuilds on any machine
        return HistGradientBoostingRegressor(**settings).fit(x, y)


def train_composition_model(*, exclude_formulas: Iterable[str] = (),
                            exclude_systems: Iterable[str] = (), n_folds: int = N_FOLDS,
                            members: Sequence[int] | None = None,
                            member_settings: dict[str, Any] | None = None,
                            progress: bool = False) -> CompositionModel:
    """Train the model on the shipped MP compositions (deterministic, one thread).

    About 1 minute per member on an idle core; longer when the machine is shared.

    Args:
        exclude_formulas: Reduced formulas left out of training (blind tests).
        exclude_systems: Chemical systems ('Ba-O-Ti') whose compositions are left out.
        members: Train only these fold members (the rebuild check); the others are empty and
            the error model is not trained.
        n_folds: Number of chemical-system folds (and members).
        member_settings: Override :data:`MEMBER_SETTINGS` (benchmarks compare settings).
        progress: Print each member's time and fold MAE to stderr.

    """
    import sklearn

    started = time.perf_counter()
    excluded_f, excluded_s = sorted(set(exclude_formulas)), sorted(set(exclude_systems))
    formulas, y = training_set(exclude_formulas=excluded_f, exclude_systems=excluded_s)
    x = featurize(formulas)[:, :N_FEATURES]
    folds = np.array([fold_of(chemsys_of_formula(f), n_folds) for f in formulas])
    settings = dict(MEMBER_SETTINGS) | dict(member_settings or {})
    wanted = list(range(n_folds)) if members is None else list(members)
    fitted: list[TreeArrays] = []
    oof = np.full(len(y), np.nan)
    times = []
    for k in range(n_folds):
        if k not in wanted:
            fitted.append(TreeArrays(*(np.zeros(0, dtype=d) for d in (
                np.int16, np.float64, np.int32, np.int32, np.float64, bool, np.int32)),
                baseline=0.0, depth=0))
            continue
        t0 = time.perf_counter()
        tree = TreeArrays.from_sklearn(_fit(x[folds != k], y[folds != k], settings)).stored()
        times.append(time.perf_counter() - t0)
        fitted.append(tree)
        oof[folds == k] = tree.predict(x[folds == k])
        if progress:
            print(f"member {k}: {times[-1]:.0f} s, fold MAE "
                  f"{np.mean(np.abs(oof[folds == k] - y[folds == k])):.4f}", file=sys.stderr)
    meta: dict[str, Any] = {
        "name": MODEL_NAME, "version": MODEL_VERSION, "n_folds": n_folds,
        "training_compositions": len(formulas),
        "training_set_sha256": hashlib.sha256("\n".join(
            f"{f},{e:.4f}" for f, e in zip(formulas, y, strict=True)).encode()).hexdigest(),
        "pack_sha256": _pack_sha(), "excluded_formulas": excluded_f,
        "excluded_systems": excluded_s, "features": f"Magpie statistics + stoichiometry + "
        f"valence orbitals ({N_FEATURES}; matloop.generation.composition_features)",
        "member_settings": settings, "error_settings": ERROR_SETTINGS,
        "fold_rule": "crc32(chemical system) % n_folds",
        "sklearn": sklearn.__version__, "numpy": np.__version__, "build": BUILD_COMMAND,
        "units": "eV/atom (MP2020 formation energy)",
    }
    if members is not None and len(wanted) < n_folds:
        return CompositionModel(fitted, fitted[0], 1.0, np.linspace(-3, 3, 11), meta)
    residual = y - oof
    error_model, scale, zq, coverage = _calibrate(x, residual, folds)
    meta |= {
        "cv_grouped_mae_ev_per_atom": round(float(np.mean(np.abs(residual))), 4),
        "cv_grouped_median_ae_ev_per_atom": round(float(np.median(np.abs(residual))), 4),
        "cv_grouped_rmse_ev_per_atom": round(float(np.sqrt(np.mean(residual**2))), 4),
        "cv_grouped_p90_ae_ev_per_atom": round(float(np.quantile(np.abs(residual), 0.9)), 4),
        "cv_grouped_p95_ae_ev_per_atom": round(float(np.quantile(np.abs(residual), 0.95)), 4),
        "calibration": {"sigma_scale": round(scale, 4), "rule": "sigma = scale * predicted "
                        "|out-of-fold residual|; scale sets median |z| = 0.6745",
                        "out_of_fold_cross_fitted": coverage},
        "member_train_seconds": [round(t, 1) for t in times],
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    return CompositionModel(fitted, error_model, scale, zq, meta)


def _calibrate(x: np.ndarray, residual: np.ndarray, folds: np.ndarray,
               ) -> tuple[TreeArrays, float, np.ndarray, dict[str, float]]:
    """Error model of |residual|, its scale, and quantiles of the standardised residuals.

    The scale and quantiles come from cross-fitted error predictions (two halves of the folds
    predict each other), so they are not flattered by the error model's own fit.
    """
    target = np.abs(residual)
    half = folds % 2
    honest = np.empty(len(target))
    for h in (0, 1):
        part = TreeArrays.from_sklearn(_fit(x[half != h], target[half != h], ERROR_SETTINGS)
                                       ).stored()
        honest[half == h] = part.predict(x[half == h])
    honest = np.maximum(honest, 1e-3)
    scale = float(np.median(target / honest) / GAUSS_MEDIAN_ABS)
    z = residual / (scale * honest)
    quantiles = np.quantile(z, np.linspace(0.0, 1.0, 201))
    final = TreeArrays.from_sklearn(_fit(x, target, ERROR_SETTINGS)).stored()
    coverage = {"within_1_sigma": round(float(np.mean(np.abs(z) <= 1)), 4),
                "within_2_sigma": round(float(np.mean(np.abs(z) <= 2)), 4),
                "median_sigma_ev_per_atom": round(float(np.median(scale * honest)), 4)}
    return final, scale, quantiles, coverage


def _pack_sha() -> str:
    from matloop.materials.mp_pack import mp_compositions

    return mp_compositions().content_sha256()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: rebuild the shipped model."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(str(resources.files("matloop.data"))),
                        help="output folder (default: the installed matloop/data)")
    args = parser.parse_args(argv)
    try:
        model = train_composition_model(progress=True)
    except MatloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    paths = model.save(args.out)
    keys = ("training_compositions", "cv_grouped_mae_ev_per_atom", "train_seconds")
    print(json.dumps({k: model.meta[k] for k in keys} | {"files": [str(p) for p in paths]},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

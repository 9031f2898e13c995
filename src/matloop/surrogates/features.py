"""Feature vectors for the surrogates: composition (matminer, Magpie data) and structure (CHGNet).

* ``composition``: matminer's Magpie ``ElementProperty`` statistics (132), ``Stoichiometry``
  (6), ``ValenceOrbital`` (8) and ``ElementFraction`` (118) = 264 numbers. The element data
  ship inside the matminer wheel; nothing is downloaded.
* ``structure``: CHGNet 0.3.0's crystal feature vector (64 numbers, the average of the last
  atom-feature layer), from :func:`matloop.materials.mlip.get_mlip`.
* ``both``: the two concatenated.

Both featurizers keep an in-process cache, so a structure featurized for training and again
for evaluation costs one CHGNet pass.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal, get_args

import numpy as np

from matloop.logs import quiet_third_party
from matloop.surrogates.table import MaterialInput, SurrogateDataError

FeatureKind = Literal["composition", "structure", "both"]
FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)

#: Progress callback: (stage label, done, total).
Progress = Callable[[str, int, int], None]

#: The MLIP whose crystal features are used (its version goes into every model card).
STRUCTURE_BACKEND = "chgnet"

_COMPOSITION_CACHE: dict[str, np.ndarray] = {}
_STRUCTURE_CACHE: dict[bytes, np.ndarray] = {}
_CACHE_LIMIT = 200_000


def check_kind(kind: str) -> FeatureKind:
    """``kind`` if valid.

    Raises:
        ValueError: Listing the valid feature kinds.

    """
    if kind not in FEATURE_KINDS:
        raise SurrogateDataError(f"unknown features {kind!r}; valid: {', '.join(FEATURE_KINDS)}")
    return kind  # type: ignore[return-value]


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Composition


class _CompositionFeaturizer:
    """matminer featurizers, built once per process."""

    _instance: _CompositionFeaturizer | None = None

    def __init__(self) -> None:
        from matminer.featurizers.composition import (
            ElementFraction,
            ElementProperty,
            Stoichiometry,
            ValenceOrbital,
        )

        self.parts = [
            ElementProperty.from_preset("magpie", impute_nan=True),
            Stoichiometry(),
            ValenceOrbital(impute_nan=True),
            ElementFraction(),
        ]
        self.labels = [f"{type(p).__name__}:{label}" for p in self.parts
                       for label in p.feature_labels()]

    @classmethod
    def get(cls) -> _CompositionFeaturizer:
        if cls._instance is None:
            with quiet_third_party():
                cls._instance = cls()
        return cls._instance

    def __call__(self, comp: Any) -> np.ndarray:
        with quiet_third_party():
            return np.concatenate([np.asarray(p.featurize(comp), dtype=float)
                                   for p in self.parts])


def composition_labels() -> list[str]:
    """Names of the composition features."""
    return list(_CompositionFeaturizer.get().labels)


def composition_features(inputs: Sequence[MaterialInput], *,
                         progress: Progress | None = None) -> np.ndarray:
    """Composition features, one row per input (fractional composition only)."""
    featurizer = _CompositionFeaturizer.get()
    rows = []
    step = max(1, len(inputs) // 100)
    for i, item in enumerate(inputs):
        key = item.composition.fractional_composition.formula
        row = _COMPOSITION_CACHE.get(key)
        if row is None:
            try:
                row = featurizer(item.composition)
            except Exception as exc:  # matminer raises bare errors on odd elements
                raise SurrogateDataError(
                    f"{_where(item)}composition features failed for {item.label!r} "
                    f"({type(exc).__name__}: {exc})",
                    hint="check the formula's elements",
                ) from exc
            if len(_COMPOSITION_CACHE) < _CACHE_LIMIT:
                _COMPOSITION_CACHE[key] = row
        rows.append(row)
        if progress and (i + 1) % step == 0:
            progress("composition features", i + 1, len(inputs))
    if progress:
        progress("composition features", len(inputs), len(inputs))
    return np.vstack(rows) if rows else np.zeros((0, len(featurizer.labels)))


# ---------------------------------------------------------------------------------------------
# Structure (CHGNet crystal features)


def _structure_key(structure: Any) -> bytes:
    numbers = np.asarray(structure.atomic_numbers, dtype=np.int64)
    return (np.round(structure.lattice.matrix, 6).tobytes() + numbers.tobytes()
            + np.round(structure.frac_coords, 6).tobytes())


def _chgnet_model() -> Any:
    from matloop.materials.mlip import get_mlip

    return get_mlip(STRUCTURE_BACKEND).calculator.model


def structure_labels() -> list[str]:
    """Names of the structure features."""
    return [f"CHGNet:crystal_fea_{i}" for i in range(64)]


def structure_features(inputs: Sequence[MaterialInput], *, batch_size: int = 16,
                       progress: Progress | None = None) -> np.ndarray:
    """CHGNet crystal feature vectors (64 per structure), one row per input.

    Raises:
        SurrogateDataError: An input has no structure, or CHGNet cannot build its graph.

    """
    missing = [item for item in inputs if item.structure is None]
    if missing:
        raise SurrogateDataError(
            f"structure features need crystal structures; {len(missing)} input(s) are formulas "
            f"only (first: {missing[0].label!r})",
            hint="pass CIF text or structure files, or use a model trained with "
                 "--features composition",
        )
    keys = [_structure_key(item.structure) for item in inputs]
    first_item = dict(zip(keys, inputs, strict=True))  # one CHGNet pass per distinct structure
    found = {k: _STRUCTURE_CACHE[k] for k in first_item if k in _STRUCTURE_CACHE}
    todo = [k for k in first_item if k not in found]
    if todo:
        model = _chgnet_model()
        for start in range(0, len(todo), batch_size * 8):
            chunk = todo[start:start + batch_size * 8]
            graphs = []
            for key in chunk:
                item = first_item[key]
                try:
                    graphs.append(model.graph_converter(item.structure))
                except Exception as exc:  # isolated atoms, huge cells...
                    raise SurrogateDataError(
                        f"{_where(item)}CHGNet cannot build a graph for {item.label!r} "
                        f"({type(exc).__name__}: {exc})",
                        hint="check the structure (no atom may be isolated beyond 5 Å)",
                    ) from exc
            with quiet_third_party(), contextlib.redirect_stdout(io.StringIO()):
                out = model.predict_graph(graphs, task="e", return_crystal_feas=True,
                                          batch_size=batch_size)
            for key, pred in zip(chunk, [out] if isinstance(out, dict) else out, strict=True):
                found[key] = np.asarray(pred["crystal_fea"], dtype=float)
                if len(_STRUCTURE_CACHE) < _CACHE_LIMIT:
                    _STRUCTURE_CACHE[key] = found[key]
            if progress:
                progress("CHGNet crystal features", start + len(chunk), len(todo))
    return np.vstack([found[k] for k in keys]) if keys else np.zeros((0, 64))


def clear_caches() -> None:
    """Forget cached feature vectors (tests, timing)."""
    _COMPOSITION_CACHE.clear()
    _STRUCTURE_CACHE.clear()


# ---------------------------------------------------------------------------------------------
# Both


def featurize(inputs: Sequence[MaterialInput], kind: FeatureKind, *,
              progress: Progress | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """Feature matrix for ``kind`` and the seconds spent on each part."""
    check_kind(kind)
    blocks, timings = [], {}
    if kind in ("composition", "both"):
        start = time.perf_counter()
        blocks.append(composition_features(inputs, progress=progress))
        timings["composition_features_s"] = time.perf_counter() - start
    if kind in ("structure", "both"):
        start = time.perf_counter()
        blocks.append(structure_features(inputs, progress=progress))
        timings["structure_features_s"] = time.perf_counter() - start
    return np.hstack(blocks), timings


def feature_labels(kind: FeatureKind) -> list[str]:
    """Names of the features of ``kind``, in matrix order."""
    labels: list[str] = []
    if kind in ("composition", "both"):
        labels += composition_labels()
    if kind in ("structure", "both"):
        labels += structure_labels()
    return labels


def feature_card(kind: FeatureKind) -> dict[str, Any]:
    """Describe the features and the package versions that made them (for the model card)."""
    card: dict[str, Any] = {"kind": kind, "count": len(feature_labels(kind)), "blocks": []}
    if kind in ("composition", "both"):
        card["blocks"].append({
            "name": "composition",
            "description": "matminer ElementProperty(magpie) + Stoichiometry + ValenceOrbital "
                           "+ ElementFraction",
            "count": len(composition_labels()),
            "matminer": _package_version("matminer"),
        })
    if kind in ("structure", "both"):
        from matloop.materials.mlip import get_backend_spec

        spec = get_backend_spec(STRUCTURE_BACKEND)
        card["blocks"].append({
            "name": "structure",
            "description": f"{spec.model} crystal feature vector (mean of atom features)",
            "count": 64,
            "mlip": spec.name,
            "mlip_model": spec.model,
            "mlip_version": _package_version(spec.package),
        })
    return card


def _where(item: MaterialInput) -> str:
    return f"line {item.line}: " if item.line is not None else ""

"""Magpie composition features computed in bulk with numpy (tens of thousands per second).

The same numbers as matloop's surrogate features (:mod:`matloop.surrogates.features`, which
calls matminer one composition at a time, about 2 ms each): matminer's Magpie element table
(``MagpieData(impute_nan=True)``, shipped in the matminer wheel) read once into a
(118 elements x 22 properties) array, and the per-composition statistics computed for a whole
batch at once:

* ``ElementProperty(magpie)``: minimum, maximum, range, mean, average deviation and mode of
  22 element properties (132 numbers);
* ``Stoichiometry``: number of elements and the 2, 3, 5, 7, 10 p-norms of the fractions (6);
* ``ValenceOrbital``: mean s/p/d/f valence electrons and their fractions of the total (8);
* ``ElementFraction``: the atomic fraction of each element H..Og (118).

The Magpie element table is read straight from matminer's data files (no matminer import).

Formulas are parsed with a small parser (parentheses allowed, e.g. ``Ag(AuF4)2``), not with
pymatgen, so a batch of 100,000 takes about a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from matloop.errors import MatloopError
from matloop.materials.formula import (
    N_ELEMENTS,
    FormulaError,
    element_index,
    parse_formula,
    symbols,
)

#: Magpie properties of matminer's ``ElementProperty.from_preset("magpie")``, in its order.
MAGPIE_PROPERTIES = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius",
    "Electronegativity", "NsValence", "NpValence", "NdValence", "NfValence", "NValence",
    "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled", "NUnfilled", "GSvolume_pa",
    "GSbandgap", "GSmagmom", "SpaceGroupNumber",
)
STATS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
P_NORMS = (2, 3, 5, 7, 10)
#: Most distinct elements a formula may have here.
MAX_ELEMENTS = 12

@lru_cache(maxsize=1)
def element_table() -> np.ndarray:
    """(118, 22) Magpie properties, NaNs imputed with the column mean as matminer does.

    Read from the ``.table`` files inside the matminer wheel without importing matminer
    (which takes about a second); the same numbers as ``MagpieData(impute_nan=True)``.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("matminer")
    if spec is None or not spec.submodule_search_locations:
        raise MatloopError("matminer is not installed", hint="pip install matminer")
    folder = Path(list(spec.submodule_search_locations)[0]) / "utils" / "data_files" / \
        "magpie_elementdata"
    table = np.full((N_ELEMENTS, len(MAGPIE_PROPERTIES)), np.nan)
    for j, prop in enumerate(MAGPIE_PROPERTIES):
        lines = (folder / f"{prop}.table").read_text().splitlines()
        for i in range(N_ELEMENTS):
            try:
                table[i, j] = float(lines[i])
            except (ValueError, IndexError):
                continue
    # column by column over a 1-D list, as matminer does (bit-identical means)
    means = np.array([np.nanmean(list(table[:, j])) for j in range(table.shape[1])])
    table = np.where(np.isnan(table), means[None, :], table)
    table.setflags(write=False)
    return table


def feature_labels() -> list[str]:
    """Names of the feature columns, in order."""
    labels = [f"ElementProperty:MagpieData {s} {p}" for p in MAGPIE_PROPERTIES for s in STATS]
    labels += ["Stoichiometry:0-norm"] + [f"Stoichiometry:{p}-norm" for p in P_NORMS]
    labels += [f"ValenceOrbital:avg {o} valence electrons" for o in "spdf"]
    labels += [f"ValenceOrbital:frac {o} valence electrons" for o in "spdf"]
    labels += [f"ElementFraction:{s}" for s in symbols()]
    return labels


def padded_fractions(formulas: Sequence[str | dict[str, float]],
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Element indices (n, k), atomic fractions (n, k) and a presence mask (n, k).

    Raises:
        FormulaError: A formula is unreadable or has more than :data:`MAX_ELEMENTS` elements.

    """
    n = len(formulas)
    idx = np.zeros((n, MAX_ELEMENTS), dtype=np.int64)
    frac = np.zeros((n, MAX_ELEMENTS), dtype=float)
    index = element_index()
    for row, formula in enumerate(formulas):
        amounts = parse_formula(formula) if isinstance(formula, str) else formula
        if len(amounts) > MAX_ELEMENTS:
            raise FormulaError(f"{formula!r} has more than {MAX_ELEMENTS} elements")
        total = float(sum(amounts.values()))
        for col, (el, amt) in enumerate(sorted(amounts.items(), key=lambda kv: index[kv[0]])):
            idx[row, col] = index[el]
            frac[row, col] = amt / total
    return idx, frac, frac > 0


def featurize(formulas: Sequence[str | dict[str, float]], *, chunk: int = 20_000,
              ) -> np.ndarray:
    """Feature matrix (n, 264) of formulas or element-amount dicts, float32."""
    out = np.empty((len(formulas), len(feature_labels())), dtype=np.float32)
    for start in range(0, len(formulas), chunk):
        part = formulas[start:start + chunk]
        out[start:start + len(part)] = _featurize(*padded_fractions(part))
    return out


def _featurize(idx: np.ndarray, frac: np.ndarray, mask: np.ndarray) -> np.ndarray:
    table = element_table()
    props = table[idx]                                    # (n, k, p)
    m = mask[:, :, None]
    big = np.finfo(float).max
    lo = np.where(m, props, big).min(axis=1)
    hi = np.where(m, props, -big).max(axis=1)
    mean = np.einsum("nk,nkp->np", frac, props)
    dev = np.einsum("nk,nkp->np", frac, np.abs(props - mean[:, None, :]))
    # mode: property of the most abundant element; ties give the smallest value (matminer)
    top = frac.max(axis=1, keepdims=True)
    is_top = mask & np.isclose(frac, top, rtol=0, atol=1e-12)
    mode = np.where(is_top[:, :, None], props, big).min(axis=1)
    stats = np.stack([lo, hi, hi - lo, mean, dev, mode], axis=2)  # (n, p, 6)
    n = len(idx)
    norms = [mask.sum(axis=1).astype(float)]
    norms += [np.power(np.power(frac, p).sum(axis=1), 1.0 / p) for p in P_NORMS]
    cols = [MAGPIE_PROPERTIES.index(f"N{o}Valence") for o in "spdf"]
    valence = np.einsum("nk,nkp->np", frac, props[:, :, cols])
    total = valence.sum(axis=1, keepdims=True)
    vfrac = np.divide(valence, total, out=np.zeros_like(valence), where=total > 0)
    fractions = np.zeros((n, N_ELEMENTS))
    np.add.at(fractions, (np.repeat(np.arange(n), idx.shape[1]), idx.ravel()), frac.ravel())
    return np.hstack([stats.reshape(n, -1), np.column_stack(norms), valence, vfrac, fractions])

"""Vectorised Magpie-style composition features (numpy only after the element table is built).

The same statistics as matminer's ``ElementProperty.from_preset("magpie")`` (minimum,
maximum, range, fraction-weighted mean, mean absolute deviation and the property of the
majority element, over 22 Magpie element properties), matminer's ``Stoichiometry`` p-norms
and ``ValenceOrbital`` averages, computed with array operations over a whole batch: about
40 µs per composition instead of about 7 ms, which makes whole chemical systems cheap to
pre-screen. The values equal matminer's (checked in the tests).

Added for the band gap: six more element properties (first ionisation energy, electron
affinity, polarizability, and the metal / non-metal / metalloid flags whose means are the
atomic fractions of each kind), matminer ``IonProperty``'s maximum and mean ionic character
(from Pauling electronegativities), whether the composition can be charge-balanced with
each element in one of its common oxidation states, and the element fractions. Charge
balance is the strongest single metal / non-metal feature: it moved BaTiO3 and TiO2 from
"metal" to "non-metal" in the classifier's held-out predictions.

The element table is read once from matminer's Magpie data files (shipped in the matminer
wheel; nothing is downloaded) and then travels with the trained model, so predicting needs no
matminer import.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from pymatgen.core import Composition, Element

from matloop.logs import quiet_third_party

#: Magpie element properties of matminer's "magpie" preset, in matminer's order.
MAGPIE_PROPERTIES: tuple[str, ...] = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row",
    "CovalentRadius", "Electronegativity", "NsValence", "NpValence", "NdValence",
    "NfValence", "NValence", "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled",
    "NUnfilled", "GSvolume_pa", "GSbandgap", "GSmagmom", "SpaceGroupNumber",
)
#: Extra element properties (Magpie data) added for the band gap.
EXTRA_PROPERTIES: tuple[str, ...] = ("FirstIonizationEnergy", "ElectronAffinity",
                                     "Polarizability", "IsMetal", "IsNonmetal", "IsMetalloid")
#: Statistics per property, in matminer's order.
STATISTICS: tuple[str, ...] = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
#: Stoichiometry p-norms (matminer's Stoichiometry default; p = 0 counts the elements).
P_NORMS: tuple[int, ...] = (0, 2, 3, 5, 7, 10)
#: Elements covered: H (1) to Lr (103), as in matminer's ElementFraction up to 103.
MAX_Z = 103


@dataclass
class ElementTable:
    """Element properties (rows: Z = 1..103; columns: ``properties``), NaNs imputed."""

    properties: tuple[str, ...]
    values: np.ndarray

    @classmethod
    def from_matminer(cls, properties: Sequence[str] = MAGPIE_PROPERTIES + EXTRA_PROPERTIES,
                      ) -> ElementTable:
        """Read the Magpie data that ship with matminer (missing values: property mean)."""
        data = _magpie_data()
        values = np.array([[float(data.all_elemental_props[p][Element.from_Z(z).symbol])
                            for p in properties] for z in range(1, MAX_Z + 1)])
        return cls(properties=tuple(properties), values=values)

    def column(self, name: str) -> int:
        """Index of property ``name``."""
        return self.properties.index(name)


@cache
def _magpie_data() -> Any:
    """Return the Magpie element data of matminer, missing values imputed (read once)."""
    from matminer.utils.data import MagpieData

    with quiet_third_party():
        return MagpieData(impute_nan=True)


def parse_compositions(formulas: Sequence[str | Composition],
                       ) -> tuple[np.ndarray, np.ndarray, list[Composition]]:
    """Element indices (Z - 1) and atomic fractions, padded to the largest element count.

    Returns:
        ``idx`` (N, M) int, ``frac`` (N, M) float (zero in the padding) and the compositions.

    Raises:
        ValueError: An element beyond Lr (Z > 103) or an empty composition.

    """
    comps = [f if isinstance(f, Composition) else Composition(f) for f in formulas]
    width = max((len(c) for c in comps), default=1)
    idx = np.zeros((len(comps), width), dtype=np.int64)
    frac = np.zeros((len(comps), width))
    for i, comp in enumerate(comps):
        amounts = comp.get_el_amt_dict()
        total = sum(amounts.values())
        if not amounts or total <= 0:
            raise ValueError(f"empty composition {comp.formula!r}")
        for j, (symbol, amount) in enumerate(amounts.items()):
            z = Element(symbol).Z
            if z > MAX_Z:
                raise ValueError(f"element {symbol} (Z={z}) is beyond the element table")
            idx[i, j] = z - 1
            frac[i, j] = amount / total
    return idx, frac, comps


def feature_labels(table: ElementTable, *, element_fractions: bool = True) -> list[str]:
    """Names of the columns :func:`features` returns."""
    labels = [f"{stat} {prop}" for prop in table.properties for stat in STATISTICS]
    labels += [f"{p}-norm" for p in P_NORMS]
    labels += [f"avg {o} valence electrons" for o in "spdf"]
    labels += [f"frac {o} valence electrons" for o in "spdf"]
    labels += ["max ionic char", "avg ionic char", "charge balanced"]
    if element_fractions:
        labels += [Element.from_Z(z).symbol for z in range(1, MAX_Z + 1)]
    return labels


def features(idx: np.ndarray, frac: np.ndarray, table: ElementTable, *,
             element_fractions: bool = True) -> np.ndarray:
    """Feature matrix (N, D) of compositions given as :func:`parse_compositions` arrays."""
    present = frac > 0
    p = table.values[idx]  # (N, M, K)
    w = frac[:, :, None]
    lowest = np.where(present[:, :, None], p, np.inf).min(axis=1)
    highest = np.where(present[:, :, None], p, -np.inf).max(axis=1)
    mean = (w * p).sum(axis=1)
    avg_dev = (w * np.abs(p - mean[:, None, :])).sum(axis=1)
    # Mode: the property of the majority element; ties go to the smallest value (matminer).
    top = np.isclose(frac, frac.max(axis=1, keepdims=True)) & present
    mode = np.where(top[:, :, None], p, np.inf).min(axis=1)
    stats = np.stack([lowest, highest, highest - lowest, mean, avg_dev, mode], axis=2)  # (N, K, 6)
    blocks = [stats.reshape(len(idx), -1)]

    norms = [present.sum(axis=1).astype(float)]
    norms += [(frac ** q).sum(axis=1) ** (1.0 / q) for q in P_NORMS[1:]]
    blocks.append(np.stack(norms, axis=1))

    valence = np.stack([(frac * table.values[idx, table.column(f"N{o}Valence")]).sum(axis=1)
                        for o in "spdf"], axis=1)
    total = (frac * table.values[idx, table.column("NValence")]).sum(axis=1, keepdims=True)
    blocks += [valence, np.divide(valence, total, out=np.zeros_like(valence),
                                  where=total > 0)]
    blocks += [ionic_character(idx, frac, table), charge_balanced(idx, frac)[:, None]]
    if element_fractions:
        dense = np.zeros((len(idx), MAX_Z))
        np.add.at(dense, (np.repeat(np.arange(len(idx)), idx.shape[1]), idx.ravel()),
                  frac.ravel())
        blocks.append(dense)
    return np.hstack(blocks)


def ionic_character(idx: np.ndarray, frac: np.ndarray, table: ElementTable) -> np.ndarray:
    """Maximum and fraction-weighted mean ionic character (matminer ``IonProperty``).

    The ionic character of a pair is ``1 - exp(-(chi_a - chi_b)^2 / 4)`` (Pauling).
    """
    present = frac > 0
    chi = table.values[idx, table.column("Electronegativity")]
    hi = np.where(present, chi, -np.inf).max(axis=1)
    lo = np.where(present, chi, np.inf).min(axis=1)
    pair = 1.0 - np.exp(-0.25 * (chi[:, :, None] - chi[:, None, :]) ** 2)
    mean = 0.5 * (frac[:, :, None] * frac[:, None, :] * pair).sum(axis=(1, 2))  # pairs i < j
    return np.stack([1.0 - np.exp(-0.25 * (hi - lo) ** 2), mean], axis=1)


@cache
def _common_oxidation_states(z: int) -> tuple[int, ...]:
    return tuple(sorted(Element.from_Z(z).common_oxidation_states)) or (0,)


def charge_balanced(idx: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Return 1.0 where one common oxidation state per element sums to zero charge, else 0.0.

    Single elements count as not balanced. Common oxidation states are pymatgen's
    (``Element.common_oxidation_states``): Cu+ and Ti3+ are not among them, so Cu2O and
    Ti2O3 count as unbalanced. The ICSD oxidation states were tried instead and gave a
    slightly worse held-out error (0.293 against 0.290 eV).
    """
    out = np.zeros(len(idx))
    for i in range(len(idx)):
        present = frac[i] > 0
        if present.sum() < 2:
            continue
        zs, xs = idx[i][present] + 1, frac[i][present]
        for combo in itertools.product(*(_common_oxidation_states(int(z)) for z in zs)):
            if abs(float(np.dot(xs, combo))) < 1e-6:
                out[i] = 1.0
                break
    return out


__all__ = ["EXTRA_PROPERTIES", "MAGPIE_PROPERTIES", "ElementTable", "charge_balanced",
           "feature_labels", "features", "ionic_character", "parse_compositions"]

"""What every report figure shares: the matplotlib style, the colour map, the :class:`Plot`
record, composition fractions and the E-above-hull colour scale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from matloop.schemas import CandidateResult

STYLE = {"svg.fonttype": "path", "font.size": 9, "axes.spines.top": False,
          "axes.spines.right": False, "axes.titlesize": 10, "axes.labelsize": 9,
          "svg.hashsalt": "matloop"}
CMAP = "viridis"


@dataclass
class Plot:
    """One figure: SVG text, title and caption."""

    name: str
    title: str
    caption: str
    svg: str


def fractions(formula: str, elements: list[str]) -> list[float] | None:
    """Atomic fractions of ``formula`` in the order of ``elements`` (None: other elements)."""
    from pymatgen.core import Composition

    comp = Composition(formula).fractional_composition
    if any(el.symbol not in elements for el in comp.elements):
        return None
    return [float(comp[el]) for el in elements]


def best_per_formula(cands: list[CandidateResult]) -> dict[str, CandidateResult]:
    """The lowest-E-above-hull candidate of each formula."""
    best: dict[str, CandidateResult] = {}
    for c in cands:
        if c.formula not in best or c.e_above_hull_ev_per_atom < \
                best[c.formula].e_above_hull_ev_per_atom:
            best[c.formula] = c
    return best


def hull_colour_scale(cands: list[CandidateResult]) -> Any:
    """The colour normalisation of E above hull, eV/atom (0 to at most 0.3)."""
    from matplotlib.colors import Normalize

    values = [c.e_above_hull_ev_per_atom for c in cands] or [0.0]
    # Colours resolve the interesting range; farther candidates share the top colour.
    return Normalize(vmin=min(min(values), 0.0), vmax=min(max(max(values), 0.1), 0.3))

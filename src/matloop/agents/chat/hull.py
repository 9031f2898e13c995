"""The convex hull of a system's known phases, rebuilt from a ``lookup_known_phases`` result.

The tool gives every phase's formation energy and distance to the hull; this module adds what
an answer needs beyond that, from the same numbers: the decomposition of a compound above the
hull, and the data of a small hull figure (a binary's formation energy against composition, or
a ternary's composition triangle with tie lines). No other data comes in here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from matloop.agents.chat.models import HullPlot, HullPoint

#: A phase at most this far above the hull counts as on it, eV/atom.
ON_HULL_EV_PER_ATOM = 1e-6
#: Phases drawn in a figure: on the hull and up to this far above it, eV/atom.
PLOT_WINDOW_EV_PER_ATOM = 0.1


@dataclass
class SystemPhases:
    """The formation-energy phases of one ``lookup_known_phases`` result, best per formula."""

    system: str
    elements: list[str]
    rows: dict[str, Any] = field(default_factory=dict)  # reduced formula -> best PhaseRow
    total: int = 0

    @classmethod
    def from_result(cls, result: Any) -> SystemPhases:
        """Read a ``PhasesOutput``."""
        elements = sorted((result.chemsys or "").split("-"))
        best: dict[str, Any] = {}
        for p in result.phases:
            if p.energy_kind != "formation" or p.energy_ev_per_atom is None:
                continue
            if p.formula not in best or p.energy_ev_per_atom < best[p.formula].energy_ev_per_atom:
                best[p.formula] = p
        return cls(system=result.chemsys or "", elements=elements, rows=best,
                   total=result.total)

    def row(self, formula: str) -> Any | None:
        """The best phase of a reduced formula, if listed."""
        return self.rows.get(formula)

    def compounds(self, *, within_ev_per_atom: float | None = None) -> list[Any]:
        """Compounds (two or more elements) sorted by hull distance, then formula."""
        out = [r for r in self.rows.values() if len(Composition(r.formula).elements) > 1
               and r.e_above_hull_ev_per_atom is not None and
               (within_ev_per_atom is None or r.e_above_hull_ev_per_atom <= within_ev_per_atom)]
        return sorted(out, key=lambda r: (r.e_above_hull_ev_per_atom, r.formula))

    def _diagram(self) -> PhaseDiagram | None:
        entries = [PDEntry(Composition(el), 0.0, name=el) for el in self.elements]
        for f, r in self.rows.items():
            comp = Composition(f)
            if len(comp.elements) > 1:
                entries.append(PDEntry(comp, r.energy_ev_per_atom * comp.num_atoms, name=f))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return PhaseDiagram(entries)
        except (ValueError, IndexError):
            return None

    def decomposition(self, formula: str) -> dict[str, float]:
        """Phases a compound above the hull decomposes into, with their atomic fractions."""
        row = self.row(formula)
        diagram = self._diagram()
        if row is None or diagram is None:
            return {}
        comp = Composition(formula)
        entry = PDEntry(comp, row.energy_ev_per_atom * comp.num_atoms, name=formula)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decomp, _ = diagram.get_decomp_and_e_above_hull(entry, allow_negative=True)
        if decomp is None:  # typed as optional by pymatgen
            return {}
        return {str(getattr(e, "name", e.composition.reduced_formula)): round(float(frac), 4)
                for e, frac in sorted(decomp.items(), key=lambda kv: -kv[1])}

    def plot(self, *, highlight: list[str] | None = None, source: str = "") -> HullPlot | None:
        """A binary or ternary hull figure of the phases on and near the hull (None for one
        element or four and more)."""
        n = len(self.elements)
        if n not in (2, 3):
            return None
        diagram = self._diagram()
        if diagram is None:
            return None
        corners = _order(self.elements)
        marked = set(highlight or [])
        shown = [r for r in self.rows.values()
                 if r.e_above_hull_ev_per_atom is not None and
                 (r.e_above_hull_ev_per_atom <= PLOT_WINDOW_EV_PER_ATOM or r.formula in marked)]
        points = [HullPoint(formula=el, x=x, y=y if n == 3 else 0.0, e_above_hull_ev_per_atom=0.0,
                            formation_energy_ev_per_atom=0.0)
                  for el, (x, y) in zip(corners, _corner_xy(n), strict=True)]
        for r in shown:
            if len(Composition(r.formula).elements) == 1:
                continue
            x, y = _xy(r.formula, corners)
            points.append(HullPoint(
                formula=r.formula, x=x, y=y if n == 3 else r.energy_ev_per_atom,
                e_above_hull_ev_per_atom=r.e_above_hull_ev_per_atom,
                formation_energy_ev_per_atom=r.energy_ev_per_atom, mp_id=r.mp_id,
                highlight=r.formula in marked))
        lines = []
        for facet in diagram.facets:
            members = [diagram.qhull_entries[i] for i in facet]
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    pa, pb = (_point(e, corners, n) for e in (members[a], members[b]))
                    edge = sorted([pa, pb])
                    flat = [round(v, 5) for v in (*edge[0], *edge[1])]
                    if flat not in lines and not _vertical_top(flat, n):
                        lines.append(flat)
        what = ("formation energy against composition; the line is the convex hull" if n == 2
                else "composition triangle; lines join phases in equilibrium")
        caption = (f"Known phases of {self.system} ({what}): filled points on the hull, open "
                   f"points within {PLOT_WINDOW_EV_PER_ATOM} eV/atom of it. {source}").strip()
        return HullPlot(system=self.system, kind="binary" if n == 2 else "ternary",
                        corners=corners, points=points, lines=lines, caption=caption)


def _order(elements: list[str]) -> list[str]:
    from pymatgen.core import Element

    return sorted(elements, key=lambda e: Element(e).X)  # most electronegative last


def _corner_xy(n: int) -> list[tuple[float, float]]:
    return [(0.0, 0.0), (1.0, 0.0)] if n == 2 else [(0.0, 0.0), (1.0, 0.0),
                                                    (0.5, math.sqrt(3) / 2)]


def _xy(formula: str, corners: list[str]) -> tuple[float, float]:
    comp = Composition(formula).fractional_composition
    fractions = [float(comp[el]) for el in corners]
    if len(corners) == 2:
        return round(fractions[1], 5), 0.0
    x = fractions[1] + fractions[2] / 2
    y = fractions[2] * math.sqrt(3) / 2
    return round(x, 5), round(y, 5)


def _point(entry: Any, corners: list[str], n: int) -> tuple[float, float]:
    x, y = _xy(entry.composition.reduced_formula, corners)
    if n == 2:
        return x, round(float(entry.energy_per_atom), 5)
    return x, y


def _vertical_top(line: list[float], n: int) -> bool:
    """Binary facets include the upper edges of the qhull box; keep only the lower hull."""
    return n == 2 and (line[1] > 1e-9 and line[3] > 1e-9)


__all__ = ["ON_HULL_EV_PER_ATOM", "PLOT_WINDOW_EV_PER_ATOM", "SystemPhases"]

"""Hull figures of three- and four-element systems drawn by pymatgen's ``PDPlotter``: the
Gibbs triangle of a ternary, the tetrahedron of a quaternary, built from the report's
reference phases on their stated energy scale, with the candidates drawn on top.

``PDPlotter(backend="matplotlib")`` draws through pyplot's current figure (``plt.plot``), so
the figure is made with pyplot under a lock and closed once its SVG is written; nothing is
shown and nothing is fetched (the plotly backend, which would need plotly.js, is not used).
"""

from __future__ import annotations

import io
import math
import threading
from collections import Counter
from typing import Any

from matplotlib import rc_context

from matloop.logs import quiet_third_party
from matloop.reports.figure_base import (
    CMAP,
    STYLE,
    Plot,
    best_per_formula,
    fractions,
    hull_colour_scale,
)
from matloop.schemas import CandidateResult, DiscoveryReport

#: pyplot's figure registry is process-wide: one diagram at a time.
_PYPLOT = threading.Lock()
#: Reference phases above the hull by less than this are drawn (squares), eV/atom.
SHOW_UNSTABLE_EV_PER_ATOM = 0.2
#: Compositions labelled with their best candidate.
TOP_LABELS = 8
#: Recorded and recomputed E above hull may differ by this much before the caption says so.
HULL_TOLERANCE_EV_PER_ATOM = 0.005
_FLAG_EDGE = "#c53030"


def reference_diagram(report: DiscoveryReport, elements: list[str]) -> tuple[Any, list[str]]:
    """The pymatgen ``PhaseDiagram`` of the report's reference phases within ``elements`` (in
    that order: the triangle's corners), formation energies on the report's scale. Elements
    without a reference phase get one at 0 eV/atom (an element's formation energy by
    definition); the returned notes say which."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition, Element

    entries = []
    for phase in report.reference_phases:
        if fractions(phase.formula, elements) is None:
            continue
        comp = Composition(phase.formula)
        entries.append(PDEntry(comp, phase.formation_energy_ev_per_atom * comp.num_atoms,
                               name=comp.reduced_formula, attribute=phase.source))
    notes = []
    present = {e.composition.elements[0].symbol for e in entries if e.is_element}
    for el in elements:
        if el not in present:
            entries.append(PDEntry(Composition(el), 0.0, name=el, attribute="element"))
            notes.append(el)
    return PhaseDiagram(entries, elements=[Element(e) for e in elements]), notes


def _coords(diagram: Any, formula: str) -> tuple[float, ...]:
    """Plot coordinates of a composition: PDPlotter's triangle or tetrahedron projection."""
    from pymatgen.analysis.phase_diagram import tet_coord, triangular_coord
    from pymatgen.core import Composition

    raw = diagram.pd_coords(Composition(formula))
    point = triangular_coord(raw) if len(diagram.elements) == 3 else tet_coord(raw)
    return tuple(float(x) for x in point)


def recomputed_e_above_hull(diagram: Any, candidate: CandidateResult) -> float:
    """A candidate's energy above the hull of the diagram (negative below it), eV/atom."""
    from pymatgen.analysis.phase_diagram import PDEntry
    from pymatgen.core import Composition

    comp = Composition(candidate.formula)
    entry = PDEntry(comp, candidate.formation_energy_ev_per_atom * comp.num_atoms)
    return float(diagram.get_e_above_hull(entry, allow_negative=True))


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _restyle(fig: Any, ax: Any, *, three_d: bool) -> None:
    """PDPlotter's labels are sized for a 12-inch figure; bring them to the report's size
    (and thin the tetrahedron's many tie lines)."""
    for text in list(ax.texts) + list(fig.texts):
        text.set_fontsize(7.5 if three_d else 8.5)
    for line in ax.lines:
        if line.get_marker() == "s":  # above-hull squares under the hull's circles
            line.set_zorder(1.5)
        line.set_linewidth(0.6 if three_d else min(line.get_linewidth(), 1.2))
        line.set_markersize(5 if three_d else min(line.get_markersize(), 7))
        if three_d:
            line.set_alpha(0.6)


#: x of the label column right of the tetrahedron (fraction of its axes).
TETRAHEDRON_COLUMN_X = 0.97
#: x of the two label columns beside the triangle (corners at x = 0 and 1), beyond the
#: labels PDPlotter puts beside the phases on its edges.
COLUMN_X = {"left": -0.1, "right": 1.1}


def _column(targets: list[float], *, gap: float, low: float, high: float) -> list[float]:
    """Heights for one column of labels: each near its target, at least ``gap`` apart,
    within [low, high] while the column fits there (a longer column runs above ``high``)."""
    order = sorted(range(len(targets)), key=lambda i: targets[i])
    ys = [0.0] * len(targets)
    previous = -math.inf
    for i in order:  # upwards: each label at least ``gap`` above the one below
        ys[i] = previous = max(targets[i], low, previous + gap)
    following = math.inf
    for i in reversed(order):  # downwards: pull the column under ``high``
        ys[i] = following = min(ys[i], high, following - gap)
    previous = -math.inf
    for i in order:  # upwards again: ``gap`` apart and above ``low`` whatever the room
        ys[i] = previous = max(ys[i], previous + gap, low)
    return ys


def callouts(points: list[tuple[float, float]], *, gap: float = 0.075,
             top_left: float = 0.62, top_right: float = 0.85,
             ) -> list[tuple[float, float, str]]:
    """Places for the labels of ``points`` in two columns outside the triangle
    (:data:`COLUMN_X`), each label in the column of its nearer side at about its point's
    height, at least ``gap`` apart; the top left holds the legend, so the left column stays
    below ``top_left`` (the right one below ``top_right``) unless it is too long to fit.

    Returns:
        (x, y, horizontal alignment) per point, in the points' order.
    """
    sides = ["left" if x < 0.5 else "right" for x, _ in points]
    for crowded, other in (("left", "right"), ("right", "left")):
        while sides.count(crowded) > sides.count(other) + 2:  # balance the two columns
            k = max((i for i, s in enumerate(sides) if s == crowded),
                    key=lambda i: points[i][0] if crowded == "left" else -points[i][0])
            sides[k] = other
    places: list[tuple[float, float, str]] = [(0.0, 0.0, "")] * len(points)
    for side in ("left", "right"):
        chosen = [i for i, s in enumerate(sides) if s == side]
        heights = _column([points[i][1] for i in chosen], gap=gap, low=0.02,
                          high=top_left if side == "left" else top_right)
        for i, y in zip(chosen, heights, strict=True):
            places[i] = (COLUMN_X[side], y, "right" if side == "left" else "left")
    return places


def _label(c: CandidateResult, count: int) -> str:
    return (f"{c.formula} {c.e_above_hull_ev_per_atom:+.3f}"
            + (f" (×{count})" if count > 1 else "") + (" flagged" if c.flags else ""))


def _draw_candidates(ax: Any, diagram: Any, candidates: list[CandidateResult],
                     norm: Any) -> Any:
    """Stars coloured by E above hull (best drawn last, on top); flagged candidates as
    crosses with a red edge. SVG groups ``candidates`` and ``flagged-candidates``."""
    three_d = len(diagram.elements) == 4
    ordered = sorted(candidates, key=lambda c: -c.e_above_hull_ev_per_atom)
    scatter = None
    for flag, marker, size, edge, gid in ((False, "*", 170, "#742a2a", "candidates"),
                                          (True, "X", 90, _FLAG_EDGE, "flagged-candidates")):
        chosen = [c for c in ordered if bool(c.flags) is flag]
        if not chosen:
            continue
        xyz = list(zip(*(_coords(diagram, c.formula) for c in chosen), strict=True))
        extra = {"depthshade": False} if three_d else {}
        art = ax.scatter(*xyz, c=[c.e_above_hull_ev_per_atom for c in chosen], cmap=CMAP,
                         norm=norm, marker=marker, s=size, edgecolor=edge,
                         linewidths=1.4 if flag else 0.6, zorder=5, **extra)
        art.set_gid(gid)
        scatter = scatter or art
    return scatter


def _label_triangle(ax: Any, diagram: Any, best: list[CandidateResult],
                    counts: Counter[str]) -> None:
    anchors = [_coords(diagram, c.formula) for c in best]
    for point, c, (x, y, ha) in zip(anchors, best, callouts(anchors), strict=True):
        ax.annotate(_label(c, counts[c.formula]), point, xytext=(x, y), textcoords="data",
                    fontsize=7.5, color="#9b2c2c", weight="bold", ha=ha, va="center",
                    zorder=6, arrowprops={"arrowstyle": "-", "color": "#9b2c2c", "lw": 0.6,
                                          "shrinkA": 1, "shrinkB": 6})


def _label_tetrahedron(fig: Any, ax: Any, diagram: Any, best: list[CandidateResult],
                       counts: Counter[str]) -> None:
    """Labels in a column right of the tetrahedron, each joined to its star (PDPlotter numbers
    the phases and lists them at the left): the stars are projected to the axes' 2-D frame as
    drawn, so the leader lines end on them."""
    from mpl_toolkits.mplot3d import proj3d

    fig.canvas.draw()  # fixes the view the projection below uses
    to_axes = ax.transData + ax.transAxes.inverted()
    anchors = []
    for c in best:
        x, y, _ = proj3d.proj_transform(*_coords(diagram, c.formula), ax.get_proj())
        anchors.append((float(x), float(y), *to_axes.transform((x, y))))
    heights = _column([a[3] for a in anchors], gap=0.055, low=0.05, high=0.8)
    for (x, y, _, _), c, height in zip(anchors, best, heights, strict=True):
        ax.annotate(_label(c, counts[c.formula]), (x, y), xycoords="data",
                    xytext=(TETRAHEDRON_COLUMN_X, height), textcoords="axes fraction",
                    fontsize=7.5, color="#9b2c2c", weight="bold", ha="left", va="center",
                    zorder=6, arrowprops={"arrowstyle": "-", "color": "#9b2c2c", "lw": 0.6,
                                          "shrinkA": 1, "shrinkB": 4})


def _legend(ax: Any, *, three_d: bool, above: bool, flagged: bool) -> None:
    from matplotlib.lines import Line2D

    on_hull = (Line2D([], [], ls="", marker="o", mfc="r", mec="b", ms=6,
                      label="reference phase on the hull (numbered at left)") if three_d
               else Line2D([], [], ls="", marker="o", mfc="#4daf4a", mec="k", ms=6,
                           label="reference phase on the hull"))
    handles = [on_hull]
    if above and not three_d:  # the tetrahedron shows only the hull's phases
        handles.append(Line2D([], [], ls="", marker="s", mfc="r", mec="k", ms=5,
                              label="reference phase above the hull"))
    handles.append(Line2D([], [], ls="", marker="*", mfc="#5ec962", mec="#742a2a", ms=10,
                          label="candidate"))
    if flagged:
        handles.append(Line2D([], [], ls="", marker="X", mfc="#5ec962", mec=_FLAG_EDGE,
                              mew=1.4, ms=8, label="flagged candidate (see table)"))
    ax.legend(handles=handles, fontsize=7.5, frameon=False,
              **({"loc": "upper right", "bbox_to_anchor": (1.02, 1.0)} if three_d
                 else {"loc": "upper left"}))


def hull_diagram(report: DiscoveryReport, elements: list[str], system: str,
                 candidates: list[CandidateResult]) -> Plot:
    """The Gibbs triangle (3 elements) or tetrahedron (4) of the report's reference phases,
    drawn by PDPlotter, with ``candidates`` (inside the system) as stars coloured by their
    recorded energy above the hull; flagged candidates are crosses with a red edge."""
    import matplotlib.pyplot as plt
    from pymatgen.analysis.phase_diagram import PDPlotter

    diagram, added = reference_diagram(report, elements)
    three_d = len(elements) == 4
    refs = [r for r in report.reference_phases if fractions(r.formula, elements) is not None]
    above = [r for r in refs if r.e_above_hull_ev_per_atom > 1e-6]
    shown_above = [] if three_d else [
        r for r in above if r.e_above_hull_ev_per_atom < SHOW_UNSTABLE_EV_PER_ATOM]
    counts = Counter(c.formula for c in candidates)
    best = sorted(best_per_formula(candidates).values(),
                  key=lambda c: c.e_above_hull_ev_per_atom)[:TOP_LABELS]
    norm = hull_colour_scale(candidates)
    with _PYPLOT, rc_context(STYLE), quiet_third_party():
        fig = plt.figure(figsize=(6.8, 5.0))
        try:
            ax = fig.add_subplot(projection="3d") if three_d else fig.add_subplot()
            PDPlotter(diagram, show_unstable=SHOW_UNSTABLE_EV_PER_ATOM, backend="matplotlib",
                      markerfacecolor="#4daf4a", markersize=7, linewidth=1.2,
                      ).get_plot(label_stable=True, label_unstable=False, ax=ax)
            fig.set_size_inches(6.8, 5.6 if three_d else 5.0)
            _restyle(fig, ax, three_d=three_d)
            scatter = _draw_candidates(ax, diagram, candidates, norm)
            if three_d:
                _label_tetrahedron(fig, ax, diagram, best, counts)
            else:
                ax.set_aspect("equal", adjustable="box")  # keeps PDPlotter's limits
                _label_triangle(ax, diagram, best, counts)
            _legend(ax, three_d=three_d, above=bool(shown_above),
                    flagged=any(c.flags for c in candidates))
            fig.subplots_adjust(left=0.02, right=0.84, bottom=0.02, top=0.98)
            if scatter is not None:
                extend = "max" if max(c.e_above_hull_ev_per_atom for c in candidates) > \
                    norm.vmax else "neither"
                left = 1.12 if three_d else 1.0  # the labels run past the axes
                bar = fig.colorbar(scatter, cax=fig.add_axes((left, 0.3, 0.025, 0.45)),
                                   extend=extend)
                bar.set_label("candidate E above hull (eV/atom)")
            svg = _svg(fig)
        finally:
            plt.close(fig)
    return Plot("hull", f"Candidates on the {system} hull",
                _caption(report, system, diagram, refs, above, shown_above, candidates, best,
                         added), svg)


def _caption(report: DiscoveryReport, system: str, diagram: Any, refs: list[Any],
             above: list[Any], shown_above: list[Any], candidates: list[CandidateResult],
             best: list[CandidateResult], added: list[str]) -> str:
    three_d = len(diagram.elements) == 4
    scale = report.methods.get("hull_energy_scale") or "energy scale not recorded"
    flagged = sum(bool(c.flags) for c in candidates)
    off = [c for c in candidates if abs(recomputed_e_above_hull(diagram, c)
                                        - c.e_above_hull_ev_per_atom)
           > HULL_TOLERANCE_EV_PER_ATOM]
    hidden = len(above) - len(shown_above)
    return (
        ("Composition tetrahedron" if three_d else "Gibbs triangle") + f" of {system} drawn "
        f"by pymatgen's PDPlotter from the report's {len(refs)} reference phases "
        f"({len(refs) - len(above)} on the hull: circles joined by tie lines"
        + (f"; {len(shown_above)} less than {SHOW_UNSTABLE_EV_PER_ATOM:g} eV/atom above it: "
           f"squares" if shown_above else "")
        + (f"; {hidden} above it not drawn" if hidden else "")
        + f"). Energy scale: {scale}. {len(candidates)} candidates (stars, coloured by their "
        f"recorded E above hull); the best candidate of each of the {len(best)} lowest "
        f"compositions is labelled with its E above hull in eV/atom"
        + (" (×n: candidates at that composition)" if len(candidates) > len(
            {c.formula for c in candidates}) else "") + "."
        + (f" {flagged} flagged candidate(s) are crosses with a red edge." if flagged else "")
        + (f" Element(s) without a reference phase placed at 0 eV/atom: {', '.join(added)}."
           if added else "")
        + (f" {len(off)} candidate(s) lie more than {HULL_TOLERANCE_EV_PER_ATOM * 1000:g} "
           f"meV/atom from their recorded E above hull on this diagram (their hull had other "
           f"references)." if off else ""))

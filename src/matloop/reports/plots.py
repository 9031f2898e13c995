"""Report figures drawn with matplotlib (no display): SVG text with glyphs as paths, so the
figures need no fonts and no network to show.

* ``hull``: for three and four elements, the Gibbs triangle or tetrahedron of the reference
  phases drawn by pymatgen's PDPlotter with the candidates on it
  (:mod:`matloop.reports.phase_diagram`); for a binary, formation energy of candidates and
  reference phases against composition, each candidate joined to the hull energy at its
  composition, with the hull line; for five or more elements (beyond PDPlotter), the same
  against the ratio of the two least electronegative elements.
* ``property_<target>``: each evaluated target property against the energy above the hull, with
  the model's 1-sigma as error bars, the target band, the stability threshold and the Pareto
  front ringed (``property``: formation energy, when no target was evaluated).
* ``pareto``: hull distance against the distance to the targets, the Pareto front joined.
* ``progress``: best energy above the hull per iteration and over all iterations so far.
"""

from __future__ import annotations

import io
import math
from typing import Any

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from matloop.logs import quiet_third_party
from matloop.reports.figure_base import (
    CMAP,
    STYLE,
    Plot,
    best_per_formula,
    fractions,
    hull_colour_scale,
)
from matloop.schemas import CandidateResult, DiscoveryReport, PropertyTarget

#: Compositions labelled with their best candidate on a binary hull.
BINARY_LABELS = 8
#: Right edge of the property plot, eV/atom (farther candidates are counted, not drawn).
XMAX = 0.6


def _svg(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _usable(report: DiscoveryReport) -> list[CandidateResult]:
    return [c for c in report.candidates if c.status == "ok"
            and c.e_above_hull_ev_per_atom is not None
            and c.formation_energy_ev_per_atom is not None]


def _order(elements: list[str]) -> list[str]:
    from pymatgen.core import Element

    return sorted(elements, key=lambda e: Element(e).X)  # most electronegative last


def _coordinate(elements: list[str]) -> tuple[str, callable]:
    """The x axis: a binary's fraction of its second element; for more elements, the share of
    the least electronegative pair's second cation, x = n_B / (n_A + n_B) (BaO-TiO2 runs from
    Ba-rich to Ti-rich at any oxygen content)."""
    if len(elements) <= 2:
        last = elements[-1]
        return f"fraction of {last}", lambda f: f[-1]
    a, b = elements[0], elements[1]
    return (f"{b} / ({a} + {b})",
            lambda f: f[1] / (f[0] + f[1]) if f[0] + f[1] > 0 else float("nan"))


def hull_plot(report: DiscoveryReport) -> Plot | None:
    """Candidates and reference phases: the PDPlotter diagram of a ternary or quaternary;
    otherwise formation energy against composition, each candidate joined to the hull energy
    at its composition (the segment is its E above hull)."""
    cands = _usable(report)
    if not cands:
        return None
    # Reports written before schema 1.1 name no hull system and hold no reference phases.
    system = report.methods.get("hull_chemical_system") or cands[0].chemical_system
    elements = _order(system.split("-"))
    inside = [c for c in cands if fractions(c.formula, elements) is not None]
    if not inside:
        return None
    if len(elements) in (3, 4):
        from matloop.reports.phase_diagram import hull_diagram

        return hull_diagram(report, elements, system, inside)
    label, coord = _coordinate(elements)
    refs = [r for r in report.reference_phases if fractions(r.formula, elements)]
    with rc_context(STYLE), quiet_third_party():
        fig = Figure(figsize=(6.6, 4.4))
        ax = fig.add_subplot()
        rx = [coord(fractions(r.formula, elements)) for r in refs]
        if len(elements) == 2:
            on = sorted({(x, r.formation_energy_ev_per_atom) for x, r in zip(rx, refs,
                                                                              strict=True)
                         if r.e_above_hull_ev_per_atom < 1e-6}
                        | {(0.0, 0.0), (1.0, 0.0)})  # the elements: 0 eV/atom by definition
            ax.plot(*zip(*on, strict=True), color="#9aa5b1", lw=1, zorder=1, gid="hull-line")
        for x, r in zip(rx, refs, strict=True):
            if math.isnan(x):
                continue
            stable = r.e_above_hull_ev_per_atom < 1e-6
            ax.scatter([x], [r.formation_energy_ev_per_atom], s=30, zorder=3, lw=0.9,
                       facecolor="#1f2933" if stable else "white", edgecolor="#1f2933")
            if stable and r.formation_energy_ev_per_atom < 0:
                ax.annotate(r.formula, (x, r.formation_energy_ev_per_atom), xytext=(0, -12),
                            textcoords="offset points", ha="center", fontsize=7,
                            color="#52606d")
        xs = [coord(fractions(c.formula, elements)) for c in inside]
        for x, c in zip(xs, inside, strict=True):  # the hull energy below each candidate
            hull = c.formation_energy_ev_per_atom - c.e_above_hull_ev_per_atom
            ax.plot([x, x], [hull, c.formation_energy_ev_per_atom], color="#c0392b", lw=0.8,
                    alpha=0.6, zorder=2)
            ax.plot([x - 0.012, x + 0.012], [hull, hull], color="#c0392b", lw=1.2, zorder=2)
        sc = ax.scatter(xs, [c.formation_energy_ev_per_atom for c in inside],
                        c=[c.e_above_hull_ev_per_atom for c in inside], cmap=CMAP,
                        norm=hull_colour_scale(inside), marker="*", s=140,
                        edgecolor="#c0392b", lw=0.6, zorder=4, gid="candidates")
        labelled = sorted(best_per_formula(inside).values(),
                          key=lambda c: c.e_above_hull_ev_per_atom)[:BINARY_LABELS]
        for k, c in enumerate(sorted(labelled, key=lambda c: coord(
                fractions(c.formula, elements)))):
            formula = c.formula
            x = coord(fractions(formula, elements))
            ax.annotate(f"{formula} {c.e_above_hull_ev_per_atom:+.3f}",
                        (x, c.formation_energy_ev_per_atom), xytext=(8, 10 if k % 2 else -4),
                        textcoords="offset points", fontsize=8, color="#9b2c2c", weight="bold")
        ax.set_xlabel(label)
        ax.set_ylabel("formation energy (eV/atom)")
        ax.set_xlim(-0.05, 1.05)
        bar = fig.colorbar(sc, ax=ax, shrink=0.85, pad=0.02,
                           extend="max" if max(c.e_above_hull_ev_per_atom for c in inside)
                           > 0.3 else "neither")
        bar.set_label("candidate E above hull (eV/atom)")
        svg = _svg(fig)
    scale = report.methods.get("hull_energy_scale") or "energy scale not recorded"
    return Plot("hull", f"Candidates on the {system} hull",
                f"{len(inside)} candidates (stars, coloured by energy above the hull; the best "
                f"of each of the {len(labelled)} lowest compositions labelled with it, in "
                f"eV/atom) and {len(refs)} reference phases "
                f"(circles: filled on the hull, open above it). The red tick under each star is "
                f"the hull energy at its composition. Energy scale: {scale}.", svg)


def _targets(report: DiscoveryReport, cands: list[CandidateResult],
             ) -> list[tuple[PropertyTarget, str]]:
    """(target, candidate property key) for every property target some candidate has."""
    if report.objective is None:
        return []
    out = []
    for t in report.objective.property_targets:
        if t.name in ("e_above_hull", "formation_energy"):
            continue
        keys = [k for c in cands for k in c.properties
                if k == t.key or (t.key == t.name and k.startswith(t.name))]
        if keys:
            out.append((t, keys[0]))
    return out


def _threshold(report: DiscoveryReport) -> float:
    return (report.objective.stability_threshold_ev_per_atom if report.objective
            else report.methods.get("stability_threshold_ev_per_atom", 0.1))


def _stability_band(ax: Any, rows: list[CandidateResult], threshold: float) -> None:
    ax.axvspan(min(min(c.e_above_hull_ev_per_atom for c in rows), 0) - 0.01, threshold,
               color="#c6f6d5", alpha=0.5, zorder=0, lw=0)
    ax.axvline(threshold, color="#2f855a", ls="--", lw=1)
    ax.text(threshold, 1.0, f" threshold {threshold:g} eV/atom",
            transform=ax.get_xaxis_transform(), fontsize=7, color="#2f855a", va="top")


def _one_property_plot(report: DiscoveryReport, cands: list[CandidateResult],
                       target: PropertyTarget | None, key: str | None) -> Plot:
    threshold = _threshold(report)
    with rc_context(STYLE):
        fig = Figure(figsize=(6.4, 3.8))
        ax = fig.add_subplot()
        rows = [c for c in cands if key is None or key in c.properties]
        xs = [c.e_above_hull_ev_per_atom for c in rows]
        ys = [c.properties[key] if key else c.formation_energy_ev_per_atom for c in rows]
        errs = [c.property_uncertainties.get(key, 0.0) if key else 0.0 for c in rows]
        colours = ["#2f855a" if c.meets_objective else "#718096" for c in rows]
        if any(errs):
            ax.errorbar(xs, ys, yerr=errs, fmt="none", ecolor="#a0aec0", elinewidth=0.8,
                        capsize=2, zorder=2)
        ax.scatter(xs, ys, c=colours, s=36, edgecolor="white", lw=0.5, zorder=3)
        front = [(x, y) for c, x, y in zip(rows, xs, ys, strict=True) if c.pareto_rank == 1]
        if front and target is not None:
            ax.scatter(*zip(*front, strict=True), s=90, facecolor="none", edgecolor="#1a202c",
                       lw=1.0, zorder=4, label="Pareto front (stability, every target)")
            ax.legend(frameon=False, fontsize=7, loc="best")
        _stability_band(ax, rows, threshold)
        if target is not None:
            lo = target.min if target.min is not None else ax.get_ylim()[0]
            hi = target.max if target.max is not None else ax.get_ylim()[1]
            ax.axhspan(lo, hi, color="#e9d8fd", alpha=0.5, zorder=0, lw=0)
            for bound in (target.min, target.max):
                if bound is not None:
                    ax.axhline(bound, color="#805ad5", ls=":", lw=1)
        for formula, c in best_per_formula(rows).items():
            y = c.properties[key] if key else c.formation_energy_ev_per_atom
            ax.annotate(formula, (c.e_above_hull_ev_per_atom, y), xytext=(5, 3),
                        textcoords="offset points", fontsize=7)
        far = [c for c in rows if c.e_above_hull_ev_per_atom > XMAX]
        if far:
            ax.set_xlim(right=XMAX)
        ax.set_xlabel("energy above hull (eV/atom)")
        ax.set_ylabel(key or "formation energy (eV/atom)")
        svg = _svg(fig)
    if key is None:
        what = "formation energy: no target property was evaluated in this run"
    else:
        source = next((c.property_sources[key] for c in rows if key in c.property_sources),
                      "model")
        what = (f"{key} ({source.split(' (')[0]}); error bars: the model's 1-sigma where it "
                f"gives one")
    band = f" The purple band is the target {target.describe()}." if target else ""
    ring = (" Ringed: the Pareto front over stability and every property target."
            if target is not None and any(c.pareto_rank == 1 for c in rows) else "")
    name = "property" if target is None else f"property_{target.name}"
    title = ("Objective against stability" if target is None
             else f"{target.name} against stability")
    return Plot(name, title,
                f"{len(rows)} candidates; y axis: {what}. Green: meets the objective; the "
                f"shaded band is within the stability threshold.{band}{ring}"
                + (f" {len(far)} candidate(s) above {XMAX:g} eV/atom lie off the right edge."
                   if far else ""), svg)


def property_plots(report: DiscoveryReport) -> list[Plot]:
    """Each evaluated target property against the energy above the hull (formation energy
    when no target was evaluated)."""
    cands = _usable(report)
    if not cands:
        return []
    targets = _targets(report, cands)
    if not targets:
        return [_one_property_plot(report, cands, None, None)]
    return [_one_property_plot(report, cands, t, key) for t, key in targets]


def pareto_plot(report: DiscoveryReport) -> Plot | None:
    """Hull distance against the distance to the property targets, Pareto front joined.

    One target: its shortfall in its unit. Several: the sum of each shortfall in units of the
    target's scale (:meth:`PropertyTarget.scale`), as in the objective score.
    """
    cands = _usable(report)
    targets = _targets(report, cands)
    if not targets:
        return None
    rows = [c for c in cands if all(key in c.properties for _, key in targets)]
    if not rows:
        return None

    def shortfall(c: CandidateResult) -> float:
        if len(targets) == 1:
            t, key = targets[0]
            return t.distance(c.properties[key])
        return sum(t.distance(c.properties[key]) / t.scale() for t, key in targets)

    ylabel = (f"distance to {targets[0][0].describe()} ({targets[0][0].unit})"
              if len(targets) == 1 else "summed distance to the targets (target scales)")
    threshold = _threshold(report)
    with rc_context(STYLE):
        fig = Figure(figsize=(6.4, 3.8))
        ax = fig.add_subplot()
        xs = [max(c.e_above_hull_ev_per_atom, 0.0) for c in rows]
        ys = [shortfall(c) for c in rows]
        on = [c.pareto_rank == 1 for c in rows]
        ax.scatter([x for x, f in zip(xs, on, strict=True) if not f],
                   [y for y, f in zip(ys, on, strict=True) if not f], c="#a0aec0", s=30,
                   edgecolor="white", lw=0.5, zorder=3, label="dominated")
        front = sorted((x, y) for x, y, f in zip(xs, ys, on, strict=True) if f)
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post",
                    color="#c0392b", lw=1, zorder=2)
            ax.scatter([p[0] for p in front], [p[1] for p in front], c="#c0392b", s=44,
                       edgecolor="white", lw=0.5, zorder=4, label="Pareto front")
        _stability_band(ax, rows, threshold)
        for c, x, y, f in zip(rows, xs, ys, on, strict=True):
            if f:
                ax.annotate(c.formula, (x, y), xytext=(5, 3), textcoords="offset points",
                            fontsize=7)
        if max(xs) > XMAX:
            ax.set_xlim(right=XMAX)
        ax.set_xlabel("energy above hull (eV/atom, 0 on or below)")
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False, fontsize=7, loc="upper right")
        svg = _svg(fig)
    n_front = sum(on)
    return Plot("pareto", "Pareto front: stability against the targets",
                f"{len(rows)} candidates with every target evaluated; {n_front} on the Pareto "
                f"front (red, joined): none of the others is at least as close to the hull and "
                f"to every target ({', '.join(t.describe() for t, _ in targets)}). Both axes "
                f"are to be minimised; 0 on the y axis meets every target.", svg)


def progress_plot(report: DiscoveryReport) -> Plot | None:
    """Best energy above the hull per iteration and cumulatively."""
    cands = _usable(report)
    if not cands:
        return None
    iterations = sorted({c.iteration for c in cands})
    per = [min(c.e_above_hull_ev_per_atom for c in cands if c.iteration == i)
           for i in iterations]
    best = [min(per[: k + 1]) for k in range(len(per))]
    counts = [sum(bool(c.is_stable) for c in cands if c.iteration == i) for i in iterations]
    with rc_context(STYLE):
        fig = Figure(figsize=(6.4, 3.4))
        ax = fig.add_subplot()
        xs = [i + 1 for i in iterations]
        ax.plot(xs, per, "o-", color="#3182ce", label="best in iteration")
        ax.plot(xs, best, "s--", color="#c0392b", label="best so far")
        for x, y, n in zip(xs, per, counts, strict=True):
            ax.annotate(f"{n} stable", (x, y), xytext=(0, 8), textcoords="offset points",
                        ha="center", fontsize=7, color="#3182ce")
        ax.set_xticks(xs)
        ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
        ax.set_xlabel("iteration")
        ax.set_ylabel("energy above hull (eV/atom)")
        ax.legend(frameon=False, fontsize=8)
        svg = _svg(fig)
    return Plot("progress", "Progress across iterations",
                f"Best energy above the hull among the candidates of each of "
                f"{len(iterations)} iteration(s), and the best so far; labels count the "
                f"candidates within the stability threshold.", svg)


def report_plots(report: DiscoveryReport) -> list[Plot]:
    """Every figure the report's data supports."""
    return [p for p in (hull_plot(report), *property_plots(report), pareto_plot(report),
                        progress_plot(report)) if p]

"""Material cards of the top candidates for the report: the knowledge-base card (lattice,
space group, coordination environments, robocrys description) plus the relaxed CIF and three
2D projections of the cell along a, b and c, written to ``cards/<candidate id>/``.

Projections are drawn with matplotlib: atoms as discs with Jmol colours (pymatgen's
``ElementColorSchemes.yaml``) and radii proportional to pymatgen's atomic radii, farther
atoms first, the cell edges as lines.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pymatgen.core import Structure

from matloop.errors import MatloopError
from matloop.schemas import CandidateResult, ReportCard

AXES = ("a", "b", "c")


@functools.cache
def jmol_colours() -> dict[str, tuple[float, float, float]]:
    """Element -> RGB (0-1) from pymatgen's Jmol scheme."""
    import yaml
    from pymatgen import vis

    path = Path(vis.__file__).parent / "ElementColorSchemes.yaml"
    scheme = yaml.safe_load(path.read_text())["Jmol"]
    return {el: tuple(v / 255 for v in rgb) for el, rgb in scheme.items()}


def resolve_in_run(run_dir: Path, path: str | None) -> Path | None:
    """A file recorded in a report: as written, else the same path relative to the run
    directory (runs that were moved or copied keep their layout)."""
    if not path:
        return None
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_absolute() and (run_dir / p).is_file():
        return run_dir / p
    parts = p.parts
    for i in range(len(parts) - 1, 0, -1):
        candidate = run_dir.joinpath(*parts[i:])
        if candidate.is_file():
            return candidate
    return None


def _cell_images(structure: Structure) -> tuple[np.ndarray, list[str]]:
    """Cartesian positions of the atoms, plus their periodic images on the cell faces."""
    coords, species = [], []
    for site in structure:
        f = np.mod(site.frac_coords, 1.0)
        f[np.isclose(f, 1.0, atol=1e-4)] = 0.0
        shifts = [np.array(s) for s in np.ndindex(2, 2, 2)]
        for s in shifts:
            g = f + s
            if np.all(g <= 1.0 + 1e-4):
                coords.append(structure.lattice.get_cartesian_coords(g))
                species.append(site.specie.symbol)
    return np.array(coords), species


def projection_png(structure: Structure, axis: str, path: Path, *, size_in: float = 3.0,
                   dpi: int = 110) -> Path:
    """Draw the cell seen along lattice vector ``axis`` (a, b or c) into a PNG file."""
    from matplotlib.patches import Circle
    from pymatgen.core import Element

    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; valid: a, b, c")
    lat = structure.lattice.matrix
    view = lat[AXES.index(axis)] / np.linalg.norm(lat[AXES.index(axis)])
    helper = np.array([0.0, 0.0, 1.0]) if abs(view[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(helper, view)
    u /= np.linalg.norm(u)
    v = np.cross(view, u)
    coords, species = _cell_images(structure)
    order = np.argsort(coords @ view)  # the viewer is on +view: far atoms drawn first
    colours = jmol_colours()
    corners = np.array([lat.T @ np.array(c) for c in np.ndindex(2, 2, 2)])
    edges = [(i, j) for i in range(8) for j in range(i + 1, 8)
             if bin(i ^ j).count("1") == 1]
    with rc_context({"savefig.transparent": False}):
        fig = Figure(figsize=(size_in, size_in), dpi=dpi)
        ax = fig.add_axes((0, 0, 1, 1))
        for i, j in edges:
            p, q = corners[i], corners[j]
            ax.plot([p @ u, q @ u], [p @ v, q @ v], color="#7b8794", lw=0.8, zorder=1)
        for k in order:
            el = species[k]
            radius = float(Element(el).atomic_radius or 1.0) * 0.45
            ax.add_patch(Circle((coords[k] @ u, coords[k] @ v), radius,
                                facecolor=colours.get(el, (0.6, 0.6, 0.6)), edgecolor="#1f2933",
                                lw=0.5, zorder=2))
        xs, ys = corners @ u, corners @ v
        pad = 1.2
        span = max(xs.max() - xs.min(), ys.max() - ys.min()) / 2 + pad
        cx, cy = (xs.max() + xs.min()) / 2, (ys.max() + ys.min()) / 2
        ax.set_xlim(cx - span, cx + span)
        ax.set_ylim(cy - span, cy + span)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.text(0.03, 0.97, f"along {axis}", transform=ax.transAxes, va="top", fontsize=8,
                color="#52606d")
        FigureCanvasAgg(fig)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", facecolor="white")
    return path


def card_for(candidate: CandidateResult, run_dir: Path, *, use_robocrys: bool = True,
             robocrys_timeout_s: float = 60.0, previous: ReportCard | None = None,
             ) -> ReportCard:
    """Card, CIF copy and projections of one candidate under ``cards/<id>/``.

    A card already in the report (``previous``) is reused; missing images are redrawn.

    Raises:
        MatloopError: The candidate's relaxed CIF cannot be found.
    """
    from matloop.knowledge.cards import material_card

    source = resolve_in_run(run_dir, candidate.cif_path)
    if previous is not None and previous.cif:
        source = source or resolve_in_run(run_dir, previous.cif)
    if source is None:
        raise MatloopError(f"{candidate.id}: relaxed CIF {candidate.cif_path} not found",
                           hint="re-run the campaign or keep its structures/ folder")
    folder = run_dir / "cards" / candidate.id
    folder.mkdir(parents=True, exist_ok=True)
    cif = folder / f"{candidate.id}_{candidate.formula}.cif"
    if source.resolve() != cif.resolve():
        shutil.copyfile(source, cif)
    structure = Structure.from_file(cif)
    if previous is not None:
        card: dict[str, Any] = previous.card
    else:
        props = {k: v for k, v in {
            "formation_energy_ev_per_atom": candidate.formation_energy_ev_per_atom,
            "e_above_hull_ev_per_atom": candidate.e_above_hull_ev_per_atom,
            "energy_per_atom_ev": candidate.energy_per_atom_ev, **candidate.properties}.items()
            if v is not None}
        card = material_card(structure, props, source=f"candidate {candidate.id} "
                                                      f"({candidate.mlip})",
                             use_robocrys=use_robocrys,
                             robocrys_timeout_s=robocrys_timeout_s).model_dump(mode="json")
    images = {}
    for axis in AXES:
        png = folder / f"projection_{axis}.png"
        if not png.is_file():
            projection_png(structure, axis, png)
        images[axis] = png.relative_to(run_dir).as_posix()
    return ReportCard(candidate_id=candidate.id, card=card,
                      cif=cif.relative_to(run_dir).as_posix(), images=images)


def report_cards(candidates: list[CandidateResult], run_dir: Path, *, top: int = 5,
                 use_robocrys: bool = True, robocrys_timeout_s: float = 60.0,
                 previous: list[ReportCard] | None = None,
                 ) -> tuple[list[ReportCard], list[str]]:
    """Cards of the ``top`` best evaluated candidates (one per distinct structure).

    Returns:
        The cards, and notes on candidates that got none (CIF missing).
    """
    known = {c.candidate_id: c for c in previous or []}
    cards, notes, seen = [], [], set()
    for c in candidates:
        if len(cards) >= top:
            break
        if c.status != "ok" or not c.cif_path:
            continue
        key = (c.formula, c.spacegroup, round(c.energy_per_atom_ev or 0.0, 4))
        if key in seen:  # the same relaxed structure reached by two generators
            continue
        seen.add(key)
        try:
            cards.append(card_for(c, run_dir, use_robocrys=use_robocrys,
                                  robocrys_timeout_s=robocrys_timeout_s,
                                  previous=known.get(c.id)))
        except MatloopError as exc:
            notes.append(str(exc))
    return cards, notes

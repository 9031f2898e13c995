"""Material cards of the top candidates for the report: the knowledge-base card (lattice,
space group, coordination environments, robocrys description), the structure type (AFLOW
prototype, :mod:`matloop.reports.prototypes`), the relaxed CIF and three 2D projections of the
cell along a, b and c, written to ``cards/<candidate id>/``.

Projections are drawn by ASE's ``plot_atoms`` on a matplotlib figure without pyplot: Jmol
colours, covalent radii (scaled by :data:`RADIUS_SCALE`), the cell as dashed lines, atoms on
the cell faces repeated on the opposite faces so a cubic perovskite looks like one.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pymatgen.core import Structure

from matloop.errors import MatloopError
from matloop.schemas import CandidateResult, DiscoveryReport, ReportCard, StructureType

AXES = ("a", "b", "c")
#: Atom radius as a fraction of the covalent radius (whole radii overlap in dense oxides).
RADIUS_SCALE = 0.5


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


def view_rotation(structure: Structure, axis: str) -> np.ndarray:
    """Rotation (columns: screen right, screen up, towards the viewer) that looks down lattice
    vector ``axis`` from its tip, as ASE's ``rotation`` argument (positions @ rotation)."""
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; valid: a, b, c")
    vector = structure.lattice.matrix[AXES.index(axis)]
    view = vector / np.linalg.norm(vector)
    helper = np.array([0.0, 0.0, 1.0]) if abs(view[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    right = np.cross(helper, view)
    right /= np.linalg.norm(right)
    return np.column_stack([right, np.cross(view, right), view])  # proper: right x up = view


def _plot_atoms(atoms: Any, ax: Any, **kwargs: Any) -> None:
    """ASE's ``plot_atoms`` with its patches added as one collection.

    ``plot_atoms`` adds each patch (atom discs and the ~150 depth-sorted dashes of the cell
    edges) to the axes one by one, which costs ~0.5 s per image on a shared machine; the same
    patches from ASE's writer in one ``PatchCollection`` draw the same picture in a fraction
    of it.
    """
    from ase.io.utils import make_patch_list
    from ase.visualize.plot import Matplotlib
    from matplotlib.collections import PatchCollection

    writer = Matplotlib(atoms, ax, **kwargs)
    ax.add_collection(PatchCollection(make_patch_list(writer), match_original=True))
    ax.set_xlim(0, writer.w)
    ax.set_ylim(0, writer.h)
    ax.set_axis_off()


def projection_png(structure: Structure, axis: str, path: Path, *, size_in: float = 3.0,
                   dpi: int = 110) -> Path:
    """Draw the cell seen along lattice vector ``axis`` (a, b or c) into a PNG file with
    ASE's ``plot_atoms``."""
    from ase import Atoms
    from ase.data import atomic_numbers
    from ase.data.colors import jmol_colors
    from matplotlib.lines import Line2D

    rotation = view_rotation(structure, axis)
    coords, species = _cell_images(structure)
    atoms = Atoms(symbols=species, positions=coords, cell=structure.lattice.matrix, pbc=True)
    with rc_context({"savefig.transparent": False}):
        fig = Figure(figsize=(size_in, size_in), dpi=dpi)
        ax = fig.add_axes((0.03, 0.03, 0.94, 0.85))  # the top strip holds the key
        _plot_atoms(atoms, ax, rotation=rotation, radii=RADIUS_SCALE, show_unit_cell=2)
        fig.text(0.03, 0.97, f"along {axis}", va="top", fontsize=8, color="#52606d")
        elements = sorted(set(species), key=lambda el: atomic_numbers[el])
        fig.legend(handles=[Line2D([], [], ls="", marker="o", ms=6, mec="black", mew=0.5,
                                   mfc=jmol_colors[atomic_numbers[el]], label=el)
                            for el in elements],
                   loc="upper right", bbox_to_anchor=(0.99, 0.995), ncol=len(elements),
                   fontsize=7.5, frameon=False, handletextpad=0.05, columnspacing=0.6,
                   borderaxespad=0.0, borderpad=0.2)
        FigureCanvasAgg(fig)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", facecolor="white")
    return path


def card_for(candidate: CandidateResult, run_dir: Path, *, use_robocrys: bool = True,
             robocrys_timeout_s: float = 60.0, prototypes: bool = True,
             prototype_timeout_s: float = 20.0, previous: ReportCard | None = None,
             ) -> ReportCard:
    """Card, structure type, CIF copy and projections of one candidate under
    ``cards/<id>/``.

    A card already in the report (``previous``) is reused; missing images are redrawn and a
    missing structure type (cards before schema 1.3) is matched when ``prototypes`` is set.

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
    kind = previous.structure_type if previous is not None else None
    if kind is None and prototypes:
        from matloop.reports.prototypes import structure_type

        kind = structure_type(structure, timeout_s=prototype_timeout_s)
    images = {}
    for axis in AXES:
        png = folder / f"projection_{axis}.png"
        if not png.is_file():
            projection_png(structure, axis, png)
        images[axis] = png.relative_to(run_dir).as_posix()
    return ReportCard(candidate_id=candidate.id, card=card,
                      cif=cif.relative_to(run_dir).as_posix(), images=images,
                      structure_type=kind)


def structure_key(candidate: CandidateResult) -> tuple[str, str | None, float]:
    """Candidates with equal keys hold the same relaxed structure (reached by two
    generators): formula, space group and energy per atom to 0.1 meV."""
    return (candidate.formula, candidate.spacegroup,
            round(candidate.energy_per_atom_ev or 0.0, 4))


def report_cards(candidates: list[CandidateResult], run_dir: Path, *, top: int = 5,
                 use_robocrys: bool = True, robocrys_timeout_s: float = 60.0,
                 prototypes: bool = True, prototype_timeout_s: float = 20.0,
                 previous: list[ReportCard] | None = None, robocrys_total_s: float = 60.0,
                 ) -> tuple[list[ReportCard], list[str]]:
    """Cards of the ``top`` best evaluated candidates (one per distinct structure).

    Returns:
        The cards, and notes on candidates that got none (CIF missing).
    """
    known = {c.candidate_id: c for c in previous or []}
    cards, notes, seen = [], [], set()
    started = time.perf_counter()
    for c in candidates:
        if len(cards) >= top:
            break
        if c.status != "ok" or not c.cif_path:
            continue
        key = structure_key(c)
        if key in seen:  # the same relaxed structure reached by two generators
            continue
        seen.add(key)
        try:
            # robocrys shares one time budget over all cards (its first call imports for
            # tens of seconds): later cards get what is left, then the pymatgen description
            left_s = max(robocrys_total_s - (time.perf_counter() - started), 1.0)
            cards.append(card_for(c, run_dir, use_robocrys=use_robocrys,
                                  robocrys_timeout_s=min(robocrys_timeout_s, left_s),
                                  prototypes=prototypes,
                                  prototype_timeout_s=prototype_timeout_s,
                                  previous=known.get(c.id)))
        except MatloopError as exc:
            notes.append(str(exc))
    return cards, notes


def structure_types(report: DiscoveryReport) -> dict[str, StructureType]:
    """Candidate id -> structure type, for the candidates with a card and the candidates
    holding the same relaxed structure (:func:`structure_key`)."""
    by_id = {c.id: c for c in report.candidates}
    by_key = {structure_key(by_id[card.candidate_id]): card.structure_type
              for card in report.cards
              if card.structure_type is not None and card.candidate_id in by_id}
    return {c.id: by_key[structure_key(c)] for c in report.candidates
            if c.status == "ok" and structure_key(c) in by_key}

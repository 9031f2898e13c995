"""Report pictures from pymatgen and ASE: the hull of a ternary as PDPlotter's Gibbs triangle
and of a quaternary as its tetrahedron (reference phases of a real Ba-Ti-O run, and Materials
Project energies shipped with matloop), card projections drawn by ASE's plot_atoms, and AFLOW
prototype labels of the relaxed structures (checked against pymatgen's AflowPrototypeMatcher).
"""

from __future__ import annotations

import itertools
import math
import re
import shutil
from pathlib import Path

import pytest
from pymatgen.core import Structure

from matloop.reports.cards import projection_png, view_rotation
from matloop.reports.phase_diagram import (
    _coords,
    callouts,
    recomputed_e_above_hull,
    reference_diagram,
)
from matloop.reports.plots import hull_plot
from matloop.reports.prototypes import match_prototypes, structure_type
from matloop.schemas import CandidateResult, DiscoveryReport, ReferencePoint

FIXTURE = Path(__file__).parents[1] / "data" / "report_run" / "batio-fixture"
STRUCTURES = FIXTURE / "structures"
FLAG = "far below the MP hull (likely MLIP error)"


def fixture_report() -> DiscoveryReport:
    return DiscoveryReport.model_validate_json((FIXTURE / "report.json").read_text())


def structure(name: str) -> Structure:
    return Structure.from_file(STRUCTURES / name)


def svg_group(svg: str, gid: str) -> str:
    """The text of the SVG group matplotlib wrote for the artist with this gid."""
    start = svg.index(f'<g id="{gid}">')
    depth, pos = 0, start
    for match in re.finditer(r"<g[ >]|</g>", svg[start:]):
        depth += 1 if match.group().startswith("<g") else -1
        if depth == 0:
            pos = start + match.end()
            break
    return svg[start:pos]


def mp_report(system: str, *, candidate_elements: int) -> DiscoveryReport:
    """A report on the shipped Materials Project energies (MP2020 scale) of ``system``: every
    composition of its subsystems as a reference phase, those with ``candidate_elements``
    elements also as candidates; energies above the hull computed here with pymatgen."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    from matloop.materials.mp_pack import mp_compositions

    elements = system.split("-")
    systems = ["-".join(sorted(c)) for n in range(1, len(elements) + 1)
               for c in itertools.combinations(elements, n)]
    packed = mp_compositions().in_systems(systems)
    entries = [PDEntry(Composition(p.formula),
                       p.formation_energy_ev_per_atom * Composition(p.formula).num_atoms)
               for p in packed]
    diagram = PhaseDiagram(entries + [PDEntry(Composition(e), 0.0) for e in elements])
    hull = [diagram.get_e_above_hull(e) for e in entries]
    refs = [ReferencePoint(formula=p.formula,
                           formation_energy_ev_per_atom=p.formation_energy_ev_per_atom,
                           e_above_hull_ev_per_atom=h, source="mp-pack", mp_id=p.mp_id)
            for p, h in zip(packed, hull, strict=True)]
    cands = [CandidateResult(id=f"mp{k}", formula=p.formula, chemical_system=system,
                             n_atoms=int(Composition(p.formula).num_atoms), method="mp-pack",
                             status="ok",
                             formation_energy_ev_per_atom=p.formation_energy_ev_per_atom,
                             e_above_hull_ev_per_atom=h)
             for k, (p, h) in enumerate(zip(packed, hull, strict=True))
             if len(p.elements) == candidate_elements]
    return DiscoveryReport(campaign_id="mp", status="completed", created_utc="2026-11-30T00:00Z",
                           query=f"stable {system} phases", summary="MP phases as candidates.",
                           reference_phases=refs, candidates=cands,
                           methods={"hull_chemical_system": system,
                                    "hull_energy_scale": "MP2020 (mp-pack)"})


def test_ternary_hull_is_pymatgens_gibbs_triangle_on_the_recorded_scale() -> None:
    report = fixture_report()
    diagram, added = reference_diagram(report, ["Ba", "Ti", "O"])
    assert added == []  # the run recorded Ba, Ti and O2
    # The diagram rebuilt from the reference phases reproduces the run's numbers exactly:
    # the E above hull recorded for every reference phase and every candidate.
    assert [str(el) for el in diagram.elements] == ["Ba", "Ti", "O"]  # the three corners
    for formula, corner in (("Ba", (0, 0)), ("Ti", (1, 0)), ("O2", (0.5, math.sqrt(3) / 2)),
                            ("BaTiO3", (0.5, math.sqrt(3) / 2 * 0.6))):  # PDPlotter's frame
        assert _coords(diagram, formula) == pytest.approx(corner)
    for c in report.candidates:
        assert recomputed_e_above_hull(diagram, c) == pytest.approx(
            c.e_above_hull_ev_per_atom, abs=1e-9)
    plot = hull_plot(report)
    assert plot is not None and plot.svg.startswith("<svg")
    assert plot.caption.startswith("Gibbs triangle of Ba-O-Ti drawn by pymatgen's PDPlotter "
                                   "from the report's 8 reference phases (7 on the hull")
    assert "1 less than 0.2 eV/atom above it: squares" in plot.caption  # the second TiO2
    assert ("Energy scale: mlip:chgnet CHGNet-0.3.0 (chgnet 0.4.2) (all references relaxed "
            "with the same MLIP).") in plot.caption
    assert "20 candidates" in plot.caption and "flagged" not in plot.caption
    stars = svg_group(plot.svg, "candidates")
    assert stars.count("<use ") == 20  # one marker per candidate
    assert 'id="flagged-candidates"' not in plot.svg
    # The labels name the best candidate of the four lowest compositions, as recorded.
    for label in ("Ba2TiO4 -0.049 (×4)", "BaTiO3 +0.000 (×10)", "BaTi2O4 +0.215 (×4)",
                  "BaTiO2 +0.376 (×2)"):
        assert f"<!-- {label} -->" in plot.svg
    for phase in ("Ba", "Ti", "O$_{2}$", "BaO", "TiO$_{2}$", "Ti$_{2}$O$_{3}$",
                  "BaTiO$_{3}$"):  # PDPlotter's labels of the phases on the hull
        assert f"<!-- {phase} -->" in plot.svg


def test_flagged_candidates_are_drawn_apart_and_counted() -> None:
    report = fixture_report()
    cands = list(report.candidates)
    cands[0] = cands[0].model_copy(update={"flags": [FLAG]})  # the best Ba2TiO4
    plot = hull_plot(report.model_copy(update={"candidates": cands}))
    assert plot is not None
    assert svg_group(plot.svg, "flagged-candidates").count("<use ") == 1
    assert svg_group(plot.svg, "candidates").count("<use ") == 19
    assert "1 flagged candidate(s) are crosses with a red edge." in plot.caption
    assert "<!-- Ba2TiO4 -0.049 (×4) flagged -->" in plot.svg


def test_quaternary_hull_is_pymatgens_tetrahedron() -> None:
    report = mp_report("Ba-O-Sr-Ti", candidate_elements=4)
    assert len(report.candidates) == 8
    plot = hull_plot(report)
    assert plot is not None
    assert plot.caption.startswith("Composition tetrahedron of Ba-O-Sr-Ti drawn by pymatgen's "
                                   "PDPlotter from the report's 111 reference phases (25 on "
                                   "the hull: circles joined by tie lines; 86 above it not "
                                   "drawn).")
    # The shipped set holds compounds only: the corners are the elements at 0 eV/atom.
    assert "Element(s) without a reference phase placed at 0 eV/atom: Ba, Sr, Ti, O." in \
        plot.caption
    assert "Energy scale: MP2020 (mp-pack)." in plot.caption
    assert "candidate(s) lie more than" not in plot.caption  # same references, same numbers
    assert svg_group(plot.svg, "candidates").count("<use ") == 8
    for c in report.candidates:  # eight compositions: each labelled beside the tetrahedron
        assert f"<!-- {c.formula} {c.e_above_hull_ev_per_atom:+.3f} -->" in plot.svg


def test_binary_hull_keeps_the_formation_energy_plot() -> None:
    report = mp_report("O-Ti", candidate_elements=2)
    plot = hull_plot(report)
    assert plot is not None
    assert "Gibbs" not in plot.caption and "tetrahedron" not in plot.caption
    assert "reference phases (circles: filled on the hull, open above it)" in plot.caption
    # The eight compositions lowest above the hull are labelled, and only they.
    best = sorted(report.candidates, key=lambda c: c.e_above_hull_ev_per_atom)
    assert len(best) > 8 and "the best of each of the 8 lowest compositions" in plot.caption
    labels = re.findall(r"<!-- (Ti\w*O\w* [+-]\d\.\d{3}) -->", plot.svg)
    assert sorted(labels) == sorted(f"{c.formula} {c.e_above_hull_ev_per_atom:+.3f}"
                                    for c in best[:8])


def test_binary_candidate_above_the_hull_is_drawn_above_the_hull_line() -> None:
    """Three TiO2 candidates on the shipped MP Ti-O references: one on the hull (rutile's
    MP energy), one 0.1 and one 0.3 eV/atom above it. In the SVG (y grows downwards) each
    star sits above the hull line by its E above hull on the figure's energy scale."""
    import numpy as np

    base = mp_report("O-Ti", candidate_elements=2)
    tio2 = next(r for r in base.reference_phases if r.formula == "TiO2")
    assert tio2.e_above_hull_ev_per_atom == pytest.approx(0.0, abs=1e-9)  # rutile, on the hull
    cands = [CandidateResult(id=f"c{k}", formula="TiO2", chemical_system="O-Ti", n_atoms=6,
                             method="test", status="ok",
                             formation_energy_ev_per_atom=tio2.formation_energy_ev_per_atom
                             + above, e_above_hull_ev_per_atom=above)
             for k, above in enumerate((0.0, 0.1, 0.3))]
    plot = hull_plot(base.model_copy(update={"candidates": cands}))
    assert plot is not None
    path = re.search(r'<path d="([^"]+)"', svg_group(plot.svg, "hull-line")).group(1)
    line = np.array([[float(v) for v in pair.split()]
                     for pair in re.split(r"[ML]", path) if pair.strip()])
    stars = [(float(x), float(y)) for x, y in re.findall(
        r'<use [^>]*x="([\d.]+)" y="([\d.]+)"', svg_group(plot.svg, "candidates"))]
    assert len(stars) == 3 and len({round(x, 1) for x, _ in stars}) == 1  # one composition
    x = stars[0][0]
    hull_y = float(np.interp(x, line[:, 0], line[:, 1]))
    heights = sorted(hull_y - y for _, y in stars)  # SVG units above the line
    assert heights[0] == pytest.approx(0.0, abs=0.5)  # on the line
    assert heights[1] > 5 and heights[2] == pytest.approx(3 * heights[1], rel=0.02)
    assert "<!-- TiO2 +0.000 -->" in plot.svg


def test_callouts_sit_outside_the_triangle_and_apart() -> None:
    inside = [(0.5, 0.29), (0.45, 0.27), (0.55, 0.28), (0.62, 0.25), (0.3, 0.2)]
    crowded = [(0.6 + 0.01 * k, 0.53 + 0.003 * k) for k in range(8)]  # MP Ba-Ti-O, near TiO2
    for points in (inside, crowded):
        places = callouts(points)
        for (x, y, ha), point in zip(places, points, strict=True):
            left = ha == "right"
            assert (x < 0 and y <= 0.62) if left else (x > 1 and y <= 0.85)  # outside
            assert 0.02 <= y and abs(y - point[1]) < 0.4
        for side in ("left", "right"):
            ys = sorted(y for _, y, ha in places if (ha == "right") == (side == "left"))
            assert all(b - a >= 0.075 - 1e-9 for a, b in itertools.pairwise(ys))
    sides = [ha for _, _, ha in callouts(crowded)]
    assert sorted(sides.count(ha) for ha in ("left", "right")) == [3, 5]  # balanced columns


def test_projection_is_drawn_by_ase_in_jmol_colours(tmp_path: Path) -> None:
    import numpy as np
    from ase.data import atomic_numbers
    from ase.data.colors import jmol_colors
    from PIL import Image

    s = structure("000_BaTiO3.cif")  # cubic, Ti on the corners, Ba in the centre
    assert np.allclose(view_rotation(s, "a").T @ view_rotation(s, "a"), np.eye(3))
    assert np.linalg.det(view_rotation(s, "c")) == pytest.approx(1.0)  # no mirror image
    path = projection_png(s, "a", tmp_path / "a.png")
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    height, width, _ = image.shape
    assert (height, width) == (330, 330)
    # Centre of the atoms' axes (0.03 + 0.94/2 across, 0.03 + 0.85/2 up): the Ba disc.
    centre = image[round(height * (1 - 0.455)), round(width * 0.5)]
    assert np.abs(centre - jmol_colors[atomic_numbers["Ba"]] * 255).max() <= 2
    colours = {tuple(p) for p in image.reshape(-1, 3)}
    for el in ("Ti", "O"):
        assert tuple(np.rint(jmol_colors[atomic_numbers[el]] * 255).astype(int)) in colours


def test_prototype_labels_of_the_runs_structures() -> None:
    perovskite = structure_type(structure("000_BaTiO3.cif"))
    assert perovskite.label == "AB3C_cP5_221_a_c_b"  # AFLOW library: CaTiO3, E2_1
    assert perovskite.name == "(Cubic) Perovskite" and perovskite.strukturbericht == "E2_1"
    assert perovskite.pearson == "cP5" and perovskite.note is None
    assert perovskite.describe() == "AB3C_cP5_221_a_c_b · (Cubic) Perovskite"
    assert "AflowPrototypeMatcher defaults" in perovskite.source
    layered = structure_type(structure("000_Ba2TiO4.cif"))  # K2NiF4 / La2CuO4 type, I4/mmm
    assert (layered.label, layered.name) == ("AB2C4_tI14_139_a_e_ce", "(La,Ba)CuO4")
    spinel = structure_type(structure("006_BaTi2O4.cif"))
    assert (spinel.label, spinel.name) == ("A2BC4_cF56_227_d_a_e", "Spinel")
    hexagonal = structure_type(structure("003_BaTiO3.cif"))  # 2H-like, not in the library
    assert hexagonal.label is None and hexagonal.pearson == "hP10"
    assert hexagonal.note == "no prototype of the library matches"
    assert hexagonal.describe() == "hP10, no AFLOW library prototype"


def test_prototype_matching_gives_up_at_its_time_limit() -> None:
    late = structure_type(structure("002_BaTiO3.cif"), timeout_s=0.0)
    assert late.label is None and late.note == "prototype matching did not finish within 0 s"
    assert late.pearson  # the structure's own symbol is still given


def test_labels_equal_pymatgens_aflow_prototype_matcher() -> None:
    """The filtered library gives pymatgen's answer: a perovskite (several prototypes of its
    formula to tell apart), a structure no prototype matches and a spinel. The full matcher
    takes 10-20 s to load its library, so three structures are compared."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymatgen.analysis.prototypes import AflowPrototypeMatcher

        matcher = AflowPrototypeMatcher()
        for name in ("000_BaTiO3.cif", "003_BaTiO3.cif", "006_BaTi2O4.cif"):
            s = structure(name)
            expected = [t["tags"] for t in matcher.get_prototypes(s) or []]
            assert match_prototypes(s) == expected, name


def test_cards_record_structure_types_and_reuse_them(tmp_path: Path) -> None:
    from matloop.reports import write_report_files
    from matloop.reports.cards import structure_types

    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    old = fixture_report()
    assert old.schema_version == "1.1" and all(c.structure_type is None for c in old.cards)
    written = write_report_files(old, run_dir, use_robocrys=False, workflows=False).report
    assert written.schema_version == "1.4"
    kinds = {c.candidate_id: c.structure_type for c in written.cards}
    assert kinds["prot-b054c9b5e199"].label == "AB3C_cP5_221_a_c_b"
    assert kinds["prot-1c275c287fcb"].label == "AB2C4_tI14_139_a_e_ce"
    assert all(k is not None and k.duration_s < 20 for k in kinds.values())
    table = structure_types(written)  # cards plus the same structures from other generators
    assert table["subs-d45546e31403"] == kinds["prot-b054c9b5e199"]
    assert "prot-a909841fe635" not in table  # no card, no label
    html = (run_dir / "report.html").read_text()
    assert "<code>AB3C_cP5_221_a_c_b</code><br><span class='muted'>(Cubic) Perovskite" in html
    assert "<th>structure type</th>" in html
    md = (run_dir / "report.md").read_text()
    assert "| structure type |" in md and "AB3C\\_cP5\\_221\\_a\\_c\\_b" in md
    saved = DiscoveryReport.model_validate_json((run_dir / "report.json").read_text())
    assert saved.cards[1].structure_type == kinds["prot-b054c9b5e199"]
    again = write_report_files(saved, run_dir, use_robocrys=False, workflows=False).report
    assert [c.structure_type for c in again.cards] == [c.structure_type for c in saved.cards]

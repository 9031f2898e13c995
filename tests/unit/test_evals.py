"""Benchmarks: every module imports, the summary table reads the committed results, and the
scoring rules of the rediscovery and campaign benchmarks do what their docstrings say."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import evals
import pytest
from evals.common import RESULTS
from evals.summary import HEADLINES, rows, table

from matloop.errors import MatloopError
from matloop.schemas import CandidateResult, DiscoveryReport, EvidenceRef, SynthesisSuggestion

MODULES = sorted(m.name for m in pkgutil.iter_modules(evals.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_every_eval_module_imports_and_has_an_entry_point(name: str) -> None:
    module = importlib.import_module(f"evals.{name}")
    if name not in ("common", "grounding"):
        assert callable(getattr(module, "main", None)), f"evals.{name} has no main()"


def test_summary_table_over_the_committed_results() -> None:
    committed = sorted(p.stem for p in RESULTS.glob("*.json"))
    assert {"rediscovery", "campaigns", "generation", "hull_labels"} <= set(committed)
    got = {r[0]: r for r in rows([RESULTS])}
    assert sorted(got) == committed
    for name, (_, _date, headline, _wall) in got.items():
        assert name in HEADLINES, f"no headline for {name}"
        assert headline != "-" and "unexpected layout" not in headline, (name, headline)
        # A figure the extractor could not find prints as a lone "-".
        assert not re.search(r"\s-(?:[,;)]|$)", headline), (name, headline)
    text = table([RESULTS])
    assert text.splitlines()[0].split()[:2] == ["benchmark", "date"]
    assert "evals/hit" in got["rediscovery"][2] and "SUN top-10" in got["campaigns"][2]


def test_summary_names_a_broken_file_and_keeps_unknown_ones(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"date_utc": "2026-01-02T00:00:00Z",
                                                     "wall_seconds": 12.4}))
    got = {r[0]: r for r in rows([tmp_path])}
    assert got[f"{tmp_path.name}/broken"][2].startswith("unreadable")
    assert got[f"{tmp_path.name}/other"] == (f"{tmp_path.name}/other", "2026-01-02",
                                             "(no headline defined)", "12")


# -- rediscovery ----------------------------------------------------------------------------------

def test_rediscovery_systems_file_is_valid_and_varied() -> None:
    from evals.rediscovery import load_systems

    systems = load_systems()
    assert len(systems) >= 25
    sizes = {len(s.chemsys.split("-")) for s in systems}
    assert sizes == {2, 3, 4}
    assert sum(size == 4 for size in (len(s.chemsys.split("-")) for s in systems)) >= 2
    assert {"oxide", "halide", "chalcogenide", "nitride", "intermetallic", "Heusler",
            "Zintl phase", "MAX phase"} <= {s.kind for s in systems}
    assert all(s.query.endswith(f"{s.chemsys} system") for s in systems)
    # Every target names its own structure type (an empty list: in neither library).
    assert all(set(s.structure_types) == set(s.targets) for s in systems)
    assert {"spinel", "chalcopyrite", "olivine", "pyrochlore", "heusler", "MAX_211",
            "alpha_NaFeO2"} <= {t for s in systems for t in s.types_of()}


def test_rediscovery_structure_types_must_belong_to_targets(tmp_path: Path) -> None:
    from evals.rediscovery import load_systems

    path = tmp_path / "s.json"
    path.write_text(json.dumps({"systems": [{"chemsys": "Na-Cl", "kind": "halide",
                                             "targets": ["NaCl"],
                                             "structure_types": {"KCl": ["rocksalt"]}}]}))
    with pytest.raises(MatloopError, match="structure_types of"):
        load_systems(path)


def test_rediscovery_rejects_a_target_outside_its_system(tmp_path: Path) -> None:
    from evals.rediscovery import load_systems

    path = tmp_path / "s.json"
    path.write_text(json.dumps({"systems": [{"chemsys": "Na-Cl", "kind": "halide",
                                             "targets": ["KCl"]}]}))
    with pytest.raises(MatloopError, match="KCl is not in the Cl-Na system"):
        load_systems(path)


def test_rediscovery_targets_are_on_the_mp_hull(shared_data: Path) -> None:
    from evals.rediscovery import check_targets, load_systems

    labels = check_targets(load_systems(), shared_data)
    assert labels["SrTiO3"] == 0.0 and len(labels) >= 25


def test_held_out_store_has_no_target_but_keeps_its_neighbours(shared_data: Path,
                                                               tmp_path: Path) -> None:
    from evals.rediscovery import System, prepare_store

    from matloop.materials.references import ReferenceStore

    system = System("O-Sr-Ti", "oxide", ("SrTiO3",))
    held = prepare_store(system, shared_data, tmp_path / "refs.sqlite")
    # The MP energy and the starter-library perovskite both went.
    assert held["removed_phases"] == 2
    assert held["mp_formation_ev_per_atom"]["SrTiO3"] == pytest.approx(-3.57, abs=0.02)
    assert len(held["reference_structures"]["SrTiO3"]) == 1
    store = ReferenceStore(tmp_path / "refs.sqlite")
    store.ensure_starter_library()
    formulas = {p.composition.reduced_formula for p in store.phases(["Sr", "Ti", "O"])}
    assert "SrTiO3" not in formulas and {"Sr2TiO4", "TiO2", "SrO"} <= formulas


def test_rediscovery_score_counts_evaluations_to_the_first_hit() -> None:
    from evals.rediscovery import System, score

    def row(formula: str, e_hull: float | None, status: str = "ok") -> dict:
        return {"formula": formula, "status": status, "method": "prototype", "parent": None,
                "e_above_hull_ev_per_atom": e_hull, "formation_energy_ev_per_atom":
                None if e_hull is None else -1.0 + e_hull, "structure": None}

    system = System("Al-Ni", "intermetallic", ("AlNi", "AlNi3"))
    rows_ = [row("Al3Ni", 0.0), row("AlNi", 0.2), row("AlNi", None, "not_converged"),
             row("AlNi", 0.04), row("AlNi", -0.1)]
    held = {"mp_formation_ev_per_atom": {"AlNi": -0.66}, "reference_structures": {}}
    got = score(rows_, system, held)
    assert got["AlNi"]["rediscovered"] and got["AlNi"]["evaluations_to_first"] == 4
    assert got["AlNi"]["formation_gap_to_mp_ev_per_atom"] == pytest.approx(-1.1 + 0.66)
    assert got["AlNi"]["structure_match"] is None  # no reference structure to compare
    assert got["AlNi"]["hit_within_threshold_of_mp"]  # -1.1 is below MP's -0.66
    assert not got["AlNi3"]["rediscovered"] and got["AlNi3"]["candidates_with_formula"] == 0


def test_rediscovery_flags_a_hit_in_the_held_out_type_and_compares_with_random() -> None:
    from evals.rediscovery import System, _searches, overall, score
    from pymatgen.core import Lattice, Structure

    b2 = Structure(Lattice.cubic(2.88), ["Al", "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    l10 = Structure(Lattice.tetragonal(2.5, 3.4), ["Al", "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    fcc_like = Structure(Lattice.cubic(3.6), ["Al", "Ni", "Ni", "Ni"],
                         [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    system = System("Al-Ni", "intermetallic", ("AlNi", "AlNi3"),
                    {"AlNi": ("CsCl",), "AlNi3": ("L1_2",)})
    assert _searches(system, "chemsys") == [("Al-Ni", None)]
    assert _searches(system, "composition") == [("AlNi", ("AlNi",)), ("AlNi3", ("AlNi3",))]
    rows_ = [{"formula": "AlNi", "status": "ok", "method": "random", "parent": None,
              "e_above_hull_ev_per_atom": 0.0, "formation_energy_ev_per_atom": -0.7,
              "structure": b2, "how": {"prior": "uniform"}},
             {"formula": "AlNi3", "status": "ok", "method": "random", "parent": None,
              "e_above_hull_ev_per_atom": 0.01, "formation_energy_ev_per_atom": -0.4,
              "structure": fcc_like}]
    held = {"mp_formation_ev_per_atom": {}, "reference_structures": {}}
    got = score(rows_, system, held, type_structures={"AlNi": [b2], "AlNi3": [l10]})
    assert got["AlNi"]["hit_has_held_out_type"] is True
    assert got["AlNi"]["found_by"]["how"] == {"prior": "uniform"}
    assert got["AlNi3"]["hit_has_held_out_type"] is False  # L1_2 is not B2/L1_0
    entry = {"rediscovered": ["AlNi", "AlNi3"], "evaluations": 2, "targets": got,
             "wall_seconds": 1.0}
    slow = {"rediscovered": ["AlNi"], "evaluations": 8, "wall_seconds": 2.0,
            "targets": {"AlNi": {**got["AlNi"], "evaluations_to_first": 8},
                        "AlNi3": {**got["AlNi3"], "rediscovered": False,
                                  "evaluations_to_first": None,
                                  "hit_within_threshold_of_mp": False}}}
    out = overall({"Al-Ni": {"approaches": {"aflow": entry, "random": slow}}},
                  ("aflow", "random"))
    assert out["aflow"]["evaluations_per_rediscovery"] == 1.0
    assert out["random"]["evaluations_per_rediscovery"] == 8.0
    assert out["aflow"]["evaluations_per_rediscovery_vs_random"] == 0.12
    assert out["aflow"]["median_evaluations_to_first_hit"] == 1.5


# -- campaign quality -----------------------------------------------------------------------------

def _report() -> DiscoveryReport:
    def cand(cid: str, formula: str, e_hull: float, meets: bool, **props: float) -> CandidateResult:
        return CandidateResult(id=cid, formula=formula, chemical_system="-", n_atoms=5,
                               method="prototype", status="ok", e_above_hull_ev_per_atom=e_hull,
                               formation_energy_ev_per_atom=-2.0, meets_objective=meets,
                               properties=dict(props))
    return DiscoveryReport(
        campaign_id="bench-x", status="completed", created_utc="2026-11-22T15:00:00Z",
        query="Find lead-free halide perovskites for photovoltaics", summary="",
        candidates=[cand("C1", "CsSnI3", 0.02, True, band_gap_ev=1.3),
                    cand("C2", "CsPbI3", 0.0, True, band_gap_ev=1.5),
                    cand("C3", "CsGeI3", 0.3, False),
                    cand("C4", "CsSnI3", 0.05, True, band_gap_ev=1.2)],
        synthesis=[SynthesisSuggestion(candidate_id="C1", analog_formula="CsSnBr3")],
        evidence=[EvidenceRef(id="ev-abcd1234", doi="10.1000/xyz", snippet="s", score=1.0,
                              source="recipes")])


def test_constraints_are_checked_on_every_claimed_candidate() -> None:
    from evals.campaigns import constraint_checks

    checks = constraint_checks(_report(), {
        "excluded_elements": ["Pb"], "required_any_of": ["I"], "band_gap_ev": [1.1, 1.7],
        "max_e_above_hull_ev_per_atom": 0.1, "synthesis_route": True,
        "bulk_modulus_gpa": [50.0, None]})
    assert checks["excluded_elements"]["claimed_failing"] == ["C2"]
    assert checks["excluded_elements"]["top10_fraction"] == pytest.approx(3 / 4, abs=1e-3)
    assert checks["required_any_of"]["holds_for_every_claimed"]
    assert checks["band_gap_ev"]["holds_for_every_claimed"]
    # C4 is another CsSnI3 polymorph: the route found for the composition covers it.
    assert checks["synthesis_route"]["claimed_failing"] == ["C2"]
    # A property never computed does not satisfy its constraint.
    assert checks["bulk_modulus_gpa"]["claimed_failing"] == ["C1", "C2", "C4"]


def test_constraint_names_are_validated(tmp_path: Path) -> None:
    from evals.campaigns import check_constraint, load_queries

    assert len(load_queries()) == 7  # five kinds of question and two application-only ones
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"queries": [{"name": "x", "kind": "k", "query": "q",
                                             "constraints": {"colour": "blue"}}]}))
    with pytest.raises(MatloopError, match="colour"):
        load_queries(path)
    with pytest.raises(ValueError, match="valid"):
        check_constraint("colour", "blue", _report().candidates[0], _report())


def test_grounded_fraction_checks_numbers_and_citations_against_the_run(tmp_path: Path) -> None:
    from evals.grounding import grounded_fraction

    state = {"tool_records": [{"tool": "search_literature", "result": {
        "evidence": [{"id": "ev-abcd1234", "doi": "10.1000/xyz"}]}}],
        "evidence": [{"id": "ev-0123abcd", "doi": "10.1016/S0304-8853(02)00708-4"}]}
    text = ("CsSnI3 lies 0.02 eV/atom above the hull (ev-abcd1234, doi 10.1000/xyz). "
            "CsGeI3 lies 0.7 eV/atom above it; see 10.9999/made-up and ev-ffff0000. "
            "- `ev-0123abcd` [doi:10.1016/S0304-8853(02)00708-4]"
            "(https://doi.org/10.1016/S0304-8853(02)00708-4)")
    got = grounded_fraction(tmp_path, report=_report(), state=state, text=text)
    assert got["numbers"] == 2 and got["numbers_grounded"] == 1
    # The Markdown link counts once, with its DOI intact.
    assert got["citations"] == 6 and got["citations_grounded"] == 4
    assert got["grounded_fraction"] == pytest.approx(5 / 8)
    assert "0.7" in got["ungrounded_examples"]


def test_rediscovery_stop_rules_and_merge_of_parallel_parts(tmp_path: Path) -> None:
    from evals.rediscovery import _is_hit, merge, overall

    held = {"mp_formation_ev_per_atom": {"AlNi": -0.66}}
    near = {"formula": "AlNi", "status": "ok", "e_above_hull_ev_per_atom": 0.0,
            "formation_energy_ev_per_atom": -0.65}
    far = {**near, "formation_energy_ev_per_atom": -0.5}
    assert _is_hit(far, "AlNi", held, "hit") and not _is_hit(far, "AlNi", held, "near_mp")
    assert _is_hit(near, "AlNi", held, "near_mp") and not _is_hit(near, "AlNi", held, "budget")

    def entry(first: int | None) -> dict:
        return {"rediscovered": ["AlNi"] if first else [], "evaluations": first or 20,
                "wall_seconds": 1.0,
                "targets": {"AlNi": {"rediscovered": bool(first), "evaluations_to_first": first,
                                     "structure_match": None,
                                     "hit_within_threshold_of_mp": False}}}

    def part(name: str, approach: str, first: int | None) -> Path:
        per_system = {"Al-Ni": {"approaches": {approach: entry(first)}}}
        path = tmp_path / name
        path.write_text(json.dumps({
            "settings": {"mode": "composition"}, "per_system": per_system,
            "overall": overall(per_system, (approach,)), "wall_seconds": 5.0}))
        return path

    merged = merge([part("a.json", "aflow", 2), part("b.json", "random", None)])
    assert set(merged["per_system"]["Al-Ni"]["approaches"]) == {"aflow", "random"}
    assert merged["overall"]["aflow"]["evaluations_per_rediscovery"] == 2.0
    assert merged["overall"]["random"]["rediscovered"] == 0
    with pytest.raises(MatloopError, match="more than one file"):
        merge([part("c.json", "aflow", 2), part("d.json", "aflow", 3)])

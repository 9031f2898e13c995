"""The offline summary says how many stable candidates are known reference phases."""

from __future__ import annotations

from matloop.agents.reporter import OfflineReporter, rank
from matloop.schemas import CandidateResult, Objective


def cand(cid: str, formula: str, e_hull: float, novelty: str) -> CandidateResult:
    return CandidateResult(id=cid, formula=formula, chemical_system="Ba-O-Ti", n_atoms=5,
                           method="prototype", status="ok", e_above_hull_ev_per_atom=e_hull,
                           formation_energy_ev_per_atom=-3.5, is_stable=e_hull <= 0.1,
                           novelty=novelty, objective_score=-e_hull)


def test_summary_names_the_known_phases_among_the_stable() -> None:
    objective = Objective(query="q", interpretation="i", chemical_systems=["Ba-O-Ti"])
    ranked = rank([
        cand("C1", "Ba2TiO4", -0.049, "novel (checked: structure)"),
        cand("C2", "BaTiO3", 0.0, "known (structure match: starter:BaTiO3:perovskite)"),
        cand("C3", "BaTi2O5", 0.3, "novel (checked: structure)"),
    ])
    text = OfflineReporter().summary(objective, ranked, "completed")
    assert "3 candidates were relaxed" in text and "2 lie within the stability threshold" in text
    assert "of which 1 match known reference phases (BaTiO3)" in text
    novel_only = OfflineReporter().summary(objective, ranked[:1], "completed")
    assert "known reference phases" not in novel_only

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
        cand("C1", "Ba2TiO4", -0.049, "known composition (mp-3397 (Materials Project)); "
                                      "structure not among the 0 local structure reference(s)"),
        cand("C2", "BaTiO3", 0.0, "known phase (matches starter:BaTiO3:perovskite)"),
        cand("C3", "BaTi2O5", 0.3, "known composition (mp-3943 (Materials Project))"),
        cand("C4", "Ba5Ti3O2", 0.05, "new composition (not among the 96,203 MP and local "
                                     "reference compositions)"),
    ])
    text = OfflineReporter().summary(objective, ranked, "completed")
    assert "4 candidates were relaxed" in text and "3 lie within the stability threshold" in text
    assert "of which 1 match known phases (BaTiO3)" in text
    assert "1 stable candidate(s) have compositions the Materials Project lists (Ba2TiO4); " \
           "their structures match none of the local structure references (MP's own " \
           "structures count only when imported), so they may still be the known phases" in text
    assert "new structure" not in text
    assert "1 stable candidate(s) have compositions absent from the references (Ba5Ti3O2)" \
        in text
    only_new = OfflineReporter().summary(objective, [c for c in ranked if c.id == "C4"],
                                         "completed")
    assert "known phases" not in only_new


def test_a_candidate_far_below_the_mp_hull_is_flagged_and_not_ranked_first() -> None:
    suspicious = cand("C1", "Ba2TiO4", -0.2, "known composition (mp-3397)").model_copy(
        update={"flags": ["below the MP hull by 0.200 eV/atom: likely MLIP error or a missing "
                          "reference; confirm with DFT"]})
    plain = cand("C2", "BaTiO3", -0.01, "known phase (matches starter:BaTiO3:perovskite)")
    assert [c.id for c in rank([suspicious, plain])] == ["C2", "C1"]

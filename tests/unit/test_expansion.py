"""Expansion: which compositions the offline scientist searches again after an iteration.

A composition that came close to the hull without meeting the objective gets more structures;
one that already meets it is found (its budget goes to the next compositions), and no
composition is searched without end.
"""

from __future__ import annotations

import pytest

from matloop.agents.scientist import MAX_STRUCTURES_PER_COMPOSITION, OfflineScientist, arms_of
from matloop.schemas import CandidateResult, Hypothesis


def _candidate(n: int, formula: str, e_hull: float, *, meets: bool) -> CandidateResult:
    return CandidateResult(id=f"C{n:04d}", formula=formula, chemical_system="Sn-Sr", n_atoms=4,
                           method="prototype", hypothesis_id="H1", status="ok",
                           formation_energy_ev_per_atom=-0.4, e_above_hull_ev_per_atom=e_hull,
                           is_stable=e_hull <= 0.1, meets_objective=meets)


def test_arms_count_candidates_that_meet_the_objective() -> None:
    arms = arms_of([_candidate(1, "SrSn", 0.0, meets=True), _candidate(2, "SrSn", 0.3, meets=False),
                    _candidate(3, "Sr2Sn", 0.15, meets=False)], threshold=0.1)
    assert (arms["SrSn"].evaluated, arms["SrSn"].stable, arms["SrSn"].met) == (2, 1, 1)
    assert (arms["Sr2Sn"].evaluated, arms["Sr2Sn"].stable, arms["Sr2Sn"].met) == (1, 0, 0)


@pytest.mark.slow
def test_expansion_refines_near_misses_not_compositions_already_found() -> None:
    from matloop.materials.references import ReferenceStore

    scientist = OfflineScientist(store=ReferenceStore.from_settings())
    objective = scientist.interpret("Find new stable compounds in the Sn-Sr system")
    first = Hypothesis(id="H1", justification="j", statement="s", chemical_system="Sn-Sr",
                       target_compositions=["SrSn", "Sr2Sn", "Sr3Sn"], methods=["prototype"],
                       test_plan="t", status="approved")
    near_miss = [_candidate(1, "Sr2Sn", 0.15, meets=False)]
    found = [_candidate(2, "SrSn", -0.02, meets=True)]
    exhausted = [_candidate(10 + k, "Sr3Sn", 0.12, meets=False)
                 for k in range(MAX_STRUCTURES_PER_COMPOSITION)]
    out = scientist.propose(objective, iteration=1, prior=[first],
                            candidates=near_miss + found + exhausted, evidence=[], feedback=[])
    refined = [h for h in out if "came within" in h.justification]
    assert [h.target_compositions for h in refined] == [["Sr2Sn"]]
    assert refined[0].parent == "C0001"
    assert all("Sr3Sn" not in h.target_compositions for h in out)  # capped
    assert all("no untried composition is left" in h.justification for h in out
               if "SrSn" in h.target_compositions)  # found: only to fill a free slot
    assert [h.id for h in out] == [f"H{k}" for k in range(2, 2 + len(out))]


@pytest.mark.slow
def test_free_slots_go_to_more_structures_of_found_compositions() -> None:
    """When the ranked compositions are used up, budget still goes somewhere useful: more
    structures of compositions already within the threshold (never beyond the cap)."""
    from matloop.agents.ideation import composition_options
    from matloop.materials.references import ReferenceStore

    store = ReferenceStore.from_settings()
    scientist = OfflineScientist(store=store)
    objective = scientist.interpret("Find stable compounds in the Sn-Sr system")
    every = [o.formula for o in composition_options(["Sn", "Sr"], objective, store, top=6)]
    first = Hypothesis(id="H1", justification="j", statement="s", chemical_system="Sn-Sr",
                       target_compositions=every, methods=["prototype"], test_plan="t",
                       status="approved")
    found = [_candidate(1, every[0], -0.02, meets=True), _candidate(2, every[1], 0.03, meets=True)]
    capped = [_candidate(10 + k, every[2], 0.0, meets=True)
              for k in range(MAX_STRUCTURES_PER_COMPOSITION)]
    out = scientist.propose(objective, iteration=1, prior=[first], candidates=found + capped,
                            evidence=[], feedback=[])
    filled = [h for h in out if "no untried composition is left" in h.justification]
    assert filled and {f for h in filled for f in h.target_compositions} <= set(every[:2])
    assert all(every[2] not in h.target_compositions for h in out)
    assert len(out) <= scientist.systems_per_iteration + 1

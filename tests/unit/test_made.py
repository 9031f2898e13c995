"""The MADE-protocol metrics of ``evals.made`` on hand-made curves and proposals."""

from __future__ import annotations

import pytest
from evals.made import (
    acceleration_factor,
    discovery_curves,
    enhancement_factor,
    ground_truth,
    sub_systems,
)


def test_acceleration_and_enhancement_factor_on_a_hand_made_pair() -> None:
    """Agent c = [0, 1, 1, 2, 3], random c = [0, 0, 1, 1, 2] after queries 1..5.

    AF (MADE ``DiscoveryCurveMetrics.acceleration_factor``): the target is random's final
    count, 2; random first has 2 after query 5, the agent after query 4: AF = 5 / 4 = 1.25.
    EF (``enhancement_factor``): at the agent's last query, 5, the agent has 3 and random 2:
    EF = 3 / 2 = 1.5.
    """
    agent, random = [0, 1, 1, 2, 3], [0, 0, 1, 1, 2]
    assert acceleration_factor(agent, random) == pytest.approx(1.25)
    assert enhancement_factor(agent, random) == pytest.approx(1.5)
    # The baseline against itself: AF = EF = 1.
    assert acceleration_factor(random, random) == pytest.approx(1.0)
    assert enhancement_factor(random, random) == pytest.approx(1.0)


def test_factors_at_the_edges_follow_made() -> None:
    """Edge cases of MADE's definitions.

    * random finds nothing: its target is 0, reached by both at query 0 (the prepended origin):
      AF = 1; EF = 3 / max(0, 1e-8), capped at 100; an agent that also finds nothing has EF 0.
    * the agent never reaches random's final count (2): AF = 0; EF = 1 / 2 = 0.5.
    * a shorter agent run (3 queries) against random's 5: EF compares at query 3, where random
      still has 0, so 1 / 1e-8 capped at 100; AF = 5 (random reaches 1 at query 5, the agent at
      query 1).
    """
    assert acceleration_factor([0, 2, 3], [0, 0, 0]) == 1.0
    assert enhancement_factor([0, 2, 3], [0, 0, 0]) == 100.0
    assert enhancement_factor([0, 0, 0], [0, 0, 0]) == 0.0
    assert acceleration_factor([0, 0, 1], [1, 1, 2]) == 0.0
    assert enhancement_factor([0, 0, 1], [1, 1, 2]) == pytest.approx(0.5)
    assert enhancement_factor([1, 1, 1], [0, 0, 0, 0, 1]) == 100.0
    assert acceleration_factor([1, 1, 1], [0, 0, 0, 0, 1]) == pytest.approx(5.0)


def test_discovery_curves_follow_the_observed_hull() -> None:
    """Mg-Sn, ground truth {Mg2Sn}, three queries (formation energies in eV/atom).

    1. Mg2Sn at -0.05 (x_Sn = 1/3): the hull of Mg, Sn and it; on the hull: found, count 1.
    2. MgSn at -0.30 (x_Sn = 1/2): the hull under x_Sn = 1/3 is now -0.30 * (1/3) / (1/2) =
       -0.20, so Mg2Sn is 0.15 above it, beyond MADE's 0.1 tolerance: count 0 (MADE counts
       the formulas on the current observed hull, so a later proposal can un-find one).
    3. A failed relaxation: a query used, no entry: count 0.
    ``stable_novel`` (no structures: every entry is novel): 1 (Mg2Sn), 1 (MgSn; Mg2Sn is off),
    1.
    """
    rows = [{"formula": "Mg2Sn", "status": "ok", "formation_energy_ev_per_atom": -0.05},
            {"formula": "MgSn", "status": "ok", "formation_energy_ev_per_atom": -0.30},
            {"formula": "Mg3Sn", "status": "not_converged",
             "formation_energy_ev_per_atom": None}]
    got = discovery_curves(rows, "Mg-Sn", ["Mg2Sn"])
    assert got["gt_found"] == [1, 0, 0]
    assert got["stable_novel"] == [1, 1, 1]
    assert got["first_query"] == {"Mg2Sn": 1}
    assert got["found"] == []


def test_ground_truth_from_the_shipped_mp_energies() -> None:
    """Mg2Sn is the Materials Project's stable Mg-Sn compound (antifluorite); every ground-truth
    formula is within 0.1 eV/atom of the MP hull and every strict one on it."""
    gt = ground_truth("Mg-Sn")
    assert "Mg2Sn" in gt["strict"]
    assert set(gt["strict"]) <= set(gt["formulas"]) <= set(gt["compounds"])
    assert all(gt["mp_e_above_hull_ev_per_atom"][f] <= 0.1 for f in gt["formulas"])
    assert sub_systems("Mg-Sn-Sr") == ["Mg-Sn", "Mg-Sr", "Sn-Sr", "Mg-Sn-Sr"]

"""The hull-vs-label benchmark (evals/hull_labels.py) on a few chemical systems."""

from __future__ import annotations

import json
from pathlib import Path

from evals.hull_labels import main


def test_hull_labels_small_subset(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "hull_labels.json"
    res = main(["--systems", "3", "--seed", "0", "--min-compositions", "0",
                "--data-dir", str(shared_data), "--out", str(out)])

    data = json.loads(out.read_text())
    for key in ("n_systems", "n_compositions", "n_skipped", "metrics", "per_system", "worst",
                "settings", "wall_time_s", "data_files", "explanation"):
        assert key in data, key
    # The file is the returned result plus what it was measured on.
    assert {k: data[k] for k in res} == json.loads(json.dumps(res))
    assert {"machine", "versions", "date_utc"} <= set(data)
    assert data["n_systems"] == 3 == len(data["per_system"])
    assert data["n_compositions"] > 50
    assert set(data["metrics"]) == {"union", "matbench", "roost"}

    union = data["metrics"]["union"]
    assert union["n"] == data["n_compositions"]
    assert union["mae_ev_per_atom"] < 0.1
    assert union["stability_at_0"]["agreement"] > 0.8
    assert union["stability_at_0.1"]["agreement"] > 0.8
    # The hull never puts a reference formula below itself: computed e_above_hull >= 0.
    assert all(w["computed_e_above_hull_union"] >= -1e-9 for w in data["worst"])
    # The union has every formula of each single file, so it skips no more than either.
    assert data["n_skipped"] <= min(m["n_skipped_formula_not_in_references"]
                                    for m in data["metrics"].values())

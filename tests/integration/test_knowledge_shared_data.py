"""The retrieval benchmark (evals/retrieval.py) on a few hundred real recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evals.retrieval import main


@pytest.mark.slow
def test_retrieval_benchmark_on_a_subset(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "retrieval.json"
    assert main(["--recipes", "300", "--corpus", "40", "--synthesis-queries", "15",
                 "--title-queries", "10", "--holdout", "5", "--data", str(shared_data),
                 "--kb", str(tmp_path / "work"), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    for key in ("config", "ingest", "quality", "latency_ms", "analogs"):
        assert key in data, key
    assert data["config"]["recipes_in_store"] + data["config"]["holdout_targets"] <= 300
    ingest = data["ingest"]
    assert ingest["recipes_documents"] > 250 and ingest["reingest_added"] == 0
    assert ingest["reingest_unchanged"] == ingest["recipes_documents"]
    synthesis = data["quality"]["synthesis"]
    assert synthesis["queries"] == 15
    assert synthesis["hybrid"]["recall@10"] >= 0.9
    assert synthesis["hybrid"]["recall@10"] >= synthesis["dense"]["recall@10"]
    alphabetical = data["quality"]["synthesis_alphabetical"]
    assert alphabetical["hybrid"]["mrr"] > alphabetical["dense"]["mrr"]
    assert set(data["latency_ms"]) == {"hybrid", "dense", "bm25"}
    assert data["analogs"]["targets_scored"] >= 1

"""Helpers of hybrid retrieval: top-k selection, the formula boost, and Evidence records."""

from __future__ import annotations

from typing import Any

import numpy as np

from matloop.knowledge.bm25 import BM25Index
from matloop.knowledge.evidence import Evidence
from matloop.knowledge.formulas import formulas_in

#: Reciprocal-rank-fusion constant (Cormack et al. 2009).
RRF_K = 60
#: Longest snippet kept in an Evidence record, characters.
SNIPPET_CHARS = 1000


def top_k(ids: list[str], scores: np.ndarray, k: int) -> list[tuple[str, float]]:
    """The k best (id, score) pairs with a positive score, best first (ties by position)."""
    positive = np.flatnonzero(scores > 0)
    if positive.size > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    order = positive[np.lexsort((positive, -scores[positive]))]
    return [(ids[i], float(scores[i])) for i in order]


def formula_boosts(index: BM25Index, query: str, scores: np.ndarray,
                    mask: np.ndarray | None, pool: int) -> dict[str, float]:
    """Fusion bonus for chunks whose formula metadata matches a formula in the query.

    Each formula of the query gives the chunks that mention it (canonical match, so FeLiO4P
    matches LiFePO4) one rank-1 vote, 1 / (RRF_K + 1); at most ``pool`` chunks per formula,
    the best by BM25 score.
    """
    boosts: dict[str, float] = {}
    vote = 1.0 / (RRF_K + 1)
    for canon in formulas_in(query):
        idx = index.with_formula(canon)
        if mask is not None and idx.size:
            idx = idx[mask[idx]]
        if idx.size > pool:
            idx = idx[np.argsort(-scores[idx], kind="stable")[:pool]]
        for i in idx:
            cid = index.ids[int(i)]
            boosts[cid] = boosts.get(cid, 0.0) + vote
    return boosts


def to_evidence(cid: str, score: float, text: str, meta: dict[str, Any]) -> Evidence:
    """Evidence from a chunk's id, score, text and chroma metadata."""
    snippet = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rstrip() + " …"
    year = meta.get("year")
    return Evidence(id=cid, doi=meta.get("doi"), title=meta.get("title"), snippet=snippet,
                    score=round(float(score), 6), source=str(meta.get("kind", "")),
                    document_id=str(meta.get("doc_id", "")),
                    chunk_index=int(meta.get("chunk_index", 0)),
                    year=int(year) if isinstance(year, int | float) else None,
                    origin=meta.get("origin"))


def chroma_where(kinds: list[str], year_min: int | None, year_max: int | None,
                 elements: list[str]) -> dict[str, Any] | None:
    """Chromadb ``where`` filter for the search filters (None when there are none)."""
    conditions: list[dict[str, Any]] = []
    if kinds:
        conditions.append({"kind": {"$in": kinds}})
    if year_min is not None:
        conditions.append({"year": {"$gte": int(year_min)}})
    if year_max is not None:
        conditions.append({"year": {"$lte": int(year_max)}})
    conditions += [{"elements": {"$contains": e}} for e in elements]
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}

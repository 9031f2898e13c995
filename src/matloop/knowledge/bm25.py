"""Lexical index: Okapi BM25 as rank-bm25's ``BM25Okapi`` defines it, as a sparse matrix.

The per-(document, term) weights are precomputed into a sparse document-by-term matrix, so a
query costs one sparse column slice, not a Python loop over every document.

``BM25Okapi`` computes the corpus statistics (term frequencies, document lengths, the
epsilon-floored idf); this module turns them into per-(document, term) weights
``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avglen))``, so scores equal
``BM25Okapi.get_scores``. The index also keeps the chunk metadata the filters need (kind, year,
elements, formulas) and is pickled beside the store, tagged with the store's generation.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rank_bm25 import BM25Okapi
from scipy import sparse

from matloop.knowledge.formulas import FORMULA_TOKEN_PREFIX, tokenize

FORMAT_VERSION = 2


@dataclass
class BM25Index:
    """Sparse BM25 index over chunks, with filter metadata."""

    ids: list[str]
    matrix: sparse.csc_matrix
    vocab: dict[str, int]
    kinds: np.ndarray
    years: np.ndarray
    element_index: dict[str, np.ndarray]
    formula_index: dict[str, np.ndarray]
    primary_index: dict[str, np.ndarray]
    generation: int = 0
    params: dict[str, float] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    @classmethod
    def build(cls, ids: Sequence[str], tokens: Sequence[list[str]], *, kinds: Sequence[str],
              years: Sequence[int | None], elements: Sequence[Sequence[str]],
              formulas: Sequence[Sequence[str]], primary: Sequence[str | None],
              generation: int = 0, k1: float = 1.5, b: float = 0.75,
              epsilon: float = 0.25) -> BM25Index:
        """Index tokenised chunks (all sequences aligned with ``ids``)."""
        n = len(ids)
        if n == 0:
            return cls(ids=[], matrix=sparse.csc_matrix((0, 0)), vocab={},
                       kinds=np.array([], dtype=object), years=np.array([], dtype=np.int32),
                       element_index={}, formula_index={}, primary_index={},
                       generation=generation, params={"k1": k1, "b": b, "epsilon": epsilon})
        # rank-bm25 divides by zero on an empty document; give such chunks one inert token
        safe_tokens = [t if t else ["\u2205"] for t in tokens]
        bm = BM25Okapi(safe_tokens, k1=k1, b=b, epsilon=epsilon)
        vocab = {term: i for i, term in enumerate(bm.idf)}
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[float] = []
        for j, freqs in enumerate(bm.doc_freqs):
            rows.extend([j] * len(freqs))
            cols.extend(vocab[t] for t in freqs)
            tfs.extend(freqs.values())
        r, c, tf = np.asarray(rows), np.asarray(cols), np.asarray(tfs, dtype=np.float64)
        idf = np.array([bm.idf[t] for t in vocab], dtype=np.float64)
        dl = np.asarray(bm.doc_len, dtype=np.float64)
        weights = idf[c] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl[r] / bm.avgdl))
        matrix = sparse.csc_matrix((weights.astype(np.float32), (r, c)), shape=(n, len(vocab)))
        return cls(ids=list(ids), matrix=matrix, vocab=vocab,
                   kinds=np.array(list(kinds), dtype=object),
                   years=np.array([-1 if y is None else int(y) for y in years], dtype=np.int32),
                   element_index=_invert(elements), formula_index=_invert(formulas),
                   primary_index=_invert([[p] if p else [] for p in primary]),
                   generation=generation, params={"k1": k1, "b": b, "epsilon": epsilon})

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk for a tokenised query (repeated tokens count again)."""
        counts: dict[int, int] = {}
        for t in tokens:
            if t in self.vocab:
                counts[self.vocab[t]] = counts.get(self.vocab[t], 0) + 1
        if not counts or len(self) == 0:
            return np.zeros(len(self), dtype=np.float32)
        cols = np.fromiter(counts.keys(), dtype=np.int64)
        weights = np.fromiter(counts.values(), dtype=np.float32)
        return np.asarray(self.matrix[:, cols] @ weights).ravel()

    def mask(self, *, kinds: Sequence[str] | None = None, year_min: int | None = None,
             year_max: int | None = None, elements: Sequence[str] | None = None,
             ) -> np.ndarray | None:
        """Boolean mask of the chunks passing the filters (None when there are none)."""
        if not kinds and year_min is None and year_max is None and not elements:
            return None
        keep = np.ones(len(self), dtype=bool)
        if kinds:
            keep &= np.isin(self.kinds, list(kinds))
        if year_min is not None:
            keep &= self.years >= year_min
        if year_max is not None:
            keep &= (self.years <= year_max) & (self.years >= 0)
        for el in elements or ():
            has = np.zeros(len(self), dtype=bool)
            has[self.element_index.get(el, np.array([], dtype=np.int64))] = True
            keep &= has
        return keep

    def top(self, tokens: Sequence[str], *, k: int, mask: np.ndarray | None = None,
            ) -> list[tuple[int, float]]:
        """The k best chunks (index, score) with a positive score."""
        s = self.scores(tokens)
        if mask is not None:
            s = np.where(mask, s, 0.0)
        positive = np.flatnonzero(s > 0)
        if positive.size == 0:
            return []
        if positive.size > k:
            part = positive[np.argpartition(-s[positive], k - 1)[:k]]
        else:
            part = positive
        order = part[np.lexsort((part, -s[part]))]
        return [(int(i), float(s[i])) for i in order]

    def with_formula(self, canonical: str, *, primary: bool = False) -> np.ndarray:
        """Indices of chunks that mention (or, with ``primary``, are about) a formula."""
        index = self.primary_index if primary else self.formula_index
        return index.get(canonical, np.array([], dtype=np.int64))

    def save(self, path: Path) -> None:
        """Pickle atomically (write a temporary file, then rename)."""
        tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
        with tmp.open("wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    @staticmethod
    def load(path: Path) -> BM25Index | None:
        """The pickled index, or None when it is missing, unreadable or of another format."""
        try:
            with path.open("rb") as fh:
                index = pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None
        if not isinstance(index, BM25Index) or index.version != FORMAT_VERSION:
            return None
        return index


def _invert(values: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
    out: dict[str, list[int]] = {}
    for j, items in enumerate(values):
        for item in set(items):
            out.setdefault(item, []).append(j)
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def build_from_collection(collection: Any, generation: int, *, page: int = 5000) -> BM25Index:
    """Build the index from every chunk of a chromadb collection (text and metadata)."""
    ids: list[str] = []
    tokens: list[list[str]] = []
    kinds, years, elements, formulas, primary = [], [], [], [], []
    total = collection.count()
    for offset in range(0, total, page):
        got = collection.get(limit=page, offset=offset, include=["documents", "metadatas"])
        for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"],
                                   strict=True):
            meta = meta or {}
            toks = tokenize(text or "")
            have = set(toks)
            fs = list(meta.get("formulas") or [])
            toks += [FORMULA_TOKEN_PREFIX + f for f in fs
                     if FORMULA_TOKEN_PREFIX + f not in have]
            ids.append(cid)
            tokens.append(toks)
            kinds.append(meta.get("kind", ""))
            years.append(meta.get("year"))
            elements.append(list(meta.get("elements") or []))
            formulas.append(fs)
            primary.append(meta.get("primary_formula"))
    return BM25Index.build(ids, tokens, kinds=kinds, years=years, elements=elements,
                           formulas=formulas, primary=primary, generation=generation)

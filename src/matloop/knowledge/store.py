"""The knowledge base.

A chromadb collection of embedded chunks, a BM25 index beside it, a manifest of ingested
documents and a recipe table.

Layout under ``path`` (default ``<data_dir>/knowledge``)::

    chroma/                              chromadb PersistentClient (unless a server is given)
    <collection>.manifest.sqlite         one row per document: id, content hash, chunk count
    <collection>.bm25.pkl                pickled BM25 index, rebuilt at the end of each ingest
    recipes.sqlite                       recipe table for synthesis analogs (no embeddings)

The collection name encodes the embedding model and the chunking settings
(``matloop-minilm-l6-v2-c800-o100``), so changing either starts a new index instead of silently
mixing incompatible vectors.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, Field
from pymatgen.core import Element, Structure

from matloop.errors import MatloopError
from matloop.knowledge.analogs import SynthesisAnalog
from matloop.knowledge.bm25 import BM25Index, build_from_collection
from matloop.knowledge.documents import (
    KINDS,
    Document,
    IngestProblem,
    KnowledgeInputError,
    chunk_text,
)
from matloop.knowledge.embeddings import MODEL_NAME, MiniLMEmbeddingFunction, embed
from matloop.knowledge.evidence import Evidence, evidence_id
from matloop.knowledge.formulas import elements_of, formulas_in, tokenize
from matloop.knowledge.fusion import RRF_K, chroma_where, formula_boosts, to_evidence, top_k
from matloop.knowledge.ingest import IngestReport, ProgressFn, card_document, read_sources
from matloop.knowledge.recipes import Recipe, RecipeTable

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = get_args(Mode)


class KnowledgeStatus(BaseModel):
    """What the knowledge base holds."""

    path: str = Field(description="Local directory (manifest, BM25 index, recipes).")
    server: str | None = Field(default=None, description="chroma server, when one is used.")
    collection: str = Field(description="chromadb collection name.")
    embedding_model: str = Field(description="Embedding model.")
    chunk_size: int = Field(description="Chunk size, characters.")
    chunk_overlap: int = Field(description="Chunk overlap, characters.")
    documents: dict[str, int] = Field(description="Documents per kind.")
    chunks: int = Field(description="Chunks in the collection.")
    recipes: int = Field(description="Recipes in the recipe table.")
    recipe_compositions: int = Field(description="Distinct recipe target compositions.")
    bm25: str = Field(description="BM25 index state: fresh, stale (rebuilt on next search) or "
                                  "missing.")
    generation: int = Field(description="Ingest counter; the BM25 index is tagged with it.")


_MANIFEST = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL, kind TEXT NOT NULL,
    origin_file TEXT, origin TEXT, title TEXT, doi TEXT, year INTEGER,
    n_chunks INTEGER NOT NULL, ingested_utc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS documents_hash ON documents(content_hash);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


#: One embedded chroma client is made at a time in this process (see KnowledgeBase).
_CONNECT_LOCK = threading.Lock()


class KnowledgeBase:
    """Persistent knowledge base with hybrid retrieval and synthesis analogs.

    Args:
        path: Local directory; default ``get_settings().data_dir / "knowledge"``.
        server: Address of a chroma server (``http://host:8000`` or ``host:8000``); the
            embedded chromadb under ``path`` is used when None. Manifest, BM25 index and
            recipes stay under ``path`` either way.
        chunk_size: Chunk length, characters.
        chunk_overlap: Overlap between neighbouring chunks, characters.
        embed_batch_size: Texts per embedding forward pass.
        embed_precision: ``auto``, ``float32`` or ``bfloat16`` (see
            :func:`matloop.knowledge.embeddings.embed`).
        shipped_recipes: Use the text-mined synthesis recipes shipped with matloop
            (:mod:`matloop.knowledge.recipe_pack`) for synthesis analogues, and embed those of
            a chemical system into the vector store when a search asks about it.

    """

    def __init__(self, path: str | Path | None = None, *, server: str | None = None,
                 chunk_size: int = 800, chunk_overlap: int = 100, embed_batch_size: int = 64,
                 embed_precision: str = "auto", shipped_recipes: bool = True) -> None:
        if chunk_size < 200 or chunk_size > 8000:
            raise ValueError(f"chunk_size must be in [200, 8000] characters, got {chunk_size}")
        if not 0 <= chunk_overlap < chunk_size // 2:
            raise ValueError(f"chunk_overlap must be in [0, {chunk_size // 2}), "
                             f"got {chunk_overlap}")
        if path is None:
            from matloop.config import get_settings

            path = get_settings().data_dir / "knowledge"
        self.path = Path(path).expanduser()
        self.path.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.chunk_size, self.chunk_overlap = chunk_size, chunk_overlap
        self.embed_batch_size, self.embed_precision = embed_batch_size, embed_precision
        self.collection_name = f"matloop-{MODEL_NAME}-c{chunk_size}-o{chunk_overlap}"
        self.manifest_path = self.path / f"{self.collection_name}.manifest.sqlite"
        self.bm25_path = self.path / f"{self.collection_name}.bm25.pkl"
        self.recipes = RecipeTable(self.path / "recipes.sqlite")
        self.shipped_recipes = shipped_recipes
        self._shipped: Any = None
        self._lock = threading.Lock()
        self._bm25: BM25Index | None = None
        with self._db() as con:
            con.executescript(_MANIFEST)
        with _CONNECT_LOCK:  # chroma's client cache is not safe to fill from two threads
            self._client = self._connect()
            self._collection = self._client.get_or_create_collection(
                self.collection_name, embedding_function=MiniLMEmbeddingFunction(),
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedding_model": MODEL_NAME, "chunk_size": chunk_size,
                          "chunk_overlap": chunk_overlap})

    # ------------------------------------------------------------------ plumbing

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        settings = ChromaSettings(anonymized_telemetry=False)
        if self.server is None:
            return chromadb.PersistentClient(path=str(self.path / "chroma"), settings=settings)
        address = self.server if "://" in self.server else f"http://{self.server}"
        from urllib.parse import urlparse

        url = urlparse(address)
        try:
            client = chromadb.HttpClient(host=url.hostname or "localhost", port=url.port or 8000,
                                         ssl=url.scheme == "https", settings=settings)
            client.heartbeat()
        except Exception as exc:  # connection errors come as several types
            raise MatloopError(
                f"cannot reach the chroma server at {self.server} ({type(exc).__name__})",
                hint="start one with `chroma run --path DIR --port 8000`, or drop --server to "
                     "use the embedded store") from exc
        return client

    def _db(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.manifest_path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def generation(self) -> int:
        """Ingest counter (bumped whenever the indexed documents change)."""
        with self._db() as con:
            row = con.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def _bump_generation(self) -> None:
        with self._db() as con:
            con.execute("INSERT INTO meta VALUES ('generation', ?) ON CONFLICT(key) DO UPDATE "
                        "SET value = CAST(value AS INTEGER) + 1", ("1",))
        self._bm25 = None
        self.bm25_path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ ingest

    def ingest(self, paths: Sequence[str | Path], *, kind: str | None = None,
               use_robocrys: bool = True, progress: ProgressFn | None = None) -> IngestReport:
        """Ingest files and folders; unchanged documents are skipped, changed ones replaced.

        Args:
            paths: Files or folders (walked recursively).
            kind: One of papers, abstracts, bibtex, pdf, recipes, cards; detected per file
                when None.
            use_robocrys: Describe structures (cards) with robocrys when it works.
            progress: Called as ``progress(stage, done, total)``.

        """
        start = time.perf_counter()
        sources = read_sources(paths, kind=kind, use_robocrys=use_robocrys, progress=progress)
        report = self.add_documents(sources.documents, recipes=sources.recipes,
                                    progress=progress)
        report.files = sources.files
        report.problems = sources.problems + report.problems
        report.seconds = round(time.perf_counter() - start, 3)
        return report

    def add_materials(self, structures: Sequence[Structure], *,
                      properties: Sequence[dict[str, Any] | None] | None = None,
                      sources: Sequence[str | None] | None = None, use_robocrys: bool = True,
                      progress: ProgressFn | None = None) -> IngestReport:
        """Add material cards for structures (from the reference store or a campaign)."""
        props = list(properties) if properties is not None else [None] * len(structures)
        srcs = list(sources) if sources is not None else [None] * len(structures)
        if len(props) != len(structures) or len(srcs) != len(structures):
            raise ValueError("properties and sources must have one entry per structure")
        docs = [card_document(s, p, source=src, use_robocrys=use_robocrys)
                for s, p, src in zip(structures, props, srcs, strict=True)]
        return self.add_documents(docs, progress=progress)

    def add_documents(self, documents: Iterable[Document], *,
                      recipes: dict[str, Recipe] | None = None,
                      progress: ProgressFn | None = None, block_chunks: int = 2048,
                      ) -> IngestReport:
        """Index documents (the lower-level API under :meth:`ingest`)."""
        start = time.perf_counter()
        recipes = recipes or {}
        report = IngestReport()
        with self._db() as con:
            known = {row[0]: (row[1], row[2], row[3]) for row in con.execute(
                "SELECT doc_id, content_hash, origin_file, n_chunks FROM documents")}
        hashes = {h for h, _, _ in known.values()}
        plan: list[tuple[Document, str, int]] = []  # (doc, hash, old chunk count or -1)
        seen: set[str] = set()
        for doc in documents:
            report.documents += 1
            h = doc.content_hash()
            if doc.id in seen:
                report.duplicates += 1
                continue
            seen.add(doc.id)
            if doc.id in known:
                old_hash, old_file, old_n = known[doc.id]
                if old_hash == h:
                    report.unchanged += 1
                elif old_file and doc.origin_file and old_file != doc.origin_file:
                    report.duplicates += 1
                else:
                    plan.append((doc, h, int(old_n)))
                continue
            if h in hashes:
                report.duplicates += 1
                continue
            hashes.add(h)
            plan.append((doc, h, -1))
        if plan:
            self._write(plan, recipes, report, progress, block_chunks)
            self._bump_generation()
            if progress is not None:
                progress("rebuilding the BM25 index", 0, 1)
            self.rebuild_bm25()
            if progress is not None:
                progress("rebuilding the BM25 index", 1, 1)
        report.seconds = round(time.perf_counter() - start, 3)
        return report

    def _chunks(self, doc: Document) -> list[str]:
        if doc.single_chunk:
            return [doc.text.strip()] if doc.text.strip() else []
        return chunk_text(doc.text, size=self.chunk_size, overlap=self.chunk_overlap)

    def _write(self, plan: list[tuple[Document, str, int]], recipes: dict[str, Recipe],
               report: IngestReport, progress: ProgressFn | None, block_chunks: int) -> None:
        stale = [evidence_id(doc.id, i) for doc, _, old_n in plan for i in range(max(old_n, 0))]
        for i in range(0, len(stale), 5000):
            self._collection.delete(ids=stale[i:i + 5000])
        stale_recipes = [recipes[d.id].id for d, _, old_n in plan if old_n >= 0 and d.id in recipes]
        self.recipes.delete(stale_recipes)
        total_docs = len(plan)
        done_docs = 0
        cache: dict[str, np.ndarray] = {}  # embedding per distinct text, across blocks
        block: list[tuple[Document, str, int, list[str]]] = []
        n_block = 0
        for doc, h, old_n in plan:
            chunks = self._chunks(doc)
            if not chunks:
                report.problems.append(IngestProblem(origin=doc.origin or doc.id,
                                                     message=f"{doc.id}: no text to index"))
                continue
            block.append((doc, h, old_n, chunks))
            n_block += len(chunks)
            if n_block >= block_chunks:
                done_docs += len(block)
                self._write_block(block, recipes, report, cache)
                block, n_block = [], 0
                if progress is not None:
                    progress("embedding and storing", done_docs, total_docs)
        if block:
            done_docs += len(block)
            self._write_block(block, recipes, report, cache)
        if progress is not None:
            progress("embedding and storing", total_docs, total_docs)

    def _write_block(self, block: list[tuple[Document, str, int, list[str]]],
                     recipes: dict[str, Recipe], report: IngestReport,
                     cache: dict[str, np.ndarray]) -> None:
        ids, texts, metas, embed_texts = [], [], [], []
        for doc, _, _, chunks in block:
            for i, chunk in enumerate(chunks):
                ids.append(evidence_id(doc.id, i))
                texts.append(chunk)
                metas.append(self._metadata(doc, i, len(chunks), chunk))
                embed_texts.append(doc.embed_text if (doc.embed_text and len(chunks) == 1)
                                   else chunk)
        new = [t for t in dict.fromkeys(embed_texts) if t not in cache]
        vectors = embed(new, batch_size=self.embed_batch_size, precision=self.embed_precision)
        cache.update(zip(new, vectors, strict=True))
        matrix = np.stack([cache[t] for t in embed_texts])
        step = max(1, min(5000, self._client.get_max_batch_size()))
        for i in range(0, len(ids), step):
            self._collection.upsert(ids=ids[i:i + step], documents=texts[i:i + step],
                                    metadatas=metas[i:i + step],
                                    embeddings=matrix[i:i + step])
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._db() as con:
            con.executemany(
                "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(doc.id, h, doc.kind, doc.origin_file, doc.origin, doc.title, doc.doi, doc.year,
                  len(chunks), now) for doc, h, _, chunks in block])
        report.recipes_indexed += self.recipes.upsert(
            recipes[doc.id] for doc, _, _, _ in block if doc.id in recipes)
        report.added += sum(1 for _, _, old_n, _ in block if old_n < 0)
        report.replaced += sum(1 for _, _, old_n, _ in block if old_n >= 0)
        report.chunks_added += len(ids)

    @staticmethod
    def _metadata(doc: Document, index: int, n_chunks: int, chunk: str) -> dict[str, Any]:
        formulas = list(dict.fromkeys(doc.formulas + formulas_in(chunk)))[:64]
        meta: dict[str, Any] = {"doc_id": doc.id, "kind": doc.kind, "chunk_index": index,
                                "n_chunks": n_chunks}
        for key, value in (("title", doc.title), ("doi", doc.doi), ("year", doc.year),
                           ("origin", doc.origin), ("primary_formula", doc.primary_formula)):
            if value not in (None, ""):
                meta[key] = value[:300] if isinstance(value, str) else value
        if formulas:
            meta["formulas"] = formulas
            if elements := elements_of(formulas):
                meta["elements"] = elements
        meta.update(doc.extra)
        return meta

    # ------------------------------------------------------------------ BM25

    def rebuild_bm25(self) -> BM25Index:
        """Rebuild the BM25 index from the collection and pickle it (done after each ingest)."""
        generation = self.generation()
        with self._lock:
            index = self._build_bm25(generation)
            index.save(self.bm25_path)
            self._bm25 = index
        return index

    def bm25_index(self) -> BM25Index:
        """The BM25 index: from memory, else the pickle if it is current, else rebuilt.

        The index is tagged with the ingest generation, so an ingest by another process
        (or a pickle left from an interrupted ingest) is noticed and the index reloaded.
        """
        generation = self.generation()
        with self._lock:
            index = self._bm25
            if index is None or index.generation != generation:
                index = BM25Index.load(self.bm25_path)
                count = self._collection.count()
                if index is None or index.generation != generation or len(index) != count:
                    index = self._build_bm25(generation)
                    index.save(self.bm25_path)
                self._bm25 = index
        return index

    def _build_bm25(self, generation: int) -> BM25Index:
        return build_from_collection(self._collection, generation)

    # ------------------------------------------------------------------ retrieval

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid",
               kind: str | Sequence[str] | None = None, year_min: int | None = None,
               year_max: int | None = None, elements: Sequence[str] | None = None,
               pool: int = 50) -> list[Evidence]:
        """Retrieve passages for a query.

        Args:
            query: Free text; formulas in it are normalised (LiFePO4 = FeLiO4P).
            k: Passages to return.
            mode: ``hybrid`` (dense + BM25 by reciprocal-rank fusion, plus one vote for
                chunks that mention a formula of the query), ``dense`` or ``bm25``.
            kind: Only these document kinds.
            year_min: Earliest publication year (documents without a year are dropped).
            year_max: Latest publication year (documents without a year are dropped).
            elements: Only passages mentioning all these elements.
            pool: Candidates taken from each ranking before fusion.

        Raises:
            KnowledgeInputError: Empty query or unknown kind, mode or element.

        """
        if not query or not query.strip():
            raise KnowledgeInputError("the query is empty",
                                      hint='ask something, e.g. "how is LiFePO4 synthesised"')
        if mode not in MODES:
            raise KnowledgeInputError(f"unknown search mode {mode!r}",
                                      hint=f"use one of: {', '.join(MODES)}")
        if not 1 <= k <= 200:
            raise KnowledgeInputError(f"k must be between 1 and 200, got {k}")
        kinds = [kind] if isinstance(kind, str) else list(kind or [])
        bad = [x for x in kinds if x not in KINDS]
        if bad:
            raise KnowledgeInputError(f"unknown kind {', '.join(bad)}",
                                      hint=f"use one of: {', '.join(KINDS)}")
        els = [e.strip() for e in elements or [] if e.strip()]
        bad = [e for e in els if not Element.is_valid_symbol(e)]
        if bad:
            raise KnowledgeInputError(f"unknown element(s) {', '.join(bad)}",
                                      hint="use element symbols such as Li, Fe, O")
        if self._collection.count() == 0:
            return []
        pool = max(pool, k)
        query = query.strip()
        dense: list[tuple[str, float]] = []
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        if mode in ("dense", "hybrid"):
            dense = self._dense(query, pool, kinds, year_min, year_max, els, found)
        lexical: list[tuple[str, float]] = []
        boosts: dict[str, float] = {}
        if mode in ("bm25", "hybrid"):
            index = self.bm25_index()
            mask = index.mask(kinds=kinds, year_min=year_min, year_max=year_max, elements=els)
            scores = index.scores(tokenize(query))
            if mask is not None:
                scores = np.where(mask, scores, 0.0)
            lexical = top_k(index.ids, scores, pool)
            if mode == "hybrid":
                boosts = formula_boosts(index, query, scores, mask, pool)
        if mode == "dense":
            ranked = dense[:k]
        elif mode == "bm25":
            ranked = lexical[:k]
        else:
            fused: dict[str, float] = dict(boosts)
            for ranking in (dense, lexical):
                for rank, (cid, _) in enumerate(ranking, start=1):
                    fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
            # ties (e.g. ranks 1+2 against 2+1) go to the better dense rank
            dense_rank = {cid: r for r, (cid, _) in enumerate(dense)}
            ranked = sorted(fused.items(), key=lambda kv: (
                -round(kv[1], 12), dense_rank.get(kv[0], len(dense)), kv[0]))[:k]
        missing = [cid for cid, _ in ranked if cid not in found]
        if missing:
            got = self._collection.get(ids=missing, include=["documents", "metadatas"])
            for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"],
                                       strict=True):
                found[cid] = (text or "", meta or {})
        return [to_evidence(cid, score, *found[cid]) for cid, score in ranked if cid in found]

    def _dense(self, query: str, pool: int, kinds: list[str], year_min: int | None,
               year_max: int | None, els: list[str],
               found: dict[str, tuple[str, dict[str, Any]]]) -> list[tuple[str, float]]:
        where = chroma_where(kinds, year_min, year_max, els)
        vector = embed([query], precision=self.embed_precision)
        res = self._collection.query(query_embeddings=vector, n_results=pool, where=where,
                                     include=["documents", "metadatas", "distances"])
        out = []
        for cid, text, meta, dist in zip(res["ids"][0], res["documents"][0],
                                         res["metadatas"][0], res["distances"][0], strict=True):
            found[cid] = (text or "", meta or {})
            out.append((cid, 1.0 - float(dist)))
        return out

    def shipped_table(self) -> Any:
        """The shipped recipe pack (:class:`~matloop.knowledge.recipe_pack.PackedRecipes`),
        or None when shipped recipes are off."""
        if not self.shipped_recipes:
            return None
        if self._shipped is None:
            from matloop.knowledge.recipe_pack import shipped_recipes

            self._shipped = shipped_recipes()
        return self._shipped

    def find_synthesis_analogs(self, formula: str, *, k: int = 5, per_formula: int = 1,
                               exclude: Iterable[str] = ()) -> list[SynthesisAnalog]:
        """Known syntheses of the same or the most similar compositions: the user's ingested
        recipes and the shipped pack, ranked together by similarity (no embeddings)."""
        exclude = list(exclude)
        found: list[SynthesisAnalog] = []
        for table in (self.recipes, self.shipped_table()):
            if table is not None and len(table):
                found += table.find_analogs(formula, k=k, per_formula=per_formula,
                                            exclude=exclude)
        found.sort(key=lambda a: (not a.exact_match, -a.similarity, a.recipe_id))
        out: list[SynthesisAnalog] = []
        seen: set[str] = set()
        per: dict[str, int] = {}
        for a in found:
            if a.recipe_id in seen or per.get(a.canonical_formula, 0) >= per_formula:
                continue
            seen.add(a.recipe_id)
            per[a.canonical_formula] = per.get(a.canonical_formula, 0) + 1
            out.append(a)
            if len(out) >= k:
                break
        return out

    def ensure_shipped_recipes(self, elements: Sequence[str], *, limit: int = 100,
                               progress: ProgressFn | None = None) -> int:
        """Embed the shipped recipes of a chemical system into the vector store, once.

        Recipes whose target lies within ``elements`` (plus O, C, H, N) and contains at least
        two of the system's other elements (one for a single-element system) are added, the
        ones with the most of the system's elements first, at most ``limit``. Returns how many
        were newly embedded.
        """
        table = self.shipped_table()
        if table is None or not elements:
            return 0
        recipes = table.recipes_within(elements, limit=limit)
        if not recipes:
            return 0
        with self._db() as con:
            have = {r[0] for r in con.execute("SELECT doc_id FROM documents WHERE doc_id LIKE "
                                              "'recipe:%'")}
        from matloop.knowledge.recipe_pack import PACK

        docs = [r.to_document(origin=f"shipped:{PACK}", origin_file=PACK) for r in recipes
                if r.document_id not in have]
        if not docs:
            return 0
        report = self.add_documents(docs, progress=progress)
        return report.added

    # ------------------------------------------------------------------ status

    def status(self) -> KnowledgeStatus:
        """Counts and index state."""
        with self._db() as con:
            by_kind = dict(con.execute("SELECT kind, COUNT(*) FROM documents GROUP BY kind"))
        generation = self.generation()
        if self._bm25 is not None and self._bm25.generation == generation:
            state = "fresh"
        elif self.bm25_path.exists():
            idx = BM25Index.load(self.bm25_path)
            state = "fresh" if idx is not None and idx.generation == generation else "stale"
        else:
            state = "missing" if generation == 0 else "stale"
        return KnowledgeStatus(
            path=str(self.path), server=self.server, collection=self.collection_name,
            embedding_model=MODEL_NAME, chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap, documents={k: by_kind.get(k, 0) for k in KINDS},
            chunks=self._collection.count(), recipes=len(self.recipes),
            recipe_compositions=self.recipes.n_compositions(), bm25=state,
            generation=generation)

"""Knowledge-base benchmark: retrieval quality, ingest throughput, query latency, analog quality.

Data (``shared/data/literature``, see ``shared/data/MANIFEST.md`` section 3):

* ``synthesis_recipes_flat.jsonl.gz`` (39,549 text-mined recipes; Kononova et al. 2019);
* ``materials_text_corpus.jsonl.gz`` (1,541 abstracts and synthesis paragraphs).

What is measured:

1. Ingest of the recipes (minus the held-out targets) through ``KnowledgeBase.ingest``:
   documents per second and total time; a second ingest of the same file (all unchanged).
   The text corpus is added as documents whose indexed text is the body only (the title is
   metadata), so the title queries below are a real title-to-abstract task.
2. Labelled queries, each run in ``dense``, ``bm25`` and ``hybrid`` mode with k=10:
   * ``synthesis``: "how is <target> synthesised" for sampled targets whose written formula
     is a plain formula; relevant = every recipe whose target has the same composition;
   * ``synthesis_with_precursors``: the same with "from <precursors of one recipe>";
   * ``synthesis_alphabetical``: the target written in canonical alphabetical order
     (FeLiO4P for LiFePO4), which only formula normalisation can match;
   * ``title``: a corpus document's title; relevant = that document.
   recall@k = |relevant in top k| / min(|relevant|, k); MRR over the top 10. Rankings are
   of documents: the chunks of one document count once, at the rank of the first.
3. Query latency (p50, p95) of each mode at full size, the BM25 rebuild (done at the end of
   every ingest) and pickle-load times.
4. Analog quality: targets held out of the store (all their recipes removed) are given to
   ``find_synthesis_analogs``. The *key cation precursors* of a target recipe are, for each
   element of the target other than O, C, H and N, the precursors that contain that element
   (e.g. BaCO3, Ho2O3 and Ta2O5 for Ba2HoTaO6). For a suggested analog recipe we report
   * ``precursor_set_match``: its precursor set equals that of one of the target's recipes;
   * ``key_precursors_shared``: it shares at least one cation with the target and, for every
     shared cation, uses the target's key precursor of that cation;
   * ``key_precursor_coverage``: fraction of the target's key cation precursors it uses;
   each at rank 1 and over the top 5 (any / union), against an element-overlap-only ranking.

Run from the repository root::

    .venv/bin/python -m evals.retrieval [--recipes N] [--out FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.common import DEFAULT_DATA, PeakMemory, write_json
from matloop.knowledge.documents import Document, normalise_doi
from matloop.knowledge.formulas import canonical_formula, parse_formula
from matloop.knowledge.recipes import COMMON_ELEMENTS, recipe_from_record
from matloop.knowledge.store import MODES, KnowledgeBase

RECIPES_FILE = "literature/synthesis_recipes_flat.jsonl.gz"
CORPUS_FILE = "literature/materials_text_corpus.jsonl.gz"
K = 10


class StageTimer:
    """Progress callback that records when each ingest stage starts and last reports."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        self.first.setdefault(stage, now)
        self.last[stage] = now

    def durations(self) -> dict[str, float]:
        """Seconds from the end of the previous stage to the last report of each stage."""
        out, prev = {}, self.start
        for stage in sorted(self.first, key=self.first.get):
            out[stage] = round(self.last[stage] - prev, 1)
            prev = self.last[stage]
        return out


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _cations(canon: str) -> set[str]:
    comp = parse_formula(canon)
    return {el.symbol for el in comp.elements} - COMMON_ELEMENTS if comp else set()


def _precursor_canons(precursors: Sequence[str]) -> dict[str, set[str]]:
    """Canonical formula -> elements, for the parseable precursors."""
    out = {}
    for p in precursors:
        comp = parse_formula(p)
        if comp is not None:
            out[canonical_formula(p)] = {el.symbol for el in comp.elements}
    return out


def pick_holdout(rows: list[dict[str, Any]], n: int, rng: random.Random) -> list[str]:
    """Canonical targets to hold out: a plain written formula, >= 1 cation, >= 2 parseable
    precursors that carry every cation."""
    by_canon: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        canon = canonical_formula(r["target_formula"])
        if canon:
            by_canon[canon].append(r)
    eligible = []
    for canon, recs in sorted(by_canon.items()):
        cations = _cations(canon)
        if not cations:
            continue
        for r in recs:
            pre = _precursor_canons(r.get("precursors") or [])
            if len(pre) >= 2 and len(pre) == len(r.get("precursors") or []) and all(
                    any(c in els for els in pre.values()) for c in cations):
                eligible.append(canon)
                break
    rng.shuffle(eligible)
    return sorted(eligible[:n])


def analog_agreement(target: str, target_recipes: list[dict[str, Any]],
                     analogs: list[Any]) -> dict[str, float]:
    """Agreement of suggested analogs with the held-out target's real precursors."""
    cations = _cations(target)
    refs = []
    for r in target_recipes:
        pre = _precursor_canons(r.get("precursors") or [])
        key = {c: {p for p, els in pre.items() if c in els} for c in cations}
        if all(key.values()):
            refs.append((set(pre), key))
    if not refs or not analogs:
        return {}

    def one(precursors: set[str], analog_cations: set[str]) -> tuple[bool, bool, float]:
        exact = any(precursors == pre for pre, _ in refs)
        shared = cations & analog_cations
        key_ok = bool(shared) and any(all(key[c] & precursors for c in shared)
                                      for _, key in refs)
        coverage = max(sum(bool(key[c] & precursors) for c in cations) / len(cations)
                       for _, key in refs)
        return exact, key_ok, coverage

    sets = [(set(_precursor_canons(a.precursors)), _cations(a.canonical_formula))
            for a in analogs]
    e1, k1, c1 = one(*sets[0])
    top = [one(*s) for s in sets[:5]]
    union = set().union(*(s for s, _ in sets[:5]))
    _, _, c5 = one(union, set().union(*(c for _, c in sets[:5])))
    return {"precursor_set_match@1": float(e1),
            "precursor_set_match@5": float(any(t[0] for t in top)),
            "key_precursors_shared@1": float(k1),
            "key_precursors_shared@5": float(any(t[1] for t in top)),
            "key_precursor_coverage@1": c1, "key_precursor_coverage@5_union": c5,
            "top_similarity": analogs[0].similarity}


def build_queries(rows: list[dict[str, Any]], corpus: list[dict[str, Any]], *, n_synthesis: int,
                  n_title: int | None, rng: random.Random
                  ) -> list[tuple[str, str, set[str]]]:
    """(query type, query, relevant document ids)."""
    by_canon: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        recipe = recipe_from_record(r)
        if recipe.canonical_formula:
            by_canon[recipe.canonical_formula].append(r)
    plain = sorted(c for c, recs in by_canon.items()
                   if any(canonical_formula(r["target_formula"]) == c for r in recs))
    rng.shuffle(plain)
    queries = []
    for canon in plain[:n_synthesis]:
        recs = by_canon[canon]
        relevant = {f"recipe:{r['id']}" for r in recs}
        r = rng.choice([r for r in recs if canonical_formula(r["target_formula"]) == canon])
        target = r["target_formula"]
        queries.append(("synthesis", f"how is {target} synthesised", relevant))
        pre = list(r.get("precursors") or [])
        if pre:
            hint = ", ".join(pre[:-1]) + (" and " if len(pre) > 1 else "") + pre[-1]
            queries.append(("synthesis_with_precursors",
                            f"how is {target} synthesised from {hint}", relevant))
        if canon != target:
            queries.append(("synthesis_alphabetical", f"how is {canon} synthesised", relevant))
    titled = [d for d in corpus if d.get("title")]
    if n_title is not None:
        rng.shuffle(titled)
        titled = titled[:n_title]
    for d in titled:
        queries.append(("title", d["title"], {corpus_doc_id(d)}))
    return queries


def corpus_doc_id(d: dict[str, Any]) -> str:
    return f"corpus:{d['id']}"


def corpus_documents(corpus: list[dict[str, Any]], origin: str) -> list[Document]:
    """Corpus rows as documents whose indexed text is the body only (title as metadata)."""
    docs = []
    for i, d in enumerate(corpus, start=1):
        extra = {"text_type": d["text_type"]} if d.get("text_type") else {}
        docs.append(Document(id=corpus_doc_id(d), kind="abstracts", text=d["text"],
                             title=d.get("title"), doi=normalise_doi(d.get("doi")),
                             origin=f"{origin}:{i}", origin_file=origin, extra=extra))
    return docs


def evaluate(kb: KnowledgeBase, queries: list[tuple[str, str, set[str]]]
             ) -> tuple[dict[str, Any], dict[str, list[float]], list[dict[str, Any]]]:
    sums: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    latency: dict[str, list[float]] = defaultdict(list)
    misses = []
    for n, (qtype, query, relevant) in enumerate(queries, start=1):
        for mode in MODES:
            t0 = time.perf_counter()
            hits = kb.search(query, k=K, mode=mode)
            latency[mode].append((time.perf_counter() - t0) * 1000)
            # several chunks of one document count once, at the rank of the first
            ranked = list(dict.fromkeys(h.document_id for h in hits))
            flags = [d in relevant for d in ranked]
            cap = min(len(relevant), 5), min(len(relevant), K)
            first = next((i for i, f in enumerate(flags, start=1) if f), None)
            s = sums[(qtype, mode)]
            s["recall@5"] += sum(flags[:5]) / cap[0]
            s["recall@10"] += sum(flags[:K]) / cap[1]
            s["hit@10"] += float(first is not None)
            s["mrr"] += 1.0 / first if first else 0.0
            counts[(qtype, mode)] += 1
            if mode == "hybrid" and first is None and len(misses) < 25:
                misses.append({"type": qtype, "query": query,
                               "top3": [h.title for h in hits[:3]]})
        if n % 100 == 0:
            print(f"  {n}/{len(queries)} queries", file=sys.stderr, flush=True)
    table: dict[str, Any] = defaultdict(dict)
    for (qtype, mode), s in sorted(sums.items()):
        table[qtype][mode] = {k: round(v / counts[(qtype, mode)], 4) for k, v in s.items()}
        table[qtype]["queries"] = counts[(qtype, mode)]
    return dict(table), latency, misses


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    data = Path(args.data)
    rows = load_jsonl(data / RECIPES_FILE)
    corpus = load_jsonl(data / CORPUS_FILE)
    if args.recipes:
        rows = rng.sample(rows, min(args.recipes, len(rows)))
    if args.corpus:
        corpus = rng.sample(corpus, min(args.corpus, len(corpus)))
    n_holdout = min(args.holdout, max(1, len(rows) // 20))
    holdout = pick_holdout(rows, n_holdout, rng)
    held = set(holdout)
    target_recipes = defaultdict(list)
    kept = []
    for r in rows:
        canon = canonical_formula(r["target_formula"])
        if canon in held:
            target_recipes[canon].append(r)
        elif not (canon is None and recipe_from_record(r).canonical_formula in held):
            kept.append(r)
    workdir = Path(args.kb) if args.kb else Path(tempfile.mkdtemp(prefix="matloop-kb-bench-"))
    recipe_file = workdir / "recipes_in_store.jsonl.gz"
    workdir.mkdir(parents=True, exist_ok=True)
    with gzip.open(recipe_file, "wt", encoding="utf-8") as fh:
        for r in kept:
            fh.write(json.dumps(r) + "\n")
    print(f"{len(kept)} recipes in the store, {len(rows) - len(kept)} held out "
          f"({len(holdout)} targets); {len(corpus)} corpus documents; store in {workdir}",
          file=sys.stderr, flush=True)

    kb = KnowledgeBase(workdir / "kb")
    load = os.getloadavg()
    stages = StageTimer()
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        rep = kb.ingest([recipe_file], kind="recipes", progress=stages)
        recipe_s = time.perf_counter() - t0
    print(f"recipes ingested: {rep.added} in {recipe_s:.1f} s", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    rep2 = kb.ingest([recipe_file], kind="recipes")
    reingest_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    crep = kb.add_documents(corpus_documents(corpus, str(data / CORPUS_FILE)))
    corpus_s = time.perf_counter() - t0
    print(f"corpus ingested: {crep.added} docs, {crep.chunks_added} chunks in {corpus_s:.1f} s",
          file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    index = kb.rebuild_bm25()
    bm25_build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    KnowledgeBase(workdir / "kb").bm25_index()
    bm25_load_s = time.perf_counter() - t0

    queries = build_queries(kept, corpus, n_synthesis=args.synthesis_queries,
                            n_title=args.title_queries, rng=rng)
    print(f"{len(queries)} queries x {len(MODES)} modes", file=sys.stderr, flush=True)
    kb.search("warm-up query", k=K)
    quality, latency, misses = evaluate(kb, queries)

    analog_rows, baseline_rows = [], []
    analog_ms = []
    t0 = time.perf_counter()
    kb.find_synthesis_analogs("LiFePO4", k=5)  # loads the substitution table and composition index
    analog_first_ms = (time.perf_counter() - t0) * 1000
    examples = []
    for target in holdout:
        t0 = time.perf_counter()
        analogs = kb.find_synthesis_analogs(target, k=5)
        analog_ms.append((time.perf_counter() - t0) * 1000)
        if (m := analog_agreement(target, target_recipes[target], analogs)):
            analog_rows.append(m)
            if len(examples) < 10:
                examples.append({"target": target,
                                 "target_precursors": target_recipes[target][0]["precursors"],
                                 "analog": analogs[0].analog_formula,
                                 "analog_precursors": analogs[0].precursors,
                                 "substitutions": analogs[0].substitutions,
                                 "similarity": analogs[0].similarity})
        base = kb.recipes.find_analogs(target, k=5, w_overlap=1.0, w_substitution=0.0,
                                       w_stoichiometry=0.0)
        if (m := analog_agreement(target, target_recipes[target], base)):
            baseline_rows.append(m)

    def mean(rows_: list[dict[str, float]]) -> dict[str, float]:
        keys = rows_[0].keys() if rows_ else []
        return {k: round(statistics.fmean(r[k] for r in rows_), 4) for k in keys}

    n_docs = rep.added
    result = {
        "config": {"recipes_total": len(rows), "recipes_in_store": len(kept),
                   "corpus_documents": len(corpus), "holdout_targets": len(holdout),
                   "seed": args.seed, "k": K, "collection": kb.collection_name,
                   "load_average_at_start": [round(x, 2) for x in load]},
        "ingest": {
            "recipes_documents": n_docs, "recipes_seconds": round(recipe_s, 1),
            "recipes_docs_per_second": round(n_docs / recipe_s, 1) if recipe_s else None,
            "recipes_stage_seconds": stages.durations(),
            "recipes_problems": len(rep.problems), "recipes_duplicates": rep.duplicates,
            "reingest_seconds": round(reingest_s, 2), "reingest_added": rep2.added,
            "reingest_unchanged": rep2.unchanged,
            "corpus_documents": crep.added, "corpus_chunks": crep.chunks_added,
            "corpus_seconds": round(corpus_s, 1), "peak_memory_mib": round(mem.peak_mib),
            "bm25_build_seconds": round(bm25_build_s, 2),
            "bm25_pickle_load_seconds": round(bm25_load_s, 2),
            "bm25_pickle_mib": round(kb.bm25_path.stat().st_size / 2**20, 1),
            "bm25_chunks": len(index)},
        "quality": quality,
        "latency_ms": {mode: {"p50": round(_percentile(v, 0.5), 1),
                              "p95": round(_percentile(v, 0.95), 1), "n": len(v)}
                       for mode, v in latency.items()},
        "analogs": {"targets_scored": len(analog_rows), "method": mean(analog_rows),
                    "element_overlap_only": mean(baseline_rows),
                    "first_call_ms": round(analog_first_ms, 1),
                    "latency_ms_p50": round(_percentile(analog_ms, 0.5), 1),
                    "latency_ms_p95": round(_percentile(analog_ms, 0.95), 1),
                    "examples": examples},
        "hybrid_misses_sample": misses,
    }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", type=int, default=None,
                        help="Use a random subset of N recipes (default: all 39,549).")
    parser.add_argument("--corpus", type=int, default=None,
                        help="Use a random subset of N corpus documents (default: all 1,541).")
    parser.add_argument("--synthesis-queries", type=int, default=200,
                        help="Targets to build synthesis queries for.")
    parser.add_argument("--title-queries", type=int, default=None,
                        help="Title queries (default: every corpus document with a title).")
    parser.add_argument("--holdout", type=int, default=50, help="Targets held out for analogs.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="shared/data directory.")
    parser.add_argument("--kb", default=None, help="Work directory (default: a temporary one).")
    parser.add_argument("--out", type=Path, default=None, help="Results JSON file.")
    args = parser.parse_args(argv)
    if not (Path(args.data) / RECIPES_FILE).is_file():
        print(f"data not found: {Path(args.data) / RECIPES_FILE}", file=sys.stderr)
        return 2
    result = run(args)
    path = write_json("retrieval", result, args.out)
    ing = result["ingest"]
    print(f"ingest: {ing['recipes_documents']} recipes in {ing['recipes_seconds']} s "
          f"({ing['recipes_docs_per_second']} docs/s); re-ingest {ing['reingest_seconds']} s "
          f"(added {ing['reingest_added']}); corpus {ing['corpus_chunks']} chunks in "
          f"{ing['corpus_seconds']} s; BM25 build {ing['bm25_build_seconds']} s, "
          f"load {ing['bm25_pickle_load_seconds']} s")
    for qtype, modes in result["quality"].items():
        for mode in MODES:
            m = modes[mode]
            print(f"{qtype:27s} {mode:6s} R@5 {m['recall@5']:.3f} R@10 {m['recall@10']:.3f} "
                  f"MRR {m['mrr']:.3f}  (n={modes['queries']})")
    for mode, lat in result["latency_ms"].items():
        print(f"latency {mode:6s} p50 {lat['p50']} ms  p95 {lat['p95']} ms")
    an = result["analogs"]
    print(f"analogs ({an['targets_scored']} held-out targets): {an['method']}")
    print(f"element-overlap-only baseline: {an['element_overlap_only']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

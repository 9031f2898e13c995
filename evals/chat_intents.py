"""Benchmark of the offline chat reader (:func:`matloop.agents.chat.intents.understand`).

Questions and short conversations a materials scientist might type
(``evals/data/chat_questions.json``: expected intent, entities, and an answer check for a later
end-to-end evaluation). About 30% of them (``split: heldout``, chosen by a hash of the id) were
never used to tune the reader; figures are reported for both parts. Two sets: ``original``
questions were written before the reader; ``fresh`` ones after its first version, which read
them once unchanged (``fresh_first_pass``, recorded in the data file) before any tuning.

Reported per part: intent accuracy (a reading in ``also_ok`` counts as correct), entity accuracy
(every checked field right: formulas, chemical systems and properties always, the other keys
when the item lists them, and for follow-ups the kinds resolved from context), agreement on
whether something is missing, confident wrong intents (wrong with confidence >= 0.5), the
confusion between intents, and the median time of one call.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python -m evals.chat_intents [--repeats 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pymatgen.core import Composition

from matloop.agents.chat.intents import INTENTS, ConversationContext, Understanding, understand

DATA = Path(__file__).resolve().parent / "data" / "chat_questions.json"
CONFIDENT = 0.5
_ALWAYS = ("formulas", "chemical_systems", "properties")


def load(path: Path = DATA) -> dict[str, Any]:
    """The question set."""
    return json.loads(path.read_text())


def _reduced(formula: str) -> str:
    return Composition(formula).reduced_formula


def _system(system: str) -> str:
    return "-".join(sorted(system.split("-")))


def entity_errors(expected: dict[str, Any], u: Understanding,
                  resolved: list[str] | None = None) -> dict[str, Any]:
    """Fields where the reading differs from the expectation: {field: [expected, got]}."""
    ent = u.entities
    got: dict[str, Any] = {
        "formulas": sorted({_reduced(f) for f in ent.formulas}),
        "chemical_systems": sorted(ent.chemical_systems),
        "properties": sorted(u.property_names()),
        "structure_format": ent.structure.format if ent.structure else None,
        "structure_formula": ent.structure.formula if ent.structure else None,
        "paths": sorted(ent.paths), "run_id": ent.run_id, "hypothesis_id": ent.hypothesis_id,
        "polymorphs": sorted(ent.polymorphs), "unknown_symbols": sorted(ent.unknown_symbols),
    }
    want: dict[str, Any] = {k: [] for k in _ALWAYS}
    for key, value in expected.items():
        if key == "constraints":
            continue
        if key == "formulas":
            want[key] = sorted({_reduced(f) for f in value})
        elif key == "chemical_systems":
            want[key] = sorted(_system(s) for s in value)
        elif key == "structure_formula":
            want[key] = _reduced(value)
        elif isinstance(value, list):
            want[key] = sorted(value)
        else:
            want[key] = value
    errors = {k: [v, got[k]] for k, v in want.items() if got[k] != v}
    for c in expected.get("constraints", []):
        match = [x for x in ent.constraints if x.property == c["property"]
                 and all(abs((getattr(x, b) or 0) - c[b]) < 1e-6 and getattr(x, b) is not None
                         for b in ("min", "max") if b in c)]
        if not match:
            errors.setdefault("constraints", [expected["constraints"],
                                              [x.model_dump() for x in ent.constraints]])
    if resolved is not None and sorted(resolved) != sorted(u.resolved_from_context):
        errors["resolved_from_context"] = [sorted(resolved), sorted(u.resolved_from_context)]
    return errors


def _record(qid: str, case: dict[str, Any], u: Understanding, split: str, kind: str,
            resolved: list[str] | None, origin: str) -> dict[str, Any]:
    ok_intents = [case["intent"], *case.get("also_ok", [])]
    errors = entity_errors(case["entities"], u, resolved)
    return {
        "id": qid, "split": split, "set": origin, "kind": kind, "tags": case.get("tags", []),
        "text": case["text"][:120], "expected": case["intent"], "also_ok": case.get("also_ok", []),
        "got": u.intent, "confidence": u.confidence, "intent_ok": u.intent in ok_intents,
        "entities_ok": not errors, "entity_errors": errors,
        "missing_ok": bool(u.missing) == bool(case.get("expect_missing")),
        "expect_missing": bool(case.get("expect_missing")), "missing": u.missing,
        "reading": u.reading,
    }


def run_cases(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Read every item and every conversation turn (turns with the context of earlier ones)."""
    out = []
    for item in data["items"]:
        u = understand(item["text"])
        kind = "negative" if "negative" in item.get("tags", []) else "single"
        out.append(_record(item["id"], item, u, item["split"], kind, None, item["set"]))
    for conv in data["conversations"]:
        ctx = ConversationContext()
        for i, turn in enumerate(conv["turns"]):
            u = understand(turn["text"], context=ctx)
            kind = "first_turn" if i == 0 else "follow_up"
            out.append(_record(f"{conv['id']}#{i + 1}", turn, u, conv["split"], kind,
                               turn.get("resolved_from_context", []), conv["set"]))
            ctx = ConversationContext.model_validate_json(ctx.update(u).model_dump_json())
            if turn.get("after", {}).get("run_id"):
                ctx.remember_run(turn["after"]["run_id"])
    return out


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy figures for a list of case records."""
    n = len(records)
    if not n:
        return {"n": 0}
    wrong_confident = [r for r in records if not r["intent_ok"] and r["confidence"] >= CONFIDENT]
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({r["kind"] for r in records}):
        rs = [r for r in records if r["kind"] == kind]
        by_kind[kind] = {"n": len(rs),
                         "intent_accuracy": round(sum(r["intent_ok"] for r in rs) / len(rs), 3),
                         "entity_accuracy": round(sum(r["entities_ok"] for r in rs) / len(rs), 3)}
    field_errors = Counter(k for r in records for k in r["entity_errors"])
    return {
        "n": n,
        "intent_accuracy": round(sum(r["intent_ok"] for r in records) / n, 3),
        "entity_accuracy": round(sum(r["entities_ok"] for r in records) / n, 3),
        "entity_accuracy_when_intent_right": round(
            sum(r["entities_ok"] for r in records if r["intent_ok"])
            / max(1, sum(r["intent_ok"] for r in records)), 3),
        "missing_agreement": round(sum(r["missing_ok"] for r in records) / n, 3),
        "confident_wrong": len(wrong_confident),
        "by_kind": by_kind,
        "entity_field_errors": dict(field_errors.most_common()),
    }


def per_intent(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall and precision per expected intent, and the confusion counts."""
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        confusion[r["expected"]][r["got"] if not r["intent_ok"] else r["expected"]] += 1
    table = {}
    for intent in INTENTS:
        expected = sum(confusion[intent].values())
        predicted = sum(c[intent] for c in confusion.values())
        right = confusion[intent][intent]
        if expected or predicted:
            table[intent] = {"n": expected, "recall": round(right / expected, 3) if expected
                             else None,
                             "precision": round(right / predicted, 3) if predicted else None,
                             "confused_with": {k: v for k, v in confusion[intent].items()
                                               if k != intent}}
    return table


def latency(data: dict[str, Any], *, repeats: int = 5) -> dict[str, Any]:
    """Time of one understand() call (median over repeats per message, then over messages)."""
    texts = [(i["text"], None) for i in data["items"]]
    for conv in data["conversations"]:
        ctx = ConversationContext()
        for turn in conv["turns"]:
            texts.append((turn["text"], ctx.model_copy(deep=True)))
            ctx.update(understand(turn["text"], context=ctx))
    for text, ctx in texts:  # warm the caches once, as a running chat service would be
        understand(text, context=ctx)
    per_message = []
    for text, ctx in texts:
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            understand(text, context=ctx)
            samples.append((time.perf_counter() - t0) * 1000)
        per_message.append((statistics.median(samples), "\n" in text))
    plain = sorted(ms for ms, multi in per_message if not multi)
    pasted = sorted(ms for ms, multi in per_message if multi)
    cold_t0 = time.perf_counter()
    understand("Is Nb3Sn thermodynamically stable?")  # a formula not seen above: uncached path
    cold_ms = (time.perf_counter() - cold_t0) * 1000
    return {
        "messages": len(per_message), "repeats": repeats,
        "median_ms": round(statistics.median(ms for ms, _ in per_message), 3),
        "p90_ms": round(sorted(ms for ms, _ in per_message)[int(0.9 * len(per_message))], 3),
        "max_ms": round(max(ms for ms, _ in per_message), 3),
        "median_ms_text_only": round(statistics.median(plain), 3) if plain else None,
        "median_ms_multiline_or_structure": round(statistics.median(pasted), 3) if pasted
        else None,
        "new_formula_uncached_ms": round(cold_ms, 3),
    }


def evaluate(split: str | None = None, *, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Records and summary for one split ('train', 'heldout') or all (None)."""
    data = data or load()
    records = [r for r in run_cases(data) if split is None or r["split"] == split]
    return {"summary": summarise(records), "per_intent": per_intent(records),
            "records": records}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write evals/results/chat_intents.json."""
    from evals.common import write_json  # heavy imports (pymatgen compatibility), only here

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    data = load()
    t_start = t0 = time.perf_counter()
    records = run_cases(data)
    wall_s = time.perf_counter() - t0
    parts = {name: [r for r in records if r["split"] == name] for name in ("train", "heldout")}
    payload: dict[str, Any] = {
        "data": str(DATA.relative_to(DATA.parents[2])),
        "counts": {"items": len(data["items"]), "conversations": len(data["conversations"]),
                   "turns": sum(len(c["turns"]) for c in data["conversations"]),
                   "cases": len(records)},
        "confident_threshold": CONFIDENT,
        "train": summarise(parts["train"]), "heldout": summarise(parts["heldout"]),
        "all": summarise(records),
        "by_set": {origin: {split: summarise([r for r in records if r["set"] == origin
                                               and r["split"] == split])
                            for split in ("train", "heldout")}
                   for origin in ("original", "fresh")},
        "fresh_first_pass": data.get("fresh_first_pass"),
        "per_intent_all": per_intent(records),
        "per_intent_heldout": per_intent(parts["heldout"]),
        "latency": latency(data, repeats=args.repeats),
        "first_pass_wall_s": round(wall_s, 3),
        "failures": [r for r in records if not (r["intent_ok"] and r["entities_ok"])],
    }
    payload["wall_seconds"] = round(time.perf_counter() - t_start, 2)
    path = write_json("chat_intents", payload, args.out)
    for name in ("train", "heldout", "all"):
        s = payload[name]
        print(f"{name:8s} n={s['n']:3d} intent {s['intent_accuracy']:.3f} entities "
              f"{s['entity_accuracy']:.3f} missing {s['missing_agreement']:.3f} "
              f"confident-wrong {s['confident_wrong']}")
    print(f"{'intent':13s} {'n':>4s} {'recall':>7s} {'precision':>9s}  confused with")
    for intent, row in payload["per_intent_all"].items():
        recall = "-" if row["recall"] is None else row["recall"]
        precision = "-" if row["precision"] is None else row["precision"]
        print(f"{intent:13s} {row['n']:4d} {recall:>7} {precision:>9}  "
              f"{row['confused_with'] or ''}")
    lat = payload["latency"]
    print(f"latency: median {lat['median_ms']} ms, p90 {lat['p90_ms']} ms, max {lat['max_ms']} ms "
          f"(text only {lat['median_ms_text_only']} ms; uncached new formula "
          f"{lat['new_formula_uncached_ms']} ms)")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Text-mined synthesis recipes shipped with the package: literature from the first run.

The pack is a compact derivative of the text-mined solid-state and sol-gel synthesis data set
of Kononova et al., Sci. Data 6, 203 (2019) (CC BY 4.0; 39,549 recipes from 29,435 papers):
for every recipe its data-set id, route, DOI, target formula(s), precursors and the mined
operations with their conditions (temperature, time, atmosphere, medium). The publishers'
paragraph excerpts and the balanced reactions are left out. ``synthesis_recipes.json`` beside
it records the source, counts, the checksum and the build command.

The pack loads into memory in about a second (:func:`shipped_recipes`; compositions were
parsed at build time); :class:`matloop.knowledge.store.KnowledgeBase` then finds synthesis
analogues in it with no ingest step, and embeds the recipes of a chemical system into the
vector store on demand (:meth:`KnowledgeBase.ensure_shipped_recipes`).

Rebuild exactly with ``python -m matloop.knowledge.recipe_pack --data ../shared/data``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import threading
import time
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from matloop.errors import MatloopError
from matloop.knowledge.recipes import AnalogSearch, Recipe, recipe_from_record

PACK = "synthesis_recipes.jsonl.gz"
META = "synthesis_recipes.json"
SOURCE_FILE = "literature/synthesis_recipes_flat.jsonl.gz"
ATTRIBUTION = ("Text-mined synthesis recipes: O. Kononova et al., \"Text-mined dataset of "
               "inorganic materials synthesis recipes\", Sci. Data 6, 203 (2019), CC BY 4.0 "
               "(CederGroupHub/text-mined-synthesis_public@fca0a994ddb36b37d39b803e8a21880aaecb1d71:"
               " solid-state_dataset_2019-12-03, sol-gel_dataset_20200713)")
#: Operation fields kept (the mined verb, conditions and medium).
_OP_KEYS = ("type", "token", "T", "time", "atmosphere", "media")


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    recipe = recipe_from_record(row)
    out: dict[str, Any] = {"id": row["id"], "synthesis_type": row.get("synthesis_type") or "",
                           "doi": recipe.doi, "target_formula": row.get("target_formula"),
                           "precursors": row.get("precursors") or []}
    if recipe.canonical_formula:
        from matloop.knowledge.formulas import parse_formula

        comp = parse_formula(recipe.canonical_formula)
        if comp is not None:
            out["canonical"] = recipe.canonical_formula
            out["composition"] = {el: round(float(x), 6)
                                  for el, x in sorted(comp.get_el_amt_dict().items())}
    targets = [t for t in dict.fromkeys(row.get("targets") or [])][:6]
    if targets and targets != [out["target_formula"]]:
        out["targets"] = targets
    if row.get("target_mp_id"):
        out["target_mp_id"] = row["target_mp_id"]
    ops = []
    for op in row.get("operations") or []:
        kept = {k: op[k] for k in _OP_KEYS if op.get(k) not in (None, "", [])}
        if kept:
            ops.append(kept)
    if ops:
        out["operations"] = ops
    return out


def build(data: Path, out: Path) -> dict[str, Any]:
    """Write the shipped pack and its metadata from the shared recipe file."""
    started = time.perf_counter()
    rows = []
    with gzip.open(data / SOURCE_FILE, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                if row.get("target_formula") and isinstance(row.get("precursors"), list):
                    rows.append(_compact(row))
    rows.sort(key=lambda r: r["id"])
    payload = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n"
                      for r in rows).encode()
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as handle:
        handle.write(payload)
    out.mkdir(parents=True, exist_ok=True)
    (out / PACK).write_bytes(buffer.getvalue())
    meta = {
        "name": "text-mined-synthesis-recipes",
        "attribution": ATTRIBUTION,
        "licence": "CC BY 4.0 (Kononova et al. 2019)",
        "fields": "id, synthesis_type, doi, target_formula, targets, target_mp_id, precursors, "
                  "operations[type, token, T, time, atmosphere, media]; paragraph excerpts "
                  "and reactions are not included",
        "recipes": len(rows),
        "dois": len({r["doi"] for r in rows if r.get("doi")}),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "build": "python -m matloop.knowledge.recipe_pack --data ../shared/data",
    }
    (out / META).write_text(json.dumps(meta, indent=1) + "\n")
    meta["build_seconds"] = round(time.perf_counter() - started, 1)
    return meta


@lru_cache(maxsize=1)
def pack_meta() -> dict[str, Any]:
    """Metadata of the shipped pack (raises when the package data is missing)."""
    try:
        return json.loads(resources.files("matloop.data").joinpath(META).read_text())
    except (FileNotFoundError, OSError) as exc:
        raise MatloopError(f"the shipped synthesis recipes are missing ({exc})",
                           hint="reinstall matloop, or rebuild them with "
                                "`python -m matloop.knowledge.recipe_pack --data "
                                "../shared/data`") from exc


def iter_pack() -> Any:
    """Records of the shipped pack, in the flat recipe format (see ``knowledge.recipes``)."""
    raw = resources.files("matloop.data").joinpath(PACK).read_bytes()
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        if line:
            yield json.loads(line)


class PackedRecipes(AnalogSearch):
    """The shipped recipes in memory, with the search methods of
    :class:`~matloop.knowledge.recipes.RecipeTable` (``find_analogs``, ``recipes_within``,
    ``recipes_of``); compositions were parsed at build time, so loading is a JSON read."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows: dict[str, list[dict[str, Any]]] = {}
        comps: dict[str, dict[str, float]] = {}
        by_el: dict[str, set[str]] = {}
        self._n = len(rows)
        for row in rows:
            canon = row.get("canonical")
            if not canon:
                continue
            self._rows.setdefault(canon, []).append(row)
            if canon not in comps:
                comps[canon] = row["composition"]
                for el in row["composition"]:
                    by_el.setdefault(el, set()).add(canon)
        self._indexed = (comps, by_el)

    def __len__(self) -> int:
        return self._n

    def n_compositions(self) -> int:
        """Distinct parseable target compositions."""
        return len(self._indexed[0])

    def _index(self) -> tuple[dict[str, dict[str, float]], dict[str, set[str]]]:
        return self._indexed

    def recipes_of(self, canonical: str) -> list[Recipe]:
        """Recipes whose target has this canonical formula (most conditions first)."""
        recipes = [recipe_from_record(r) for r in self._rows.get(canonical, [])]
        return sorted(recipes, key=lambda r: (-len(r.temperatures), r.id))



_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def shipped_recipes() -> PackedRecipes:
    """The shipped pack, loaded once per process."""
    pack_meta()
    with _LOCK:
        return PackedRecipes(list(iter_pack()))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: rebuild the shipped pack from a shared data directory."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="shared data directory")
    parser.add_argument("--out", type=Path, default=Path(str(resources.files("matloop.data"))))
    args = parser.parse_args(argv)
    if not (args.data / SOURCE_FILE).exists():
        print(f"{args.data}: no {SOURCE_FILE}", file=sys.stderr)
        return 2
    meta = build(args.data, args.out)
    print(json.dumps({k: meta[k] for k in ("recipes", "dois", "sha256", "build_seconds")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

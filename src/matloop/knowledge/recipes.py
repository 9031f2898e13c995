"""Text-mined synthesis recipes: parsing and a compact SQLite table by target elements.

The recipe format is that of ``synthesis_recipes_flat.jsonl.gz`` (Kononova et al., Sci. Data 6,
203 (2019)): id, synthesis_type, doi, target_formula, targets, precursors, reaction,
operations ``[{type, token, T, time, atmosphere, media, device}]``, paragraph_snippet.
:meth:`RecipeTable.find_analogs` ranks the table's compositions with
:mod:`matloop.knowledge.analogs`, without the dense index.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from matloop.knowledge.analogs import Similarity, SynthesisAnalog, similarity, similarity_model
from matloop.knowledge.documents import (
    Document,
    IngestProblem,
    KnowledgeInputError,
    invalid_doi_note,
    iter_records,
    normalise_doi,
    require_columns,
)
from matloop.knowledge.evidence import evidence_id
from matloop.knowledge.formulas import canonical_formula, parse_formula

#: Elements never used to pick candidate analogs (they are in almost every recipe).
COMMON_ELEMENTS = frozenset({"O", "C", "H", "N"})
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


class Operation(BaseModel):
    """One text-mined synthesis step."""

    type: str = Field(default="", description="Operation class, e.g. HeatingOperation.")
    token: str = Field(default="", description="Verb as written, e.g. 'calcined'.")
    temperature: str | None = Field(default=None, description="Temperature as written, e.g. "
                                                               "1200C.")
    time: str | None = Field(default=None, description="Duration as written, e.g. 12h.")
    atmosphere: str | None = Field(default=None, description="Atmosphere as written.")
    media: str | None = Field(default=None, description="Medium (solvent, grinding medium).")

    def describe(self) -> str:
        """Short text, e.g. 'heated (1200C, 12h, air)'."""
        details = [v for v in (self.temperature, self.time, self.atmosphere, self.media) if v]
        return f"{self.token or self.type}" + (f" ({', '.join(details)})" if details else "")


class Recipe(BaseModel):
    """A text-mined synthesis of one target."""

    id: str = Field(description="Recipe id from the data set.")
    doi: str | None = Field(default=None, description="DOI of the paper it was mined from.")
    synthesis_type: str = Field(default="", description="solid-state, sol-gel, ...")
    target_formula: str = Field(description="Target formula as written (may be variable).")
    targets: list[str] = Field(default_factory=list, description="Concrete target formulas.")
    canonical_formula: str | None = Field(default=None, description="Canonical formula of the "
                                                                    "target, if parseable.")
    precursors: list[str] = Field(default_factory=list, description="Precursor formulas.")
    reaction: str = Field(default="", description="Balanced reaction, as mined.")
    operations: list[Operation] = Field(default_factory=list, description="Steps in order.")
    snippet: str = Field(default="", description="Excerpt of the source paragraph (cut "
                                                 "upstream).")

    @property
    def temperatures(self) -> list[str]:
        """Temperatures of the steps, as written, in order."""
        return [op.temperature for op in self.operations if op.temperature]

    @property
    def times(self) -> list[str]:
        """Durations of the steps, as written, in order."""
        return [op.time for op in self.operations if op.time]

    @property
    def atmospheres(self) -> list[str]:
        """Distinct atmospheres, in order of appearance."""
        return list(dict.fromkeys(op.atmosphere for op in self.operations if op.atmosphere))

    @property
    def max_temperature_c(self) -> float | None:
        """Highest heating temperature in °C (values written in K are converted)."""
        best = None
        for op in self.operations:
            if not op.temperature or "heat" not in op.type.lower():
                continue
            values = [float(x) for x in _NUMBER.findall(op.temperature)]
            if not values:
                continue
            t = max(values)
            if op.temperature.strip().upper().endswith("K") and "°C" not in op.temperature:
                t -= 273.15
            best = t if best is None else max(best, t)
        return best

    @property
    def document_id(self) -> str:
        """Id of the recipe's document in the knowledge base."""
        return f"recipe:{self.id}"

    def text(self) -> str:
        """Full text of the recipe, as indexed and shown as a snippet."""
        lines = [f"Synthesis recipe ({self.synthesis_type or 'unknown route'}) for "
                 f"{self.target_formula}."]
        if self.targets and self.targets != [self.target_formula]:
            lines.append("Targets: " + ", ".join(dict.fromkeys(self.targets[:6])) + ".")
        lines.append("Precursors: " + (", ".join(self.precursors) or "not reported") + ".")
        if self.reaction:
            lines.append(f"Reaction: {self.reaction}")
        if self.operations:
            lines.append("Steps: " + "; ".join(op.describe() for op in self.operations[:25]) + ".")
        if self.snippet:
            lines.append(f"Paragraph excerpt: {self.snippet}")
        if self.doi:
            lines.append(f"DOI: {self.doi}")
        return "\n".join(lines)

    def embed_text(self) -> str:
        """Compact text for the dense index: target and precursors.

        Conditions and route stay out (they are in the indexed text and metadata): the
        embedding cost grows with length, and 40k recipes must embed in minutes on a CPU.
        """
        return f"Synthesis of {self.target_formula} from {', '.join(self.precursors)}"

    def to_document(self, *, origin: str = "", origin_file: str = "") -> Document:
        """The recipe as a one-chunk knowledge-base document."""
        formulas = [f for f in dict.fromkeys(
            [self.canonical_formula] + [canonical_formula(t) for t in self.targets[:6]]
            + [canonical_formula(p) for p in self.precursors]) if f]
        extra: dict[str, str | int | float | bool] = {"recipe_id": self.id,
                                                      "target_formula": self.target_formula[:200]}
        if self.synthesis_type:
            extra["synthesis_type"] = self.synthesis_type
        return Document(id=self.document_id, kind="recipes", text=self.text(),
                        title=f"Synthesis of {self.target_formula}", doi=self.doi,
                        origin=origin, origin_file=origin_file, embed_text=self.embed_text(),
                        primary_formula=self.canonical_formula, formulas=formulas,
                        single_chunk=True, extra=extra)


def recipe_from_record(row: dict[str, Any]) -> Recipe:
    """Recipe from one record of the flat JSONL format.

    Raises:
        ValueError: A required field (target_formula, precursors) is missing or malformed.

    """
    target = row.get("target_formula") or row.get("target")
    if not target or not str(target).strip():
        raise ValueError("missing field target_formula")
    precursors = row.get("precursors")
    if isinstance(precursors, str):
        precursors = [p.strip() for p in re.split(r"[;,|]", precursors) if p.strip()]
    if precursors is None or not isinstance(precursors, list):
        raise ValueError("missing field precursors (a list of formulas)")
    targets = row.get("targets") or []
    if isinstance(targets, str):
        targets = [t.strip() for t in re.split(r"[;,|]", targets) if t.strip()]
    canon = canonical_formula(str(target))
    if canon is None:
        canon = next((c for c in (canonical_formula(str(t)) for t in targets) if c), None)
    ops = []
    raw_ops = row.get("operations") or []
    if isinstance(raw_ops, str):
        try:
            raw_ops = json.loads(raw_ops)
        except json.JSONDecodeError as exc:
            raise ValueError(f"operations is not valid JSON ({exc.msg})") from exc
    for op in raw_ops:
        if isinstance(op, dict):
            ops.append(Operation(type=str(op.get("type", "")), token=str(op.get("token", "")),
                                 temperature=_opt(op.get("T")), time=_opt(op.get("time")),
                                 atmosphere=_opt(op.get("atmosphere")),
                                 media=_opt(op.get("media"))))
    recipe = Recipe(id="", doi=normalise_doi(row.get("doi")),
                    synthesis_type=str(row.get("synthesis_type") or ""),
                    target_formula=str(target).strip(), targets=[str(t) for t in targets],
                    canonical_formula=canon, precursors=[str(p).strip() for p in precursors],
                    reaction=str(row.get("reaction") or ""), operations=ops,
                    snippet=str(row.get("paragraph_snippet") or ""))
    rid = row.get("id")
    recipe.id = str(rid) if rid not in (None, "") else content_id(recipe)
    return recipe


def content_id(recipe: Recipe) -> str:
    """Id of a recipe without one in its record: its target and a hash of its content.

    SHA-256 of the parsed fields (target, precursors, steps, DOI, ...), so the same recipe gets
    the same id in every process and from JSONL or CSV alike; re-ingesting a file adds nothing.
    """
    payload = recipe.model_dump_json(exclude={"id"})
    digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
    prefix = recipe.canonical_formula or re.sub(r"[^A-Za-z0-9().]+", "", recipe.target_formula)
    return f"{prefix[:40] or 'recipe'}-{digest}"


def _opt(value: Any) -> str | None:
    if value in (None, "", []):
        return None
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def read_recipes(path: Path) -> Iterator[tuple[Recipe, str] | IngestProblem]:
    """Recipes of a JSONL/CSV file, with their origin; bad records become problems."""
    require_columns(path, ("target_formula", "precursors"), kind="recipes",
                    optional=("id", "doi", "operations", "synthesis_type", "targets"))
    for origin, row in iter_records(path):
        if isinstance(row, IngestProblem):
            yield row
            continue
        try:
            recipe = recipe_from_record(row)
        except (ValueError, TypeError) as exc:
            yield IngestProblem(origin=origin, message=f"{_short_origin(origin)}: {exc}",
                                hint="recipes need target_formula and a list of precursors")
            continue
        if note := invalid_doi_note(row.get("doi"), origin):
            yield note
        yield recipe, origin


def _short_origin(origin: str) -> str:
    path, _, line = origin.rpartition(":")
    return f"{Path(path).name} line {line}" if line.isdigit() else origin


_SCHEMA = """
CREATE TABLE IF NOT EXISTS recipes (
    id TEXT PRIMARY KEY, canonical TEXT, target_formula TEXT NOT NULL, doi TEXT,
    synthesis_type TEXT, precursors TEXT NOT NULL, operations TEXT NOT NULL,
    max_temperature_c REAL, n_temperatures INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS recipes_canonical ON recipes(canonical);
CREATE TABLE IF NOT EXISTS compositions (
    canonical TEXT PRIMARY KEY, composition TEXT NOT NULL, n_recipes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS composition_elements (
    element TEXT NOT NULL, canonical TEXT NOT NULL, PRIMARY KEY (element, canonical));
"""


class AnalogSearch:
    """Composition search over a recipe collection: needs ``_index()`` (canonical formula ->
    element amounts, element -> canonical formulas) and ``recipes_of(canonical)``."""

    def _index(self) -> tuple[dict[str, dict[str, float]], dict[str, set[str]]]:
        raise NotImplementedError

    def recipes_of(self, canonical: str) -> list[Recipe]:
        """Recipes whose target has this canonical formula."""
        raise NotImplementedError

    def best_recipes_of(self, canonical: str) -> list[Recipe]:
        """:meth:`recipes_of`, cleanly written targets first: a target written as the formula
        itself beats a mixture, a solid solution or a text-mining fragment that reduces to it
        ("0.6BaTiO3-0.4BiFeO3" or "method)-0.06BaTiO3" for BaTiO3); then most conditions."""
        return sorted(self.recipes_of(canonical), key=lambda r: (
            canonical_formula(r.target_formula) != canonical or bool(
                re.search(r"[-+/()\s]|\d\.\d.*[A-Z]", r.target_formula)),
            -len(r.temperatures), r.id))

    def recipes_within(self, elements: Iterable[str], *, limit: int = 300) -> list[Recipe]:
        """Recipes whose target lies within ``elements`` plus the common ones (O, C, H, N)
        and holds at least two of the other elements (one for a one-element system); targets
        with more of the elements first, at most ``limit``."""
        wanted = {e for e in elements} - COMMON_ELEMENTS or set(elements)
        allowed = set(elements) | COMMON_ELEMENTS
        comps, by_el = self._index()
        need = min(2, len(wanted))
        scored = []
        for canon in set().union(*(by_el.get(el, set()) for el in wanted)):
            els = set(comps[canon])
            shared = len(els & wanted)
            if els <= allowed and shared >= need:
                scored.append((-shared, canon))
        out: list[Recipe] = []
        for _, canon in sorted(scored):
            out.extend(self.recipes_of(canon))
            if len(out) >= limit:
                break
        return out[:limit]

    def find_analogs(self, formula: str, *, k: int = 5, per_formula: int = 1,
                     exclude: Iterable[str] = (), w_overlap: float = 0.35,
                     w_substitution: float = 0.30,
                     w_stoichiometry: float = 0.35) -> list[SynthesisAnalog]:
        """Known syntheses of the same or the most similar compositions.

        Args:
            formula: Composition asked about, e.g. LiFePO4.
            k: Most recipes to return.
            per_formula: Most recipes per analog composition (keeps the list diverse).
            exclude: Canonical formulas to leave out (e.g. the asked one, to see neighbours).
            w_overlap: Weight of the element-overlap term.
            w_substitution: Weight of the substitution term.
            w_stoichiometry: Weight of the stoichiometry term.

        Raises:
            KnowledgeInputError: The formula cannot be read.

        """
        if k < 1 or per_formula < 1:
            raise ValueError(f"k and per_formula must be >= 1, got {k} and {per_formula}")
        comp = parse_formula(formula.strip()) if formula and formula.strip() else None
        if comp is None:
            raise KnowledgeInputError(
                f"cannot read formula {formula!r}",
                hint="write a composition with real element symbols, e.g. LiFePO4 or "
                     "Ba2HoTaO6 (variables such as x are not supported)")
        target = comp.get_el_amt_dict()
        excluded = set(exclude)
        comps, by_el = self._index()
        keys = set(target) - COMMON_ELEMENTS or set(target)
        candidates = set().union(*(by_el.get(el, set()) for el in keys)) - excluded
        weights = (w_overlap, w_substitution, w_stoichiometry)
        scored = sorted(((similarity(target, comps[c], weights, 0.02), c) for c in candidates),
                        key=lambda sc: (-round(sc[0][0], 4), sc[1]))
        out: list[SynthesisAnalog] = []
        asked = canonical_formula(formula.strip())
        for parts, canon in scored:
            sim = similarity_model(*parts)
            for recipe in self.best_recipes_of(canon)[:per_formula]:
                out.append(_analog(recipe, sim, exact=canon == asked))
                if len(out) >= k:
                    return out
        return out




class RecipeTable(AnalogSearch):
    """Compact SQLite table of recipes, searchable by target elements (no embeddings).

    Args:
        path: SQLite file; created when missing.

    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._cache: tuple[dict[str, dict[str, float]], dict[str, set[str]]] | None = None
        with self._connect() as con:
            con.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM recipes").fetchone()[0])

    def n_compositions(self) -> int:
        """Distinct parseable target compositions."""
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM compositions").fetchone()[0])

    def upsert(self, recipes: Iterable[Recipe]) -> int:
        """Insert or replace recipes; returns how many were written."""
        rows, comps = [], {}
        for r in recipes:
            ops = [op.model_dump(exclude_none=True) for op in r.operations]
            rows.append((r.id, r.canonical_formula, r.target_formula, r.doi, r.synthesis_type,
                         json.dumps(r.precursors), json.dumps(ops), r.max_temperature_c,
                         len(r.temperatures)))
            if r.canonical_formula:
                comp = parse_formula(r.canonical_formula)
                if comp is not None:
                    comps[r.canonical_formula] = comp.get_el_amt_dict()
        if not rows:
            return 0
        with self._lock, self._connect() as con:
            con.executemany("INSERT OR REPLACE INTO recipes VALUES (?,?,?,?,?,?,?,?,?)", rows)
            self._refresh_compositions(con, comps)
        self._cache = None
        return len(rows)

    def delete(self, ids: Iterable[str]) -> None:
        """Remove recipes by id."""
        ids = list(ids)
        if not ids:
            return
        with self._lock, self._connect() as con:
            canon = {c for (c,) in con.execute(
                f"SELECT canonical FROM recipes WHERE id IN ({','.join('?' * len(ids))})", ids)
                if c}
            con.executemany("DELETE FROM recipes WHERE id = ?", [(i,) for i in ids])
            self._refresh_compositions(con, {c: parse_formula(c).get_el_amt_dict()
                                             for c in canon if parse_formula(c)})
        self._cache = None

    @staticmethod
    def _refresh_compositions(con: sqlite3.Connection, comps: dict[str, dict[str, float]]) -> None:
        for canon, amounts in comps.items():
            n = con.execute("SELECT COUNT(*) FROM recipes WHERE canonical = ?",
                            (canon,)).fetchone()[0]
            if n == 0:
                con.execute("DELETE FROM compositions WHERE canonical = ?", (canon,))
                con.execute("DELETE FROM composition_elements WHERE canonical = ?", (canon,))
                continue
            con.execute("INSERT OR REPLACE INTO compositions VALUES (?,?,?)",
                        (canon, json.dumps(amounts), n))
            con.executemany("INSERT OR IGNORE INTO composition_elements VALUES (?,?)",
                            [(el, canon) for el in amounts])

    def _index(self) -> tuple[dict[str, dict[str, float]], dict[str, set[str]]]:
        cache = self._cache
        if cache is None:
            comps: dict[str, dict[str, float]] = {}
            by_el: dict[str, set[str]] = {}
            with self._connect() as con:
                for canon, comp in con.execute("SELECT canonical, composition FROM compositions"):
                    comps[canon] = json.loads(comp)
                for el, canon in con.execute("SELECT element, canonical FROM "
                                             "composition_elements"):
                    by_el.setdefault(el, set()).add(canon)
            cache = self._cache = (comps, by_el)
        return cache

    def recipes_of(self, canonical: str) -> list[Recipe]:
        """Recipes whose target has this canonical formula."""
        with self._connect() as con:
            rows = con.execute("SELECT id, canonical, target_formula, doi, synthesis_type, "
                               "precursors, operations FROM recipes WHERE canonical = ? "
                               "ORDER BY n_temperatures DESC, id", (canonical,)).fetchall()
        return [Recipe(id=r[0], canonical_formula=r[1], target_formula=r[2], doi=r[3],
                       synthesis_type=r[4] or "", precursors=json.loads(r[5]),
                       operations=[Operation(**op) for op in json.loads(r[6])]) for r in rows]

def _analog(recipe: Recipe, sim: Similarity, *, exact: bool) -> SynthesisAnalog:
    return SynthesisAnalog(
        analog_formula=recipe.target_formula, canonical_formula=recipe.canonical_formula or "",
        exact_match=exact, similarity=sim.score, element_overlap=sim.element_overlap,
        stoichiometry_similarity=sim.stoichiometry_similarity,
        substitution_similarity=sim.substitution_similarity, substitutions=sim.substitutions,
        precursors=recipe.precursors, temperatures=recipe.temperatures,
        max_temperature_c=recipe.max_temperature_c, times=recipe.times,
        atmosphere=recipe.atmospheres, steps=[op.describe() for op in recipe.operations][:20],
        synthesis_type=recipe.synthesis_type, doi=recipe.doi, recipe_id=recipe.id,
        evidence_id=evidence_id(recipe.document_id, 0))

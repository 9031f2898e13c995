"""Reading sources for the knowledge base.

Expand paths, detect kinds, turn files into documents, recipes and material cards, and
collect what could not be used.

A bad file or record is recorded as an :class:`IngestProblem` and the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from matloop.errors import MatloopError
from matloop.knowledge.cards import material_card
from matloop.knowledge.documents import (
    KINDS,
    Document,
    IngestProblem,
    KnowledgeInputError,
    abstracts_from_records,
    bibtex_documents,
    detect_kind,
    papers_from_records,
    pdf_document,
)
from matloop.knowledge.recipes import Recipe, read_recipes

ProgressFn = Callable[[str, int, int], None]


class IngestReport(BaseModel):
    """What an ingest did."""

    files: dict[str, str] = Field(default_factory=dict, description="File -> kind read as.")
    documents: int = Field(default=0, description="Documents read from the files.")
    added: int = Field(default=0, description="New documents indexed.")
    replaced: int = Field(default=0, description="Changed documents re-indexed.")
    unchanged: int = Field(default=0, description="Documents skipped: already indexed as is.")
    duplicates: int = Field(default=0, description="Documents skipped: same DOI/id from another "
                                                   "file, or same content under another id.")
    chunks_added: int = Field(default=0, description="Chunks embedded and stored.")
    recipes_indexed: int = Field(default=0, description="Recipes written to the recipe table.")
    problems: list[IngestProblem] = Field(default_factory=list, description="Files and records "
                                                                            "that were skipped.")
    seconds: float = Field(default=0.0, description="Wall time, s.")


@dataclass
class Sources:
    """What a batch of paths yielded."""

    documents: list[Document] = field(default_factory=list)
    recipes: dict[str, Recipe] = field(default_factory=dict)
    problems: list[IngestProblem] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


def expand_paths(paths: Sequence[str | Path]) -> tuple[list[Path], list[IngestProblem]]:
    """Files named by ``paths`` (folders are walked, hidden files skipped)."""
    files: list[Path] = []
    problems: list[IngestProblem] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()
                                and not any(part.startswith(".") for part in
                                            p.relative_to(path).parts)))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(IngestProblem(origin=str(path), message=f"{path}: no such file or "
                                                                    "folder",
                                          hint="check the path"))
    return files, problems


def card_document(structure: Structure, properties: dict[str, Any] | None = None, *,
                  source: str | None = None, origin_file: str = "",
                  use_robocrys: bool = True) -> Document:
    """A material card as a knowledge-base document."""
    from matloop.materials.structures import structure_fingerprint

    card = material_card(structure, properties, source=source, use_robocrys=use_robocrys)
    fingerprint = structure_fingerprint(structure)[:12]
    extra: dict[str, str | int | float | bool] = {"description_source": card.description_source}
    if card.space_group_number is not None:
        extra["space_group_number"] = card.space_group_number
    return Document(id=f"card:{card.canonical_formula}:{fingerprint}", kind="cards",
                    text=card.to_text(), title=f"Material card: {card.formula}"
                    + (f" ({card.space_group_symbol})" if card.space_group_symbol else ""),
                    origin=source or "", origin_file=origin_file,
                    primary_formula=card.canonical_formula, formulas=[card.canonical_formula],
                    extra=extra)


def read_sources(paths: Sequence[str | Path], *, kind: str | None = None,
                 use_robocrys: bool = True, progress: ProgressFn | None = None) -> Sources:
    """Read every file under ``paths`` as ``kind`` (detected per file when None).

    Raises:
        KnowledgeInputError: ``kind`` is not one of the known kinds.

    """
    if kind is not None and kind not in KINDS:
        raise KnowledgeInputError(f"unknown kind {kind!r}",
                                  hint=f"use one of: {', '.join(KINDS)}")
    files, problems = expand_paths(paths)
    out = Sources(problems=problems)
    for n, path in enumerate(files, start=1):
        try:
            file_kind = kind or detect_kind(path)
            out.files[str(path)] = file_kind
            _read_one(path, file_kind, out, use_robocrys=use_robocrys)
        except MatloopError as exc:
            out.problems.append(IngestProblem(origin=str(path), message=exc.message,
                                              hint=exc.hint))
        if progress is not None:
            progress("reading files", n, len(files))
    return out


def _read_one(path: Path, kind: str, out: Sources, *, use_robocrys: bool) -> None:
    if kind == "pdf":
        out.documents.append(pdf_document(path))
    elif kind == "bibtex":
        _collect(bibtex_documents(path), out)
    elif kind == "papers":
        _collect(papers_from_records(path), out)
    elif kind == "abstracts":
        _collect(abstracts_from_records(path), out)
    elif kind == "recipes":
        for item in read_recipes(path):
            if isinstance(item, IngestProblem):
                out.problems.append(item)
            else:
                recipe, origin = item
                doc = recipe.to_document(origin=origin, origin_file=str(path))
                out.documents.append(doc)
                out.recipes[doc.id] = recipe
    elif kind == "cards":
        from matloop.materials.structures import read_structure

        structure = read_structure(path)
        out.documents.append(card_document(structure, source=str(path), origin_file=str(path),
                                           use_robocrys=use_robocrys))
    else:  # pragma: no cover - guarded by read_sources
        raise KnowledgeInputError(f"unknown kind {kind!r}", hint=f"use one of {KINDS}")


def _collect(items: Any, out: Sources) -> None:
    for item in items:
        if isinstance(item, IngestProblem):
            out.problems.append(item)
        else:
            out.documents.append(item)

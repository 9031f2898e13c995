"""Command line of the knowledge base: ``ingest``, ``search`` and ``kb status`` / ``kb analogs``.

Mount it on the main app with :func:`register`; ``app`` here is a standalone app with the same
commands (``python -m matloop.knowledge.cli``).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from matloop.console import StageBars as _Bars
from matloop.console import console
from matloop.console import fail as _fail
from matloop.console import progress_bars as _progress
from matloop.errors import MatloopError
from matloop.knowledge.documents import KINDS

out = Console()

#: Document kinds of ``--kind`` (papers, abstracts, bibtex, pdf, recipes, cards).
Kind = StrEnum("Kind", {k: k for k in KINDS})  # type: ignore[misc]


class Mode(StrEnum):
    """Search modes."""

    hybrid = "hybrid"
    dense = "dense"
    bm25 = "bm25"

KbOption = Annotated[Path | None, typer.Option(
    "--kb", help="Knowledge-base directory (default: <data dir>/knowledge).")]
ServerOption = Annotated[str | None, typer.Option(
    "--server", help="chroma server address, e.g. http://localhost:8000 (default: embedded).")]
ChunkOption = Annotated[int, typer.Option("--chunk-size", min=100, max=100_000,
                                          help="Chunk size, characters.")]
OverlapOption = Annotated[int, typer.Option("--chunk-overlap", min=0,
                                            help="Chunk overlap, characters.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _open(kb: Path | None, server: str | None, chunk_size: int, chunk_overlap: int):  # noqa: ANN202
    from matloop.knowledge.store import KnowledgeBase

    try:
        return KnowledgeBase(kb, server=server, chunk_size=chunk_size,
                             chunk_overlap=chunk_overlap)
    except ValueError as exc:
        if isinstance(exc, MatloopError):
            raise
        raise MatloopError(str(exc), hint="check --chunk-size and --chunk-overlap") from exc


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    kind: Annotated[Kind | None, typer.Option(
        "--kind", help="Document kind (default: detected per file).")] = None,
    robocrys: Annotated[bool, typer.Option(
        "--robocrys/--no-robocrys", help="Describe structures with robocrys.")] = True,
    as_json: JsonOption = False,
    kb: KbOption = None, server: ServerOption = None,
    chunk_size: ChunkOption = 800, chunk_overlap: OverlapOption = 100,
) -> None:
    """Ingest papers, abstracts, BibTeX, PDFs, synthesis recipes or structures (as cards)."""
    try:
        base = _open(kb, server, chunk_size, chunk_overlap)
        progress = _progress()
        with progress:
            report = base.ingest([str(p) for p in paths], kind=kind.value if kind else None,
                                 use_robocrys=robocrys,
                                 progress=_Bars(progress))
    except MatloopError as exc:
        _fail(exc)
        return
    if as_json:
        out.print_json(report.model_dump_json())
    else:
        out.print(f"ingested into {escape(str(base.path))} ({base.collection_name}): "
                  f"{report.documents} documents read from {len(report.files)} files; "
                  f"{report.added} added, {report.replaced} replaced, {report.unchanged} "
                  f"unchanged, {report.duplicates} duplicates; {report.chunks_added} chunks, "
                  f"{report.recipes_indexed} recipes indexed; {len(report.problems)} problems; "
                  f"{report.seconds:.1f} s")
        for problem in report.problems[:20]:
            hint = f" ({problem.hint})" if problem.hint else ""
            console.print(f"[yellow]skipped:[/] {escape(problem.message)}{escape(hint)}")
        if len(report.problems) > 20:
            console.print(f"[yellow]... and {len(report.problems) - 20} more problems "
                          "(see --json)[/]")
    if report.problems:
        raise typer.Exit(code=1)


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=200, help="Passages to return.")] = 5,
    kind: Annotated[Kind | None, typer.Option(
        "--kind", help="Only this document kind.")] = None,
    mode: Annotated[Mode, typer.Option("--mode", help="Search mode.")] = Mode.hybrid,
    elements: Annotated[str | None, typer.Option(
        "--elements", help="Comma-separated elements every passage must mention, e.g. Li,Fe."
    )] = None,
    year_min: Annotated[int | None, typer.Option("--year-min", help="Earliest year.")] = None,
    year_max: Annotated[int | None, typer.Option("--year-max", help="Latest year.")] = None,
    as_json: JsonOption = False,
    kb: KbOption = None, server: ServerOption = None,
    chunk_size: ChunkOption = 800, chunk_overlap: OverlapOption = 100,
) -> None:
    """Search the knowledge base (hybrid dense + BM25 by default)."""
    try:
        base = _open(kb, server, chunk_size, chunk_overlap)
        hits = base.search(query, k=k, mode=mode.value, kind=kind.value if kind else None,
                           year_min=year_min,
                           year_max=year_max,
                           elements=[e for e in (elements or "").split(",") if e.strip()])
    except MatloopError as exc:
        _fail(exc)
        return
    if as_json:
        out.print_json(json.dumps([h.model_dump() for h in hits]))
        return
    if not hits:
        status = base.status()
        extra = (" (the knowledge base is empty: run `matloop ingest`)"
                 if status.chunks == 0 else "")
        out.print(f"no results{extra}")
        return
    out.print(f"[bold]{mode.value} search:[/] {escape(query)}")
    for i, h in enumerate(hits, start=1):
        head = f"{i}. {h.id}  score {h.score:.4g}  " + escape(f"[{h.source}]")
        if h.title:
            head += f"  {escape(h.title[:120])}"
        if h.doi:
            head += f"  doi:{escape(h.doi)}"
        if h.year:
            head += f" ({h.year})"
        out.print(head, highlight=False)
        out.print("   " + escape(h.snippet[:300].replace("\n", " ")), highlight=False)


def kb_status(
    as_json: JsonOption = False,
    kb: KbOption = None, server: ServerOption = None,
    chunk_size: ChunkOption = 800, chunk_overlap: OverlapOption = 100,
) -> None:
    """Show what the knowledge base holds."""
    try:
        status = _open(kb, server, chunk_size, chunk_overlap).status()
    except MatloopError as exc:
        _fail(exc)
        return
    if as_json:
        out.print_json(status.model_dump_json())
        return
    table = Table(title=f"knowledge base {status.path}")
    table.add_column("")
    table.add_column("")
    rows = [("collection", status.collection), ("server", status.server or "embedded"),
            ("embedding model", status.embedding_model),
            ("chunking", f"{status.chunk_size} chars, overlap {status.chunk_overlap}"),
            *((f"documents: {k}", str(v)) for k, v in status.documents.items()),
            ("chunks", str(status.chunks)), ("recipes", str(status.recipes)),
            ("recipe compositions", str(status.recipe_compositions)),
            ("BM25 index", status.bm25), ("generation", str(status.generation))]
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


def kb_analogs(
    formula: Annotated[str, typer.Argument(help="Composition to make, e.g. Ba2HoTaO6.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=100,
                                   help="Known syntheses to list.")] = 5,
    as_json: JsonOption = False,
    kb: KbOption = None, server: ServerOption = None,
    chunk_size: ChunkOption = 800, chunk_overlap: OverlapOption = 100,
) -> None:
    """Known syntheses of the same or the most similar compositions."""
    try:
        analogs = _open(kb, server, chunk_size, chunk_overlap).find_synthesis_analogs(formula,
                                                                                      k=k)
    except MatloopError as exc:
        _fail(exc)
        return
    if as_json:
        out.print_json(json.dumps([a.model_dump() for a in analogs]))
        return
    if not analogs:
        out.print("no analogs (no recipe shares an element; ingest recipes first)")
        return
    table = Table(title=f"synthesis analogs of {escape(formula)}")
    for col in ("analog", "similarity", "swaps", "precursors", "max T (°C)", "times",
                "atmosphere", "DOI"):
        table.add_column(col)
    for a in analogs:
        table.add_row(escape(a.analog_formula), f"{a.similarity:.3f}",
                      ", ".join(a.substitutions) or "—", escape(", ".join(a.precursors)),
                      "—" if a.max_temperature_c is None else f"{a.max_temperature_c:.0f}",
                      escape(", ".join(a.times[:3])) or "—",
                      escape(", ".join(a.atmosphere)) or "—", a.doi or "—")
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add ``ingest``, ``search`` and a ``kb`` group (``status``, ``analogs``) to ``app``."""
    app.command("ingest")(ingest)
    app.command("search")(search)
    kb_app = typer.Typer(no_args_is_help=True, help="Knowledge base: status and synthesis "
                                                    "analogs.")
    kb_app.command("status")(kb_status)
    kb_app.command("analogs")(kb_analogs)
    app.add_typer(kb_app, name="kb")


app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="matloop knowledge base: ingest, search, status.")
register(app)


if __name__ == "__main__":  # pragma: no cover
    app()

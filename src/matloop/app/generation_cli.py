"""``matloop generate`` and ``matloop sun``: typer commands added to the main app by
:func:`register`."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from matloop.app.cli_support import Scale, out, print_json
from matloop.console import StageBars, console, progress_bars
from matloop.errors import MatloopError


class Method(StrEnum):
    """Generation methods of ``matloop generate``."""

    prototype = "prototype"
    substitution = "substitution"
    random = "random"
    llm = "llm"
    all = "all"


METHOD_CHOICES = tuple(m.value for m in Method)


def generate_command(
    chemsys: Annotated[str | None, typer.Option("--chemsys", help="Chemical system, e.g. Li-Fe-O.")] = None,
    composition: Annotated[str | None, typer.Option("--composition", help="Exact composition, e.g. LiFeO2.")] = None,
    method: Annotated[list[Method] | None, typer.Option("--method", help="Generation method (repeatable).")] = None,
    spacegroup: Annotated[list[int] | None, typer.Option("--spacegroup", min=1, max=230, help="Allowed space-group number, 1-230 (repeatable).")] = None,
    n: Annotated[int, typer.Option("--n", min=1, max=1000, help="How many candidates.")] = 10,
    max_atoms: Annotated[int, typer.Option("--max-atoms", min=1, max=200, help="Most atoms per primitive cell.")] = 20,
    require: Annotated[list[str] | None, typer.Option("--require", help="Element every candidate must contain (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Element no candidate may contain (repeatable).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed (0 or more).")] = 0,
    model: Annotated[str | None, typer.Option("--model", help="Chat model for --method llm, as provider:model.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the CIFs and candidates.json.")] = Path("candidates"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON summary instead of a table.")] = False,
) -> None:
    """Generate candidate structures and write them as CIFs plus candidates.json."""
    from matloop.config import get_settings
    from matloop.generation import GenerationRequest, generate_report
    from matloop.materials.references import ReferenceStore
    from matloop.tools.generation import summarize, write_candidates

    methods = [m.value for m in method] if method else ["all"]
    chat_model = None
    if model:
        from matloop.agents.llm import make_chat_model, parse_model_string

        spec = parse_model_string(model)
        chat_model = make_chat_model(spec) if spec is not None else None
    if "llm" in methods and chat_model is None:
        raise MatloopError("--method llm needs a chat model",
                           hint="pass --model provider:model, e.g. ollama:llama3.1")
    settings = get_settings()
    store = ReferenceStore.from_settings(settings)
    store.ensure_starter_library()
    try:
        request = GenerationRequest(
            chemsys=chemsys, composition=composition, methods=methods, n=n,
            spacegroups=spacegroup or None, max_atoms=max_atoms, required_elements=require or [],
            excluded_elements=exclude or [], seed=seed)
    except ValueError as exc:
        if isinstance(exc, MatloopError):
            raise
        raise MatloopError(str(exc).splitlines()[0], hint="check the options (--help)") from exc
    with progress_bars() as progress:
        report = generate_report(request, store=store, chat_model=chat_model,
                                 progress=StageBars(progress))
    paths = write_candidates(report, out_dir)
    summary = summarize(report, paths).model_dump(mode="json")
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"{summary['n']} candidates ({report.seconds:.1f} s) -> {out_dir}")
    for col in ("id", "formula", "method", "sg", "atoms", "valid", "origin"):
        table.add_column(col)
    for c in report.candidates:
        p = c.provenance
        origin = p.get("prototype") or p.get("parent") or p.get("generator") or p.get("model") or ""
        table.add_row(c.id, c.formula, c.method, str(c.spacegroup), str(c.n_atoms),
                      "yes" if c.valid else "no", str(origin))
    out.print(table)


def sun_command(
    folder: Annotated[Path, typer.Argument(help="Folder of structures (CIF, POSCAR...), e.g. the output of generate.")],
    mlip: Annotated[str | None, typer.Option(help="MLIP backend (chgnet, sevenn, ...).")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Stability threshold, eV/atom (default 0.1).")] = None,
    scale: Annotated[Scale | None, typer.Option(help="Hull energy scale (default: the reference_scale setting).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Relax a folder of structures with the MLIP and report valid/unique/novel/stable/SUN rates."""
    from matloop.config import get_settings
    from matloop.generation import sun_metrics
    from matloop.materials.engine import MaterialsEngine
    from matloop.materials.mlip import require_installed

    settings = get_settings()
    require_installed(mlip or settings.mlip)
    if threshold is not None and not (0 <= threshold < 10):
        raise MatloopError(f"--threshold {threshold} eV/atom is out of range",
                           hint="give an energy above the hull between 0 and 10 eV/atom, "
                                "e.g. 0.1")
    candidates = load_candidates(folder)
    if scale:
        settings = settings.model_copy(update={"reference_scale": scale.value})
    engine = MaterialsEngine(settings, mlip=mlip)
    with progress_bars() as progress:
        metrics = sun_metrics(candidates, engine, threshold=threshold,
                          progress=StageBars(progress))
    (folder / "sun.json").write_text(metrics.model_dump_json(indent=2))
    if as_json:
        print_json(metrics.model_dump(mode="json"))
        return
    table = Table(title=f"SUN metrics ({metrics.mlip}, E_hull <= {metrics.threshold_ev_per_atom} eV/atom)")
    for col in ("group", "n", "valid", "unique", "novel", "stable", "SUN"):
        table.add_column(col)
    groups = {**metrics.per_method, "all": metrics}
    for name, r in groups.items():
        table.add_row(name, str(r.total), f"{r.valid_rate:.0%}", f"{r.unique_rate:.0%}",
                      f"{r.novel_rate:.0%}", f"{r.stable_rate:.0%}", f"{r.sun_rate:.0%}")
    out.print(table)
    console.print(f"novelty: {escape(str(metrics.novelty))}")


def load_candidates(folder: Path) -> list:
    """Candidates from a folder: candidates.json when present (keeps methods), else every
    structure file (method 'file', validity checked here)."""
    from matloop.generation import Candidate
    from matloop.generation.chemistry import check_validity
    from matloop.materials.structures import SUPPORTED_SUFFIXES, read_structure

    if not folder.is_dir():
        raise MatloopError(f"{folder}: not a folder", hint="give the folder generate wrote")
    index = folder / "candidates.json"
    if index.is_file():
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            rows = data.get("candidates", []) if isinstance(data, dict) else None
            if not isinstance(rows, list):
                raise ValueError("no 'candidates' list")
            return [Candidate.model_validate({k: v for k, v in r.items() if k != "cif_path"})
                    for r in rows]
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise MatloopError(f"{index}: not a candidates file written by matloop generate "
                               f"({type(exc).__name__})",
                               hint="regenerate it, or remove candidates.json to read the "
                                    "structure files of the folder") from exc
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in SUPPORTED_SUFFIXES
                   or f.name.upper().startswith(("POSCAR", "CONTCAR")))
    if not files:
        raise MatloopError(f"{folder}: no structure files", hint="CIF, POSCAR, extxyz or JSON")
    candidates = []
    for f in files:
        try:
            s = read_structure(f)
        except MatloopError as exc:
            console.print(f"[yellow]skipped[/] {escape(str(exc))}", soft_wrap=True)
            continue
        c = Candidate.from_structure(s, method="file", provenance={"file": f.name})
        c.valid, c.validity_notes = check_validity(s)
        candidates.append(c)
    if not candidates:
        raise MatloopError(f"{folder}: none of the {len(files)} structure files is readable",
                           hint="see the messages above for each file")
    return candidates


def register(app: typer.Typer) -> None:
    """Add ``generate`` and ``sun`` to a typer app."""
    app.command("generate")(generate_command)
    app.command("sun")(sun_command)

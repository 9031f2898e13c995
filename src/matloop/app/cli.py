"""The ``matloop`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from matloop.console import StageBars as _Bars
from matloop.console import console
from matloop.console import fail as _fail
from matloop.console import progress_bars as _progress
from matloop.errors import MatloopError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="matloop: agentic materials discovery, offline or with any LLM.")
refs_app = typer.Typer(no_args_is_help=True, help="Reference phases for convex hulls.")
app.add_typer(refs_app, name="refs")

out = Console()


@app.command()
def predict(
    files: Annotated[list[Path], typer.Argument(help="Structure files: CIF, POSCAR, extxyz, JSON.")],
    mlip: Annotated[str | None, typer.Option(help="MLIP backend (chgnet, sevenn, ...).")] = None,
    relax: Annotated[bool, typer.Option("--relax/--no-relax", help="Relax before predicting.")] = False,
    bulk_modulus: Annotated[bool, typer.Option("--bulk-modulus", help="Fit an EOS, report B0 in GPa.")] = False,
    scale: Annotated[str | None, typer.Option(help="Hull energy scale: auto, mlip or mp2020.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write relaxed CIFs and predictions.json here.")] = None,
) -> None:
    """Predict energies, formation energies and hull stability of structures with an MLIP."""
    from matloop.config import get_settings
    from matloop.materials.engine import MaterialsEngine
    from matloop.materials.structures import read_structure

    try:
        structures = [read_structure(f) for f in files]
        engine = MaterialsEngine(get_settings(), mlip=mlip)
        with _progress() as progress:
            predictions = engine.predict(
                structures, sources=[str(f) for f in files], relax=relax,
                bulk_modulus=bulk_modulus, scale=scale, progress=_Bars(progress),
            )
    except MatloopError as exc:
        _fail(exc)
        return
    rows = []
    for p in predictions:
        row = {
            "source": p.source, "formula": p.formula, "status": p.status, "message": p.message,
            "energy_per_atom_ev": p.energy_per_atom_ev,
            "formation_energy_ev_per_atom": p.formation_energy_ev_per_atom,
            "e_above_hull_ev_per_atom": p.e_above_hull_ev_per_atom,
            "decomposition": p.decomposition, "is_stable": p.is_stable,
            "energy_scale": p.energy_scale, "stability_error": p.stability_error,
            "mlip": p.mlip, "mlip_model": p.mlip_model, "mlip_version": p.mlip_version,
            "settings": p.settings, "relaxed_cif": p.relaxed_cif,
        }
        if bulk_modulus:
            row["bulk_modulus_gpa"] = p.bulk_modulus_gpa
        if p.magmoms_bohr is not None:
            row["magmoms_bohr"] = p.magmoms_bohr
        rows.append(row)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(predictions):
            if p.relaxed_cif:
                (out_dir / f"{i:03d}_{p.formula}.cif").write_text(p.relaxed_cif)
        (out_dir / "predictions.json").write_text(json.dumps(rows, indent=2))
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        _print_predictions(predictions, bulk_modulus)
    if any(p.status != "ok" for p in predictions):
        raise typer.Exit(code=1)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _print_predictions(predictions: list, bulk_modulus: bool) -> None:
    table = Table(title="matloop predictions")
    for col in ("source", "formula", "status", "E (eV/atom)", "E_form (eV/atom)",
                "E_hull (eV/atom)", "stable", "decomposition"):
        table.add_column(col)
    if bulk_modulus:
        table.add_column("B0 (GPa)")
    for p in predictions:
        decomp = ", ".join(f"{k} {v:.2f}" for k, v in (p.decomposition or {}).items())
        row = [Path(p.source).name, p.formula, p.status if p.status == "ok" else f"[red]{p.status}",
               _fmt(p.energy_per_atom_ev), _fmt(p.formation_energy_ev_per_atom),
               _fmt(p.e_above_hull_ev_per_atom),
               "—" if p.is_stable is None else ("yes" if p.is_stable else "no"),
               decomp or (p.stability_error or p.message or "—")]
        if bulk_modulus:
            row.append(_fmt(p.bulk_modulus_gpa, ".1f"))
        table.add_row(*row)
    out.print(table)
    first = next((p for p in predictions if p.status == "ok"), None)
    if first is not None:
        out.print(f"MLIP: {first.mlip} {first.mlip_model} ({first.mlip_version}); "
                  f"hull scale: {first.energy_scale or 'n/a'}")


@app.command()
def mlips() -> None:
    """List the registered MLIP backends."""
    from matloop.materials.mlip import available_backends, get_backend_spec

    table = Table(title="MLIP backends")
    for col in ("name", "model", "energy scale", "description"):
        table.add_column(col)
    for name in available_backends():
        spec = get_backend_spec(name)
        table.add_row(spec.name, spec.model, spec.energy_scale, spec.description)
    out.print(table)


@refs_app.command("import")
def refs_import(
    path: Annotated[Path, typer.Argument(help="CSV of formation energies, ComputedEntry JSON, or CIF folder.")],
    scale: Annotated[str, typer.Option("--scale", help="Scale of a CSV's formation energies (eV/atom): mp2020 (Materials Project since 2021) or mp-legacy (before 2021, e.g. matbench_mp_e_form; converted to mp2020 on import, needs the MP2020 elemental entries imported first).")] = "mp2020",
) -> None:
    """Import reference phases from a file or folder."""
    from matloop.materials.references import ReferenceStore, import_references

    try:
        store = ReferenceStore.from_settings()
        with console.status(f"importing {path}"):
            n = import_references(store, path, scale=scale)
    except MatloopError as exc:
        _fail(exc)
        return
    out.print(f"imported {n} phases from {path} into {store.path}")


@refs_app.command("status")
def refs_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show what the reference store holds."""
    from matloop.materials.references import ReferenceStore

    store = ReferenceStore.from_settings()
    store.ensure_starter_library()
    rows = store.status()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"reference phases in {store.path}")
    for col in ("source", "energy kind", "energy scale", "with structure", "phases", "chemical systems"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["source"], r["energy_kind"], r["energy_scale"], str(r["with_structure"]),
                      str(r["phases"]), str(r["chemical_systems"]))
    out.print(table)


@refs_app.command("fetch")
def refs_fetch(chemsys: Annotated[str, typer.Option("--chemsys", help="e.g. Li-Fe-O")]) -> None:
    """Download a chemical system from the Materials Project (needs MP_API_KEY and network)."""
    from matloop.config import get_settings
    from matloop.materials.mp_client import fetch_chemsys
    from matloop.materials.references import ReferenceStore

    settings = get_settings()
    key = settings.mp_api_key.get_secret_value() if settings.mp_api_key else None
    try:
        store = ReferenceStore.from_settings(settings)
        with console.status(f"fetching {chemsys} from the Materials Project"):
            n = fetch_chemsys(store, chemsys, api_key=key)
    except MatloopError as exc:
        _fail(exc)
        return
    out.print(f"stored {n} phases of {chemsys}")


def _print_event(event: dict) -> None:
    kind = event.get("type")
    if kind == "node_start":
        console.print(f"[bold cyan]▶ {event['node']}[/] (iteration {event.get('iteration', 0)})")
    elif kind == "tool_call":
        colour = "green" if event.get("status") in ("ok", "partial") else "red"
        console.print(f"   [{colour}]{event.get('tool')}[/] {event.get('summary', '')} "
                      f"[dim]({event.get('duration_s', 0):.1f} s)[/]")
    elif kind == "llm_call" and event.get("ok") is False:
        console.print(f"   [red]{event.get('role')} {event.get('model')} failed:[/] "
                      f"{event.get('error')}")
    elif kind == "llm_call":
        how = f", {event['mechanism']}" if event.get("mechanism") else ""
        console.print(f"   [magenta]{event.get('role')}[/] {event.get('model')} "
                      f"{event.get('input_tokens', 0)}+{event.get('output_tokens', 0)} tokens "
                      f"[dim]({event.get('latency_s', 0):.1f} s{how})[/]")
    elif kind == "node_error":
        console.print(f"   [red]{event.get('node')} failed:[/] {event.get('error')}")


def _ask_approval(payload: dict) -> dict:
    plan = payload.get("plan", {})
    table = Table(title="proposed plan")
    for col in ("step", "tool", "purpose", "inputs"):
        table.add_column(col)
    for step in plan.get("steps", []):
        table.add_row(step["id"], step["tool"], step["purpose"], json.dumps(step["inputs"])[:80])
    console.print(table)
    if typer.confirm("Approve this plan?", default=True):
        return {"approved": True}
    feedback = typer.prompt("What should change? (empty to stop the campaign)", default="")
    return {"approved": False, "feedback": feedback}


@app.command()
def campaign(
    query: Annotated[str | None, typer.Argument(help="The materials question.")] = None,
    llm: Annotated[str, typer.Option(help="none (offline policies) or PROVIDER:MODEL for every role.")] = "none",
    role_model: Annotated[list[str] | None, typer.Option("--role-model", help="ROLE=PROVIDER:MODEL (scientist, planner, critic, assistant, reporter).")] = None,
    base_url: Annotated[str | None, typer.Option(help="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, LM Studio).")] = None,
    max_iterations: Annotated[int, typer.Option(help="Ideation-to-expansion loops.")] = 3,
    max_evaluations: Annotated[int, typer.Option(help="Candidate MLIP relaxations.")] = 60,
    max_llm_calls: Annotated[int, typer.Option(help="LLM calls over all roles.")] = 200,
    max_tokens: Annotated[int, typer.Option(help="Input + output tokens.")] = 2_000_000,
    budget_usd: Annotated[float, typer.Option(help="Spend limit, USD (price table).")] = 5.0,
    max_wall_time: Annotated[float, typer.Option(help="Wall-time limit, seconds.")] = 3600.0,
    max_atoms: Annotated[int, typer.Option(help="Largest generated cell, atoms.")] = 20,
    mlip: Annotated[str | None, typer.Option(help="MLIP backend.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every stochastic step.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder of run directories.")] = Path("runs"),
    resume: Annotated[str | None, typer.Option(help="Continue the campaign with this thread id.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Approve plans without asking (batch runs).")] = False,
    campaign_id: Annotated[str | None, typer.Option(help="Thread id to use for a new campaign.")] = None,
    llm_max_tokens: Annotated[list[str] | None, typer.Option("--llm-max-tokens", help="ROLE=N: output tokens per LLM call of a role (scientist, planner, critic, assistant, reporter, generator); defaults 1500/1500/1000/512/1500/1024.")] = None,
    llm_timeout: Annotated[float | None, typer.Option("--llm-timeout", help="Time limit of one LLM request, seconds (default 300).")] = None,
    fallback: Annotated[str, typer.Option("--fallback", help="none: a role whose model fails ends the campaign with a partial report (exit code 1); offline: its offline policy takes over for the rest of the run and the report says so.")] = "none",
) -> None:
    """Run (or resume) a discovery campaign and write its report.

    Exit code 0 when the campaign ends (completed, objective_met, budget_exhausted,
    no_results), 1 when it ends ``failed: ...`` (its partial report is still written), 2 for
    bad input."""
    from matloop.app.campaign import resume_campaign, start_campaign
    from matloop.runtime import Budget

    try:
        approve = None if yes else _ask_approval
        if resume:
            run = resume_campaign(resume, out_dir=out, approve=approve)
        else:
            if not query:
                raise MatloopError("no query given", hint='matloop campaign "stable Ba-Ti-O oxides"')
            roles = {}
            for item in role_model or []:
                role, sep, model = item.partition("=")
                if not sep:
                    raise MatloopError(f"--role-model {item!r} is not ROLE=PROVIDER:MODEL")
                roles[role.strip()] = model.strip()
            limits = {}
            for item in llm_max_tokens or []:
                role, sep, value = item.partition("=")
                if not sep or not value.strip().isdigit():
                    raise MatloopError(f"--llm-max-tokens {item!r} is not ROLE=N",
                                       hint="e.g. --llm-max-tokens scientist=800")
                limits[role.strip()] = int(value)
            if fallback not in ("none", "offline"):
                raise MatloopError(f"--fallback {fallback!r} is not none or offline",
                                   hint="--fallback offline hands a failing role to its "
                                        "offline policy")
            budget = Budget(max_iterations=max_iterations, max_evaluations=max_evaluations,
                            max_llm_calls=max_llm_calls, max_tokens=max_tokens,
                            max_cost_usd=budget_usd, max_wall_time_s=max_wall_time)
            run = start_campaign(query, out_dir=out, llm=llm, role_models=roles, budget=budget,
                                 mlip=mlip, seed=seed, require_approval=not yes,
                                 base_url=base_url, max_atoms=max_atoms,
                                 campaign_id=campaign_id, llm_max_tokens=limits,
                                 llm_timeout_s=llm_timeout, fallback=fallback)
        console.print(f"campaign [bold]{run.config.campaign_id}[/] in {run.run_dir} "
                      f"(resume with --resume {run.config.campaign_id})")
        report = run.run(resume=bool(resume), on_event=_print_event)
    except MatloopError as exc:
        _fail(exc)
        return
    from matloop.reports import write_report_files

    report, paths = write_report_files(report, run.run_dir)
    _print_report(report)
    out.mkdir(parents=True, exist_ok=True)
    console.print("report: " + ", ".join(str(p) for p in paths))
    if report.status.startswith("failed"):
        raise typer.Exit(code=1)


def _print_report(report) -> None:
    out.print(f"[bold]{report.status}[/] — {report.summary}")
    table = Table(title="top candidates")
    for col in ("id", "formula", "space group", "method", "E_hull (eV/atom)",
                "E_form (eV/atom)", "meets objective"):
        table.add_column(col)
    for c in [c for c in report.candidates if c.status == "ok"][:10]:
        table.add_row(c.id, c.formula, c.spacegroup or "—", c.method,
                      _fmt(c.e_above_hull_ev_per_atom), _fmt(c.formation_energy_ev_per_atom),
                      {True: "yes", False: "no", None: "unknown"}[c.meets_objective])
    out.print(table)
    u = report.usage
    out.print(f"usage: {u.iterations} iterations, {u.mlip_evaluations} MLIP evaluations, "
              f"{u.tool_calls} tool calls, {u.llm_calls} LLM calls "
              f"({u.input_tokens}+{u.output_tokens} tokens, ${u.cost_usd:.4f}), "
              f"{u.wall_time_s:.0f} s")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A campaign's run directory.")],
    fmt: Annotated[str, typer.Option("--format", help="html, md or json (all three are written; the path of this one is printed).")] = "html",
) -> None:
    """Re-render the report of a finished or partial run (a run killed before its report is
    rebuilt from its last checkpoint)."""
    from matloop.app.campaign import render_run

    try:
        path = render_run(run_dir, fmt=fmt)
    except MatloopError as exc:
        _fail(exc)
        return
    out.print(f"wrote {path}")


@app.command()
def chat(
    llm: Annotated[str, typer.Option(help="none (offline router) or PROVIDER:MODEL.")] = "none",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    runs_dir: Annotated[Path, typer.Option("--out", help="Where campaigns started from chat write runs.")] = Path("runs"),
) -> None:
    """Talk to the research assistant in the terminal (exit with 'exit' or Ctrl-D)."""
    from langgraph.checkpoint.memory import InMemorySaver

    from matloop.app.chat import chat_model_from_settings, chat_toolbox, run_and_summarise
    from matloop.config import get_settings
    from matloop.graphs.chat import build_chat_graph, user

    try:
        model = chat_model_from_settings(llm, base_url=base_url)
        tools = chat_toolbox(model=model, runs_dir=runs_dir,
                             starter=run_and_summarise(runs_dir, llm=llm, base_url=base_url,
                                                       settings=get_settings()))
    except MatloopError as exc:
        _fail(exc)
        return

    graph = build_chat_graph(tools, model=model).compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "terminal"}}
    console.print("matloop chat — ask about materials; 'exit' to leave.")
    while True:
        try:
            text = typer.prompt("you", prompt_suffix="> ")
        except (EOFError, typer.Abort):
            break
        if text.strip().lower() in ("exit", "quit"):
            break
        with console.status("thinking"):
            result = graph.invoke({"messages": [user(text)]}, thread)
        out.print(f"[bold green]matloop>[/] {result['messages'][-1].content}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    runs_dir: Annotated[Path, typer.Option("--out", help="Folder of run directories to show and write.")] = Path("runs"),
    llm: Annotated[str, typer.Option(help="none (offline) or PROVIDER:MODEL for chat and new campaigns.")] = "none",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    token: Annotated[str | None, typer.Option(envvar="MATLOOP_WEB_TOKEN", help="Secret every API request must carry (required off loopback).")] = None,
) -> None:
    """Start the web research assistant: chat, campaigns, runs and 3D structures."""
    import uvicorn

    from matloop.app.web.app import create_app

    try:
        web = create_app(runs_dir, llm=llm, base_url=base_url, token=token, host=host)
    except MatloopError as exc:
        _fail(exc)
        return
    shown = f"[{host}]" if ":" in host else host
    suffix = "/?token=" + token if token else "/"
    console.print(f"matloop web app on [bold]http://{shown}:{port}{suffix}[/] "
                  f"(runs in {runs_dir}; Ctrl-C to stop)")
    uvicorn.run(web, host=host, port=port, log_level="warning")


def _mount() -> None:
    """Add the knowledge-base, generation and surrogate commands."""
    from matloop.app.generation_cli import register as register_generation
    from matloop.knowledge.cli import register as register_knowledge
    from matloop.surrogates.cli import models_app

    register_knowledge(app)
    register_generation(app)
    app.add_typer(models_app, name="models")


_mount()


def main() -> None:  # pragma: no cover - console entry point
    """Entry point that turns user-facing errors into messages."""
    try:
        app()
    except MatloopError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()

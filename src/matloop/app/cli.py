"""The ``matloop`` command line.

Every command follows one contract (see :mod:`matloop.app.cli_support`): results on stdout
(``--json`` for machine-readable output), messages and progress on stderr, exit code 0 done,
1 a result to look at, 2 user error (one line plus what to do), 3 internal error (traceback
in a crash log), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from matloop.app.cli_support import (
    EXIT_ATTENTION,
    EXIT_CODES_HELP,
    MatloopGroup,
    ReportFormat,
    check_finite_positive,
    handle_failure,
    interactive,
    out,
    print_json,
)
from matloop.console import console
from matloop.errors import MatloopError

app = typer.Typer(cls=MatloopGroup, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, epilog=EXIT_CODES_HELP,
                  help="matloop: agentic materials discovery, offline or with any LLM.")


def _version(value: bool) -> None:
    if value:
        from matloop import __version__

        typer.echo(f"matloop {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail: -v info messages and third-party warnings, -vv debug.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors (no progress, no notes).")] = False,
) -> None:
    """matloop: agentic materials discovery, offline or with any LLM."""
    from matloop.logs import configure

    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose exclude each other")
    configure(-1 if quiet else verbose)
    console.quiet = quiet


# -- campaign ----------------------------------------------------------------------------------

class EventPrinter:
    """The live display of a campaign: one line per node, tool and LLM call, and progress of
    long tool calls (bars on a terminal, a line every fifth of the way otherwise)."""

    def __init__(self) -> None:
        self.progress: Any = None
        self.tasks: dict[tuple[str, str], Any] = {}
        self.shown: dict[tuple[str, str], int] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        """Show one event."""
        kind = event.get("type")
        if kind == "progress":
            self._progress(event)
            return
        if kind in ("node_start", "tool_call", "node_error", "campaign_end"):
            self.close()
        if kind == "node_start":
            console.print(f"[bold cyan]▶ {event['node']}[/] (iteration "
                          f"{event.get('iteration', 0)})")
        elif kind == "tool_call":
            colour = "green" if event.get("status") in ("ok", "partial") else "red"
            console.print(f"   [{colour}]{event.get('tool')}[/] "
                          f"{escape(str(event.get('summary', '')))} "
                          f"[dim]({event.get('duration_s', 0):.1f} s)[/]")
        elif kind == "llm_call" and event.get("ok") is False:
            console.print(f"   [red]{event.get('role')} {event.get('model')} failed:[/] "
                          f"{escape(str(event.get('error')))}")
        elif kind == "llm_call":
            how = f", {event['mechanism']}" if event.get("mechanism") else ""
            console.print(f"   [magenta]{event.get('role')}[/] {event.get('model')} "
                          f"{event.get('input_tokens', 0)}+{event.get('output_tokens', 0)} "
                          f"tokens [dim]({event.get('latency_s', 0):.1f} s{how})[/]")
        elif kind == "node_error":
            console.print(f"   [red]{event.get('node')} failed:[/] "
                          f"{escape(str(event.get('error')))}")
        elif kind == "query_problem":
            console.print(f"   [yellow]assumed:[/] {escape(str(event.get('assumption')))} "
                          f"({escape(str(event.get('message')))})")

    def _progress(self, event: dict[str, Any]) -> None:
        key = (str(event.get("tool", "")), str(event.get("stage", "")))
        done, total = int(event.get("done", 0)), max(int(event.get("total", 0)), 1)
        if console.is_terminal and not console.quiet:
            from matloop.console import progress_bars

            if self.progress is None:
                self.progress = progress_bars()
                self.progress.start()
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(f"   {key[0]}: {key[1]}", total=total)
            self.progress.update(self.tasks[key], completed=done, total=total)
            return
        step = max(1, total // 5)
        if done in (1, total) or done - self.shown.get(key, 0) >= step:
            self.shown[key] = done
            console.print(f"   [dim]{key[0]}: {key[1]} {done}/{total}[/]")

    def close(self) -> None:
        """End the progress bars of the last tool call."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        self.tasks.clear()
        self.shown.clear()


def _ask_approval(payload: dict) -> dict:
    plan = payload.get("plan", {})
    table = Table(title="proposed plan")
    for col in ("step", "tool", "purpose", "inputs"):
        table.add_column(col)
    for step in plan.get("steps", []):
        table.add_row(step["id"], step["tool"], escape(step["purpose"]),
                      escape(json.dumps(step["inputs"])[:80]))
    console.print(table)
    if typer.confirm("Approve this plan?", default=True):
        return {"approved": True}
    feedback = typer.prompt("What should change? (empty to stop the campaign)", default="")
    return {"approved": False, "feedback": feedback}


def _settle_problems(query: str, yes: bool, *, max_atoms: int = 20) -> tuple[str, bool]:
    """The question to run and whether its assumptions were accepted: asks on a terminal,
    goes on with ``--yes``, fails (exit 2, with the question) otherwise."""
    from matloop.agents.query_parser import query_problems
    from matloop.agents.scientist import system_problems
    from matloop.app.inputs import QueryProblemsError, check_query
    from matloop.runtime import scrub_text

    problems = query_problems(query) or system_problems(query, max_atoms=max_atoms)
    while problems:
        for p in problems:
            console.print(f"[yellow]problem:[/] {escape(p.message)}", soft_wrap=True)
        if yes:
            for p in problems:
                console.print(f"[yellow]going on with:[/] {escape(p.assumption)} (written at "
                              "the top of the report)", soft_wrap=True)
            return query, True
        if not interactive():
            raise QueryProblemsError(problems)
        for p in problems:
            console.print(f"[bold]{escape(p.question)}[/]", soft_wrap=True)
        if typer.confirm("Go on with these assumptions? (they are written at the top of the "
                         "report)", default=False):
            return query, True
        new = typer.prompt("Rephrase the question (empty to stop)", default="",
                           show_default=False)
        if not new.strip():
            raise MatloopError("stopped: the question was not changed",
                               hint="ask again with a question matloop can read")
        query = scrub_text(check_query(new))
        problems = query_problems(query) or system_problems(query, max_atoms=max_atoms)
    return query, False


def needs_attention(report: Any) -> bool:
    """Whether a finished campaign's outcome needs a look (exit code 1): it failed, made no
    progress, or has no usable candidate. Spending the whole budget is a normal end (the
    demo does) and exits 0 when something was evaluated."""
    status = str(report.status)
    return (status.startswith(("failed", "no_progress"))
            or not any(c.status == "ok" for c in report.candidates))


@app.command()
def campaign(
    query: Annotated[str | None, typer.Argument(help="The materials question.")] = None,
    llm: Annotated[str, typer.Option(help="none (offline policies) or PROVIDER:MODEL for every role.")] = "none",
    role_model: Annotated[list[str] | None, typer.Option("--role-model", help="ROLE=PROVIDER:MODEL (scientist, planner, critic, assistant, reporter).")] = None,
    base_url: Annotated[str | None, typer.Option(help="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, LM Studio).")] = None,
    max_iterations: Annotated[int, typer.Option(min=1, max=1000, help="Ideation-to-expansion loops (1-1000).")] = 3,
    max_evaluations: Annotated[int, typer.Option(min=1, help="Candidate MLIP relaxations (at least 1).")] = 60,
    max_llm_calls: Annotated[int, typer.Option(min=1, help="LLM calls over all roles (at least 1).")] = 200,
    max_tokens: Annotated[int, typer.Option(min=1, help="Input + output tokens (at least 1).")] = 2_000_000,
    budget_usd: Annotated[float, typer.Option(callback=check_finite_positive, help="Spend limit, USD (price table; positive).")] = 5.0,
    max_wall_time: Annotated[float, typer.Option(callback=check_finite_positive, help="Wall-time limit, seconds (positive).")] = 3600.0,
    max_atoms: Annotated[int, typer.Option(min=1, max=200, help="Largest generated cell, atoms (1-200).")] = 20,
    mlip: Annotated[str | None, typer.Option(help="MLIP backend (default: the mlip setting).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every stochastic step (0 or more).")] = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder of run directories.")] = Path("runs"),
    resume: Annotated[str | None, typer.Option(help="Continue the campaign with this thread id.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Batch run: approve plans and go on with the stated assumptions when the question cannot be read exactly as asked.")] = False,
    campaign_id: Annotated[str | None, typer.Option(help="Thread id for a new campaign (letters, digits, '.', '-', '_').")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    llm_max_tokens: Annotated[list[str] | None, typer.Option("--llm-max-tokens", help="ROLE=N: output tokens per LLM call of a role (scientist, planner, critic, assistant, reporter, generator); defaults 1500/1500/1000/512/1500/1024.")] = None,
    llm_timeout: Annotated[float | None, typer.Option("--llm-timeout", callback=check_finite_positive, help="Time limit of one LLM request, seconds (default 300).")] = None,
    fallback: Annotated[str, typer.Option("--fallback", help="none: a role whose model fails ends the campaign with a partial report (exit code 1); offline: its offline policy takes over for the rest of the run and the report says so.")] = "none",
) -> None:
    """Run (or resume) a discovery campaign and write its report.

    Exit code 1 when the campaign failed, ran out of budget, made no progress or found no
    usable candidate.
    """
    from matloop.app.campaign import resume_campaign, start_campaign
    from matloop.app.inputs import check_campaign_id, check_query
    from matloop.reports import write_report_files
    from matloop.runtime import Budget, scrub_text

    if resume and query:
        raise MatloopError("give a question or --resume, not both",
                           hint="--resume continues the campaign with its own question")
    if not yes and not interactive():
        raise MatloopError("plans need approval, but there is no terminal to ask",
                           hint="pass --yes to approve plans automatically (batch runs)")
    approve = None if yes else _ask_approval
    if resume:
        check_campaign_id(resume)
        run = resume_campaign(resume, out_dir=out_dir, approve=approve, base_url=base_url)
    else:
        if not query:
            raise MatloopError("no query given", hint='matloop campaign "stable Ba-Ti-O oxides"')
        text = check_query(query)
        clean = scrub_text(text)
        if clean != text:
            console.print("[yellow]warning:[/] the question held something that looks like a "
                          "credential; it was replaced by [redacted] before the campaign "
                          "started (pass keys through the environment, never in a question)",
                          soft_wrap=True)
        if campaign_id is not None:
            check_campaign_id(campaign_id)
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
                               hint="--fallback offline hands a failing role to its offline "
                                    "policy")
        clean, accepted = _settle_problems(clean, yes, max_atoms=max_atoms)
        budget = Budget(max_iterations=max_iterations, max_evaluations=max_evaluations,
                        max_llm_calls=max_llm_calls, max_tokens=max_tokens,
                        max_cost_usd=budget_usd, max_wall_time_s=max_wall_time)
        run = start_campaign(clean, out_dir=out_dir, llm=llm, role_models=roles, budget=budget,
                             mlip=mlip, seed=seed, require_approval=not yes,
                             base_url=base_url, max_atoms=max_atoms, campaign_id=campaign_id,
                             approve=approve, accept_assumptions=accepted,
                             llm_max_tokens=limits, llm_timeout_s=llm_timeout,
                             fallback=fallback)
    console.print(f"campaign [bold]{run.config.campaign_id}[/] in {escape(str(run.run_dir))} "
                  f"(resume with --resume {run.config.campaign_id} --out "
                  f"{escape(str(out_dir))})")
    printer = EventPrinter()
    try:
        report = run.run(resume=bool(resume), on_event=printer)
    finally:
        printer.close()
    console.print("   [dim]writing the report (figures, material cards, DFT inputs)[/]")
    with console.status("writing the report"):
        report, paths = write_report_files(report, run.run_dir)
    if as_json:
        print_json({**report.model_dump(mode="json"),
                    "files": [str(p) for p in paths]})
    else:
        _print_report(report)
        console.print("report: " + ", ".join(escape(str(p)) for p in paths))
    if needs_attention(report):
        raise typer.Exit(code=EXIT_ATTENTION)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _print_report(report: Any) -> None:
    for q in (report.objective.problems if report.objective else []):
        out.print(f"[bold yellow]not answered exactly as asked:[/] {escape(q.message)}; "
                  f"assumed: {escape(q.assumption)}", soft_wrap=True)
    out.print(f"[bold]{escape(report.status)}[/] — {escape(report.summary)}")
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
    fmt: Annotated[ReportFormat, typer.Option("--format", help="The file whose path is printed (html, md and json are all written).")] = ReportFormat.html,
    as_json: Annotated[bool, typer.Option("--json", help="Print the files written and the campaign's status as JSON.")] = False,
) -> None:
    """Re-render the report of a finished or partial run (a run killed before its report is
    rebuilt from its last checkpoint)."""
    from matloop.app.campaign import render_run

    path = render_run(run_dir, fmt=fmt.value)
    if as_json:
        data = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        print_json({"run_dir": str(run_dir), "status": data.get("status"),
                    "candidates": len(data.get("candidates", [])),
                    "files": {f: str(run_dir / f"report.{f}") for f in ("json", "md", "html")},
                    "path": str(path)})
        return
    out.print(f"wrote {escape(str(path))}")


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

    model = chat_model_from_settings(llm, base_url=base_url)
    tools = chat_toolbox(model=model, runs_dir=runs_dir,
                         starter=run_and_summarise(runs_dir, llm=llm, base_url=base_url,
                                                   settings=get_settings()))
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
        out.print(f"[bold green]matloop>[/] {escape(str(result['messages'][-1].content))}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8765,
    runs_dir: Annotated[Path, typer.Option("--out", help="Folder of run directories to show and write.")] = Path("runs"),
    llm: Annotated[str, typer.Option(help="none (offline) or PROVIDER:MODEL for chat and new campaigns.")] = "none",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    token: Annotated[str | None, typer.Option(help="Secret every API request must carry (required off loopback; default: the web_token setting, MATLOOP_WEB_TOKEN).")] = None,
) -> None:
    """Start the web research assistant: chat, campaigns, runs and 3D structures."""
    import uvicorn

    from matloop.app.web.app import create_app
    from matloop.config import get_settings

    if token is None and get_settings().web_token is not None:
        token = get_settings().web_token.get_secret_value() or None  # type: ignore[union-attr]
    web = create_app(runs_dir, llm=llm, base_url=base_url, token=token, host=host)
    shown = f"[{host}]" if ":" in host else host
    suffix = "/?token=" + token if token else "/"
    console.print(f"matloop web app on [bold]http://{shown}:{port}{suffix}[/] "
                  f"(runs in {escape(str(runs_dir))}; Ctrl-C to stop)")
    uvicorn.run(web, host=host, port=port, log_level="warning")


def _mount() -> None:
    """Add the materials, configuration, knowledge-base, generation and surrogate commands."""
    from matloop.app.config_cli import config_app
    from matloop.app.generation_cli import register as register_generation
    from matloop.app.materials_cli import register as register_materials
    from matloop.knowledge.cli import register as register_knowledge
    from matloop.surrogates.cli import models_app

    register_materials(app)
    register_knowledge(app)
    register_generation(app)
    app.add_typer(models_app, name="models")
    app.add_typer(config_app, name="config")


_mount()


def main() -> None:  # pragma: no cover - console entry point
    """Entry point: runs the app; anything that escapes it still follows the exit-code
    contract."""
    try:
        app()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - last resort: failures during start-up
        sys.exit(handle_failure(exc))


if __name__ == "__main__":  # pragma: no cover
    main()

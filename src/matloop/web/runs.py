"""Run directories as the web app sees them: safe lookup, listing and live summaries.

Everything here reads what a campaign writes (``config.json``, ``events.jsonl``,
``checkpoints.sqlite``, ``report.json``), so a run started from the command line, from the
page or by an earlier server looks the same. No path from a request leaves the runs folder.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from matloop.errors import MatloopError

#: Thread ids (= run directory names) the web app accepts.
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
_RUN_ID = re.compile(RUN_ID_PATTERN)


class ApiError(MatloopError):
    """A request the app cannot serve; ``status`` is the HTTP status code."""

    def __init__(self, status: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class RunStore:
    """The folder of run directories (one per campaign thread id)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def check_id(self, run_id: str) -> str:
        """``run_id`` if it is a valid thread id, else a 422 naming the rule."""
        if not _RUN_ID.match(run_id) or ".." in run_id:
            raise ApiError(422, f"invalid run id {run_id!r}",
                           hint="run ids are letters, digits, '.', '_' and '-' (at most 100), "
                                "starting with a letter or digit")
        return run_id

    def path(self, run_id: str) -> Path:
        """Directory of a run, which may not exist yet."""
        return self.root / self.check_id(run_id)

    def run_dir(self, run_id: str) -> Path:
        """Directory of an existing run, else a 404 that says how to list runs."""
        path = self.path(run_id)
        if not (path / "config.json").is_file():
            raise ApiError(404, f"no run {run_id!r} in {self.root}",
                           hint="list the runs with GET /api/runs (the Runs tab of the page)")
        return path

    def file(self, run_id: str, relative: str) -> Path:
        """A file inside a run directory; anything outside it, or missing, is refused."""
        base = self.run_dir(run_id).resolve()
        target = (base / relative).resolve()
        if not target.is_relative_to(base):
            raise ApiError(403, f"{relative!r} is outside run {run_id!r}",
                           hint="ask for paths relative to the run directory, e.g. "
                                "structures/000_NaCl.cif")
        if not target.is_file():
            raise ApiError(404, f"run {run_id!r} has no file {relative!r}",
                           hint=f"GET /api/runs/{run_id} lists its candidates and reports")
        return target

    def ids(self) -> list[str]:
        """Thread ids of every run, newest first."""
        runs = [p for p in self.root.iterdir() if (p / "config.json").is_file()
                and _RUN_ID.match(p.name)]
        return [p.name for p in sorted(runs, key=lambda p: (p / "config.json").stat().st_mtime,
                                       reverse=True)]


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json."""
    return json.loads((run_dir / "config.json").read_text())


def read_report(run_dir: Path) -> dict[str, Any] | None:
    """The run's report.json, if it has one."""
    path = run_dir / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def checkpoint_values(run_dir: Path, thread_id: str) -> dict[str, Any]:
    """The latest checkpointed campaign state, read straight from the SQLite checkpointer.

    Reading needs no models or tools, so it works for live, interrupted and old runs alike.
    A database busy with a write answers next time; until then the state reads as empty.
    """
    path = run_dir / "checkpoints.sqlite"
    if not path.is_file():
        return {}
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, timeout=2.0, check_same_thread=False)
    try:
        found = SqliteSaver(conn).get_tuple({"configurable": {"thread_id": thread_id}})
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()
    return dict(found.checkpoint.get("channel_values", {})) if found else {}


def last_phase(run_dir: Path) -> tuple[str | None, int]:
    """The graph node that started last and its iteration, from events.jsonl."""
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return None, 0
    for line in reversed(path.read_text().splitlines()):
        if '"node_start"' in line:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            return event.get("node"), int(event.get("iteration", 0))
    return None, 0


def _relative(run_dir: Path, path: str | None) -> str | None:
    """A candidate's CIF as a path inside the run directory (None when it is elsewhere)."""
    if not path:
        return None
    base = run_dir.resolve()
    target = Path(path)
    if not target.is_absolute():
        target = Path.cwd() / target
    try:
        rel = target.resolve().relative_to(base)
    except ValueError:
        parts = Path(path).parts  # the run directory was moved: find it by its name
        if run_dir.name not in parts:
            return None
        rel = Path(*parts[len(parts) - parts[::-1].index(run_dir.name):])
    return str(rel) if (base / rel).is_file() else None


def candidate_rows(run_dir: Path, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates for the page: numbers with units in their names, and their CIF files."""
    rows = []
    for c in candidates:
        cif = _relative(run_dir, c.get("cif_path"))
        generated = _relative(run_dir, (c.get("provenance") or {}).get("generated_cif"))
        rows.append({
            "id": c.get("id"), "formula": c.get("formula"), "spacegroup": c.get("spacegroup"),
            "method": c.get("method"), "status": c.get("status"),
            "iteration": c.get("iteration"),
            "e_above_hull_ev_per_atom": c.get("e_above_hull_ev_per_atom"),
            "formation_energy_ev_per_atom": c.get("formation_energy_ev_per_atom"),
            "is_stable": c.get("is_stable"), "meets_objective": c.get("meets_objective"),
            "objective_score": c.get("objective_score"), "mlip": c.get("mlip"),
            "cif": cif or generated, "cif_kind": "relaxed" if cif else
            ("generated" if generated else None),
        })
    return rows


def summarize(run_dir: Path, job: dict[str, Any] | None) -> dict[str, Any]:
    """Everything the page shows about one run.

    ``state`` is one of running, awaiting_approval, stopping (a live job), finished (has a
    report), stopped, failed, interrupted (a checkpoint to resume) or not_started.
    """
    config = read_config(run_dir)
    report = read_report(run_dir)
    values = checkpoint_values(run_dir, config["campaign_id"])
    phase, iteration = last_phase(run_dir)
    if job and job["state"] in ("running", "awaiting_approval", "stopping", "starting"):
        state = job["state"]
    elif report is not None:
        state = "finished"
    elif job and job["state"] in ("stopped", "failed"):
        state = job["state"]
    elif (run_dir / "checkpoints.sqlite").is_file():
        state = "interrupted"
    else:
        state = "not_started"
    candidates = (report or {}).get("candidates") or values.get("candidates") or []
    usage = (report or {}).get("usage") or values.get("usage") or {}
    files = {name: (run_dir / name).is_file() for name in ("report.html", "report.md",
                                                           "report.json")}
    return {
        "id": config["campaign_id"], "query": config["query"], "state": state,
        "status": (report or {}).get("status") or values.get("status") or "",
        "phase": phase, "iteration": values.get("iteration", iteration),
        "config": config, "budget": config.get("budget", {}), "usage": usage,
        "candidates": candidate_rows(run_dir, candidates),
        "plan": values.get("plan"), "pending_approval": (job or {}).get("pending"),
        "error": (job or {}).get("error"), "files": files,
    }

"""Run directories as the web app sees them: safe lookup, listing and live summaries.

Everything here reads what a campaign writes (``config.json``, ``events.jsonl``,
``checkpoints.sqlite``, ``report.json``), so a run started from the command line, from the
page or by an earlier server looks the same. No path from a request leaves the runs folder.
"""

from __future__ import annotations

import json
import os
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


class RunDamaged(ApiError):
    """A run directory whose files cannot be read (409); ``reason`` says which and why."""

    def __init__(self, run_dir: Path, reason: str) -> None:
        super().__init__(409, f"run {run_dir.name!r} is damaged: {reason}",
                         hint=f"repair or remove {run_dir}; other runs are not affected")
        self.reason = reason


#: Largest config.json read, bytes (a campaign writes about 1 KB).
MAX_CONFIG_BYTES = 1024 * 1024
#: Largest report.json read, bytes (hundreds of candidates and evidence passages fit).
MAX_REPORT_BYTES = 64 * 1024 * 1024
_SQLITE_HEADER = b"SQLite format 3\x00"


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
        if not os.access(target, os.R_OK):
            raise RunDamaged(base, f"{relative} cannot be read (permissions)")
        return target

    def ids(self) -> list[str]:
        """Thread ids of every run, newest first (by config.json's modification time)."""
        runs = []
        for p in self.root.iterdir():
            if not _RUN_ID.match(p.name):
                continue
            try:
                if (p / "config.json").is_file():
                    runs.append((p.name, (p / "config.json").stat().st_mtime))
            except OSError:  # removed or unreadable between listing and stat
                continue
        return [name for name, _ in sorted(runs, key=lambda r: r[1], reverse=True)]


def _run_file(run_dir: Path, name: str) -> Path:
    """``run_dir / name``, refused when it is a link that leaves the run directory."""
    path = run_dir / name
    if not path.resolve().is_relative_to(run_dir.resolve()):
        raise RunDamaged(run_dir, f"{name} points outside the run directory")
    return path


def _read_json(run_dir: Path, name: str, limit: int) -> dict[str, Any]:
    """A JSON object file of a run; anything else is a :class:`RunDamaged` naming the file."""
    path = _run_file(run_dir, name)
    try:
        size = path.stat().st_size
        if size > limit:
            raise RunDamaged(run_dir, f"{name} is {size / 1024**2:.1f} MiB, over the "
                                      f"{limit / 1024**2:.0f} MiB a run file may have")
        raw = path.read_bytes()
    except OSError as exc:
        raise RunDamaged(run_dir, f"{name} cannot be read ({type(exc).__name__})") from exc
    if not raw.strip():
        raise RunDamaged(run_dir, f"{name} is empty")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RunDamaged(run_dir, f"{name} is not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise RunDamaged(run_dir, f"{name} is not valid JSON ({exc.msg} at line {exc.lineno} "
                                  f"column {exc.colno})") from exc
    except RecursionError as exc:
        raise RunDamaged(run_dir, f"{name} is nested too deeply") from exc
    if not isinstance(data, dict):
        raise RunDamaged(run_dir, f"{name} holds a JSON {type(data).__name__}, not an object")
    return data


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json.

    Raises:
        RunDamaged: Empty, not JSON, not an object, or without campaign_id and query.
    """
    config = _read_json(run_dir, "config.json", MAX_CONFIG_BYTES)
    missing = [k for k in ("campaign_id", "query") if not isinstance(config.get(k), str)]
    if missing:
        raise RunDamaged(run_dir, f"config.json has no {' or '.join(missing)}")
    return config


def read_report(run_dir: Path) -> dict[str, Any] | None:
    """The run's report.json, if it has one.

    Raises:
        RunDamaged: The file exists but is not a readable JSON object.
    """
    path = run_dir / "report.json"
    return _read_json(run_dir, "report.json", MAX_REPORT_BYTES) if path.is_file() else None


def checkpoint_values(run_dir: Path, thread_id: str) -> dict[str, Any]:
    """The latest checkpointed campaign state, read straight from the SQLite checkpointer.

    Reading needs no models or tools, so it works for live, interrupted and old runs alike.
    A database busy with a write answers next time; until then the state reads as empty, and
    so does an empty file (a checkpointer that has not written yet). Nothing is written: a
    file that is not a checkpoint database is reported, never turned into one.

    Raises:
        RunDamaged: The file is not an SQLite database, has no checkpoint table, is corrupt
            or holds a checkpoint that cannot be decoded.
    """
    path = _run_file(run_dir, "checkpoints.sqlite")
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise RunDamaged(run_dir, f"checkpoints.sqlite cannot be read "
                                  f"({type(exc).__name__})") from exc
    if not header:
        return {}
    if header != _SQLITE_HEADER:
        raise RunDamaged(run_dir, "checkpoints.sqlite is not an SQLite database")
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, timeout=2.0, check_same_thread=False)
    try:
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "checkpoints" not in tables:
            raise RunDamaged(run_dir, "checkpoints.sqlite holds no checkpoint table")
        from matloop.graphs.state import checkpoint_serializer

        found = SqliteSaver(conn, serde=checkpoint_serializer()).get_tuple(
            {"configurable": {"thread_id": thread_id}})
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return {}
        raise RunDamaged(run_dir, f"checkpoints.sqlite cannot be read ({exc})") from exc
    except sqlite3.DatabaseError as exc:
        raise RunDamaged(run_dir, f"checkpoints.sqlite is corrupt ({exc})") from exc
    except RunDamaged:
        raise
    except Exception as exc:  # a checkpoint blob that does not decode (several error types)
        raise RunDamaged(run_dir, f"the last checkpoint cannot be decoded "
                                  f"({type(exc).__name__})") from exc
    finally:
        conn.close()
    values = found.checkpoint.get("channel_values", {}) if found else {}
    return {k: _plain(v) for k, v in values.items()} if isinstance(values, dict) else {}


def _plain(value: Any) -> Any:
    """Checkpointed values as JSON-ready data (state holds pydantic models)."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def last_phase(run_dir: Path) -> tuple[str | None, int]:
    """The graph node that started last and its iteration, from events.jsonl.

    Undecodable bytes are replaced and lines that are not JSON skipped, so a damaged line
    never hides the rest of the log.
    """
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return None, 0
    node, iteration = None, 0
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if '"node_start"' not in line:
                    continue
                try:
                    event = json.loads(line)
                    found, it = event.get("node"), int(event.get("iteration", 0))
                except (ValueError, TypeError, AttributeError, RecursionError):
                    continue
                node, iteration = (str(found) if found is not None else None), it
    except OSError:
        return None, 0
    return node, iteration


def _relative(run_dir: Path, path: str | None) -> str | None:
    """A candidate's CIF as a path inside the run directory (None when it is elsewhere)."""
    if not path or not isinstance(path, str):
        return None
    base = run_dir.resolve()
    target = Path(path)
    if not target.is_absolute():
        target = Path.cwd() / target
    try:
        rel = target.resolve().relative_to(base)
    except (ValueError, OSError, RuntimeError):
        parts = Path(path).parts  # the run directory was moved: find it by its name
        if run_dir.name not in parts:
            return None
        rel = Path(*parts[len(parts) - parts[::-1].index(run_dir.name):])
    try:
        inside = (base / rel).resolve().is_relative_to(base) and (base / rel).is_file()
    except (OSError, RuntimeError):
        return None
    return str(rel) if inside else None


def candidate_rows(run_dir: Path, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates for the page: numbers with units in their names, and their CIF files."""
    rows = []
    for c in candidates if isinstance(candidates, list) else []:
        if not isinstance(c, dict):
            continue
        cif = _relative(run_dir, c.get("cif_path"))
        provenance = c.get("provenance") if isinstance(c.get("provenance"), dict) else {}
        generated = _relative(run_dir, provenance.get("generated_cif"))
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


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def summarize(run_dir: Path, job: dict[str, Any] | None) -> dict[str, Any]:
    """Everything the page shows about one run.

    ``state`` is one of running, awaiting_approval, stopping (a live job), damaged (a file
    of the run cannot be read; ``damage`` says which and why), finished (has a report),
    stopped, failed, interrupted (a checkpoint to resume) or not_started. A damaged run shows
    what could be read; it never stops other runs from being listed.
    """
    damage: list[str] = []

    def attempt(read: Any, default: Any) -> Any:
        try:
            return read()
        except RunDamaged as exc:
            damage.append(exc.reason)
            return default

    config = attempt(lambda: read_config(run_dir), {})
    report = attempt(lambda: read_report(run_dir), None)
    thread_id = config.get("campaign_id") or run_dir.name
    values = attempt(lambda: checkpoint_values(run_dir, thread_id), {})
    phase, iteration = last_phase(run_dir)
    if job and job["state"] in ("running", "awaiting_approval", "stopping", "starting"):
        state = job["state"]
    elif damage:
        state = "damaged"
    elif report is not None:
        state = "finished"
    elif job and job["state"] in ("stopped", "failed"):
        state = job["state"]
    elif (run_dir / "checkpoints.sqlite").is_file():
        state = "interrupted"
    else:
        state = "not_started"
    report = _dict(report)
    candidates = report.get("candidates") or values.get("candidates") or []
    usage = _dict(report.get("usage") or values.get("usage"))
    files = {name: (run_dir / name).is_file() for name in ("report.html", "report.md",
                                                           "report.json")}
    return {
        "id": thread_id, "query": str(config.get("query", "")), "state": state,
        "status": str(report.get("status") or values.get("status") or ""),
        "phase": phase, "iteration": values.get("iteration", iteration),
        "config": config, "budget": _dict(config.get("budget")), "usage": usage,
        "candidates": candidate_rows(run_dir, candidates),
        "plan": values.get("plan"), "pending_approval": (job or {}).get("pending"),
        "error": (job or {}).get("error"), "files": files, "damage": damage or None,
    }

"""The ``matloop`` command line in a subprocess, as a user runs it, and what a run leaves behind
(events.jsonl, report.json), for the tier's campaign tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODEL = "openai:gemma-3-270m"
QUERY = "Find stable compounds in the Na-Cl system."
RUN_ID = "llm-run"


def cli_env(data_dir: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout's code, offline hubs, one thread."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MATLOOP_DATA_DIR": str(data_dir),
           "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("OPENAI_API_KEY", None)
    return env


def cli_command(args: list[str]) -> list[str]:
    """``python -m matloop.app.cli ARGS``."""
    return [sys.executable, "-m", "matloop.app.cli", *args]


def cli(args: list[str], *, data_dir: Path, timeout_s: float = 900.0,
        ) -> subprocess.CompletedProcess[str]:
    """Run ``matloop ARGS`` to its end."""
    return subprocess.run(cli_command(args), cwd=ROOT, env=cli_env(data_dir),
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def campaign_args(base_url: str, out: Path, *extra: str, llm: str = MODEL,
                  evaluations: int = 2) -> list[str]:
    """``campaign QUERY`` on the server, one iteration, ``evaluations`` MLIP relaxations."""
    return ["campaign", QUERY, "--llm", llm, "--base-url", base_url, "--yes",
            "--campaign-id", RUN_ID, "--out", str(out), "--max-iterations", "1",
            "--max-evaluations", str(evaluations), "--llm-timeout", "240", *extra]


def campaign(tmp_path: Path, base_url: str, *extra: str, llm: str = MODEL,
             evaluations: int = 2) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run a campaign to its end; the process and its run directory."""
    out = tmp_path / "runs"
    proc = cli(campaign_args(base_url, out, *extra, llm=llm, evaluations=evaluations),
               data_dir=tmp_path / "data")
    return proc, out / RUN_ID


def events(run_dir: Path) -> list[dict[str, Any]]:
    """The run's event log."""
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_event(run_dir: Path, proc: subprocess.Popen[str], *, kind: str,
                   timeout_s: float = 600.0) -> dict[str, Any]:
    """The first event of ``kind`` in a running campaign's log (polled every 0.1 s).

    Raises:
        AssertionError: The process ended, or the time ran out, before the event.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [e for e in events(run_dir) if e["type"] == kind]
        if found:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"the campaign ended (exit {proc.returncode}) before a {kind} "
                                 f"event")
        time.sleep(0.1)
    raise AssertionError(f"no {kind} event within {timeout_s:.0f} s")


def no_traceback(stdout: str, stderr: str) -> None:
    """Neither stream holds a Python traceback."""
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr[-3000:]


def figures(log: list[dict[str, Any]]) -> dict[str, Any]:
    """Calls, tokens, latency and mechanisms per role, and the fallbacks, from an event log."""
    roles: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "calls": 0, "ok": 0, "failed": 0, "input_tokens": 0, "output_tokens": 0,
        "latency_s": 0.0, "mechanisms": defaultdict(int), "failures": defaultdict(int)})
    for e in log:
        if e["type"] != "llm_call":
            continue
        r = roles[e["role"]]
        r["calls"] += 1
        r["ok" if e["ok"] else "failed"] += 1
        r["input_tokens"] += e["input_tokens"]
        r["output_tokens"] += e["output_tokens"]
        r["latency_s"] += e["latency_s"]
        r["mechanisms"][e.get("mechanism") or "plain"] += 1
        if not e["ok"]:
            r["failures"][e.get("failure") or "error"] += 1
    for r in roles.values():
        r["latency_s_per_call"] = round(r["latency_s"] / r["calls"], 2)
        r["output_tokens_per_s"] = round(r["output_tokens"] / r["latency_s"], 1) \
            if r["latency_s"] else None
        r["latency_s"] = round(r["latency_s"], 2)
    fallbacks = [{"role": e["role"], "reason": e["reason"]} for e in log
                 if e["type"] == "llm_fallback"]
    return {"roles": json.loads(json.dumps(roles)), "fallbacks": fallbacks}

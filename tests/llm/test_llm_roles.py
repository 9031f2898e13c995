"""Each campaign role alone on the real server (the others offline), and a server killed in the
middle of a campaign that is then resumed once the server is back.

The CLI runs in a subprocess, as a user runs it. Budgets are the smallest that reach every
role (one iteration, one MLIP relaxation) and output limits are small, so each run takes
about a minute here; the figures (wall time, calls, tokens, mechanisms, status) are printed
with ``-s`` and written to ``role_figures.json`` / ``resume_figures.json`` in the test's
temporary folder.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from matloop.graphs.context import ROLES
from tests.llm.runs import (
    MODEL,
    ROOT,
    RUN_ID,
    campaign,
    campaign_args,
    cli,
    cli_command,
    cli_env,
    events,
    figures,
    no_traceback,
    wait_for_event,
)
from tests.llm.server import LlamaServer

pytestmark = pytest.mark.llm

#: Output tokens per call of the role on the server, as small as the tier's time asks: a call
#: costs 8-20 s on this shared machine. At these limits Gemma 3 270M's Objective (about 340
#: tokens: it spends many on whitespace) and Plan are cut (the role fails cleanly, exit code
#: 1, after 3 attempts); its Critique and report narrative fit.
ROLE_MAX_TOKENS = {"scientist": 256, "planner": 128, "critic": 256, "assistant": 128,
                   "reporter": 256}
#: The same for the kill-and-resume campaign; the scientist gets room for an Objective, so
#: the resumed run has answers that validate.
RESUME_MAX_TOKENS = {**ROLE_MAX_TOKENS, "scientist": 400}
#: How each role's answers are asked for on an OpenAI-compatible server.
MECHANISM = {"scientist": "json_schema", "planner": "json_schema", "critic": "json_schema",
             "reporter": "json_schema", "assistant": "tool_call"}
#: LLM roles a role's model serves: the scientist's model also drives the few-shot generator.
SERVED = {"scientist": {"scientist", "generator"}}
FAILED = re.compile(r"^failed: (?P<node>\w+): (?P<role>\w+): ")


def test_every_campaign_role_is_covered() -> None:
    assert set(ROLE_MAX_TOKENS) == set(ROLES) == set(MECHANISM)


@pytest.mark.parametrize("role", ROLES)
def test_one_role_on_the_server_the_others_offline(
        role: str, llama_server: LlamaServer, tmp_path: Path) -> None:
    started = time.monotonic()
    proc, run_dir = campaign(
        tmp_path, llama_server.base_url, "--role-model", f"{role}={MODEL}",
        f"--llm-max-tokens={role}={ROLE_MAX_TOKENS[role]}", llm="none", evaluations=1)
    seconds = time.monotonic() - started
    no_traceback(proc.stdout, proc.stderr)
    report = json.loads((run_dir / "report.json").read_text())
    log = events(run_dir)
    calls = [e for e in log if e["type"] == "llm_call"]
    measured = {"role": role, "wall_s": round(seconds, 1), "exit_code": proc.returncode,
                "status": report["status"], "max_tokens": ROLE_MAX_TOKENS[role],
                **figures(log)}
    (tmp_path / "role_figures.json").write_text(json.dumps(measured, indent=2))
    print(json.dumps(measured))  # pytest -s

    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert (run_dir / "report.md").is_file() and (run_dir / "report.html").is_file()
    # the role was reached, and it is the only one that called a model
    assert calls, f"the {role} never called the model (status {report['status']})"
    assert {e["role"] for e in calls} <= SERVED.get(role, {role}), {e["role"] for e in calls}
    assert all(e["model"] == MODEL for e in calls)
    mine = [e for e in calls if e["role"] == role]
    assert mine and {e.get("mechanism") for e in mine} == {MECHANISM[role]}
    # the server never refused a request (the assistant's cut-off tool calls go back as JSON)
    assert not [e for e in calls if e.get("failure") in ("tool_arguments", "http_error")]
    # the configuration says which role had which model
    config = json.loads((run_dir / "config.json").read_text())
    assert config["llm"] == "none" and config["role_models"] == {role: MODEL}
    # a role that failed ends the campaign (no fallback asked for), named with its reason
    failed = FAILED.match(report["status"])
    if failed:
        assert proc.returncode == 1 and failed["role"] in SERVED.get(role, {role})
        assert failed.group(0) in (run_dir / "report.md").read_text()
    assert not [e for e in log if e["type"] == "llm_fallback"]


def test_a_server_killed_mid_campaign_ends_it_cleanly_and_resume_continues(
        fresh_server: LlamaServer, tmp_path: Path) -> None:
    """Every role on the server; SIGKILL once the first call is logged; the campaign ends with
    a partial report naming the role and why; the server restarts on the same port; ``matloop
    campaign --resume`` runs the failed step again and goes on to a report."""
    out, data = tmp_path / "runs", tmp_path / "data"
    run_dir = out / RUN_ID
    limits = [f"--llm-max-tokens={role}={RESUME_MAX_TOKENS[role]}" for role in ROLES]
    started = time.monotonic()
    proc = subprocess.Popen(cli_command(campaign_args(fresh_server.base_url, out, *limits,
                                                      evaluations=1)),
                            cwd=ROOT, env=cli_env(data), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = wait_for_event(run_dir, proc, kind="llm_call")
        fresh_server.kill()  # SIGKILL, as a crash or the OOM killer would
        killed_at = time.monotonic() - started
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first_run_s = time.monotonic() - started
    no_traceback(stdout, stderr)
    assert proc.returncode == 1, stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    failed = FAILED.match(report["status"])
    assert failed and failed["role"] in ROLES, report["status"]
    assert "could not be reached" in report["status"]
    assert failed.group(0) in (run_dir / "report.md").read_text()
    before = events(run_dir)
    # every call after the kill failed to connect (the first one may have been cut at its
    # output limit and retried: that retry is one of them)
    lost = [e for e in before if e["type"] == "llm_call"][1:]
    assert lost and all(not e["ok"] and e["failure"] == "connection" for e in lost), lost
    assert f"--resume {RUN_ID}" in stdout + stderr  # the terminal says how to continue

    port = fresh_server.port
    fresh_server.restart()
    assert fresh_server.port == port and fresh_server.health() == "ok"
    started = time.monotonic()
    resumed = cli(["campaign", "--resume", RUN_ID, "--out", str(out), "--yes",
                   "--base-url", fresh_server.base_url], data_dir=data)
    resume_s = time.monotonic() - started
    no_traceback(resumed.stdout, resumed.stderr)
    after = events(run_dir)[len(before):]
    measured: dict[str, Any] = {
        "first_call": {k: first.get(k) for k in ("role", "ok", "output_tokens", "latency_s")},
        "killed_after_s": round(killed_at, 1), "first_run_s": round(first_run_s, 1),
        "status_after_kill": report["status"], "resume_s": round(resume_s, 1),
        "resume_exit_code": resumed.returncode,
        "status_after_resume": json.loads((run_dir / "report.json").read_text())["status"],
        "resumed": figures(after)}
    (tmp_path / "resume_figures.json").write_text(json.dumps(measured, indent=2))
    print(json.dumps(measured))  # pytest -s

    assert resumed.returncode in (0, 1), resumed.stderr[-3000:]
    assert after[0]["type"] == "campaign_resume"
    # the failed step runs again, from the checkpoint before it
    retry = next(e for e in after if e["type"] == "campaign_retry")
    assert retry["node"] == failed["node"] and retry["failed"] == report["status"]
    # and the model answers again
    again = [e for e in after if e["type"] == "llm_call"]
    assert any(e["ok"] for e in again), again
    assert after[-1]["type"] == "campaign_end"
    final = json.loads((run_dir / "report.json").read_text())
    assert final["status"] != report["status"]  # not the server failure any more
    assert "could not be reached" not in final["status"]
    assert final["status"][:60] in (run_dir / "report.md").read_text()

"""Campaign threads and chat turns through the web API (real graph, real tools, offline
policies; scripted chat model for the chat). No MLIP relaxation runs here: the plans are
answered before any candidate is evaluated."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from matloop.app.web import create_app
from tests.fakes import scripted, text_turn, tool_turn

QUERY = "stable compounds in the Na-Cl system"


def wait_for(client: TestClient, run_id: str, *states: str, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = client.get(f"/api/runs/{run_id}").json()
        if run["state"] in states:
            return run
        time.sleep(0.1)
    raise AssertionError(f"{run_id} never reached {states}; last: {run['state']} {run['error']}")


def events(runs, run_id: str) -> list[dict]:
    return [json.loads(x) for x in (runs / run_id / "events.jsonl").read_text().splitlines()]


@pytest.fixture
def runs(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def client(runs):
    with TestClient(create_app(runs), base_url="http://127.0.0.1") as client:
        yield client


def test_approval_stop_resume_and_edited_plan(client, runs) -> None:
    body = {"query": QUERY, "thread_id": "t1", "require_approval": True,
            "max_iterations": 1, "max_evaluations": 2}
    started = client.post("/api/campaigns", json=body)
    assert started.status_code == 202 and started.json()["id"] == "t1"
    second = client.post("/api/campaigns", json=body)
    assert second.status_code == 409 and "already running on thread 't1'" in \
        second.json()["error"]
    run = wait_for(client, "t1", "awaiting_approval")
    plan = run["pending_approval"]["plan"]
    assert plan["steps"] and run["phase"] == "approve"
    assert any(s["tool"] == "predict_properties" for s in plan["steps"])

    # Edited plans are checked against the Plan schema and the campaign's tools.
    broken = client.post("/api/campaigns/t1/approval",
                         json={"approved": True, "plan": {"steps": [{"id": "S1"}]}})
    assert broken.status_code == 422 and "Plan schema" in broken.json()["error"]
    assert "reasoning" in broken.json()["error"]
    unknown = dict(plan, steps=[dict(plan["steps"][0], tool="rm_rf")])
    bad_tool = client.post("/api/campaigns/t1/approval", json={"approved": True, "plan": unknown})
    assert bad_tool.status_code == 422 and "rm_rf" in bad_tool.json()["error"]
    rejected_edit = client.post("/api/campaigns/t1/approval",
                                json={"approved": False, "plan": plan})
    assert rejected_edit.status_code == 422

    # Stop while waiting: the checkpoint stays, and resume asks again.
    assert client.post("/api/campaigns/t1/stop").status_code == 200
    run = wait_for(client, "t1", "stopped")
    assert not (runs / "t1" / "report.json").exists()
    assert events(runs, "t1")[-1]["type"] == "campaign_stopped"
    assert client.post("/api/campaigns/t1/resume").status_code == 202
    run = wait_for(client, "t1", "awaiting_approval")
    assert run["pending_approval"]["plan"] == plan

    # The user's plan replaces the planner's: one cheap look-up, no relaxation.
    mine = {"reasoning": "only check what is known", "steps": [
        {"id": "S1", "purpose": "known phases", "tool": "lookup_known_phases",
         "inputs": {"chemsys": "Na-Cl"}}]}
    ok = client.post("/api/campaigns/t1/approval", json={"approved": True, "plan": mine})
    assert ok.status_code == 200
    run = wait_for(client, "t1", "finished")
    log = events(runs, "t1")
    approvals = [e for e in log if e["type"] == "plan_approval"]
    assert approvals[-1]["edited"] is True and approvals[-1]["by"] == "human"
    after = log[log.index(approvals[-1]):]
    assert [e["tool"] for e in after if e["type"] == "tool_call" and e.get("step_id")] == \
        ["lookup_known_phases"]
    assert run["usage"]["mlip_evaluations"] == 0
    assert run["files"]["report.json"] and run["files"]["report.md"]
    assert client.post("/api/campaigns/t1/resume").status_code == 409

    with client.stream("GET", "/api/campaigns/t1/events") as stream:
        text = "".join(stream.iter_text())
    assert "campaign_stopped" in text and "campaign_resume" in text and "event: end" in text


def test_rejected_plan_without_feedback_ends_the_campaign(client, runs) -> None:
    client.post("/api/campaigns", json={"query": QUERY, "thread_id": "t2",
                                        "require_approval": True, "max_iterations": 1})
    wait_for(client, "t2", "awaiting_approval")
    assert client.post("/api/campaigns/t2/approval",
                       json={"approved": False, "feedback": ""}).status_code == 200
    run = wait_for(client, "t2", "finished")
    report = json.loads((runs / "t2" / "report.json").read_text())
    human = [c for c in report["critiques"] if c["author"] == "human"]
    assert human and human[0]["issues"] == ["plan rejected by the user"]
    assert run["usage"]["mlip_evaluations"] == 0


def _sse(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], json.loads(fields.get("data", "{}"))))
    return out


def test_chat_turn_streams_steps_tool_calls_tokens_and_answer(runs) -> None:
    model = scripted([tool_turn("lookup_known_phases", {"chemsys": "Na-Cl"}),
                      text_turn("Na-Cl has NaCl and the elements (doi:10.9999/x).")])
    with TestClient(create_app(runs, chat_model=model), base_url="http://127.0.0.1") as client:
        app = client.app
        response = client.post("/api/chat", json={"message": "phases in Na-Cl?",
                                                  "thread_id": "c1"})
        assert response.status_code == 200
        stream = _sse(response.text)
        kinds = [k for k, _ in stream]
        steps = [d["node"] for k, d in stream if k == "step"]
        assert steps == ["agent", "tools", "agent", "finish"]
        start = next(d for k, d in stream if k == "tool_start")
        end = next(d for k, d in stream if k == "tool_end")
        assert start["name"] == "lookup_known_phases" and start["args"] == {"chemsys": "Na-Cl"}
        assert end["status"] == "ok" and end["summary"].endswith("known phases in Cl-Na")
        tokens = "".join(d["text"] for k, d in stream if k == "token")
        assert tokens == "Na-Cl has NaCl and the elements (doi:10.9999/x)."
        answer = next(d for k, d in stream if k == "answer")
        # the final answer names the tools that answered this turn
        assert answer["text"] == tokens + "\n\nSources: lookup_known_phases (tool calls of " \
            "this turn)." and kinds[-1] == "done"
        assert kinds.index("tool_start") < kinds.index("tool_end") < kinds.index("answer")
        # The conversation is read back from its checkpoint (the page does it on load).
        turns = client.get("/api/chat/c1").json()
        assert [(t["role"], t["text"]) for t in turns] == [("user", "phases in Na-Cl?"),
                                                           ("assistant", answer["text"])]
        assert client.get("/api/chat/never-used").json() == []

        # One turn at a time per conversation.
        app.state.chat.reserve("c2")
        busy = client.post("/api/chat", json={"message": "hello", "thread_id": "c2"})
        assert busy.status_code == 409 and "still answering" in busy.json()["error"]


def test_chat_starts_a_campaign_the_page_can_follow(runs) -> None:
    model = scripted([tool_turn("start_campaign", {"query": QUERY, "max_evaluations": 1}),
                      text_turn("Started it; the Campaigns page follows it.")])
    with TestClient(create_app(runs, chat_model=model), base_url="http://127.0.0.1") as client:
        stream = _sse(client.post("/api/chat", json={"message": "find Na-Cl compounds"}).text)
        end = next(d for k, d in stream if k == "tool_end")
        assert end["name"] == "start_campaign" and end["status"] == "ok"
        run_id = end["summary"].split()[1]
        assert end["summary"] == f"Campaign {run_id} started; follow it live at #run/{run_id}."
        # It runs in the background: the chat turn is over while the campaign goes on.
        assert client.post(f"/api/campaigns/{run_id}/stop").status_code == 200
        run = wait_for(client, run_id, "stopped", "finished")
        assert run["query"] == QUERY and run["budget"]["max_evaluations"] == 1
        assert run["usage"].get("mlip_evaluations", 0) <= 1
        if run["state"] == "stopped":  # resumable, even if it stopped before its first step
            assert client.post(f"/api/campaigns/{run_id}/resume").status_code == 202
            assert client.post(f"/api/campaigns/{run_id}/stop").status_code == 200
            wait_for(client, run_id, "stopped", "finished")

"""The web app's API without campaigns running: run browsing, files, validation, security."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from matloop.app.web import create_app
from matloop.app.web.app import is_loopback
from matloop.errors import MatloopError
from matloop.graphs.context import CampaignConfig
from matloop.schemas import CandidateResult, DiscoveryReport, EvidenceRef
from tests.conftest import DATA


def make_run(runs: Path, run_id: str = "r1", *, outside_cif: Path | None = None) -> Path:
    """A finished run directory as a campaign leaves it: config, report, relaxed CIF."""
    run_dir = runs / run_id
    (run_dir / "structures").mkdir(parents=True)
    cif = run_dir / "structures" / "000_NaCl.cif"
    shutil.copy(DATA / "NaCl_rocksalt.cif", cif)
    (run_dir / "config.json").write_text(
        CampaignConfig(query="stable Na-Cl compounds", campaign_id=run_id).model_dump_json())
    report = DiscoveryReport(
        campaign_id=run_id, status="completed", created_utc="2026-11-22T15:00:00Z",
        query="stable Na-Cl compounds", summary="NaCl is on the hull [ev-0123456789abcdef].",
        candidates=[
            CandidateResult(id="C1", formula="NaCl", chemical_system="Cl-Na", n_atoms=2,
                            method="prototype", status="ok", cif_path=str(cif),
                            e_above_hull_ev_per_atom=0.0, formation_energy_ev_per_atom=-2.07),
            CandidateResult(id="C2", formula="NaCl", chemical_system="Cl-Na", n_atoms=2,
                            method="substitution", status="ok",
                            cif_path=str(outside_cif) if outside_cif else None)],
        evidence=[EvidenceRef(id="ev-0123456789abcdef", doi="10.9999/x", title="t",
                              snippet="s", score=1.0, source="papers")])
    (run_dir / "report.json").write_text(report.model_dump_json())
    (run_dir / "events.jsonl").write_text(
        "\n".join(json.dumps({"type": "node_start", "node": n, "iteration": 0})
                  for n in ("interpret", "report")) + "\n")
    return run_dir


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def client(runs: Path) -> TestClient:
    return TestClient(create_app(runs), base_url="http://127.0.0.1:8765")


def test_runs_are_listed_and_summarised_with_their_files(client, runs, tmp_path) -> None:
    outside = tmp_path / "elsewhere.cif"
    shutil.copy(DATA / "NaCl_rocksalt.cif", outside)
    make_run(runs, outside_cif=outside)
    (runs / ".chat").mkdir()  # chat artifacts are not a run
    listing = client.get("/api/runs").json()
    assert [r["id"] for r in listing] == ["r1"]
    assert listing[0]["state"] == "finished" and listing[0]["candidates"] == 2
    run = client.get("/api/runs/r1").json()
    assert run["state"] == "finished" and run["status"] == "completed"
    assert run["phase"] == "report" and run["files"]["report.json"]
    first, second = run["candidates"]
    assert first["cif"] == "structures/000_NaCl.cif" and first["cif_kind"] == "relaxed"
    assert second["cif"] is None  # a CIF outside the run directory is never offered
    cif = client.get("/api/runs/r1/files/structures/000_NaCl.cif")
    assert cif.status_code == 200 and "_cell_length_a" in cif.text
    assert "content-disposition" not in cif.headers
    download = client.get("/api/runs/r1/files/structures/000_NaCl.cif?download=true")
    assert download.headers["content-disposition"].startswith("attachment")


def test_moved_run_directory_still_finds_its_cifs(client, runs, tmp_path) -> None:
    make_run(tmp_path / "old", "moved")
    shutil.move(tmp_path / "old" / "moved", runs / "moved")
    run = client.get("/api/runs/moved").json()
    assert run["candidates"][0]["cif"] == "structures/000_NaCl.cif"


def test_unknown_runs_bad_ids_and_paths_get_clear_errors(client, runs) -> None:
    make_run(runs)
    missing = client.get("/api/runs/nope")
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"] and "GET /api/runs" in missing.json()["hint"]
    assert client.get("/api/campaigns/nope/events").status_code == 404
    assert client.post("/api/campaigns/nope/resume").status_code == 404
    bad = client.get("/api/runs/a%20b")
    assert bad.status_code == 422 and "invalid run id" in bad.json()["error"]
    escape = client.get("/api/runs/r1/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd")
    assert escape.status_code == 403 and "outside run" in escape.json()["error"]
    sibling = client.get("/api/runs/r1/files/..%2Fr1%2F..%2F..%2Fconfig.json")
    assert sibling.status_code == 403
    absent = client.get("/api/runs/r1/files/structures/none.cif")
    assert absent.status_code == 404 and "none.cif" in absent.json()["error"]


def test_malformed_requests_name_the_field(client) -> None:
    empty = client.post("/api/campaigns", json={"query": "   "})
    assert empty.status_code == 422 and "empty query" in empty.json()["error"]
    extra = client.post("/api/campaigns", json={"query": "Na-Cl", "max_evals": 3})
    assert extra.status_code == 422 and "max_evals" in extra.json()["error"]
    zero = client.post("/api/campaigns", json={"query": "Na-Cl", "max_evaluations": 0})
    assert zero.status_code == 422 and "max_evaluations" in zero.json()["error"]
    mlip = client.post("/api/campaigns", json={"query": "Na-Cl", "mlip": "nonsense"})
    assert mlip.status_code == 422 and "chgnet" in mlip.json()["error"]
    role = client.post("/api/campaigns", json={"query": "Na-Cl", "role_models": {"boss": "x:y"}})
    assert role.status_code == 422 and "boss" in role.json()["error"]
    thread = client.post("/api/campaigns", json={"query": "Na-Cl", "thread_id": "../up"})
    assert thread.status_code == 422 and "thread_id" in thread.json()["error"]
    not_json = client.post("/api/campaigns", content=b"{query:",
                           headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and "invalid request" in not_json.json()["error"]
    chat = client.post("/api/chat", json={"message": ""})
    assert chat.status_code == 422 and "message" in chat.json()["error"]
    answer = client.post("/api/campaigns/x/approval", json={"approve": True})
    assert answer.status_code == 422 and "approved" in answer.json()["error"]


def test_not_running_campaigns_cannot_be_stopped_or_answered(client, runs) -> None:
    make_run(runs)
    stop = client.post("/api/campaigns/r1/stop")
    assert stop.status_code == 409 and "not running" in stop.json()["error"]
    answer = client.post("/api/campaigns/r1/approval", json={"approved": True})
    assert answer.status_code == 409 and "not waiting" in answer.json()["error"]
    again = client.post("/api/campaigns/r1/resume")
    assert again.status_code == 409 and "finished" in again.json()["error"]
    taken = client.post("/api/campaigns", json={"query": "Na-Cl", "thread_id": "r1"})
    assert taken.status_code == 409 and "resume" in taken.json()["hint"]


def test_finished_run_events_replay_and_end(client, runs) -> None:
    make_run(runs)
    with client.stream("GET", "/api/campaigns/r1/events") as stream:
        body = "".join(stream.iter_text())
    assert body.count("event: log") == 2 and "event: end" in body
    with client.stream("GET", "/api/campaigns/r1/events",
                       headers={"Last-Event-ID": "0"}) as stream:
        assert "".join(stream.iter_text()).count("event: log") == 1


def test_loopback_checks_and_token_rule(runs) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    with pytest.raises(MatloopError, match="without a token") as err:
        create_app(runs, host="0.0.0.0")
    assert "--token" in err.value.hint
    local = TestClient(create_app(runs), base_url="http://127.0.0.1")
    rebound = local.get("/api/runs", headers={"host": "attacker.example"})
    assert rebound.status_code == 400 and "Host" in rebound.json()["error"]
    cross = local.post("/api/campaigns", json={"query": "x"},
                       headers={"origin": "http://attacker.example"})
    assert cross.status_code == 403

    app = create_app(runs, host="0.0.0.0", token="s3cret")
    remote = TestClient(app, base_url="http://10.0.0.5:8765")
    assert remote.get("/").status_code == 200  # the page itself holds no data
    denied = remote.get("/api/runs")
    assert denied.status_code == 401 and "token" in denied.json()["error"]
    assert remote.get("/api/runs", headers={"X-Matloop-Token": "wrong"}).status_code == 401
    assert remote.get("/api/runs",
                      headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert remote.get("/api/runs", params={"token": "s3cret"}).status_code == 200
    # Opening the page with ?token= leaves a cookie, so the page's own requests pass.
    browser = TestClient(app, base_url="http://10.0.0.5:8765")
    browser.get("/", params={"token": "s3cret"})
    assert browser.get("/api/runs").status_code == 200


def test_page_and_vendored_viewer_are_served(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/vendor/3Dmol-min.js" in page.text
    assert "https://" not in page.text  # nothing loads from the network
    viewer = client.get("/static/vendor/3Dmol-min.js")
    assert viewer.status_code == 200 and "3Dmol-min.js.LICENSE.txt" in viewer.text[:200]
    notice = client.get("/static/vendor/3Dmol-min.js.LICENSE.txt")
    assert "3dmol v2.5.5" in notice.text
    assert "BSD" in client.get("/static/vendor/3Dmol-LICENSE.txt").text
    assert client.get("/static/app.js").status_code == 200

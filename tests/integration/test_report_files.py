"""Report files from a real run (tests/data/report_run: Ba-Ti-O, CHGNet, 20 candidates):
JSON, Markdown, HTML, figures, material cards, DFT inputs; ``matloop report``; rebuilding the
report of a run killed before it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matloop.app.campaign import render_run
from matloop.app.cli import app
from matloop.errors import MatloopError
from matloop.reports import to_markdown, write_report_files
from matloop.reports.cards import projection_png, report_cards
from matloop.reports.dft import atomate2_available, write_dft_inputs
from matloop.reports.plots import report_plots
from matloop.schemas import DiscoveryReport, RemovedClaim

FIXTURE = Path(__file__).parents[1] / "data" / "report_run" / "batio-fixture"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    target = tmp_path / "runs" / FIXTURE.name
    shutil.copytree(FIXTURE, target)
    return target


def load(run_dir: Path) -> DiscoveryReport:
    return DiscoveryReport.model_validate_json((run_dir / "report.json").read_text())


def test_plots_come_from_the_report_numbers(run_dir: Path) -> None:
    report = load(run_dir)
    plots = {p.name: p for p in report_plots(report)}
    assert set(plots) == {"hull", "property", "progress"}
    assert all(p.svg.startswith("<svg") for p in plots.values())
    assert "8 reference phases" in plots["hull"].caption
    assert "no target property was evaluated" in plots["property"].caption
    assert "1 candidate(s) above 0.6 eV/atom" in plots["property"].caption


def test_write_report_files_writes_every_part(run_dir: Path) -> None:
    paths = write_report_files(load(run_dir), run_dir, use_robocrys=False,
                               workflows=False).paths
    assert [p.name for p in paths] == ["report.json", "report.md", "report.html"]
    report = load(run_dir)
    assert report.schema_version == "1.4"
    assert [c.candidate_id for c in report.cards] == [
        "prot-1c275c287fcb", "prot-b054c9b5e199", "prot-57e8408fddc8", "prot-6747931ceb38",
        "prot-3de9cdc2a95a"]  # one card per distinct structure, best first
    for card in report.cards:
        assert (run_dir / card.cif).is_file()
        assert sorted(card.images) == ["a", "b", "c"]
        assert all((run_dir / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                   for p in card.images.values())
    ba2tio4 = report.cards[0].card
    assert ba2tio4["space_group_symbol"] == "I4/mmm" and ba2tio4["description_source"] == \
        "robocrys"  # captured from the real run
    assert report.authorship["cards"] == "offline"
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/svg+xml;base64,") == 3
    assert html.count("data:image/png;base64,") == 15
    assert "https://doi.org/10.1016/j.jssc.2017.03.026" in html
    assert "<script" not in html and "http://" not in html
    md = (run_dir / "report.md").read_text()
    for heading in ("## Summary", "## Material cards", "## Next steps", "## Grounding"):
        assert heading in md
    assert "(plots/hull.svg)" in md and (run_dir / "plots" / "hull.svg").is_file()


def test_dft_inputs_for_distinct_top_candidates(run_dir: Path) -> None:
    report = load(run_dir)
    inputs = write_dft_inputs(report.candidates, run_dir, top=2, with_workflow=False)
    assert [d.candidate_id for d in inputs] == ["prot-1c275c287fcb", "prot-b054c9b5e199"]
    folder = run_dir / inputs[0].directory
    assert inputs[0].files == ["INCAR", "KPOINTS", "POSCAR", "POTCAR.spec"]
    assert (folder / "POTCAR.spec").read_text().split() == ["Ba_sv", "Ti_pv", "O"]
    assert "ISIF = 3" in (folder / "INCAR").read_text()
    poscar = (folder / "POSCAR").read_text().splitlines()
    assert poscar[5].split() == ["Ba", "Ti", "O"] and poscar[6].split() == ["2", "1", "4"]
    assert inputs[0].workflow is None and "atomate2 is not installed" in inputs[0].note
    assert "PMG_VASP_PSP_DIR" in (run_dir / "dft" / "README.txt").read_text()


@pytest.mark.skipif(not atomate2_available(), reason="atomate2 is not installed "
                    "(pip install 'matloop[workflows]')")
def test_atomate2_flow_json_loads_as_a_jobflow_flow(run_dir: Path) -> None:
    from jobflow import Flow

    [entry] = write_dft_inputs(load(run_dir).candidates, run_dir, top=1)
    flow = Flow.from_dict(json.loads((run_dir / entry.workflow).read_text()))
    assert [job.name for job in flow.jobs] == ["MP GGA relax 1", "MP GGA relax 2",
                                               "MP GGA static"]
    assert "Ba2TiO4" in flow.name


def test_card_of_a_candidate_without_cif_is_noted(run_dir: Path) -> None:
    report = load(run_dir)
    broken = [c.model_copy(update={"cif_path": "/nowhere/missing.cif"})
              for c in report.candidates[:1]]
    cards, notes = report_cards(broken, run_dir, use_robocrys=False)
    assert cards == [] and "missing.cif not found" in notes[0]


def test_projection_rejects_unknown_axis(run_dir: Path, tmp_path: Path) -> None:
    from pymatgen.core import Structure

    s = Structure.from_file(next((run_dir / "structures").glob("*BaTiO3.cif")))
    with pytest.raises(ValueError, match="valid: a, b, c"):
        projection_png(s, "d", tmp_path / "x.png")


def test_markdown_lists_removed_claims_and_authorship(run_dir: Path) -> None:
    report = load(run_dir).model_copy(update={
        "removed_claims": [RemovedClaim(part="summary", text="It has 7 polymorphs.",
                                        reason="number 7 matches no computed or retrieved "
                                               "value")],
        "authorship": {"summary": "llm:openai:gpt-4o", "report": "offline"}})
    md = to_markdown(report)
    assert "1 claim(s) removed by the grounding check" in md
    assert "summary: \u201cIt has 7 polymorphs.\u201d" in md
    assert "summary: llm:openai:gpt-4o" in md


def test_cli_report_rerenders_each_format(run_dir: Path) -> None:
    runner = CliRunner()
    for fmt in ("html", "md", "json"):
        result = runner.invoke(app, ["report", str(run_dir), "--format", fmt])
        assert result.exit_code == 0, result.output
        assert f"report.{fmt}" in result.output.replace("\n", "")
    bad = runner.invoke(app, ["report", str(run_dir), "--format", "pdf"])
    # a typer choice: refused before any work, naming the allowed values
    assert bad.exit_code == 2 and "'pdf' is not one of 'html', 'md', 'json'" in " ".join(
        bad.output.replace("│", " ").split())


def test_a_folder_without_report_or_checkpoint_gets_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MatloopError, match="no report.json and no campaign checkpoint") as exc:
        render_run(tmp_path)
    assert "matloop campaign" in exc.value.hint


def test_a_run_killed_before_its_report_is_rebuilt_from_the_checkpoint(tmp_path: Path) -> None:
    from matloop.app.campaign import start_campaign
    from matloop.config import get_settings
    from matloop.files import FileAccess
    from matloop.materials.engine import MaterialsEngine
    from matloop.tools.materials import materials_tools
    from tests.conftest import DATA
    from tests.fakes import toolbox
    from tests.integration.test_campaign_llm import QUERY, models

    engine = MaterialsEngine(get_settings())
    tools = toolbox(materials_tools(engine, run_dir=tmp_path / "artifacts",
                                    access=FileAccess([DATA, tmp_path])))
    campaign = start_campaign(QUERY, out_dir=tmp_path / "runs", chat_models=models(),
                              tools=tools, require_approval=True)  # nobody answers: it stops
    with pytest.raises(MatloopError, match="needs approval"):
        campaign.run()
    assert not (campaign.run_dir / "report.json").exists()
    path = render_run(campaign.run_dir, fmt="json")
    report = load(campaign.run_dir)
    assert path.name == "report.json"
    assert report.status.startswith("partial: rebuilt from the last checkpoint")
    assert f"--resume {campaign.config.campaign_id}" in report.status
    assert report.objective is not None and report.objective.chemical_systems == ["Cl-Na"]
    assert [h.status for h in report.hypotheses] == ["approved"]
    assert report.methods["models"]["critic"] == "offline"  # the config's setting: llm=none
    assert (campaign.run_dir / "report.html").is_file()


def test_campaign_with_a_reporter_model_grounds_its_narrative_and_writes_files(
        tmp_path: Path) -> None:
    from matloop.app.campaign import run_campaign
    from matloop.config import get_settings
    from matloop.files import FileAccess
    from matloop.materials.engine import MaterialsEngine
    from matloop.runtime import Budget
    from matloop.tools.materials import materials_tools
    from tests.conftest import DATA
    from tests.fakes import tool_turn, toolbox
    from tests.integration.test_campaign_llm import QUERY, models

    engine = MaterialsEngine(get_settings())
    tools = toolbox(materials_tools(engine, run_dir=tmp_path / "artifacts",
                                    access=FileAccess([DATA, tmp_path])))
    narrative = {"discussion": "H1 held.",
                 "summary": "1 candidate was relaxed. NaCl was first grown in 1898 "
                            "(doi:10.4242/invented.1898).",
                 "next_steps": []}
    chat = models(reporter=[tool_turn("ReportNarrative", narrative)])
    report = run_campaign(QUERY, out_dir=tmp_path / "runs", chat_models=chat, tools=tools,
                          budget=Budget(max_iterations=1), campaign_id="nacl")
    run_dir = tmp_path / "runs" / "nacl"
    assert report.summary == "1 candidate was relaxed."
    assert report.discussion == "H1 held."
    assert report.authorship["summary"] == "llm:scripted:reporter"
    [removed] = report.removed_claims
    assert "DOI 10.4242/invented.1898" in removed.reason and "number 1898" in removed.reason
    assert report.usage.llm_calls == 9  # eight calls of the other roles, one of the reporter
    saved = load(run_dir)  # run_campaign wrote every report file
    assert saved.removed_claims == report.removed_claims
    assert saved.authorship["cards"] == "offline"  # written by write_report_files
    html = (run_dir / "report.html").read_text()
    assert "NaCl was first grown" in html and "(doi:10.4242/invented.1898)" in html
    assert "removed by the grounding check" in html
    assert (run_dir / "report.md").is_file()


def test_a_report_without_candidates_still_renders(tmp_path: Path) -> None:
    report = DiscoveryReport(campaign_id="empty", status="failed: interpret: no answer",
                             created_utc="2026-11-22T15:00:00Z", query="stable Na-Cl phases",
                             summary="0 candidates were relaxed with the MLIP.")
    paths = write_report_files(report, tmp_path, use_robocrys=False, workflows=False).paths
    html = paths[2].read_text()
    assert "No candidate was evaluated." in html and "The query was not interpreted" in html
    assert not (tmp_path / "cards").exists() and not (tmp_path / "dft").exists()
    assert load(tmp_path).artifacts["plots"] == ""

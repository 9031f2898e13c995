"""The LLM reporter: the model writes the narrative, the grounding check keeps only what the
run supports, authorship records who wrote what. The report is a real Ba-Ti-O run
(tests/data/report_run); the chat model is scripted."""

from __future__ import annotations

from pathlib import Path

import pytest

from matloop.agents.llm import LLMClient, StructuredOutputError
from matloop.agents.reporter import LLMReporter, OfflineReporter, make_reporter
from matloop.schemas import DiscoveryReport, EvidenceRecord
from tests.fakes import scripted, text_turn, tool_turn

RUN = Path(__file__).parents[1] / "data" / "report_run" / "batio-fixture"


@pytest.fixture
def report() -> DiscoveryReport:
    return DiscoveryReport.model_validate_json((RUN / "report.json").read_text())


def state_of(report: DiscoveryReport) -> dict:
    return {"evidence": [EvidenceRecord.model_validate(e.model_dump()) for e in report.evidence],
            "tool_records": [], "usage": report.usage}


def reporter(*turns) -> LLMReporter:
    return LLMReporter(LLMClient(scripted(list(turns), label="scripted:reporter"),
                                 "scripted:reporter"))


GROUNDED = {
    "discussion": "Both hypotheses held: 11 of 20 candidates lie within 0.1 eV/atom of the "
                  "hull. The numbers are MLIP energies and need DFT confirmation.",
    "summary": "Ba2TiO4 (prot-1c275c287fcb, I4/mmm) lies 0.049 eV/atom below the MLIP hull "
               "with a formation energy of -3.424 eV/atom. A solid-state route from BaCO3 and "
               "TiO2 at 1100C is known (doi:10.1016/j.jssc.2017.03.026).",
    "next_steps": ["Check the 8 reference phases of the hull against Materials Project data"],
}


def test_grounded_answer_is_kept_verbatim(report: DiscoveryReport) -> None:
    out = reporter(tool_turn("ReportNarrative", GROUNDED)).narrate(report, state_of(report))
    assert out.summary == GROUNDED["summary"]
    assert out.discussion == GROUNDED["discussion"]
    assert out.next_steps == report.next_steps + GROUNDED["next_steps"]
    assert out.removed_claims == []
    assert out.authorship["summary"] == "llm:scripted:reporter"
    assert out.authorship["discussion"] == "llm:scripted:reporter"
    assert out.authorship["next_steps"] == "offline + llm:scripted:reporter"
    assert out.authorship["report"] == "offline"  # tables and numbers stay offline
    assert out.candidates == report.candidates
    assert out.usage.llm_calls == report.usage.llm_calls + 1
    assert out.usage.input_tokens == report.usage.input_tokens + 100


def test_invented_number_and_doi_are_removed_and_listed(report: DiscoveryReport) -> None:
    invented = {**GROUNDED, "summary": GROUNDED["summary"] + " Its dielectric constant is "
                "47.3 at room temperature. It was first reported in doi:10.5555/made.up.2020.",
                "next_steps": ["Grow 3 cm single crystals as in ev-00000000deadbeef"]}
    out = reporter(tool_turn("ReportNarrative", invented)).narrate(report, state_of(report))
    assert out.summary == GROUNDED["summary"]
    removed = {c.text: c for c in out.removed_claims}
    assert set(removed) == {
        "Its dielectric constant is 47.3 at room temperature.",
        "It was first reported in doi:10.5555/made.up.2020.",
        "Grow 3 cm single crystals as in ev-00000000deadbeef"}
    assert "number 47.3" in removed["Its dielectric constant is 47.3 at room temperature."].reason
    assert "DOI 10.5555/made.up.2020" in removed[
        "It was first reported in doi:10.5555/made.up.2020."].reason
    assert removed["Grow 3 cm single crystals as in ev-00000000deadbeef"].part == "next_steps"
    assert out.next_steps == report.next_steps  # the only new step was removed
    assert out.authorship["next_steps"] == "offline"


def test_malformed_answers_are_a_reporter_failure_after_the_retries(
        report: DiscoveryReport) -> None:
    # The report node turns this into a failed status (or the offline reporter when the run
    # allows a fallback): tests/unit/test_nodes.py.
    llm = reporter(text_turn("Here is my summary, no JSON."), text_turn("{not json"),
                   tool_turn("ReportNarrative", {"summary": 3}))
    with pytest.raises(StructuredOutputError) as info:
        llm.narrate(report, state_of(report))
    assert info.value.role == "reporter" and info.value.kind == "malformed"
    assert info.value.calls == 3 and len(llm.client.records) == 3  # one call, two retries
    assert "gave no valid ReportNarrative in 3 attempts" in info.value.message
    assert "summary: Input should be a valid string" in info.value.message


def test_summary_with_nothing_grounded_falls_back_to_offline(report: DiscoveryReport) -> None:
    answer = {"discussion": "", "summary": "It has a band gap of 9.99 eV.", "next_steps": []}
    out = reporter(tool_turn("ReportNarrative", answer)).narrate(report, state_of(report))
    assert out.summary == report.summary and out.authorship["summary"] == "offline"
    assert [c.part for c in out.removed_claims] == ["summary", "summary"]


def test_reporter_model_selects_the_llm_reporter() -> None:
    model = scripted([text_turn("unused")])
    with_model = make_reporter(LLMClient(model, "scripted:reporter"))
    assert isinstance(with_model, LLMReporter)
    assert with_model.author == "llm:scripted:reporter"
    assert isinstance(make_reporter(None), OfflineReporter)

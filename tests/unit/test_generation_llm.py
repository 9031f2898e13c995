"""LLM few-shot generation driven by scripted chat models: valid, malformed, impossible."""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from matloop.generation import GenerationError, GenerationRequest, generate_report
from matloop.generation.llm import (
    StructureTextError,
    build_from_text,
    parse_structure_text,
    structure_to_text,
)
from matloop.generation.matching import matches
from matloop.materials.references import starter_phases
from tests.conftest import DATA

ANSWERS = json.loads((DATA / "generation" / "llm_answers.json").read_text())


def scripted(*keys: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=ANSWERS[k]) for k in keys]))


def test_text_form_round_trips_the_starter_library() -> None:
    # Every textbook structure (cubic to monoclinic, hexagonal-axis R groups, free parameters)
    # survives writing and re-building from space group + Wyckoff text.
    for phase in starter_phases()[::7]:
        s = phase.get_structure()
        assert matches(s, build_from_text(structure_to_text(s))), phase.formula


def test_valid_answer_becomes_a_candidate_with_reasoning() -> None:
    report = generate_report(GenerationRequest(chemsys="K-Mg-F", methods=["llm"], n=1),
                             chat_model=scripted("valid"))
    (c,) = report.candidates
    assert c.method == "llm" and c.formula == "KMgF3" and c.spacegroup == 221 and c.valid
    assert c.provenance["reasoning"].startswith("Reasoning: K+ is large")
    assert c.provenance["examples"]  # few-shot examples were retrieved
    assert c.get_structure().volume == pytest.approx(64.0)


@pytest.mark.parametrize(("key", "reason"), [
    ("malformed", "no ```structure block"),
    ("bad_lattice", "incompatible with supplied spacegroup"),
    ("overlapping", "apart"),
    ("not_balanced", "not charge balanced"),
], ids=["malformed", "lattice-vs-spacegroup", "overlapping-atoms", "not-charge-balanced"])
def test_bad_answers_are_rejected_with_reason_and_the_run_goes_on(key: str, reason: str) -> None:
    report = generate_report(GenerationRequest(chemsys="K-Mg-F", methods=["llm"], n=1),
                             chat_model=scripted(key, "valid"))
    assert [c.formula for c in report.candidates] == ["KMgF3"]
    first = report.rejected[0]
    assert first.method == "llm" and reason in first.reason


def test_exhausted_model_never_crashes_and_other_methods_fill_in() -> None:
    report = generate_report(
        GenerationRequest(chemsys="K-Mg-F", methods=["llm", "prototype"], n=3),
        chat_model=scripted("malformed"))
    assert {c.method for c in report.candidates} == {"prototype"}
    reasons = [r.reason for r in report.rejected if r.method == "llm"]
    assert any("malformed" in r for r in reasons) and any("model call failed" in r
                                                          for r in reasons)


def test_only_bad_answers_is_an_empty_result_error() -> None:
    with pytest.raises(GenerationError, match="no candidate"):
        generate_report(GenerationRequest(chemsys="K-Mg-F", methods=["llm"], n=1),
                        chat_model=scripted("malformed", "overlapping"))


def test_answer_with_wrong_composition_is_rejected() -> None:
    text = ANSWERS["valid"]
    with pytest.raises(GenerationError):
        generate_report(GenerationRequest(composition="NaCl", methods=["llm"], n=1),
                        chat_model=GenericFakeChatModel(messages=iter([AIMessage(content=text)])))


def test_parser_accepts_symbols_and_fractions() -> None:
    sg, lattice, sites = parse_structure_text(
        "spacegroup: Fm-3m\nlattice: a=5.64 b=5.64 c=5.64 alpha=90 beta=90 gamma=90\n"
        "Na 4a 0 0 0\nCl 4b 1/2 1/2 1/2\n")
    assert sg == 225 and lattice["a"] == 5.64 and sites[1] == ("Cl", "4b", [0.5, 0.5, 0.5])
    with pytest.raises(StructureTextError, match="lacks"):
        parse_structure_text("spacegroup: 225\nlattice: a=5\nNa 4a 0 0 0")

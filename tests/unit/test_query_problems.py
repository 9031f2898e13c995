"""Unknown elements and conditions that cannot be read are reported, never dropped silently
(issue 17, item 4): the parser lists them, the interpret node records them with an event, the
report states them first, and a new campaign stops unless the assumptions are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.runtime import Runtime

from matloop.agents.query_parser import parse_query, query_problems, with_problems
from matloop.app.campaign import start_campaign
from matloop.app.inputs import QueryProblemsError, check_campaign_id, check_query
from matloop.errors import MatloopError
from matloop.graphs import nodes
from matloop.graphs.context import CampaignContext
from matloop.reports import to_markdown
from matloop.schemas import DiscoveryReport
from tests.unit.test_nodes import CONFIG, services


@pytest.mark.parametrize(("query", "kind", "text"), [
    ("Find stable compounds of element Xq", "unknown_element", "Xq"),
    ("Which phases are known in the Xq-Fe-O system?", "unknown_element", "Xq"),
    ("compounds of unobtainium and oxygen", "unknown_element", "unobtainium"),
    ("band gap of 2 GPa in Ba-Ti-O", "unparseable_constraint", "2 GPa"),
    ("oxides with a band gap below -1 eV", "unparseable_constraint", "-1 eV"),
    ("Ba-Ti-O with Curie temperature above 400 K", "unparseable_constraint", "Curie"),
])
def test_problems_are_found(query: str, kind: str, text: str) -> None:
    problems = query_problems(query)
    assert [p.kind for p in problems] == [kind]
    (p,) = problems
    assert text in p.text
    assert p.message and p.assumption and p.question.endswith("?")


@pytest.mark.parametrize("query", [
    "Find stable ternary oxides in the Ba-Ti-O system for dielectrics",
    "stable Ba-Ti-O oxides with a band gap above 3 eV",
    "UV-transparent fluorides", "Na-ion cathode materials",
    "bulk modulus above 200 GPa in W-C", "new Li-Fe-P-O cathodes",
])
def test_clear_questions_have_no_problems(query: str) -> None:
    assert query_problems(query) == []


def test_with_problems_puts_assumptions_first_once() -> None:
    objective = parse_query("stable Ba-Ti-O oxides")
    problems = query_problems("Find stable compounds of element Xq")
    once = with_problems(objective, problems)
    twice = with_problems(once, problems)
    assert twice.problems == once.problems and len(once.problems) == 1
    assert once.notes[0].startswith("assumed: 'Xq' is not a chemical element")


def test_interpret_node_records_problems_and_an_event(tmp_path: Path) -> None:
    svc = services(tmp_path)
    out = nodes.interpret({"query": "Find stable compounds of element Xq"},
                          Runtime(context=CampaignContext(services=svc)), CONFIG)
    objective = out["objective"]
    assert [p.kind for p in objective.problems] == ["unknown_element"]
    (event,) = [e for e in svc.events.read() if e["type"] == "query_problem"]
    assert event["problem"] == "unknown_element" and "Xq" in event["message"]
    report = DiscoveryReport(campaign_id="t", query="q", status="completed", summary="s",
                             created_utc="2026-01-01T00:00:00Z",
                             objective=objective)
    first = to_markdown(report).split("## ")[0]
    assert "Xq" in first  # stated before any section of the report


def test_a_new_campaign_stops_unless_assumptions_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(QueryProblemsError) as info:
        start_campaign("Find stable compounds of element Xq", out_dir=tmp_path)
    assert "accept_assumptions=True" in (info.value.hint or "")
    assert not any(tmp_path.iterdir())
    run = start_campaign("Find stable compounds of element Xq", out_dir=tmp_path,
                         accept_assumptions=True, campaign_id="xq")
    assert (run.run_dir / "config.json").is_file()


@pytest.mark.parametrize("query", ["", "   ", "a\x00b", "x" * 2001, "bad \udcff bytes"])
def test_bad_query_text_is_refused(query: str) -> None:
    with pytest.raises(MatloopError):
        check_query(query)


@pytest.mark.parametrize("cid", ["../x", ".hidden", "a/b", "a\\b", "", "x" * 101])
def test_campaign_ids_cannot_leave_the_runs_folder(cid: str) -> None:
    with pytest.raises(MatloopError, match="not a valid campaign id"):
        check_campaign_id(cid)

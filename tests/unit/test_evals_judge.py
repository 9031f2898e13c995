"""The report-quality judge: blinding, structured scores, malformed answers (scripted model)."""

from __future__ import annotations

import pytest
from evals.judge import CRITERIA, blind, judge_report, load_report_text, main

from matloop.agents.llm import StructuredOutputError
from tests.fakes import ScriptedChatModel, json_turn, scripted, text_turn, tool_turn

REPORT = """# Discovery report: Find stable Ba-Ti-O oxides
*Campaign 20261122-150650-a1b2c3 — status: completed — 2026-11-22T15:06:50Z*
matloop found BaTiO3 (prot-1c275c287fcb, E_hull +0.012 eV/atom) citing `ev-9f8e7d6c`;
files in /work/main/runs/bench-band_gap/report.json; reporter openai:gpt-4o-mini.
"""


def _scores(**override: int) -> dict:
    return {c: {"reason": f"{c} reason", "score": override.get(c, 4)} for c in CRITERIA}


class Recording(ScriptedChatModel):
    """Scripted model that keeps the text of every prompt it receives."""

    seen: list[str] = []

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # noqa: D102
        self.seen.append("\n".join(str(m.content) for m in messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def test_blind_hides_name_ids_paths_and_models() -> None:
    text = blind(REPORT)
    for secret in ("matloop", "20261122-150650-a1b2c3", "prot-1c275c287fcb", "ev-9f8e7d6c",
                   "/work/main", "bench-band_gap", "openai:gpt-4o-mini"):
        assert secret not in text
    # Chemistry and numbers stay.
    assert "BaTiO3" in text and "+0.012 eV/atom" in text and "Ba-Ti-O" in text


def test_judge_scores_from_a_tool_call_and_the_model_sees_only_the_blinded_report() -> None:
    model = Recording(messages=iter([tool_turn("JudgeScores", _scores(novelty=2))]),
                      seen=[])
    result = judge_report(REPORT, model, label="scripted:judge")
    assert result["criteria"]["novelty"] == {"reason": "novelty reason", "score": 2}
    assert result["mean_score"] == pytest.approx((4 * 4 + 2) / 5)
    assert result["calls"] == 1 and result["input_tokens"] == 100
    prompt = model.seen[0]
    assert "scientific_rigor" in prompt and "BaTiO3" in prompt
    assert "matloop" not in prompt.lower() and "prot-1c275c287fcb" not in prompt


def test_malformed_answer_is_sent_back_and_the_retry_counts() -> None:
    bad = _scores()
    bad["clarity"]["score"] = 7  # out of range
    model = scripted([text_turn("I think it is quite good."), json_turn(bad),
                      json_turn(_scores(clarity=5))])
    result = judge_report(REPORT, model, label="scripted:judge")
    assert result["criteria"]["clarity"]["score"] == 5
    assert result["calls"] == 3


def test_a_judge_that_never_answers_properly_raises() -> None:
    model = scripted([text_turn("no scores today")], repeat_last=True)
    with pytest.raises(StructuredOutputError, match="JudgeScores"):
        judge_report(REPORT, model, label="scripted:judge", max_retries=1)


def test_cli_reports_a_missing_report_and_a_missing_model(tmp_path, capsys) -> None:
    with pytest.raises(Exception, match="no report.md"):
        load_report_text(tmp_path)
    assert main([str(tmp_path), "--llm", "none"]) == 2
    assert "needs a model" in capsys.readouterr().err

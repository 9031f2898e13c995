"""The assistant: executes plan steps by calling the typed tools, never by running code.

Step inputs may refer to earlier steps' outputs:

* ``"$S2"``: the structure files a step produced (generated CIFs of ``generate_candidates``,
  relaxed CIFs of ``predict_properties``);
* ``"$S3:stable:5"``: the relaxed CIFs of the 5 lowest-e_above_hull stable results of S3;
* ``"$S3:ok"``: relaxed CIFs of every usable result of S3.

A list passed to a tool that takes one ``structure`` is mapped over, one call per structure.
Every call becomes a :class:`~matloop.schemas.ToolRecord`; a tool that raises, returns an
error or exceeds its time limit is recorded as such and the campaign goes on.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool

from matloop.schemas import PlanStep, ToolRecord


class StepInputError(ValueError):
    """A step input refers to something no earlier step produced."""


def structure_paths(step_output: dict[str, Any], selector: str = "") -> list[str]:
    """Structure files a step produced, filtered by a selector ('', 'ok', 'stable:N')."""
    result = step_output.get("result") or {}
    if "candidates" in result:  # generate_candidates
        return [c["cif_path"] for c in result["candidates"]
                if c.get("cif_path") and c.get("valid", True)]
    rows = result.get("results", [])
    ok = [r for r in rows if r.get("status") == "ok" and r.get("relaxed_cif_path")]
    if selector.startswith("stable"):
        parts = selector.split(":")
        limit = int(parts[1]) if len(parts) > 1 and parts[1] else None
        stable = sorted([r for r in ok if r.get("is_stable")],
                        key=lambda r: r.get("e_above_hull_ev_per_atom", 0.0))
        return [r["relaxed_cif_path"] for r in stable[:limit]]
    return [r["relaxed_cif_path"] for r in ok]


def resolve_inputs(step: PlanStep, outputs: dict[str, Any]) -> dict[str, Any]:
    """Replace ``$Sx[:selector]`` references by the files they name."""
    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            ref, _, selector = value[1:].partition(":")
            if ref not in outputs:
                raise StepInputError(f"{step.id}: input {value} refers to a step with no output")
            return structure_paths(outputs[ref], selector)
        if isinstance(value, list):
            flat: list[Any] = []
            for v in value:
                r = resolve(v)
                flat.extend(r if isinstance(v, str) and v.startswith("$") else [r])
            return flat
        return value

    def refers(value: Any) -> bool:
        return (isinstance(value, str) and value.startswith("$")) or (
            isinstance(value, list) and any(refers(v) for v in value))

    resolved = {}
    for key, value in step.inputs.items():
        resolved[key] = resolve(value)
        if refers(value) and resolved[key] == []:
            raise StepInputError(f"{step.id}: input {key}={value} names no structures (the "
                                 "step it refers to produced none, e.g. every generated "
                                 "candidate repeated an earlier one); step skipped")
    return resolved


def _status_of(result: Any) -> str:
    if isinstance(result, dict):
        status = str(result.get("status", "ok"))
        if status == "no_model":
            return "error"
        return status if status in ("ok", "partial", "error", "timeout") else "ok"
    return "ok"


def _summary_of(tool: str, result: Any) -> str:
    if not isinstance(result, dict):
        return str(result)[:200]
    if result.get("status") == "error":
        return f"error: {result.get('message', '')}"[:300]
    if tool == "search_literature":
        return f"{len(result.get('results', []))} passages retrieved"
    if tool == "find_synthesis_analogs":
        return f"{len(result.get('analogs', []))} synthesis analogues"
    if tool == "predict_property" and "value" in result:
        return f"{result.get('property')} = {result['value']} {result.get('unit', '')}"
    if result.get("status") == "no_model":
        return f"no model: {result.get('message', '')}"[:300]
    if "candidates" in result:
        return f"{len(result['candidates'])} candidates generated"
    if "results" in result:
        rows = result["results"]
        ok = [r for r in rows if r.get("status") == "ok"]
        stable = [r for r in ok if r.get("is_stable")]
        return f"{len(ok)}/{len(rows)} evaluated, {len(stable)} stable"
    return ", ".join(f"{k}={v}" for k, v in list(result.items())[:4])[:300]


class ToolRunner:
    """Calls tools with a time limit and records each call.

    Args:
        tools: Tools by name.
        timeout_s: Time limit per call; the call is recorded as ``timeout`` past it.
        on_record: Receives each :class:`ToolRecord` (event log).
    """

    def __init__(self, tools: dict[str, BaseTool], *, timeout_s: float = 1800.0,
                 on_record: Callable[[ToolRecord], None] | None = None) -> None:
        self.tools = tools
        self.timeout_s = timeout_s
        self.on_record = on_record
        self.counter = 0

    def call(self, tool: str, arguments: dict[str, Any], *, step_id: str | None,
             iteration: int, record_id: str) -> ToolRecord:
        """Run one tool; never raises for tool failures."""
        start = time.perf_counter()
        if tool not in self.tools:
            rec = ToolRecord(id=record_id, step_id=step_id, tool=tool, arguments=arguments,
                             status="error", duration_s=0.0, iteration=iteration,
                             summary=f"unknown tool {tool!r}; available: "
                                     f"{', '.join(sorted(self.tools))}")
        else:
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
            future = pool.submit(self.tools[tool].invoke, arguments)
            try:
                raw = future.result(timeout=self.timeout_s)
                result = json.loads(raw) if isinstance(raw, str) and raw.strip().startswith(
                    "{") else raw
                rec = ToolRecord(id=record_id, step_id=step_id, tool=tool, arguments=arguments,
                                 status=_status_of(result), summary=_summary_of(tool, result),
                                 result=result, duration_s=time.perf_counter() - start,
                                 iteration=iteration)
            except concurrent.futures.TimeoutError:
                rec = ToolRecord(id=record_id, step_id=step_id, tool=tool, arguments=arguments,
                                 status="timeout", duration_s=time.perf_counter() - start,
                                 iteration=iteration,
                                 summary=f"no answer within {self.timeout_s:g} s")
            except Exception as exc:  # a tool that raises must not end the campaign
                rec = ToolRecord(id=record_id, step_id=step_id, tool=tool, arguments=arguments,
                                 status="error", duration_s=time.perf_counter() - start,
                                 iteration=iteration,
                                 summary=f"{type(exc).__name__}: {str(exc)[:300]}")
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        if self.on_record:
            self.on_record(rec)
        return rec


def singular_structure_tool(tool: BaseTool) -> bool:
    """Whether the tool takes one ``structure`` (so a list must be mapped over)."""
    schema = tool.args_schema.model_json_schema() if tool.args_schema else {}
    props = schema.get("properties", {})
    return "structure" in props and "structures" not in props

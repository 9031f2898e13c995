"""Running tools: a time limit per call, one record per call, lists mapped over one-structure
tools. A tool that fails, returns an error or runs out of time is recorded as such; nothing
here raises for a tool's failure."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from matloop.schemas import ToolRecord
from matloop.tools.base import CandidateContext, Toolbox, ToolOutput, ToolSpec


class MappedCall(BaseModel):
    """One call of a step mapped over a list of structures."""

    record_id: str = Field(description="Record of the call.")
    arguments: dict[str, Any] = Field(description="Arguments of the call.")
    result: Any = Field(default=None, description="Its result.")


class MappedOutput(ToolOutput):
    """A step that called a one-structure tool once per structure."""

    calls: list[MappedCall] = Field(default_factory=list, description="The calls, in order.")


def record_status(result: ToolOutput) -> str:
    """Status of a call's record from its result (no_model counts as an error)."""
    return {"ok": "ok", "partial": "partial"}.get(result.status, "error")


class ToolRunner:
    """Calls tools with a time limit and records each call.

    Args:
        tools: The toolbox.
        timeout_s: Time limit per call; the call is recorded as ``timeout`` past it.
    """

    def __init__(self, tools: Toolbox, *, timeout_s: float = 1800.0) -> None:
        self.tools = tools
        self.timeout_s = timeout_s

    def call(self, tool: str, arguments: dict[str, Any], *, step_id: str | None,
             iteration: int, record_id: str) -> ToolRecord:
        """Run one tool; never raises for tool failures."""
        start = time.perf_counter()
        spec = self.tools.get(tool)
        if spec is None:
            return ToolRecord(id=record_id, step_id=step_id, tool=tool, arguments=arguments,
                              status="error", duration_s=0.0, iteration=iteration,
                              summary=f"unknown tool {tool!r}; available: "
                                      f"{', '.join(sorted(self.tools))}")
        # a daemon thread, not an executor: a call past its time limit must not keep the
        # process alive after the campaign has ended (executor threads are joined at exit)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def work() -> None:
            try:
                future.set_result(spec.invoke(arguments))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                future.set_exception(exc)

        threading.Thread(target=work, daemon=True, name=f"tool-{tool}").start()
        try:
            result = future.result(timeout=self.timeout_s)
            return ToolRecord(id=record_id, step_id=step_id, tool=tool, arguments=arguments,
                              status=record_status(result), summary=spec.summarize(result)[:300],
                              result=result, duration_s=time.perf_counter() - start,
                              iteration=iteration)
        except concurrent.futures.TimeoutError:
            return ToolRecord(id=record_id, step_id=step_id, tool=tool, arguments=arguments,
                              status="timeout", duration_s=time.perf_counter() - start,
                              iteration=iteration,
                              summary=f"no answer within {self.timeout_s:g} s")
        except Exception as exc:  # noqa: BLE001 - a tool's bug must not end the campaign
            return ToolRecord(id=record_id, step_id=step_id, tool=tool, arguments=arguments,
                              status="error", duration_s=time.perf_counter() - start,
                              iteration=iteration,
                              summary=f"{type(exc).__name__} in {tool}: {str(exc)[:200]}")

    def run_step(self, tool: str, arguments: dict[str, Any], *, step_id: str | None,
                 iteration: int, record_base: str) -> tuple[list[ToolRecord], ToolRecord]:
        """Run a plan step: one call, or one per structure when a list of structures goes to a
        tool that takes one. Returns every call's record and the one standing for the step."""
        spec = self.tools.get(tool)
        if spec is not None and spec.takes_one_structure and isinstance(
                arguments.get("structures"), list):
            rest = {k: v for k, v in arguments.items() if k != "structures"}
            records = [self.call(tool, {**rest, "structure": path}, step_id=step_id,
                                 iteration=iteration, record_id=f"{record_base}-{i:02d}")
                       for i, path in enumerate(arguments["structures"])]
            return records, combine(tool, step_id, records, iteration, record_base, arguments)
        rec = self.call(tool, arguments, step_id=step_id, iteration=iteration,
                        record_id=record_base)
        return [rec], rec


def combine(tool: str, step_id: str | None, records: list[ToolRecord], iteration: int,
            record_base: str, arguments: dict[str, Any]) -> ToolRecord:
    """One record standing for a mapped step."""
    if not records:
        return ToolRecord(id=record_base, step_id=step_id, tool=tool, arguments=arguments,
                          status="ok", summary="no structures to process",
                          result=MappedOutput(), duration_s=0.0, iteration=iteration)
    ok = [r for r in records if r.status == "ok"]
    status = "ok" if len(ok) == len(records) else ("partial" if ok else "error")
    return ToolRecord(
        id=records[0].id + "*", step_id=step_id, tool=tool,
        arguments={"mapped_over": len(records)}, status=status,
        summary=f"{len(ok)}/{len(records)} calls succeeded",
        result=MappedOutput(status="ok" if ok else "error", calls=[
            MappedCall(record_id=r.id, arguments=r.arguments, result=r.result)
            for r in records]),
        duration_s=sum(r.duration_s for r in records), iteration=iteration)


def calls_of(record: ToolRecord, spec: ToolSpec[Any, Any]) -> Iterator[tuple[str, dict[str, Any],
                                                                             ToolOutput]]:
    """(record id, arguments, typed result) of each call a record stands for."""
    result = record.result
    data = result.model_dump() if isinstance(result, BaseModel) else result
    if isinstance(data, dict) and "calls" in data and record.id.endswith("*"):
        for call in MappedOutput.model_validate(data).calls:
            yield call.record_id, call.arguments, spec.parse(call.result)
    elif record.result is not None:
        yield record.id, record.arguments, spec.parse(record.result)


def produced(record: ToolRecord, tools: Toolbox, selector: str = "") -> list[str]:
    """Structure files a step's record produced (for ``$S2[:selector]`` plan references)."""
    spec = tools.get(record.tool)
    if spec is None or spec.produces is None:
        return []
    return [path for _, _, result in calls_of(record, spec)
            for path in spec.produces(result, selector)]


def candidate_updates(record: ToolRecord, tools: Toolbox, ctx: CandidateContext,
                      ) -> list[dict[str, Any]]:
    """Candidate records created or enriched by a step's record."""
    spec = tools.get(record.tool)
    if spec is None or spec.candidates is None:
        return []
    out: list[dict[str, Any]] = []
    for record_id, arguments, result in calls_of(record, spec):
        sub = CandidateContext(record_id=record_id, arguments=arguments, known=ctx.known,
                               by_path=ctx.by_path, hypothesis_id=ctx.hypothesis_id,
                               iteration=ctx.iteration)
        out.extend(spec.candidates(result, sub))
    return out


def evidence_of(record: ToolRecord, tools: Toolbox) -> list[dict[str, Any]]:
    """Passages a step's record retrieved."""
    spec = tools.get(record.tool)
    if spec is None or spec.evidence is None:
        return []
    return [e for _, _, result in calls_of(record, spec) for e in spec.evidence(result)]

"""The assistant: executes plan steps by calling the typed tools, never by running code.

Step inputs may refer to earlier steps' outputs:

* ``"$S2"``: the structure files a step produced (generated CIFs of ``generate_candidates``,
  relaxed CIFs of ``predict_properties``);
* ``"$S3:stable:5"``: the relaxed CIFs of the 5 lowest-e_above_hull stable results of S3;
* ``"$S3:ok"``: relaxed CIFs of every usable result of S3.

A list passed to a tool that takes one ``structure`` is mapped over, one call per structure.
:class:`DirectAssistant` calls the step's tool as planned; :class:`LLMAssistant` has a chat
model issue the call (native tool calling), feeds errors back and gives up after a few turns.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from matloop import prompts
from matloop.agents.llm import LLMClient
from matloop.schemas import PlanStep, ToolRecord
from matloop.tools.base import Toolbox
from matloop.tools.runner import ToolRunner, produced


class StepInputError(ValueError):
    """A step input refers to something no earlier step produced."""


def resolve_inputs(step: PlanStep, outputs: dict[str, ToolRecord], tools: Toolbox,
                   ) -> dict[str, Any]:
    """Replace ``$Sx[:selector]`` references by the files they name.

    Raises:
        StepInputError: A reference to a step with no output, or one that names no files.
    """
    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            ref, _, selector = value[1:].partition(":")
            if ref not in outputs:
                raise StepInputError(f"{step.id}: input {value} refers to a step with no output")
            return produced(outputs[ref], tools, selector)
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
            source = outputs.get(str(value).lstrip("$").split(":")[0]) if isinstance(
                value, str) else None
            why = (f"the step it refers to failed ({source.summary})"
                   if source is not None and source.status in ("error", "timeout") else
                   "the step it refers to produced none (e.g. every generated candidate "
                   "repeated an earlier one, or none was stable)")
            raise StepInputError(f"{step.id}: input {key}={value} names no structures: {why}; "
                                 "step skipped")
    return resolved


class DirectAssistant:
    """Offline assistant: calls the step's tool with the step's inputs, as planned."""

    def execute(self, step: PlanStep, arguments: dict[str, Any], *, runner: ToolRunner,
                iteration: int, record_base: str) -> tuple[list[ToolRecord], ToolRecord]:
        """Run the step (mapping a structure list over one-structure tools)."""
        return runner.run_step(step.tool, arguments, step_id=step.id, iteration=iteration,
                               record_base=record_base)


class LLMAssistant:
    """Assistant role: the model issues the tool call for each step; calls are validated."""

    def __init__(self, client: LLMClient, *, max_turns: int = 3) -> None:
        self.client = client
        self.max_turns = max_turns

    def execute(self, step: PlanStep, arguments: dict[str, Any], *, runner: ToolRunner,
                iteration: int, record_base: str) -> tuple[list[ToolRecord], ToolRecord]:
        """Ask for the call, run it, feed errors back; bounded turns.

        Messages follow the OpenAI rule: one AI message with all its tool calls, then one
        tool message per call id, in order.
        """
        messages: list[BaseMessage] = [
            SystemMessage(content=prompts.system("assistant")),
            HumanMessage(content=prompts.task("assistant.step", step_id=step.id,
                                              purpose=step.purpose, tool=step.tool,
                                              arguments=json.dumps(arguments)))]
        records: list[ToolRecord] = []
        tools = runner.tools.langchain()
        for turn in range(self.max_turns):
            reply = self.client.invoke(messages, role="assistant", tools=tools)
            if not reply.tool_calls:
                messages += [reply if reply.content else AIMessage(content="(empty reply)"),
                             HumanMessage(content=f"No tool was called. Call {step.tool} now.")]
                continue
            messages.append(reply)
            for n, call in enumerate(reply.tool_calls):
                rec = runner.call(call["name"], dict(call.get("args") or {}), step_id=step.id,
                                  iteration=iteration, record_id=f"{record_base}-{turn}{n}")
                records.append(rec)
                messages.append(ToolMessage(content=rec.summary,
                                            tool_call_id=call.get("id") or f"call-{turn}-{n}"))
            done = [r for r in records if r.tool == step.tool and r.status in ("ok", "partial")]
            if done:
                return records, done[-1]
            messages.append(HumanMessage(content="That call failed; correct it and call "
                                                 f"{step.tool} again."))
        failure = ToolRecord(
            id=f"{record_base}-x", step_id=step.id, tool=step.tool, arguments=arguments,
            status="error", duration_s=sum(r.duration_s for r in records), iteration=iteration,
            summary=f"the assistant ({self.client.label}) did not complete the call in "
                    f"{self.max_turns} turns" + (f"; last error: {records[-1].summary}"
                                                 if records else ""))
        return records + [failure], failure


def make_assistant(client: LLMClient | None) -> DirectAssistant | LLMAssistant:
    """The LLM assistant when the role has a model, else the direct one."""
    return LLMAssistant(client) if client is not None else DirectAssistant()

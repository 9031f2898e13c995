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
from matloop.agents.tool_args import scaled_limit, tool_call_schema
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
                try:
                    r = resolve(v)
                except StepInputError:  # one of several sources skipped: use the others
                    continue
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
    """Assistant role: the model issues the tool call for each step; calls are validated.

    Only the step's tool is offered (forced: the model must call it), which keeps the prompt
    short; a step naming an unknown tool offers them all. Argument schemas are bounded
    (:mod:`matloop.agents.tool_args`) so that on a grammar-constrained server a call fits the
    role's output limit, with room for the planned arguments. A call may not ask for more than
    the plan did: lists are cut to the planned length and counts to the planned number (the
    evaluation budget was checked against the plan).
    """

    def __init__(self, client: LLMClient, *, max_turns: int = 3) -> None:
        self.client = client
        self.max_turns = max_turns

    def execute(self, step: PlanStep, arguments: dict[str, Any], *, runner: ToolRunner,
                iteration: int, record_base: str) -> tuple[list[ToolRecord], ToolRecord]:
        """Ask for the call, run it, feed errors back; bounded turns.

        Messages follow the OpenAI rule: one AI message with all its tool calls (parsed or
        cut off), then one tool message per call id, in order. Calls run in order until one
        of the step's tool succeeds; later calls of the same reply are answered "not run".
        """
        messages: list[BaseMessage] = [
            SystemMessage(content=prompts.system("assistant")),
            HumanMessage(content=prompts.task("assistant.step", step_id=step.id,
                                              purpose=step.purpose, tool=step.tool,
                                              arguments=json.dumps(arguments)))]
        records: list[ToolRecord] = []
        offered = runner.tools.only([step.tool]) if step.tool in runner.tools else runner.tools
        limit = scaled_limit(self.client.model, self.client.max_tokens)
        tools = [tool_call_schema(offered[name], max_tokens=limit,
                                  planned=arguments if name == step.tool else None)
                 for name in sorted(offered)]
        for turn in range(self.max_turns):
            reply = _with_call_ids(self.client.invoke(messages, role="assistant", tools=tools,
                                                      tool_choice="any",
                                                      mechanism="tool_call"), turn)
            if not reply.tool_calls and not reply.invalid_tool_calls:
                messages += [reply if reply.content else AIMessage(content="(empty reply)"),
                             HumanMessage(content=f"No tool was called. Call {step.tool} now.")]
                continue
            messages.append(reply)
            done: ToolRecord | None = None
            for n, call in enumerate(reply.tool_calls):
                if done is not None:
                    content = f"not run: {done.id} already ran {step.tool} for this step"
                else:
                    args = dict(call.get("args") or {})
                    if call["name"] == step.tool:
                        args = within_plan(args, arguments)
                    rec = runner.call(call["name"], args, step_id=step.id, iteration=iteration,
                                      record_id=f"{record_base}-{turn}{n}")
                    records.append(rec)
                    ok = rec.tool == step.tool and rec.status in ("ok", "partial")
                    done = rec if ok else None
                    content = rec.summary if ok else (
                        f"{rec.status}: {rec.summary}. Correct the arguments and call "
                        f"{step.tool} again.")
                messages.append(ToolMessage(content=content, tool_call_id=call["id"]))
            for bad in reply.invalid_tool_calls:
                messages.append(ToolMessage(
                    content=f"not run: the arguments are not valid JSON (cut off at the output "
                            f"limit?). Call {step.tool} again with complete arguments.",
                    tool_call_id=bad["id"]))
            if done is not None:
                return records, done
        failure = ToolRecord(
            id=f"{record_base}-x", step_id=step.id, tool=step.tool, arguments=arguments,
            status="error", duration_s=sum(r.duration_s for r in records), iteration=iteration,
            summary=f"the assistant ({self.client.label}) did not complete the call in "
                    f"{self.max_turns} turns" + (f"; last error: {records[-1].summary}"
                                                 if records else ""))
        return records + [failure], failure


def within_plan(args: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    """A model's arguments with no more than the plan asked for: lists no longer, counts no
    larger than the planned ones (other arguments as the model wrote them)."""
    out = dict(args)
    for key, value in planned.items():
        mine = out.get(key)
        if isinstance(value, list) and isinstance(mine, list) and len(mine) > len(value):
            out[key] = mine[:len(value)]
        elif (isinstance(value, int) and not isinstance(value, bool) and
              isinstance(mine, int | float) and not isinstance(mine, bool) and mine > value):
            out[key] = value
    return out


def _with_call_ids(reply: AIMessage, turn: int) -> AIMessage:
    """The reply with an id on every tool call (ids are how results are matched)."""
    calls = list(reply.tool_calls or [])
    invalid = list(reply.invalid_tool_calls or [])
    if all(c.get("id") for c in calls) and all(c.get("id") for c in invalid):
        return reply
    calls = [{**c, "id": c.get("id") or f"call-{turn}-{n}"} for n, c in enumerate(calls)]
    invalid = [{**c, "id": c.get("id") or f"call-{turn}-x{n}"} for n, c in enumerate(invalid)]
    return reply.model_copy(update={"tool_calls": calls, "invalid_tool_calls": invalid})


def make_assistant(client: LLMClient | None) -> DirectAssistant | LLMAssistant:
    """The LLM assistant when the role has a model, else the direct one."""
    return LLMAssistant(client) if client is not None else DirectAssistant()

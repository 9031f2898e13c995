"""How llama-server (Gemma 3 270M, Qwen2.5 tool template) answers LangChain's OpenAI client.

These tests pin the protocol facts matloop's LLM layer relies on: structured output through
``response_format`` json_schema, native tool calls and tool results (parallel and interleaved),
``max_tokens``, token usage, streaming, and which exception each failure raises (context
overflow, server down, request timeout, server killed and restarted on the same port).
Findings are written up in tests/llm/README.md.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, Field

from tests.llm.clients import (
    TOOL_SYSTEM,
    TOOL_USER,
    RequestLog,
    formation_energy,
    make_chat,
    tool_call,
)
from tests.llm.server import LlamaServer, free_port

pytestmark = pytest.mark.llm


# -- structured output ----------------------------------------------------------------------


class ElementRole(BaseModel):
    """One element of a proposed compound."""

    symbol: str = Field(description="Chemical symbol, e.g. Ti.", max_length=3)
    role: Literal["cation", "anion", "dopant"] = Field(
        description="Role of the element in the compound.")


class CandidateProposal(BaseModel):
    """A candidate material, shaped like matloop's agent decisions (reasoning before verdict)."""

    reasoning: str = Field(description="One sentence: why this compound.", max_length=200)
    formula: str = Field(description="Reduced chemical formula, e.g. BaTiO3.", max_length=20)
    elements: list[ElementRole] = Field(
        description="Each element of the formula with its role.", min_length=1, max_length=4)
    verdict: Literal["promising", "unlikely"] = Field(description="Overall judgement.")
    note: str | None = Field(default=None, description="Optional remark, or null.",
                             max_length=120)


PROPOSAL_PROMPT = [
    SystemMessage("You are a materials scientist. Answer with the requested JSON object."),
    HumanMessage("Propose one ternary oxide for a dielectric capacitor, e.g. from Ba-Ti-O."),
]


def test_json_schema_structured_output_gives_valid_pydantic_object(
        llama_server: LlamaServer) -> None:
    log = RequestLog()
    model = make_chat(llama_server.base_url, log=log, max_tokens=600)
    structured = model.with_structured_output(
        CandidateProposal, method="json_schema", strict=True, include_raw=True)
    result = structured.invoke(PROPOSAL_PROMPT)

    assert result["parsing_error"] is None, result["raw"].content
    proposal = result["parsed"]
    assert isinstance(proposal, CandidateProposal)
    assert 1 <= len(proposal.elements) <= 4
    assert proposal.verdict in ("promising", "unlikely")
    # What langchain-openai sends for a pydantic schema: the openai SDK's strict json_schema
    # (every field required, optional ones as anyOf [..., null], nested model under $defs).
    response_format = log.bodies[-1]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "CandidateProposal"
    assert response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(CandidateProposal.model_fields)
    assert "ElementRole" in schema["$defs"]
    usage = result["raw"].usage_metadata
    assert usage["output_tokens"] > 10


# -- native tool calls ------------------------------------------------------------------------


def test_bind_tools_gives_tool_calls(llama_server: LlamaServer) -> None:
    log = RequestLog()
    model = make_chat(llama_server.base_url, log=log, max_tokens=160).bind_tools(
        [formation_energy], tool_choice="required")
    reply = model.invoke([TOOL_SYSTEM, TOOL_USER])

    assert isinstance(reply, AIMessage)
    assert reply.tool_calls, f"no tool call; content={reply.content!r}"
    first = reply.tool_calls[0]
    assert first["name"] == "formation_energy"
    # The argument schema's maxLength (16) is enforced by the server's tool-call grammar; the
    # model fills it with the first formula of the prompt (plus noise, at this size).
    formula = first["args"]["formula"]
    assert formula.startswith(("BaTiO3", "SrTiO3")) and len(formula) <= 16
    assert first["id"] and len({c["id"] for c in reply.tool_calls}) == len(reply.tool_calls)
    # Gemma 270M keeps calling until max_tokens: the reply ends on "length", not "tool_calls",
    # and text before the first <tool_call> (an echo of the prompt) comes back as content.
    assert reply.response_metadata["finish_reason"] in ("tool_calls", "length")
    sent = log.bodies[-1]
    assert sent["tools"][0]["function"]["name"] == "formation_energy"
    assert sent["tool_choice"] == "required"


def _rendered_prompt(server: LlamaServer, body: dict[str, Any]) -> str:
    """The prompt the server's chat template makes of a request (``/apply-template``)."""
    response = httpx.post(f"{server.root_url}/apply-template",
                          json={"messages": body["messages"], "tools": body.get("tools")},
                          timeout=30)
    response.raise_for_status()
    return str(response.json()["prompt"])


def _rendered_call(formula: str) -> str:
    return ('<tool_call>\n{"name": "formation_energy", "arguments": {"formula": "'
            + formula + '"}}\n</tool_call>')


def _rendered_result(text: str) -> str:
    return f"<tool_response>\n{text}\n</tool_response>"


def test_two_parallel_tool_calls_then_two_tool_messages_are_accepted(
        llama_server: LlamaServer) -> None:
    log = RequestLog()
    model = make_chat(llama_server.base_url, log=log, max_tokens=48).bind_tools(
        [formation_energy])
    messages = [
        TOOL_SYSTEM, TOOL_USER,
        AIMessage("", tool_calls=[tool_call("call_a", "BaTiO3"), tool_call("call_b", "SrTiO3")]),
        ToolMessage("BaTiO3: -3.49 eV/atom", tool_call_id="call_a"),
        ToolMessage("SrTiO3: -3.55 eV/atom", tool_call_id="call_b"),
    ]
    reply = model.invoke(messages)

    assert isinstance(reply, AIMessage)
    assert reply.content or reply.tool_calls
    sent = log.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool"]
    assert [c["id"] for c in sent[2]["tool_calls"]] == ["call_a", "call_b"]
    assert [m["tool_call_id"] for m in sent[3:]] == ["call_a", "call_b"]
    prompt = _rendered_prompt(llama_server, log.bodies[-1])
    # Both calls in one model turn, both results in one user turn, in call order.
    assert ("<start_of_turn>model\n" + _rendered_call("BaTiO3") + "\n"
            + _rendered_call("SrTiO3") + "<end_of_turn>") in prompt
    assert ("<start_of_turn>user\n" + _rendered_result("BaTiO3: -3.49 eV/atom") + "\n"
            + _rendered_result("SrTiO3: -3.55 eV/atom") + "<end_of_turn>") in prompt


def test_interleaved_tool_calls_and_results_are_accepted(llama_server: LlamaServer) -> None:
    log = RequestLog()
    model = make_chat(llama_server.base_url, log=log, max_tokens=48).bind_tools(
        [formation_energy])
    messages = [
        TOOL_SYSTEM, TOOL_USER,
        AIMessage("", tool_calls=[tool_call("call_a", "BaTiO3")]),
        ToolMessage("BaTiO3: -3.49 eV/atom", tool_call_id="call_a"),
        AIMessage("", tool_calls=[tool_call("call_b", "SrTiO3")]),
        ToolMessage("SrTiO3: -3.55 eV/atom", tool_call_id="call_b"),
    ]
    reply = model.invoke(messages)

    assert isinstance(reply, AIMessage)
    assert reply.content or reply.tool_calls
    prompt = _rendered_prompt(llama_server, log.bodies[-1])
    turns = [
        "<start_of_turn>model\n" + _rendered_call("BaTiO3") + "<end_of_turn>",
        "<start_of_turn>user\n" + _rendered_result("BaTiO3: -3.49 eV/atom") + "<end_of_turn>",
        "<start_of_turn>model\n" + _rendered_call("SrTiO3") + "<end_of_turn>",
        "<start_of_turn>user\n" + _rendered_result("SrTiO3: -3.55 eV/atom") + "<end_of_turn>",
    ]
    positions = [prompt.index(turn) for turn in turns]
    assert positions == sorted(positions)


# -- limits, usage, streaming ---------------------------------------------------------------


def test_max_tokens_is_honoured_and_usage_reported(llama_server: LlamaServer) -> None:
    model = make_chat(llama_server.base_url, max_tokens=8)
    reply = model.invoke([HumanMessage("Write a long essay about perovskite oxides.")])

    usage = reply.usage_metadata
    assert usage is not None
    assert usage["output_tokens"] == 8
    assert usage["input_tokens"] > 5
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert reply.response_metadata["finish_reason"] == "length"


def test_stream_yields_several_chunks_and_usage(llama_server: LlamaServer) -> None:
    model = make_chat(llama_server.base_url, max_tokens=24, stream_usage=True)
    chunks = list(model.stream([HumanMessage("Name three perovskite oxides.")]))

    text_chunks = [c for c in chunks if c.content]
    assert len(text_chunks) >= 5
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert merged.content
    assert merged.usage_metadata is not None
    assert 0 < merged.usage_metadata["output_tokens"] <= 24


# -- failures and the exception each one raises --------------------------------------------


def test_context_overflow_is_a_400_bad_request(llama_server: LlamaServer) -> None:
    model = make_chat(llama_server.base_url)
    long_prompt = "perovskite " * (llama_server.ctx_size + 500)
    with pytest.raises(openai.BadRequestError) as info:
        model.invoke([HumanMessage(long_prompt)])

    exc = info.value
    assert exc.status_code == 400
    assert "exceeds the available context size" in exc.message
    assert isinstance(exc.body, dict) and exc.body.get("type") == "exceed_context_size_error"
    # langchain-openai classifies it as an invalid request, not as ContextOverflowError:
    # llama.cpp's wording matches none of the phrases it looks for.
    assert type(exc).__name__ == "OpenAIInvalidRequestError"


def test_server_down_raises_api_connection_error() -> None:
    model = make_chat(f"http://127.0.0.1:{free_port()}/v1")
    started = time.monotonic()
    with pytest.raises(openai.APIConnectionError) as info:
        model.invoke([HumanMessage("hello")])
    assert not isinstance(info.value, openai.APITimeoutError)
    assert type(info.value).__name__ == "OpenAIConnectionError"
    assert time.monotonic() - started < 5.0  # max_retries=0: no back-off


def _busy(server: LlamaServer) -> bool:
    slots = httpx.get(f"{server.root_url}/slots", timeout=10).json()
    return any(slot.get("is_processing") for slot in slots)


def test_request_timeout_raises_api_timeout_error(llama_server: LlamaServer) -> None:
    model = make_chat(llama_server.base_url, timeout=0.5, max_tokens=200)
    with pytest.raises(openai.APITimeoutError) as info:
        model.invoke([HumanMessage("Write a long essay about perovskite oxides.")])
    assert type(info.value).__name__ == "OpenAITimeoutError"
    # APITimeoutError is a subclass of APIConnectionError: catch the timeout first.
    assert isinstance(info.value, openai.APIConnectionError)
    # The server does not cancel a non-streamed request whose client went away: the slot
    # generates on to max_tokens, and the next request waits for it.
    assert _busy(llama_server)
    deadline = time.monotonic() + 120
    while _busy(llama_server) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _busy(llama_server)


def test_sigkill_then_restart_on_the_same_port(fresh_server: LlamaServer) -> None:
    killable = fresh_server
    model = make_chat(killable.base_url, max_tokens=4)
    assert model.invoke([HumanMessage("Say hi.")]).usage_metadata["output_tokens"] > 0
    port, pid = killable.port, killable.proc.pid

    killable.kill()
    assert killable.proc.returncode == -9
    with pytest.raises(openai.APIConnectionError):
        model.invoke([HumanMessage("Say hi.")])

    killable.restart()
    assert killable.port == port and killable.proc.pid != pid
    assert model.invoke([HumanMessage("Say hi.")]).usage_metadata["output_tokens"] > 0


def test_cut_off_tool_arguments_in_the_history_are_refused_and_closed_ones_accepted(
        llama_server: LlamaServer) -> None:
    """A call cut off at max_tokens comes back unparsed; sent back as it is, llama-server
    refuses the whole request (HTTP 500). matloop sends it closed into the JSON object it
    began, which the server accepts, and names the 500 as a cut-off failure."""
    from matloop.agents.llm import call_failure
    from matloop.agents.messages import closed_tool_arguments

    model = make_chat(llama_server.base_url, max_tokens=8).bind_tools([formation_energy])
    cut = AIMessage("", invalid_tool_calls=[{
        "type": "invalid_tool_call", "id": "call_a", "name": "formation_energy",
        "args": '{"formula": "BaTiO3 (100% pure, 100', "error": "not JSON"}])
    history = [TOOL_SYSTEM, TOOL_USER, cut,
               ToolMessage("not run: the arguments are not valid JSON", tool_call_id="call_a")]
    with pytest.raises(openai.InternalServerError) as info:
        model.invoke(history)
    assert info.value.status_code == 500
    assert "Failed to parse tool call arguments as JSON" in info.value.message
    failure = call_failure(info.value, role="assistant", model="openai:gemma-3-270m",
                           max_tokens=8)
    assert failure.kind == "tool_arguments" and "max_tokens=8" in failure.message

    reply = model.invoke(closed_tool_arguments(history))
    assert isinstance(reply, AIMessage) and reply.usage_metadata["output_tokens"] > 0

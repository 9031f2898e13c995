"""Bounded tool-argument schemas, cut-off tool calls sent back as valid JSON, and llama-server's
HTTP 500 about cut-off arguments as a clean role failure.

No server: the OpenAI client runs against an ``httpx.MockTransport`` that answers as
llama-server did in the ``llm`` tier (tests/llm/README.md): a tool call cut off at
``max_tokens`` comes back as an unparsed call with ``finish_reason="length"``, and a request
whose history holds such arguments is refused with HTTP 500 "Failed to parse tool call
arguments as JSON" (llama.cpp common/chat.cpp, ``func_args_not_string``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import _convert_message_to_dict
from pydantic import BaseModel, Field

from matloop.agents.assistant import LLMAssistant
from matloop.agents.llm import LLMCallError, LLMClient, call_failure, failure_kind
from matloop.agents.messages import closed_arguments, closed_tool_arguments, violations
from matloop.agents.tool_args import (
    bounded_args,
    grammar_constrained,
    output_limit,
    scaled_limit,
    tool_call_schema,
)
from matloop.app.chat import chat_toolbox
from matloop.schemas import PlanStep
from matloop.tools.base import Toolbox, ToolOutput, ToolSpec
from matloop.tools.runner import ToolRunner
from tests.unit.test_llm_failures import _unbounded

#: llama-server's answer to a history with cut-off tool-call arguments (llm tier, verbatim).
CUT_ARGUMENTS_BODY = {"error": {
    "code": 500, "type": "server_error",
    "message": "Failed to parse tool call arguments as JSON: [json.exception.parse_error.101] "
               "parse error at line 1, column 28: syntax error while parsing value - invalid "
               "string: missing closing quote; last read: '\"path to a fi'"}}
REQUEST = httpx.Request("POST", "http://127.0.0.1:8080/v1/chat/completions")


@pytest.fixture(scope="module")
def chat_tools(tmp_path_factory: pytest.TempPathFactory) -> Toolbox:
    return chat_toolbox(model=None, runs_dir=tmp_path_factory.mktemp("runs"))


# -- bounds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [None, 2048, 512, 160])
def test_every_string_and_list_argument_of_every_tool_is_bounded(
        chat_tools: Toolbox, max_tokens: int | None) -> None:
    for name in chat_tools:
        tool = tool_call_schema(chat_tools[name], max_tokens=max_tokens)
        assert tool["type"] == "function" and tool["function"]["name"] == name
        assert tool["function"]["description"] == chat_tools[name].description
        params = tool["function"]["parameters"]
        assert _unbounded(params) == [], (name, max_tokens)
        assert params["additionalProperties"] is False
        # what the tool requires is still required; the tool's own model is unchanged
        assert set(params.get("required", [])) == set(
            chat_tools[name].args.model_json_schema().get("required", []))
        assert "maxLength" not in json.dumps(chat_tools[name].args.model_json_schema()
                                             .get("properties", {}).get("structure", {}))


def test_bounds_shrink_to_fit_the_output_limit_lists_first_and_paths_stay_whole(
        chat_tools: Toolbox) -> None:
    spec = chat_tools["predict_properties"]
    wide = bounded_args(spec.name, spec.args)
    narrow = bounded_args(spec.name, spec.args, max_tokens=512)
    tiny = bounded_args(spec.name, spec.args, max_tokens=160)
    items = [b.parameters["properties"]["structures"]["maxItems"] for b in (wide, narrow, tiny)]
    chars = [b.parameters["properties"]["structures"]["items"]["maxLength"]
             for b in (wide, narrow, tiny)]
    assert items[0] == 20 and items[0] > items[1] > items[2] >= 1  # the pydantic bound is 200
    assert chars == [160, 160, 160]  # a path fits, whatever the limit
    # the longest valid arguments fit in 70 % of max_tokens at 2 characters per token, or
    # nothing can shrink further (one item of a path-sized string)
    assert narrow.max_chars <= 512 * 2 * 0.7
    assert tiny.max_chars <= 160 * 2 * 0.7 or (items[2] == 1 and chars[2] == 160)
    # a single string argument shrinks too, down to its floor
    relax = chat_tools["relax_structure"]
    assert bounded_args(relax.name, relax.args, max_tokens=160).parameters[
        "properties"]["structure"]["maxLength"] < bounded_args(
        relax.name, relax.args).parameters["properties"]["structure"]["maxLength"] == 4000


def test_planned_arguments_are_never_cut_by_the_bounds(chat_tools: Toolbox) -> None:
    spec = chat_tools["predict_properties"]
    paths = [f"/runs/campaign-{i:03d}/structures/generated-candidate-{i:04d}-of-a-long-run.cif"
             for i in range(12)]
    bounded = bounded_args(spec.name, spec.args, max_tokens=160,
                           planned={"structures": paths, "relax": True})
    structures = bounded.parameters["properties"]["structures"]
    assert structures["maxItems"] >= 12
    assert structures["items"]["maxLength"] >= max(len(p) for p in paths)


class _Args(BaseModel):
    """Arguments of the echo tool."""

    structure: str = Field(description="A structure file path.")
    tags: list[str] = Field(default_factory=list, description="Labels.")


def test_bounds_are_scaled_only_for_servers_that_decode_to_a_grammar() -> None:
    local = ChatOpenAI(model="gemma", base_url="http://127.0.0.1:8080/v1", api_key="x",
                       max_tokens=256)
    hosted = ChatOpenAI(model="gpt-4o-mini", api_key="x", max_tokens=256)
    assert grammar_constrained(local) and not grammar_constrained(hosted)
    assert output_limit(local) == 256 and scaled_limit(local) == 256
    assert scaled_limit(local, 100) == 100 and scaled_limit(hosted) is None
    # unscaled, the per-argument bounds stay (hosted models do not ramble)
    assert bounded_args("echo", _Args).parameters["properties"]["structure"]["maxLength"] == 4000


# -- cut-off calls sent back -------------------------------------------------------------------


def test_cut_off_arguments_are_closed_into_the_object_they_began() -> None:
    assert json.loads(closed_arguments('{"structure": "path to a fi')) == {
        "structure": "path to a fi"}
    assert json.loads(closed_arguments('{"formulas": ["NaCl", "K')) == {
        "formulas": ["NaCl", "K"]}
    assert closed_arguments("") == "{}" and closed_arguments("not json at all") == "{}"
    assert closed_arguments('["a list"]') == "{}"
    assert closed_arguments('{"ok": 1}') == '{"ok": 1}'


def test_a_history_with_a_cut_off_call_goes_out_as_json_llama_server_can_parse() -> None:
    cut = AIMessage("", tool_calls=[{"name": "echo", "args": {"structure": "a.cif"},
                                     "id": "c1"}],
                    invalid_tool_calls=[{"type": "invalid_tool_call", "id": "c2",
                                         "name": "echo", "args": '{"structure": "path to a fi',
                                         "error": "not JSON"}])
    history = [SystemMessage("s"), HumanMessage("u"), cut,
               ToolMessage("ok", tool_call_id="c1"), ToolMessage("not run", tool_call_id="c2")]
    closed = closed_tool_arguments(history)
    # what langchain-openai sends: every call's arguments parse as a JSON object
    sent = _convert_message_to_dict(closed[2])
    assert [c["id"] for c in sent["tool_calls"]] == ["c1", "c2"]
    assert [json.loads(c["function"]["arguments"]) for c in sent["tool_calls"]] == [
        {"structure": "a.cif"}, {"structure": "path to a fi"}]
    with pytest.raises(json.JSONDecodeError):  # as it was, llama-server refused it
        json.loads(_convert_message_to_dict(cut)["tool_calls"][1]["function"]["arguments"])
    assert violations(closed, "openai") == [] and history[2] is cut  # nothing else changed


# -- the server's HTTP 500 as a role failure ---------------------------------------------------


def test_llama_servers_500_about_cut_off_arguments_names_the_limit_and_what_to_do() -> None:
    exc = openai.InternalServerError("error", response=httpx.Response(500, request=REQUEST),
                                     body=CUT_ARGUMENTS_BODY)
    assert failure_kind(exc) == "tool_arguments"
    failure = call_failure(exc, role="assistant", model="openai:gemma-3-270m", max_tokens=256)
    assert failure.kind == "tool_arguments" and failure.role == "assistant"
    assert failure.message.startswith(
        "assistant: openai:gemma-3-270m could not read tool-call arguments cut off at "
        "max_tokens=256 (HTTP 500, InternalServerError: Failed to parse tool call arguments")
    assert "--llm-max-tokens assistant=N above 256" in (failure.hint or "")
    unknown = call_failure(exc, role="chat", model="openai:gemma-3-270m")
    assert "max_tokens=?" in unknown.message and "{" not in (unknown.hint or "")
    # any other 500 stays an HTTP error
    other = openai.InternalServerError("error", response=httpx.Response(500, request=REQUEST),
                                       body={"error": {"message": "slot unavailable"}})
    assert failure_kind(other) == "http_error"


# -- the assistant on a (mocked) llama-server --------------------------------------------------


def _completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "gemma",
            "choices": [{"index": 0, "message": {"role": "assistant", **message},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 64, "total_tokens": 114}}


def _call(call_id: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": "echo", "arguments": arguments}}


class _Server:
    """Answers chat completions from a script; refuses unparsable tool arguments as
    llama-server does; keeps every request body."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        for message in body["messages"]:
            for call in message.get("tool_calls") or []:
                try:
                    json.loads(call["function"]["arguments"])
                except json.JSONDecodeError:
                    return httpx.Response(500, json=CUT_ARGUMENTS_BODY)
        return httpx.Response(200, json=self.answers.pop(0))


def _assistant(server: _Server, max_tokens: int = 64) -> tuple[LLMAssistant, ToolRunner]:
    model = ChatOpenAI(model="gemma", base_url="http://127.0.0.1:8080/v1", api_key="x",
                       max_tokens=max_tokens, max_retries=0,
                       http_client=httpx.Client(transport=httpx.MockTransport(server)))
    client = LLMClient(model, "openai:gemma", max_tokens=max_tokens)
    spec = ToolSpec(name="echo", description="Echo a structure path.", args=_Args,
                    result=ToolOutput, run=lambda a: ToolOutput(message=a.structure),
                    summarize=lambda r: f"echoed {r.message}")
    return LLMAssistant(client), ToolRunner(Toolbox({"echo": spec}))


def test_the_assistant_recovers_from_a_cut_off_call_and_offers_bounded_arguments() -> None:
    server = _Server([
        _completion({"content": None, "tool_calls": [_call("c1", '{"structure": "runs/a.ci')]},
                    "length"),
        _completion({"content": None, "tool_calls": [_call("c2", '{"structure": "runs/a.cif"}')]},
                    "tool_calls")])
    assistant, runner = _assistant(server)
    step = PlanStep(id="S1", purpose="echo", tool="echo", inputs={"structure": "runs/a.cif"})
    records, done = assistant.execute(step, {"structure": "runs/a.cif"}, runner=runner,
                                      iteration=0, record_base="T0")
    assert done.status == "ok" and done.summary == "echoed runs/a.cif"
    # the second request carried the cut-off call closed into JSON, and its "not run" result
    second = server.bodies[1]["messages"]
    sent_call = next(m for m in second if m.get("tool_calls"))["tool_calls"][0]
    assert json.loads(sent_call["function"]["arguments"]) == {"structure": "runs/a.ci"}
    assert "not run" in next(m for m in second if m["role"] == "tool")["content"]
    # the tool offered has bounded arguments scaled to 64 tokens, with room for the plan
    params = server.bodies[0]["tools"][0]["function"]["parameters"]
    assert _unbounded(params) == []
    assert params["properties"]["structure"]["maxLength"] < 4000
    assert params["properties"]["structure"]["maxLength"] >= len("runs/a.cif")


def test_a_500_about_cut_off_arguments_is_a_clean_assistant_failure() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json=CUT_ARGUMENTS_BODY)

    model = ChatOpenAI(model="gemma", base_url="http://127.0.0.1:8080/v1", api_key="x",
                       max_tokens=256, max_retries=0,
                       http_client=httpx.Client(transport=httpx.MockTransport(refuse)))
    client = LLMClient(model, "openai:gemma", max_tokens=256)
    with pytest.raises(LLMCallError) as info:
        client.invoke([HumanMessage("u")], role="assistant", mechanism="tool_call")
    assert info.value.kind == "tool_arguments" and "max_tokens=256" in info.value.message
    record = client.records[-1]
    assert not record.ok and record.kind == "tool_arguments"


def test_chat_offers_bounded_tools(tmp_path: Path) -> None:
    from matloop.graphs.chat import build_chat_graph, user

    server = _Server([_completion({"content": "Hello."}, "stop")])
    model = ChatOpenAI(model="gemma", base_url="http://127.0.0.1:8080/v1", api_key="x",
                       max_tokens=160, max_retries=0,
                       http_client=httpx.Client(transport=httpx.MockTransport(server)))
    tools = chat_toolbox(model=None, runs_dir=tmp_path)
    graph = build_chat_graph(tools, model=model).compile()
    out = graph.invoke({"messages": [user("hello")]})
    assert out["messages"][-1].content == "Hello."
    offered = server.bodies[0]["tools"]
    assert sorted(t["function"]["name"] for t in offered) == sorted(tools)
    assert all(_unbounded(t["function"]["parameters"]) == [] for t in offered)
    relax = next(t for t in offered if t["function"]["name"] == "relax_structure")
    assert relax["function"]["parameters"]["properties"]["structure"]["maxLength"] <= 224


def test_a_call_missing_a_required_argument_is_answered_with_the_tools_error() -> None:
    """A model's call can parse and still miss a required argument (Gemma 3 270M's
    check_stability without energy_per_atom_ev, in the llm tier's web chat): the LangChain
    tool answers with the tool's error result instead of raising out of the chat turn."""
    ran: list[str] = []
    spec = ToolSpec(name="echo", description="Echo a structure path.", args=_Args,
                    result=ToolOutput, run=lambda a: ran.append(a.structure) or ToolOutput(),
                    summarize=lambda r: r.status)
    answer = json.loads(spec.as_langchain().invoke({"tags": ["x"]}))
    assert answer["status"] == "error" and ran == []
    assert answer["message"] == "invalid arguments for echo: structure: Field required"
    assert json.loads(spec.as_langchain().invoke({"structure": "a.cif"}))["status"] == "ok"
    assert ran == ["a.cif"]

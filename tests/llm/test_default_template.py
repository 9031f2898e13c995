"""Why the tier passes a tool-capable template: Gemma 3's own template and tool calling.

With the chat template built into the GGUF (Gemma 3), llama-server does not return native tool
calls and rejects any conversation that holds a ``tool`` message. These tests pin that, so a
change of llama.cpp or of the model that lifts (or moves) the limit shows up.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from tests.llm.clients import TOOL_SYSTEM, TOOL_USER, formation_energy, make_chat, tool_call
from tests.llm.conftest import LlmArtifacts
from tests.llm.server import LlamaServer

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def gemma_template_server(llm_artifacts: LlmArtifacts,
                          tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    log_path = tmp_path_factory.mktemp("gemma-template") / "server.log"
    with LlamaServer(llm_artifacts.binary, llm_artifacts.model, template=None, jinja=True,
                     log_path=log_path) as server:
        yield server


def test_gemma_template_rejects_tool_messages(gemma_template_server: LlamaServer) -> None:
    model = make_chat(gemma_template_server.base_url).bind_tools([formation_energy])
    messages = [TOOL_SYSTEM, TOOL_USER, AIMessage("", tool_calls=[tool_call("call_a", "BaTiO3")]),
                ToolMessage("BaTiO3: -3.49 eV/atom", tool_call_id="call_a")]
    with pytest.raises(openai.BadRequestError) as info:
        model.invoke(messages)
    assert info.value.status_code == 400
    assert "roles must alternate" in info.value.message


def test_gemma_template_returns_no_native_tool_calls(gemma_template_server: LlamaServer) -> None:
    model = make_chat(gemma_template_server.base_url, max_tokens=64).bind_tools(
        [formation_energy])
    reply = model.invoke([TOOL_SYSTEM, TOOL_USER])
    assert isinstance(reply, AIMessage)
    assert reply.tool_calls == []
    assert reply.response_metadata["finish_reason"] in ("stop", "length")


def test_plain_chat_works_with_gemma_template(gemma_template_server: LlamaServer) -> None:
    reply = make_chat(gemma_template_server.base_url, max_tokens=16).invoke(
        [HumanMessage("Name one perovskite oxide.")])
    assert isinstance(reply.content, str) and reply.content.strip()

"""Which chat template gets native tool calls out of Gemma 3 270M, and what the others do.

The GGUF is the *base* Gemma 3 270M and carries no chat template: llama-server then falls back
to ChatML. These tests pin what each template choice gives, so a change of llama.cpp, of the
model package or of the tier's template shows up:

* no template (ChatML fallback): tool messages are accepted, tools are ignored (no tool calls);
* ``qwen2.5``: llama-server recognises the ``<tool_call>`` format, but the model only echoes the
  prompt (Qwen's turn markers are plain text to Gemma's tokenizer) and never stops;
* ``gemma2`` (Gemma's own turn format): a ``tool`` message is rejected with HTTP 400;
* ``gemma3-tools`` (the tier's default) is covered in test_server_protocol.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from tests.llm.clients import TOOL_SYSTEM, TOOL_USER, formation_energy, make_chat, tool_call
from tests.llm.conftest import LlmArtifacts
from tests.llm.server import LlamaServer, chat_template

pytestmark = pytest.mark.llm

TOOL_TURN = [TOOL_SYSTEM, TOOL_USER, AIMessage("", tool_calls=[tool_call("call_a", "BaTiO3")]),
             ToolMessage("BaTiO3: -3.49 eV/atom", tool_call_id="call_a")]


@contextmanager
def serve(artifacts: LlmArtifacts, template: Path | None, log_dir: Path) -> Iterator[LlamaServer]:
    with LlamaServer(artifacts.binary, artifacts.model, template=template,
                     log_path=log_dir / "server.log", ctx_size=2048) as server:
        yield server


def test_no_template_falls_back_to_chatml_and_ignores_tools(llm_artifacts: LlmArtifacts,
                                                           tmp_path: Path) -> None:
    with serve(llm_artifacts, None, tmp_path) as server:
        props = httpx.get(f"{server.root_url}/props", timeout=10).json()
        assert "<|im_start|>" in props["chat_template"]  # llama.cpp's ChatML fallback
        model = make_chat(server.base_url, max_tokens=32).bind_tools([formation_energy])
        reply = model.invoke([TOOL_SYSTEM, TOOL_USER])
        assert reply.tool_calls == []
        after_tool = model.invoke(TOOL_TURN)  # accepted: ChatML renders a "tool" role
        assert isinstance(after_tool, AIMessage)


def test_qwen_template_gives_no_tool_calls_from_gemma(llm_artifacts: LlmArtifacts,
                                                      tmp_path: Path) -> None:
    with serve(llm_artifacts, chat_template("qwen2.5"), tmp_path) as server:
        model = make_chat(server.base_url, max_tokens=48).bind_tools(
            [formation_energy], tool_choice="required")
        reply = model.invoke([TOOL_SYSTEM, TOOL_USER])
        assert reply.tool_calls == []
        assert reply.response_metadata["finish_reason"] == "length"
        assert "<|im_end|>" in reply.content  # the model writes Qwen's markers as text


def test_gemma2_template_rejects_tool_messages(llm_artifacts: LlmArtifacts,
                                               tmp_path: Path) -> None:
    with serve(llm_artifacts, chat_template("gemma2"), tmp_path) as server:
        model = make_chat(server.base_url, max_tokens=16).bind_tools([formation_energy])
        with pytest.raises(openai.BadRequestError) as info:
            model.invoke(TOOL_TURN)
        assert info.value.status_code == 400
        assert "roles must alternate" in info.value.message
        plain = make_chat(server.base_url, max_tokens=16).invoke(
            [HumanMessage("Name one perovskite oxide.")])
        assert isinstance(plain.content, str) and plain.content.strip()


def test_gemma3_tools_template_stops_at_end_of_turn(llama_server: LlamaServer) -> None:
    reply = make_chat(llama_server.base_url, max_tokens=200).invoke(
        [HumanMessage("Name one perovskite oxide.")])
    assert isinstance(reply.content, str) and reply.content.strip()
    assert "<end_of_turn>" not in reply.content and "<start_of_turn>" not in reply.content

"""LLM call failures as role failures, and the providers' message-order rules.

The exceptions are the openai SDK's own classes, built as the SDK builds them from a response;
the llama.cpp body and wording are the ones llama-server returned in the ``llm`` tier
(tests/llm/README.md, "Failures and the exception each raises").
"""

from __future__ import annotations

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from matloop.agents.llm import call_failure, failure_kind
from matloop.agents.messages import MessageRuleError, check, rules_for, violations
from matloop.agents.scientist import HypothesisSet
from matloop.agents.structured import wire_schema
from matloop.graphs.context import CampaignConfig

REQUEST = httpx.Request("POST", "http://127.0.0.1:8080/v1/chat/completions")
OVERFLOW_BODY = {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 9001,
                 "n_ctx": 8192, "message": "request (9001 tokens) exceeds the available "
                                           "context size (8192 tokens), try increasing it"}


def _status(cls: type[openai.APIStatusError], code: int, body: object) -> openai.APIStatusError:
    return cls("error", response=httpx.Response(code, request=REQUEST), body=body)


@pytest.mark.parametrize(("exc", "kind"), [
    (openai.APIConnectionError(request=REQUEST), "connection"),
    (openai.APITimeoutError(request=REQUEST), "timeout"),  # a subclass of the connection error
    (_status(openai.BadRequestError, 400, {"error": OVERFLOW_BODY}), "context_overflow"),
    (_status(openai.BadRequestError, 400, {"error": {"message": "bad tool schema"}}),
     "bad_request"),
    (_status(openai.AuthenticationError, 401, None), "auth"),
    (_status(openai.RateLimitError, 429, None), "rate_limit"),
    (_status(openai.InternalServerError, 500, None), "http_error"),
])
def test_failure_kinds_of_the_openai_sdk(exc: BaseException, kind: str) -> None:
    assert failure_kind(exc) == kind


def test_a_context_overflow_is_one_line_with_the_servers_words_and_a_hint() -> None:
    exc = _status(openai.BadRequestError, 400, {"error": OVERFLOW_BODY})
    failure = call_failure(exc, role="scientist", model="openai:gemma-3-270m")
    assert failure.role == "scientist" and failure.kind == "context_overflow"
    assert failure.message == (
        "scientist: openai:gemma-3-270m rejected the request: the prompt does not fit its "
        "context window (HTTP 400, BadRequestError: request (9001 tokens) exceeds the "
        "available context size (8192 tokens), try increasing it)")
    assert "\n" not in failure.message and "-c 16384" in (failure.hint or "")


def test_credentials_in_a_servers_message_are_not_repeated() -> None:
    exc = _status(openai.AuthenticationError, 401,
                  {"error": {"message": "Incorrect API key provided: sk-abcdefghijklmnopqrstu"}})
    failure = call_failure(exc, role="critic", model="openai:gpt-4o-mini")
    assert "sk-abcdefghijklmnopqrstu" not in failure.message and failure.kind == "auth"


# -- message rules ------------------------------------------------------------------------------

SYSTEM, USER = SystemMessage("s"), HumanMessage("u")
TWO_CALLS = AIMessage("", tool_calls=[{"name": "relax", "args": {}, "id": "a"},
                                      {"name": "relax", "args": {}, "id": "b"}])


def _result(call_id: str) -> ToolMessage:
    return ToolMessage("ok", tool_call_id=call_id)


def test_one_ai_message_with_two_calls_then_both_results_is_valid_everywhere() -> None:
    sequence = [SYSTEM, USER, TWO_CALLS, _result("a"), _result("b"), AIMessage("done")]
    assert violations(sequence, "openai") == [] and violations(sequence, "anthropic") == []


def test_results_out_of_order_or_missing_break_the_openai_rule() -> None:
    swapped = [SYSTEM, USER, TWO_CALLS, _result("b"), _result("a")]
    assert violations(swapped, "openai")[0].startswith("message 3: tool result 'b' where the "
                                                       "result of call 'a' is due")
    missing = [SYSTEM, USER, TWO_CALLS, _result("a"), HumanMessage("next")]
    assert "before the results of tool call(s) 'b'" in violations(missing, "openai")[0]
    with pytest.raises(MessageRuleError) as info:
        check(missing, rules_for("openai"), role="assistant")
    assert info.value.message.startswith("assistant: the messages break openai's rules")


def test_anthropic_needs_alternating_turns_and_no_empty_assistant_turn() -> None:
    assert rules_for("anthropic") == "anthropic" and rules_for("ollama") == "openai"
    two_ai = [SYSTEM, USER, AIMessage("a"), AIMessage("b")]
    assert "two assistant turns in a row" in violations(two_ai, "anthropic")[0]
    assert violations(two_ai, "openai") == []  # OpenAI allows it
    empty = [USER, AIMessage(""), USER]
    assert "empty assistant turn" in " ".join(violations(empty, "anthropic"))


# -- bounded schemas and limits -----------------------------------------------------------------


def _unbounded(node: object, path: str = "") -> list[str]:
    """Strings without maxLength and arrays without maxItems in a JSON schema."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "string" and "enum" not in node and "maxLength" not in node:
            found.append(path)
        if node.get("type") == "array" and "maxItems" not in node:
            found.append(path)
        for key, value in node.items():
            found += _unbounded(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _unbounded(value, f"{path}/{i}")
    return found


def test_the_scientists_wire_schema_bounds_every_string_and_list_and_shrinks_to_fit() -> None:
    wide = wire_schema(HypothesisSet, dialect="grammar", max_tokens=1500)
    narrow = wire_schema(HypothesisSet, dialect="grammar", max_tokens=256)
    assert _unbounded(wide.schema) == [] and _unbounded(narrow.schema) == []
    assert len(narrow.describe()) < len(wide.describe()) or narrow.schema != wide.schema


def test_per_role_output_limits_have_defaults_and_reject_unknown_roles() -> None:
    config = CampaignConfig(query="q", campaign_id="c1", llm_max_tokens={"scientist": 300})
    assert config.max_tokens_for("scientist") == 300
    assert config.max_tokens_for("assistant") == 512  # the default
    with pytest.raises(ValueError, match="unknown role"):
        CampaignConfig(query="q", campaign_id="c1", llm_max_tokens={"oracle": 300})

"""The web app's chat, streamed over HTTP from the real model: uvicorn on a free loopback port,
``POST /api/chat`` read as server-sent events while they arrive."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from matloop.agents.llm import make_chat_model, parse_model_string
from matloop.app.web.app import create_app
from tests.llm.runs import MODEL
from tests.llm.server import LlamaServer, free_port

pytestmark = pytest.mark.llm


@pytest.fixture
def web_url(llama_server: LlamaServer, tmp_path: Path) -> Iterator[str]:
    """The web app on its own port, its chat model on the session's llama-server."""
    import uvicorn

    model = make_chat_model(parse_model_string(MODEL, base_url=llama_server.base_url),
                            max_tokens=160, timeout_s=240.0, max_retries=0)
    app = create_app(tmp_path / "runs", chat_model=model)
    app.state.chat.max_tool_rounds = 1  # two model calls at most: the tier's time
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def _events(response: httpx.Response) -> Iterator[tuple[float, str, dict[str, Any]]]:
    """(arrival time, event, data) of each server-sent event, as it arrives."""
    kind, data = "", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data += line.split(":", 1)[1].strip()
        elif not line.strip() and kind:
            yield time.monotonic(), kind, json.loads(data or "{}")
            kind, data = "", ""


def test_a_chat_turn_streams_the_models_tokens_then_one_answer(web_url: str) -> None:
    started = time.monotonic()
    with httpx.stream("POST", f"{web_url}/api/chat", timeout=600.0,
                      json={"message": "Look up the known phases of the Na-Cl system.",
                            "thread_id": "llm"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = list(_events(response))
    kinds = [kind for _, kind, _ in stream]
    print(json.dumps({"seconds": round(time.monotonic() - started, 1),
                      "events": {k: kinds.count(k) for k in dict.fromkeys(kinds)}}))

    assert "error" not in kinds, [d for _, k, d in stream if k == "error"]
    assert kinds[0] == "step" and stream[0][2]["node"] == "agent"
    assert kinds[-2:] == ["answer", "done"] and kinds.count("answer") == 1
    tokens = [(t, d["text"]) for t, k, d in stream if k == "token"]
    # the model's text arrives in many small chunks, each after the model call began and
    # before the answer, and over time (streamed, not sent in one piece at the end)
    assert len(tokens) >= 5, kinds
    first_agent = kinds.index("step")
    assert first_agent < kinds.index("token") and \
        max(i for i, k in enumerate(kinds) if k == "token") < kinds.index("answer")
    assert all(text for _, text in tokens)
    answer_at = next(t for t, k, _ in stream if k == "answer")
    assert tokens[-1][0] - tokens[0][0] > 0.2 and answer_at - tokens[0][0] > 0.2
    # tool calls the model made were run and reported in order, each start before its end
    position = {(k, d.get("run_id")): i for i, (_, k, d) in enumerate(stream)}
    starts = [d["run_id"] for _, k, d in stream if k == "tool_start"]
    assert starts == [d["run_id"] for _, k, d in stream if k == "tool_end"]
    assert all(position[("tool_start", r)] < position[("tool_end", r)] for r in starts)
    answer = stream[-2][2]
    assert isinstance(answer["text"], str) and answer["text"].strip()
    assert answer["streamed"] is True
    # the answer is the model's own (its streamed text) or the offline floor's, which says
    # first why it answered in the model's place
    structured = answer["answer"] or {}
    if structured.get("origin") == "model":
        streamed = "".join(text for _, text in tokens)
        assert answer["text"].split("\n\nSources: ")[0].strip() in streamed
    else:
        assert answer["text"].startswith(("(The language model ", "No answer: the language "))

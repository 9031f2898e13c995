"""Fixtures of the ``llm`` tier: a real llama-server with a small GGUF model on loopback.

The server and model are built or reused through :mod:`tests.llm.server`. When the build is
impossible on this machine (no cmake, no compiler, a package unavailable) the whole tier is
skipped with the reason; when a build that should work breaks, the tests fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.llm.server import (
    LlamaServer,
    LlmTierUnavailable,
    chat_template,
    ensure_llama_server,
    ensure_model,
)


@dataclass(frozen=True)
class LlmArtifacts:
    """The built server binary, the assembled model, and the tool-capable template."""

    binary: Path
    model: Path
    template: Path


@pytest.fixture(scope="session")
def llm_artifacts() -> LlmArtifacts:
    try:
        binary = ensure_llama_server()
        model = ensure_model()
        template = chat_template()
    except LlmTierUnavailable as exc:
        pytest.skip(f"llm tier unavailable on this machine: {exc}")
    # LlamaBuildError (a build that should work and broke) propagates: the tier errors out.
    return LlmArtifacts(binary=binary, model=model, template=template)


@pytest.fixture(scope="session")
def llama_server(llm_artifacts: LlmArtifacts,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One llama-server for the session: Gemma 3 270M, gemma3-tools template, -t 1, 8192 ctx."""
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with LlamaServer(llm_artifacts.binary, llm_artifacts.model,
                     template=llm_artifacts.template, log_path=log_path) as server:
        yield server


@pytest.fixture
def fresh_server(llm_artifacts: LlmArtifacts, tmp_path: Path) -> Iterator[LlamaServer]:
    """A server of the test's own, for kill/restart tests that must not disturb the session one."""
    server = LlamaServer(llm_artifacts.binary, llm_artifacts.model,
                         template=llm_artifacts.template, log_path=tmp_path / "server.log")
    with server:
        yield server
    server.kill()

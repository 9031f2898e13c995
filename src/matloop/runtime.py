"""Run-time bookkeeping of a campaign: the event log, the price table and the budget."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from matloop.schemas import Usage

_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|(?<![A-Za-z0-9])[A-Za-z0-9]{32,}(?![A-Za-z0-9]))")
_SECRET_KEYS = ("api_key", "apikey", "token", "secret", "password", "authorization")


def scrub(value: Any) -> Any:
    """Remove credentials from anything that goes into logs, events or reports."""
    if isinstance(value, dict):
        return {k: ("[redacted]" if any(s in str(k).lower() for s in _SECRET_KEYS) else scrub(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _SECRET.sub("[redacted]", value)
    return value


class EventLog:
    """Append-only JSONL log of LLM calls, tool calls and node transitions, with ids."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._listeners: list[Any] = []

    def subscribe(self, listener: Any) -> None:
        """Call ``listener(event)`` for every event written (live display, streaming)."""
        self._listeners.append(listener)

    def write(self, kind: str, **fields: Any) -> str:
        """Record one event; returns its id."""
        event = {"id": f"E-{uuid.uuid4().hex[:12]}", "type": kind,
                 "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 **scrub(fields)}
        if self.path is not None:
            with self._lock, self.path.open("a") as handle:
                handle.write(json.dumps(event, default=str) + "\n")
        for listener in self._listeners:
            listener(event)
        return event["id"]

    def read(self) -> list[dict[str, Any]]:
        """All events written so far."""
        if self.path is None or not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


class PriceTable:
    """USD per million input/output tokens by ``provider:model`` (``provider:*`` wildcards)."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            raw = json.loads(resources.files("matloop.data").joinpath("prices.json").read_text())
        else:
            raw = json.loads(Path(path).read_text())
        self.prices = {k: tuple(v) for k, v in raw.items() if not k.startswith("_")}

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """Cost of a call, or None when the model is not in the table."""
        price = self.prices.get(model) or self.prices.get(model.split(":")[0] + ":*")
        if price is None:
            return None
        return (input_tokens * price[0] + output_tokens * price[1]) / 1e6


class Budget(BaseModel):
    """Limits of one campaign; ``None`` means unlimited."""

    max_iterations: int = Field(default=3, ge=1, description="Ideation-to-expansion loops.")
    max_llm_calls: int | None = Field(default=200, description="LLM calls in all roles.")
    max_tokens: int | None = Field(default=2_000_000, description="Input + output tokens.")
    max_cost_usd: float | None = Field(default=5.0, description="Spend, USD (price table).")
    max_evaluations: int | None = Field(default=60, description="Candidate MLIP relaxations.")
    max_wall_time_s: float | None = Field(default=3600.0, description="Wall time, seconds.")
    max_revisions: int = Field(default=2, ge=0, description="Critic rejections per stage "
                                                            "before the loop gives up.")

    def exhausted(self, usage: Usage) -> str | None:
        """Which limit ``usage`` has reached, if any."""
        checks = [
            ("iterations", usage.iterations, self.max_iterations),
            ("llm_calls", usage.llm_calls, self.max_llm_calls),
            ("tokens", usage.input_tokens + usage.output_tokens, self.max_tokens),
            ("cost_usd", usage.cost_usd, self.max_cost_usd),
            ("mlip_evaluations", usage.mlip_evaluations, self.max_evaluations),
            ("wall_time_s", usage.wall_time_s, self.max_wall_time_s),
        ]
        for name, used, limit in checks:
            if limit is not None and used >= limit:
                return name
        return None

    def remaining_evaluations(self, usage: Usage) -> int | None:
        """Candidate relaxations still allowed."""
        if self.max_evaluations is None:
            return None
        return max(0, self.max_evaluations - usage.mlip_evaluations)

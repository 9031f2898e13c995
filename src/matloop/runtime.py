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

from pydantic import BaseModel, ConfigDict, Field

from matloop.schemas import Usage

#: Credential-looking values: OpenAI/Anthropic keys (sk-..., sk-ant-...), bearer tokens, AWS
#: and Google keys, and runs of 32+ letters and digits (Materials Project API keys, hex
#: secrets, the token part of hf_/ghp_ tokens).
_SECRET = re.compile(
    r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{8,}"
    r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_\-]{35}"
    r"|(?<![A-Za-z0-9])[A-Za-z0-9]{32,}(?![A-Za-z0-9])")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#@\s]+@")
_URL_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:api[_\-]?key|apikey|key|token|access[_\-]?token|auth|authorization|"
    r"password|passwd|secret|client[_\-]?secret|sig|signature)=)[^&#;\s]+")
#: Key words that mark a value as a credential (keys are compared in lower case, with runs of
#: other characters read as "_").
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "authorization", "credential",
                 "private_key", "cookie")
#: Keys ending in "_token" that name a vocabulary entry of a tokenizer, not a credential.
_TOKENIZER_KEYS = frozenset({"eos_token", "bos_token", "pad_token", "unk_token", "sep_token",
                             "cls_token", "mask_token", "stop_token"})


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a credential.

    ``api_key``, ``OPENAI_API_KEY``, ``apikey``, ``password``, ``client_secret``,
    ``Authorization``, ``token``, ``access_token``, ``refresh_token``, ``X-Matloop-Token``
    are; counters such as ``input_tokens``, ``output_tokens``, ``max_tokens`` and
    tokenizer entries such as ``eos_token`` are not.
    """
    k = re.sub(r"[^a-z0-9]+", "_", str(key).lower()).strip("_")
    if k.endswith(("api_key", "apikey")) or any(word in k for word in _SECRET_WORDS):
        return True
    return (k == "token" or k.endswith("_token")) and k not in _TOKENIZER_KEYS


def strip_url_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part or credential query parameters.

    ``https://user:pass@host/v1?api_key=abc&x=1`` becomes
    ``https://[redacted]@host/v1?api_key=[redacted]&x=1``; a URL without credentials is
    returned unchanged.
    """
    url = _URL_USERINFO.sub(r"\1[redacted]@", url)
    return _URL_SECRET_PARAM.sub(r"\1[redacted]", url)


def scrub_text(text: str) -> str:
    """``text`` with credentials in URLs and credential-looking values replaced."""
    return _SECRET.sub("[redacted]", strip_url_credentials(text))


def scrub(value: Any) -> Any:
    """Remove credentials from anything that goes into logs, events, configs or reports.

    Mappings lose the values of credential keys (:func:`is_secret_key`), strings lose
    credential-looking parts (:func:`scrub_text`); lists, tuples and sets are scrubbed item
    by item and pydantic models as their JSON dump. Numbers, booleans and None pass through.
    """
    if isinstance(value, BaseModel):
        return scrub(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {k: ("[redacted]" if is_secret_key(k) and v not in (None, "") else scrub(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
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
                handle.write(json.dumps(event, default=lambda o: scrub_text(str(o))) + "\n")
        for listener in self._listeners:
            listener(event)
        return event["id"]

    def tool_call(self, rec: Any) -> str:
        """Record one tool call (a :class:`~matloop.schemas.ToolRecord`)."""
        return self.write("tool_call", record_id=rec.id, step_id=rec.step_id, tool=rec.tool,
                          arguments=rec.arguments, status=rec.status, summary=rec.summary,
                          duration_s=round(rec.duration_s, 3))

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
    """Limits of one campaign; ``None`` means unlimited.

    A limit is reached when the amount used equals it, so every limit is positive (a zero
    limit would end the campaign before its first step); infinities and NaN are refused.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    max_iterations: int = Field(default=3, ge=1, le=1000,
                                description="Ideation-to-expansion loops.")
    max_llm_calls: int | None = Field(default=200, ge=1, description="LLM calls in all roles.")
    max_tokens: int | None = Field(default=2_000_000, ge=1,
                                   description="Input + output tokens.")
    max_cost_usd: float | None = Field(default=5.0, gt=0,
                                       description="Spend, USD (price table).")
    max_evaluations: int | None = Field(default=60, ge=1,
                                        description="Candidate MLIP relaxations.")
    max_wall_time_s: float | None = Field(default=3600.0, gt=0,
                                          description="Wall time, seconds.")
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

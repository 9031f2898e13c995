"""LangChain's OpenAI client pointed at the local server, and what the tests send it."""

from __future__ import annotations

import json
from typing import Any

import httpx
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field


class RequestLog:
    """Every request body ChatOpenAI sends, as parsed JSON (an httpx event hook)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> None:
        if request.content:
            self.bodies.append(json.loads(request.content))


def make_chat(server_url: str, *, log: RequestLog | None = None, **kwargs: Any) -> ChatOpenAI:
    """ChatOpenAI against a local server: greedy, no client retries, no real key."""
    options: dict[str, Any] = {"temperature": 0.0, "max_retries": 0, "timeout": 300.0,
                               "max_tokens": 256}
    options.update(kwargs)
    client = httpx.Client(event_hooks={"request": [log]}) if log is not None else None
    return ChatOpenAI(model="gemma-3-270m", base_url=server_url, api_key="not-needed",
                      http_client=client, **options)


class FormationEnergyArgs(BaseModel):
    """Arguments of the formation-energy lookup."""

    formula: str = Field(description="Reduced chemical formula, e.g. BaTiO3.", max_length=16)


@tool(args_schema=FormationEnergyArgs)
def formation_energy(formula: str) -> str:
    """Look up the DFT formation energy (eV/atom) of a compound from its reduced formula."""
    return f"{formula}: -3.49 eV/atom"


TOOL_SYSTEM = SystemMessage(
    "You are a materials assistant. Use the formation_energy tool to look up energies.")
TOOL_USER = HumanMessage("Look up the formation energies of BaTiO3 and SrTiO3.")


def tool_call(call_id: str, formula: str) -> dict[str, Any]:
    return {"name": "formation_energy", "args": {"formula": formula}, "id": call_id,
            "type": "tool_call"}



"""Bounded argument schemas of the tools a chat model calls.

A server that turns a tool's argument schema into a decoding grammar (llama.cpp, vLLM, Ollama)
lets a small model write a string argument until ``max_tokens``: the call comes back cut off,
its arguments are not JSON, and the tool is never run. :func:`tool_call_schema` gives the
schema a model is offered for one tool (OpenAI function format, which every LangChain
provider's ``bind_tools`` takes) with every string bounded (``maxLength``) and every list
bounded (``maxItems``), scaled down, when ``max_tokens`` is given, until the longest valid
arguments fit in :data:`FILL_SHARE` of it at :data:`CHARS_PER_TOKEN` characters per token
(lists shrink before strings, and path-like strings keep room for a path). Arguments a plan
already holds (``planned``) are never cut: their lists and strings keep room for the planned
values, so a model that copies them is not stopped by the grammar (the call may then not fit,
and is cut off as it would be without bounds).

Pass ``max_tokens`` only for servers that decode to a grammar (:func:`grammar_constrained`):
the OpenAI and Anthropic APIs do not enforce the bounds and their models do not ramble, so
their tools keep the generous per-argument bounds unscaled.

Only what the model sees is bounded: the tool itself validates its arguments against its own
pydantic model, unchanged. A free-form object argument (``describe_material``'s
``properties``) keeps its shape: JSON Schema grammars cannot bound its number of keys, so it is
counted as :data:`FREE_OBJECT_CHARS` characters.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from matloop.agents.llm import structured_mechanism, wire_dialect
from matloop.agents.structured import json_size
from matloop.tools.base import ToolSpec

#: Characters per token of a tool call's arguments. Lower than for structured answers
#: (:data:`matloop.agents.structured.CHARS_PER_TOKEN`): a small model fills a string it cannot
#: answer with repeated fragments at about 2 characters per token (Gemma 3 270M in the llm
#: test tier: "100% pure, 100% pure, ...").
CHARS_PER_TOKEN = 2.0
#: Share of max_tokens the longest valid arguments may take: the rest is for text before the
#: call, the call's name and wrapper, and whitespace.
FILL_SHARE = 0.7
#: maxLength of string arguments by name (for a list of strings: of each item). A structure
#: may be CIF text; a batch of structures is a list of paths (about 100 characters each).
ARG_STRING_CHARS: dict[str, int] = {
    "structure": 4000, "structures": 160, "formula": 40, "formulas": 40, "composition": 40,
    "chemsys": 40, "query": 300, "question": 300, "run_id": 100, "property": 40,
    "prototype": 40, "methods": 16, "elements": 3, "required_elements": 3,
    "excluded_elements": 3,
}
#: Smallest maxLength a string argument is scaled to, by name (a path must stay whole).
ARG_STRING_FLOORS: dict[str, int] = {"structure": 160, "structures": 160, "query": 40,
                                     "question": 40, "run_id": 40}
#: maxItems of list arguments by name.
ARG_LIST_ITEMS: dict[str, int] = {"structures": 20, "formulas": 10, "methods": 6,
                                  "spacegroups": 10, "elements": 6, "required_elements": 6,
                                  "excluded_elements": 8, "properties": 6}
DEFAULT_ARG_STRING_CHARS = 200
DEFAULT_ARG_ITEMS = 10
MIN_ARG_STRING_CHARS = 16
#: Characters a free-form object argument is counted as when sizing the schema.
FREE_OBJECT_CHARS = 200


@dataclass(frozen=True)
class BoundedArgs:
    """A tool's argument schema as offered to a model.

    Attributes:
        name: The tool's name.
        parameters: The bounded JSON schema of its arguments.
        max_chars: Characters of the longest arguments the schema allows (free-form objects
            counted as :data:`FREE_OBJECT_CHARS`).
    """

    name: str
    parameters: dict[str, Any]
    max_chars: int

    def as_tool(self, description: str) -> dict[str, Any]:
        """The tool in OpenAI function format (what ``bind_tools`` takes)."""
        return {"type": "function", "function": {
            "name": self.name, "description": description, "parameters": self.parameters}}


def bounded_args(name: str, args: type[BaseModel], *, max_tokens: int | None = None,
                 planned: Mapping[str, Any] | None = None) -> BoundedArgs:
    """The bounded argument schema of a tool named ``name`` taking ``args``.

    Args:
        max_tokens: The call's output limit: list bounds (then string bounds, down to their
            floors) are scaled down until the longest valid arguments fit in ``FILL_SHARE`` of
            it. The floors win over the limit: a schema that cannot shrink further stays
            larger. None: no scaling.
        planned: Argument values the schema must admit (a plan step's arguments): a list
            keeps at least their number of items, a string (or each string of a list) at
            least their length.
    """
    source = args.model_json_schema()
    shape = _ArgShape(source.get("$defs", {}), *_planned_floors(planned or {}))
    target = None if max_tokens is None else int(max_tokens * CHARS_PER_TOKEN * FILL_SHARE)
    schema = shape.build(source, None)
    size = _size(schema)
    while target is not None and size > target and shape.list_scale > 0.05:
        shape.list_scale *= 0.75
        schema, size = _rebuilt(shape, source)
    while target is not None and size > target and shape.string_scale > 0.02:
        shape.string_scale *= 0.85
        schema, size = _rebuilt(shape, source)
    return BoundedArgs(name=name, parameters=schema, max_chars=size)


def tool_call_schema(spec: ToolSpec[Any, Any], *, max_tokens: int | None = None,
                     planned: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One tool for ``bind_tools``: its name, contract and bounded argument schema."""
    return bounded_args(spec.name, spec.args, max_tokens=max_tokens, planned=planned).as_tool(
        spec.description)


def grammar_constrained(model: Any) -> bool:
    """Whether a chat model's server decodes tool calls to a grammar built from their
    schemas (a local OpenAI-compatible server: llama.cpp, vLLM...; Ollama): the bounds are
    then enforced and should be scaled to the output limit. Hosted APIs and models without
    native tool calls are not."""
    mechanism = structured_mechanism(model)
    return mechanism == "json_schema" and wire_dialect(model, mechanism) == "grammar"


def output_limit(model: Any) -> int | None:
    """The output limit a chat model was built with (``max_tokens``; Ollama's
    ``num_predict``; a local model's ``max_new_tokens``), or None."""
    for attr in ("max_tokens", "num_predict", "max_new_tokens"):
        value = getattr(model, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def scaled_limit(model: Any, max_tokens: int | None = None) -> int | None:
    """The output limit a model's tool schemas are scaled to: ``max_tokens`` (else the
    model's own) for a grammar-constrained server, None (no scaling) for any other."""
    if not grammar_constrained(model):
        return None
    return max_tokens if max_tokens is not None else output_limit(model)


def _planned_floors(planned: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """(items, characters) each planned argument needs, by name."""
    items: dict[str, int] = {}
    chars: dict[str, int] = {}
    for key, value in planned.items():
        if isinstance(value, list):
            items[key] = len(value)
            texts = [v for v in value if isinstance(v, str)]
            if texts:
                chars[key] = max(len(v) for v in texts)
        elif isinstance(value, str):
            chars[key] = len(value)
    return items, chars


def _rebuilt(shape: _ArgShape, source: dict[str, Any]) -> tuple[dict[str, Any], int]:
    schema = shape.build(source, None)
    return schema, _size(schema)


@dataclass
class _ArgShape:
    """How an argument schema is bounded: list and string scales."""

    defs: dict[str, Any]
    item_floors: dict[str, int] = field(default_factory=dict)
    char_floors: dict[str, int] = field(default_factory=dict)
    string_scale: float = 1.0
    list_scale: float = 1.0

    def build(self, node: dict[str, Any], field_name: str | None) -> dict[str, Any]:
        """The bounded form of one schema node (``$ref`` inlined, titles dropped)."""
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node = self.defs[ref.rsplit("/", 1)[1]]
        out = {k: copy.deepcopy(v) for k, v in node.items()
               if k not in ("title", "$defs", "$ref", "examples")}
        if "anyOf" in node:
            out["anyOf"] = [self.build(option, field_name) for option in node["anyOf"]]
            return out
        kind = node.get("type")
        if kind == "object" and node.get("properties"):
            out["properties"] = {key: self.build(value, key)
                                 for key, value in node["properties"].items()}
            out["additionalProperties"] = False
            return out
        if kind == "object":  # free-form: bound the values it may hold
            extra = node.get("additionalProperties")
            if isinstance(extra, dict):
                out["additionalProperties"] = self.build(extra, None)
            return out
        if kind == "array":
            out["items"] = self.build(node.get("items", {}), field_name)
            limit = ARG_LIST_ITEMS.get(field_name or "", DEFAULT_ARG_ITEMS)
            if "maxItems" in node:
                limit = min(limit, int(node["maxItems"]))
            floor = min(limit, max(1, int(node.get("minItems", 0))))
            floor = max(floor, self.item_floors.get(field_name or "", 0))
            out["maxItems"] = max(floor, round(limit * self.list_scale))
            return out
        if kind == "string" and "enum" not in node and "const" not in node:
            limit = ARG_STRING_CHARS.get(field_name or "", DEFAULT_ARG_STRING_CHARS)
            if "maxLength" in node:
                limit = min(limit, int(node["maxLength"]))
            floor = min(limit, max(ARG_STRING_FLOORS.get(field_name or "", MIN_ARG_STRING_CHARS),
                                   int(node.get("minLength", 0))))
            floor = max(floor, self.char_floors.get(field_name or "", 0))
            out["maxLength"] = max(floor, int(limit * self.string_scale))
        return out


def _size(node: dict[str, Any]) -> int:
    """Characters of the longest JSON text the bounded schema allows (an unbounded string or
    list counted at the default bounds, a free-form object as :data:`FREE_OBJECT_CHARS`)."""
    size = json_size(node, string_chars=DEFAULT_ARG_STRING_CHARS, items=DEFAULT_ARG_ITEMS,
                     free_object=FREE_OBJECT_CHARS)
    return FREE_OBJECT_CHARS if size is None else size  # never None: every default is given

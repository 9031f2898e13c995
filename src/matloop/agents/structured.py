"""Bounded JSON schemas for structured LLM answers, and reading the answers back.

A decision model (:class:`~matloop.schemas.Objective`, ``HypothesisSet``,
:class:`~matloop.schemas.Critique`, :class:`~matloop.schemas.Plan`,
:class:`~matloop.schemas.ExpansionDecision`, ``ReportNarrative``...) is sent to a provider as
a *wire schema*: its pydantic JSON schema with ``$ref`` inlined, every property required
(optional ones nullable), no extra properties, the fields matloop fills itself left out
(``author``, ``status``, ``iteration``, a hypothesis' ``id``, an objective's ``query``), and
free-form objects (a plan step's ``inputs``) written as a JSON object inside a string.

Every string and list gets a bound (``maxLength``, ``maxItems``). A server that compiles the
schema into a decoding grammar (llama.cpp, vLLM, Ollama) then cannot write forever: a small
model fills an unbounded string until ``max_tokens`` and the answer is lost. With
``max_tokens`` given, string bounds (then list bounds) are scaled down until the longest valid
answer fits in about 85 % of it, at ``CHARS_PER_TOKEN`` characters per token.

OpenAI's strict mode takes a subset of JSON Schema without string lengths, so the ``openai``
dialect keeps list bounds only (its models do not ramble). :meth:`WireSchema.load` turns an
answer back into the pydantic model (JSON strings decoded, left-out fields filled).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel

Dialect = Literal["grammar", "openai", "tool"]
#: Conservative characters per token of a JSON answer (English text runs at about 4).
CHARS_PER_TOKEN = 3.0
#: Share of max_tokens the longest valid answer may take (whitespace, escapes).
FILL_SHARE = 0.85
DEFAULT_STRING_CHARS = 200
DEFAULT_ITEMS = 6
MIN_STRING_CHARS = 16

#: Fields matloop fills itself, left out of the wire schema (by model name; "*" for all)
#: when the model has a default for them or :data:`FILLS` provides one.
OMIT: dict[str, frozenset[str]] = {
    "*": frozenset({"author", "status", "iteration"}),
    "Hypothesis": frozenset({"id"}),
    "Objective": frozenset({"query"}),
}
#: Values of left-out required fields, overwritten by the policy that asked.
FILLS: dict[str, dict[str, Any]] = {"Hypothesis": {"id": "H0"}, "Objective": {"query": ""}}
#: maxLength of string fields, by field name (a list of strings: of each item).
STRING_CHARS: dict[str, int] = {
    "reasoning": 600, "justification": 500, "interpretation": 400, "discussion": 1200,
    "summary": 800, "statement": 240, "test_plan": 240, "purpose": 160, "application": 120,
    "source_text": 120, "unit": 12, "name": 40, "id": 12, "hypothesis_id": 12, "tool": 40,
    "chemical_system": 32, "chemical_systems": 32, "parent": 60, "inputs": 400,
    "issues": 200, "next_steps": 240, "next_directions": 200, "beyond_tools": 200,
    "notes": 200, "compositions": 24, "target_compositions": 24, "required_elements": 3,
    "excluded_elements": 3, "evidence_ids": 24, "depends_on": 12, "supported": 12,
    "refuted": 12,
}
#: maxItems of list fields, by field name.
LIST_ITEMS: dict[str, int] = {
    "hypotheses": 4, "verdicts": 6, "steps": 8, "issues": 5, "next_steps": 4,
    "next_directions": 3, "beyond_tools": 3, "notes": 3, "property_targets": 4,
    "compositions": 4, "target_compositions": 3, "chemical_systems": 4,
    "required_elements": 4, "excluded_elements": 6, "methods": 3, "evidence_ids": 3,
    "depends_on": 4, "supported": 6, "refuted": 6,
}
_DROP_KEYS = ("title", "default", "examples")


@dataclass(frozen=True)
class WireSchema:
    """A model's schema as sent to a provider, and the way back.

    Attributes:
        model: The pydantic model answers are validated against.
        name: The schema's name (the model's class name: tool and response-format name).
        schema: The JSON schema sent.
        max_chars: Characters of the longest answer the schema allows (None: unbounded).
    """

    model: type[BaseModel]
    name: str
    schema: dict[str, Any]
    max_chars: int | None
    _source: dict[str, Any] = field(repr=False, default_factory=dict)

    def load(self, payload: Any) -> BaseModel:
        """The answer as a validated model.

        Raises:
            ValueError: The answer is not a JSON object, or a JSON-in-a-string field is not.
            pydantic.ValidationError: It does not match the model.
        """
        if not isinstance(payload, dict):
            raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
        return self.model.model_validate(_restore(payload, self._source,
                                                  self._source.get("$defs", {}), "answer"))

    def describe(self) -> str:
        """The wire schema as compact JSON, for a text prompt."""
        return json.dumps(self.schema, separators=(",", ":"))


def wire_schema(model: type[BaseModel], *, dialect: Dialect = "grammar",
                max_tokens: int | None = None,
                enums: Mapping[str, Sequence[str]] | None = None) -> WireSchema:
    """The bounded wire schema of ``model`` (cached).

    Args:
        dialect: ``grammar`` (local servers), ``openai`` (strict mode, no string lengths) or
            ``tool`` (a tool's argument schema).
        max_tokens: The call's output limit; bounds are scaled down to fit it.
        enums: Allowed values of string fields by field name (e.g. ``tool``: the toolbox's
            names), so a grammar-constrained answer cannot name anything else.
    """
    frozen = tuple(sorted((k, tuple(v)) for k, v in (enums or {}).items() if v))
    return _wire_schema(model, dialect, max_tokens, frozen)


@lru_cache(maxsize=256)
def _wire_schema(model: type[BaseModel], dialect: Dialect, max_tokens: int | None,
                 enums: tuple[tuple[str, tuple[str, ...]], ...]) -> WireSchema:
    source = model.model_json_schema()
    shape = _Shape(source.get("$defs", {}), strings=dialect != "openai", enums=dict(enums))
    target = None if max_tokens is None or not shape.strings else \
        int(max_tokens * CHARS_PER_TOKEN * FILL_SHARE)
    schema = shape.build(source, None)
    size = json_size(schema)
    while target is not None and size is not None and size > target and \
            shape.string_scale > 0.05:
        shape.string_scale *= 0.85
        schema = shape.build(source, None)
        size = json_size(schema)
    while target is not None and size is not None and size > target and shape.list_scale > 0.1:
        shape.list_scale *= 0.75
        schema = shape.build(source, None)
        size = json_size(schema)
    return WireSchema(model=model, name=model.__name__, schema=schema, max_chars=size,
                      _source=source)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.rsplit("/", 1)[1]
        return defs[name], name
    return node, None


def _free_object(node: dict[str, Any]) -> bool:
    return node.get("type") == "object" and not node.get("properties")


@dataclass
class _Shape:
    """How a schema is bounded: string and list scales, enums by field name."""

    defs: dict[str, Any]
    strings: bool
    enums: dict[str, tuple[str, ...]]
    string_scale: float = 1.0
    list_scale: float = 1.0

    def build(self, node: dict[str, Any], field_name: str | None) -> dict[str, Any]:
        """The wire form of one schema node."""
        node, ref_name = _resolve(node, self.defs)
        out = {k: copy.deepcopy(v) for k, v in node.items()
               if k not in _DROP_KEYS and k not in ("$defs", "$ref")}
        if "anyOf" in node:
            out["anyOf"] = [self.build(option, field_name) for option in node["anyOf"]]
            return out
        kind = node.get("type")
        if _free_object(node):
            return self._json_string(node, field_name)
        if kind == "object":
            name = ref_name or node.get("title") or ""
            omit = OMIT["*"] | OMIT.get(name, frozenset())
            required = set(node.get("required", []))
            fills = FILLS.get(name, {})
            props = {key: self.build(value, key)
                     for key, value in node.get("properties", {}).items()
                     if not (key in omit and (key not in required or key in fills))}
            out.update(properties=props, required=list(props), additionalProperties=False)
            return out
        if kind == "array":
            out["items"] = self.build(node.get("items", {}), field_name)
            limit = LIST_ITEMS.get(field_name or "", DEFAULT_ITEMS)
            if "maxItems" in node:
                limit = min(limit, int(node["maxItems"]))
            floor = max(1, int(node.get("minItems", 0)))
            out["maxItems"] = max(floor, round(limit * self.list_scale))
            return out
        if kind == "string" and field_name in self.enums and "enum" not in node:
            out.pop("maxLength", None)
            out.pop("minLength", None)
            out["enum"] = list(self.enums[field_name])
        elif kind == "string" and "enum" not in node and "const" not in node and self.strings:
            limit = STRING_CHARS.get(field_name or "", DEFAULT_STRING_CHARS)
            if "maxLength" in node:
                limit = min(limit, int(node["maxLength"]))
            floor = min(limit, max(MIN_STRING_CHARS, int(node.get("minLength", 0))))
            out["maxLength"] = max(floor, int(limit * self.string_scale))
        elif kind == "string" and not self.strings:
            out.pop("maxLength", None)
            out.pop("minLength", None)
        return out

    def _json_string(self, node: dict[str, Any], field_name: str | None) -> dict[str, Any]:
        text: dict[str, Any] = {"type": "string", "description": (
            (node.get("description", "") + " ").lstrip()
            + 'Written as one JSON object inside this string, e.g. "{\\"key\\": 1}".')}
        if self.strings:
            limit = STRING_CHARS.get(field_name or "", DEFAULT_STRING_CHARS)
            text["maxLength"] = max(MIN_STRING_CHARS, int(limit * self.string_scale))
        return text


def json_size(node: dict[str, Any], *, string_chars: int | None = None,
              items: int | None = None, free_object: int | None = None) -> int | None:
    """Characters of the longest JSON text a schema allows.

    A string without ``maxLength`` counts as ``string_chars``, a list without ``maxItems`` as
    ``items`` of its item, an untyped node or an object without properties as ``free_object``
    (an object without properties as ``{}`` when that is None); None (unbounded) when one of
    them is needed and not given.
    """
    def size(child: dict[str, Any]) -> int | None:
        return json_size(child, string_chars=string_chars, items=items,
                         free_object=free_object)

    if "anyOf" in node:
        sizes = [size(option) for option in node["anyOf"]]
        return None if None in sizes else max(s for s in sizes if s is not None)
    if "enum" in node:
        return max(len(json.dumps(v)) for v in node["enum"])
    if "const" in node:
        return len(json.dumps(node["const"]))
    kind = node.get("type")
    if kind == "string":
        chars = node.get("maxLength", string_chars)
        return None if chars is None else int(chars) + 2
    if kind in _SCALAR_CHARS:
        return _SCALAR_CHARS[kind]
    if kind == "array":
        item = size(node.get("items", {}))
        count = node.get("maxItems", items)
        return None if item is None or count is None else 2 + int(count) * (item + 2)
    if kind == "object" and (node.get("properties") or free_object is None):
        total = 2
        for key, value in node.get("properties", {}).items():
            value_size = size(value)
            if value_size is None:
                return None
            total += len(key) + 4 + value_size
        return total
    return free_object


#: Characters of the longest JSON scalar of each type.
_SCALAR_CHARS = {"integer": 17, "number": 25, "boolean": 5, "null": 4}


def _restore(value: Any, node: dict[str, Any], defs: dict[str, Any], where: str) -> Any:
    """``value`` with JSON-in-a-string fields decoded and left-out fields filled, following
    the model's own schema ``node``."""
    node, ref_name = _resolve(node, defs)
    if "anyOf" in node:
        if value is None:
            return None
        for option in node["anyOf"]:
            resolved, _ = _resolve(option, defs)
            if resolved.get("type") in ("object", "array") or "$ref" in option:
                if isinstance(value, dict | list | str):
                    return _restore(value, option, defs, where)
        return value
    if _free_object(node):
        if isinstance(value, str):
            text = value.strip() or "{}"
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where} must be a JSON object written as a string; "
                                 f"{text[:80]!r} is not JSON ({exc.msg})") from None
            if not isinstance(decoded, dict):
                raise ValueError(f"{where} must be a JSON object, not {type(decoded).__name__}")
            return decoded
        return value
    if node.get("type") == "object" and isinstance(value, dict):
        name = ref_name or node.get("title") or ""
        out = {**FILLS.get(name, {}), **value}
        for key, sub in node.get("properties", {}).items():
            if key in out:
                out[key] = _restore(out[key], sub, defs, f"{where}.{key}")
        return out
    if node.get("type") == "array" and isinstance(value, list):
        return [_restore(v, node.get("items", {}), defs, f"{where}[{i}]")
                for i, v in enumerate(value)]
    return value

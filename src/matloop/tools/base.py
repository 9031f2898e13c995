"""Typed tools: one :class:`ToolSpec` per capability.

A spec holds everything the rest of matloop needs to know about a tool: its name (a module
constant that callers refer to), its arguments and result models (pydantic, units in field
names), the function that runs it, a one-line summary of a result, and optional hooks that say
which structure files a result produced, which campaign candidates it creates or enriches, and
which evidence it retrieved. The LangChain tool an LLM sees is generated from the spec, so the
contract lives in one place; the campaign and the chat read typed results, never re-parse
JSON by tool name. A new tool is one module plus one line in :mod:`matloop.tools.registry`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from matloop.errors import MatloopError
from matloop.schemas import CandidateResult

Status = Literal["ok", "partial", "error", "no_model"]


class ToolOutput(BaseModel):
    """Fields every tool result has; a failed call is the same model with ``status='error'``."""

    model_config = ConfigDict(extra="ignore")

    status: Status = Field(default="ok", description="ok, partial (some items failed), error "
                           "(nothing usable; see message), no_model (no model for the property).")
    message: str = Field(default="", description="What went wrong, when status is not ok.")
    hint: str = Field(default="", description="What to do about it.")


ArgsT = TypeVar("ArgsT", bound=BaseModel)
ResultT = TypeVar("ResultT", bound=ToolOutput)


def short_validation_error(exc: ValidationError) -> str:
    """A validation error in one line: ``field: problem; ...``."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
             for e in exc.errors()[:5]]
    return "; ".join(parts)


@dataclass(frozen=True)
class CandidateContext:
    """What a tool's candidate hook needs from the campaign."""

    record_id: str
    arguments: dict[str, Any]
    known: Mapping[str, CandidateResult]
    by_path: Mapping[str, str]
    hypothesis_id: str | None
    iteration: int


@dataclass(frozen=True)
class ToolSpec(Generic[ArgsT, ResultT]):
    """One tool.

    Attributes:
        name: The tool's name (what plans and LLMs call).
        description: The contract an LLM sees.
        args: Arguments model.
        result: Result model (a :class:`ToolOutput`).
        run: Runs the tool on validated arguments; may raise :class:`MatloopError`.
        summarize: One line about a result (event log, chat, tool records).
        produces: Structure files a result produced, for ``$S2``-style plan references, given
            a selector ('' all, 'ok' usable results, 'stable:N' the N lowest stable).
        candidates: Candidate updates a result implies for a campaign.
        evidence: Retrieved passages a result holds (dicts with an ``id``).
    """

    name: str
    description: str
    args: type[ArgsT]
    result: type[ResultT]
    run: Callable[[ArgsT], ResultT]
    summarize: Callable[[ResultT], str]
    produces: Callable[[ResultT, str], list[str]] | None = None
    candidates: Callable[[ResultT, CandidateContext], list[dict[str, Any]]] | None = None
    evidence: Callable[[ResultT], list[dict[str, Any]]] | None = None

    def fail(self, message: str, hint: str | None = "") -> ResultT:
        """The error result of this tool (the one error envelope)."""
        return self.result(status="error", message=message, hint=hint or "")

    def invoke(self, arguments: Mapping[str, Any] | ArgsT) -> ResultT:
        """Validate the arguments and run; bad arguments and user-facing errors become an
        error result, never an exception."""
        try:
            args = arguments if isinstance(arguments, self.args) else \
                self.args.model_validate(dict(arguments))
        except ValidationError as exc:
            return self.fail(f"invalid arguments for {self.name}: {short_validation_error(exc)}",
                             hint=f"see the {self.name} argument descriptions")
        try:
            return self.run(args)
        except MatloopError as exc:
            return self.fail(exc.message, exc.hint)

    def parse(self, data: Any) -> ResultT:
        """A result as this tool's model (checkpoints hold results as plain dicts)."""
        if isinstance(data, self.result):
            return data
        if isinstance(data, BaseModel):
            data = data.model_dump()
        if not isinstance(data, Mapping):
            return self.fail(f"unreadable {self.name} result")
        try:
            return self.result.model_validate(dict(data))
        except ValidationError as exc:
            return self.fail(f"unreadable {self.name} result: {short_validation_error(exc)}")

    @property
    def takes_one_structure(self) -> bool:
        """Whether the tool takes one ``structure`` (a list in a plan is mapped over)."""
        fields = self.args.model_fields
        return "structure" in fields and "structures" not in fields

    def as_langchain(self) -> BaseTool:
        """The LangChain tool an LLM calls; it answers with the result as JSON, and with this
        tool's error result when the arguments do not validate (a model's call that misses a
        required argument is answered, never raised)."""
        spec = self

        def call(**kwargs: Any) -> str:
            return spec.invoke(kwargs).model_dump_json(exclude_none=True)

        def invalid(exc: ValidationError) -> str:
            return spec.fail(f"invalid arguments for {spec.name}: {short_validation_error(exc)}",
                             hint=f"see the {spec.name} argument descriptions",
                             ).model_dump_json(exclude_none=True)

        return StructuredTool.from_function(func=call, name=self.name,
                                            description=self.description,
                                            args_schema=self.args,
                                            handle_validation_error=invalid)


@dataclass
class Toolbox:
    """The tools of one campaign or chat session, by name."""

    specs: dict[str, ToolSpec[Any, Any]] = field(default_factory=dict)

    def add(self, spec: ToolSpec[Any, Any]) -> None:
        """Register a tool (a later one of the same name replaces it)."""
        self.specs[spec.name] = spec

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def __getitem__(self, name: str) -> ToolSpec[Any, Any]:
        return self.specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def get(self, name: str) -> ToolSpec[Any, Any] | None:
        """The spec of a tool, or None."""
        return self.specs.get(name)

    @property
    def names(self) -> set[str]:
        """Names of the tools."""
        return set(self.specs)

    def only(self, names: Iterable[str]) -> Toolbox:
        """A toolbox with just these tools."""
        wanted = set(names)
        return Toolbox({n: s for n, s in self.specs.items() if n in wanted})

    def langchain(self) -> list[BaseTool]:
        """LangChain tools for an LLM, in name order."""
        return [self.specs[n].as_langchain() for n in sorted(self.specs)]

    def catalogue(self) -> str:
        """One line per tool: name, first line of its contract, argument schema (JSON)."""
        lines = []
        for name in sorted(self.specs):
            spec = self.specs[name]
            props = spec.args.model_json_schema().get("properties", {})
            lines.append(f"- {name}: {spec.description.strip().splitlines()[0]} "
                         f"args={json.dumps(props)}")
        return "\n".join(lines)

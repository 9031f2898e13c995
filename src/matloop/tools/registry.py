"""All agent tools, built once per campaign or chat session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool

from matloop.materials.engine import MaterialsEngine


def build_tools(engine: MaterialsEngine, *, run_dir: Path | None = None,
                knowledge: Any = None, chat_model: Any = None) -> dict[str, BaseTool]:
    """Tools by name: materials engine, generation, knowledge base, property surrogates.

    Args:
        engine: The materials engine (MLIP, cache, references).
        run_dir: Where tools write artifacts (CIFs, candidates.json).
        knowledge: A KnowledgeBase; opened from the settings' data directory when None.
        chat_model: Chat model for LLM few-shot generation (None: that method is off).
    """
    from matloop.tools.generation import make_generation_tools
    from matloop.tools.materials import make_materials_tools

    tools: list[BaseTool] = list(make_materials_tools(engine, run_dir=run_dir))
    tools += make_generation_tools(engine, run_dir=run_dir, chat_model=chat_model)
    tools += _knowledge_tools(knowledge)
    tools += _surrogate_tools()
    return {t.name: t for t in tools}


def _knowledge_tools(knowledge: Any) -> list[BaseTool]:
    from matloop.knowledge import KnowledgeBase
    from matloop.tools.retrieval import make_retrieval_tools

    kb = knowledge if knowledge is not None else KnowledgeBase()
    return list(make_retrieval_tools(kb))


def _surrogate_tools() -> list[BaseTool]:
    from matloop.tools.surrogates import make_surrogate_tools

    return list(make_surrogate_tools())


def property_models() -> set[str]:
    """Properties that have a trained surrogate in the user's data directory."""
    from matloop.surrogates import available_properties

    return set(available_properties())

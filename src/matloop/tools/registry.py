"""All agent tools of a campaign or chat session, built once per run: one line per family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matloop.files import FileAccess
from matloop.knowledge.store import KnowledgeBase
from matloop.materials.engine import MaterialsEngine
from matloop.tools.base import Toolbox
from matloop.tools.generation import generation_tools
from matloop.tools.materials import ToolProgress, materials_tools
from matloop.tools.properties import property_tools
from matloop.tools.retrieval import retrieval_tools
from matloop.tools.surrogates import surrogate_tools


def build_toolbox(engine: MaterialsEngine, *, run_dir: Path | None = None,
                  access: FileAccess | None = None, knowledge: KnowledgeBase | None = None,
                  chat_model: Any = None, use_robocrys: bool = True,
                  progress: ToolProgress | None = None) -> Toolbox:
    """Materials engine, generation, knowledge-base and property tools.

    Args:
        engine: The materials engine (MLIP, cache, references).
        run_dir: Where tools write artifacts (CIFs, candidates.json).
        access: Folders structure files may be read from (default: the working directory and
            the run directory).
        knowledge: A knowledge base (default: the one in the settings' data directory).
        chat_model: Chat model for LLM few-shot generation (None: that method is off).
        progress: Receives ``(tool, stage, done, total)`` from long materials-engine calls.
    """
    if access is None:
        access = FileAccess.working_directory(*([run_dir] if run_dir is not None else []))
    key = engine.settings.mp_api_key
    toolbox = Toolbox()
    for spec in [
        *materials_tools(engine, run_dir=run_dir, access=access, progress=progress),
        *property_tools(engine, access=access),
        *generation_tools(engine, run_dir=run_dir, chat_model=chat_model),
        *retrieval_tools(knowledge if knowledge is not None else KnowledgeBase(),
                         access=access, use_robocrys=use_robocrys),
        *surrogate_tools(access=access,
                         mp_api_key=key.get_secret_value() if key is not None else None),
    ]:
        toolbox.add(spec)
    return toolbox


def property_models() -> set[str]:
    """Properties that have a surrogate model available to this installation."""
    from matloop.surrogates import available_properties

    return set(available_properties())

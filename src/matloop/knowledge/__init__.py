"""Knowledge base for matloop.

Persistent vector store, offline embeddings, ingestion, hybrid retrieval with citable
evidence, material cards and synthesis analogs.

Heavy modules (chromadb, sentence-transformers, robocrys) load only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Evidence",
    "KnowledgeBase",
    "MaterialCard",
    "SynthesisAnalog",
    "format_analogs_for_prompt",
    "format_evidence_for_prompt",
    "material_card",
]

if TYPE_CHECKING:
    from matloop.knowledge.analogs import SynthesisAnalog
    from matloop.knowledge.cards import MaterialCard, material_card
    from matloop.knowledge.evidence import (
        Evidence,
        format_analogs_for_prompt,
        format_evidence_for_prompt,
    )
    from matloop.knowledge.store import KnowledgeBase

_WHERE = {
    "Evidence": "matloop.knowledge.evidence",
    "format_evidence_for_prompt": "matloop.knowledge.evidence",
    "format_analogs_for_prompt": "matloop.knowledge.evidence",
    "KnowledgeBase": "matloop.knowledge.store",
    "MaterialCard": "matloop.knowledge.cards",
    "material_card": "matloop.knowledge.cards",
    "SynthesisAnalog": "matloop.knowledge.analogs",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'matloop.knowledge' has no attribute {name!r}")

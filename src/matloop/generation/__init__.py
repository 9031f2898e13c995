"""Candidate generation: prototypes, data-mined substitution, random search, LLM few-shot.

Python API (the campaign graph imports these names)::

    from matloop.generation import GenerationRequest, Candidate, generate, sun_metrics

    request = GenerationRequest(chemsys="Li-Fe-O", n=20, max_atoms=20, seed=0)
    candidates = generate(request, store=engine.store)          # list[Candidate], unique
    metrics = sun_metrics(candidates, engine)                   # relaxes with the MLIP

Built-in methods: ``prototype`` (decorations of the prototype library), ``substitution``
(Hautier data-mined ion substitution of known structures), ``random`` (pyxtal symmetric random
structures, AIRSS-like) and ``llm`` (few-shot generation with a LangChain chat model, only when
one is passed as ``chat_model``). Every candidate is a primitive cell that passed the request's
constraints; validity, uniqueness (StructureMatcher, MatterGen's ltol 0.2 / stol 0.3 /
angle_tol 5) and provenance are attached before it is returned.

Plugging in an external generator (MatterGen, Chemeleon, DiffCSP...)
--------------------------------------------------------------------
Register a function under a name; it then runs through the same filters and metrics::

    from matloop.generation import register_generator

    def mattergen(request, context):
        # request: GenerationRequest (composition or chemsys, spacegroups, max_atoms, n, seed)
        # context.target: resolved constraints (allowed / required elements, composition,
        #     spacegroups, max_atoms); context.store: ReferenceStore or None;
        #     context.reject(method, reason): record a proposal you discard yourself.
        for structure in run_my_model(context.target.label, n=request.n, seed=request.seed):
            yield structure            # a pymatgen Structure, or a Candidate with provenance

    register_generator("mattergen", mattergen)
    generate(GenerationRequest(chemsys="Li-Fe-O", methods=["mattergen"]))

A generator yields proposals best first and may yield more than ``request.n``: generation stops
pulling once enough candidates are accepted. It should be deterministic for a given seed, and
import its heavy dependencies inside the function so that registering costs nothing. A proposal
of the wrong composition, too many atoms, a forbidden space group or (unless
``keep_invalid``) failing validity is recorded as a rejection, never returned.
"""

from __future__ import annotations

from matloop.generation.metrics import Assessment, SunMetrics, sun_metrics
from matloop.generation.models import Candidate, GenerationReport, GenerationRequest, Rejection
from matloop.generation.registry import (
    GenerationContext,
    UnknownGeneratorError,
    available_generators,
    generate,
    generate_report,
    register_generator,
)
from matloop.generation.targets import GenerationError

__all__ = [
    "Assessment",
    "Candidate",
    "GenerationContext",
    "GenerationError",
    "GenerationReport",
    "GenerationRequest",
    "Rejection",
    "SunMetrics",
    "UnknownGeneratorError",
    "available_generators",
    "generate",
    "generate_report",
    "register_generator",
    "sun_metrics",
]

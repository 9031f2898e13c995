"""Candidate generation: prototypes, data-mined substitution, random search, LLM few-shot.

Python API (the campaign graph imports these names)::

    from matloop.generation import GenerationRequest, Candidate, generate, sun_metrics

    request = GenerationRequest(chemsys="Li-Fe-O", n=20, max_atoms=20, seed=0)
    candidates = generate(request, store=engine.store)          # list[Candidate], unique
    metrics = sun_metrics(candidates, engine)                   # relaxes with the MLIP

Built-in methods: ``prototype`` (decorations of the 75-type prototype library), ``aflow``
(decorations of pymatgen's 288-structure AFLOW prototype library, :mod:`.aflow`),
``substitution`` (Hautier data-mined ion substitution of known structures: the store, both
prototype libraries), ``random`` (pyxtal symmetric random structures, AIRSS-like; with
``random_prior`` space groups and Wyckoff patterns come from known analogues, :mod:`.priors`)
and ``llm`` (few-shot generation with a LangChain chat model, only when one is passed as
``chat_model``). ``methods=None`` runs prototype, substitution and random; ``"all"`` adds aflow
(and llm). Every candidate is a primitive cell that passed the request's constraints; validity,
uniqueness (StructureMatcher, MatterGen's ltol 0.2 / stol 0.3 / angle_tol 5) and provenance are
attached before it is returned.

Search options of :class:`GenerationRequest`: ``exclude_prototypes`` / ``exclude_structures``
hide structure types from both prototype libraries, ``holdout_formulas`` (and
``holdout_strict``) keep known structures out of substitution parents and random-search
analogues (:mod:`.holdout`), ``substitution_sources`` chooses parents, ``random_prior`` and
``random_explore_fraction`` steer random search, ``aflow_assignments`` caps element
assignments per AFLOW prototype. Alloys and metallic compounds (Ti2AlN, Co2MnSi) need no
charge balance and come from a stoichiometry grid (:mod:`.chemistry`).

Refinement moves for a search's expansion step (:mod:`.refine`)::

    from matloop.generation.refine import distort, neighbour_substitutions, next_prototypes

    distort(best, n=4, seed=0)                           # subgroup / supercell distortions
    neighbour_substitutions(best, allowed_elements=["Ca", "Ba", "Zr"])
    next_prototypes("SrTiO3", tried=candidates_so_far, n=3)

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

"""The generator registry and :func:`generate`, which runs generators and filters their output.

A generator is ``fn(request, context) -> Iterable[Candidate | Structure]``, yielding proposals
best first (see :mod:`matloop.generation` for the full contract). :func:`generate` pulls from
the requested generators in turn, one accepted candidate each, and passes every proposal
through the same filter: primitive cell, requested composition or chemical system, cell size,
space group, validity, then de-duplication (StructureMatcher) against everything accepted so
far, so no MLIP time is spent on duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from matloop.errors import MatloopError
from matloop.generation.chemistry import check_validity
from matloop.generation.holdout import Exclusions, exclusions_for
from matloop.generation.matching import NoveltyIndex, UniqueIndex
from matloop.generation.models import (
    BUILTIN_METHODS,
    Candidate,
    GenerationReport,
    GenerationRequest,
    Rejection,
)
from matloop.generation.targets import GenerationError, Target, resolve
from matloop.logs import quiet_third_party

GeneratorFn = Callable[[GenerationRequest, "GenerationContext"], Iterable[Candidate | Structure]]

#: Proposals one generator may make per requested candidate before it is stopped.
MAX_PROPOSALS_PER_CANDIDATE = 50


class UnknownGeneratorError(GenerationError, ValueError):
    """A method name that is not registered."""


@dataclass
class GenerationContext:
    """What a generator may use besides the request."""

    target: Target
    store: Any = None
    chat_model: Any = None
    few_shot_k: int = 6
    rejected: list[Rejection] = field(default_factory=list)
    exclusions: Exclusions = field(default_factory=Exclusions)

    def reject(self, method: str, reason: str, *, formula: str | None = None,
               detail: dict[str, Any] | None = None) -> None:
        """Record a proposal that did not become a candidate."""
        self.rejected.append(Rejection(method=method, reason=reason, formula=formula,
                                       detail=detail or {}))


_REGISTRY: dict[str, GeneratorFn] = {}


def register_generator(name: str, fn: GeneratorFn) -> None:
    """Register a generator under ``name`` (replacing one of the same name)."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"generator name {name!r} must be alphanumeric (with - or _)")
    _REGISTRY[name] = fn


def available_generators() -> list[str]:
    """Registered generator names, built-ins first."""
    _register_builtins()
    return [*[m for m in BUILTIN_METHODS if m in _REGISTRY],
            *sorted(m for m in _REGISTRY if m not in BUILTIN_METHODS)]


def _register_builtins() -> None:
    if all(m in _REGISTRY for m in BUILTIN_METHODS):
        return
    from matloop.generation.aflow import aflow_generator
    from matloop.generation.llm import llm_generator
    from matloop.generation.prototype import prototype_generator
    from matloop.generation.random_search import random_generator
    from matloop.generation.substitution import substitution_generator

    for name, fn in (("prototype", prototype_generator), ("aflow", aflow_generator),
                     ("substitution", substitution_generator), ("random", random_generator),
                     ("llm", llm_generator)):
        _REGISTRY.setdefault(name, fn)


def resolve_methods(methods: Iterable[str] | None, *, chat_model: Any = None) -> list[str]:
    """Method names to run, in order. None: prototype, substitution, random (and llm with a
    chat model); 'all': every built-in that can run (aflow too)."""
    _register_builtins()
    llm = ["llm"] if chat_model is not None else []
    default = ["prototype", "substitution", "random", *llm]
    everything = ["prototype", "aflow", "substitution", "random", *llm]
    if not methods:
        return default
    out: list[str] = []
    for m in methods:
        for name in (everything if m == "all" else [m.strip().lower()]):
            if name not in _REGISTRY:
                raise UnknownGeneratorError(
                    f"unknown generation method {name!r}",
                    hint=f"valid: {', '.join(available_generators())}, all")
            if name == "llm" and chat_model is None:
                raise GenerationError("the llm method needs a chat model",
                                      hint="pass chat_model= (CLI: --model provider:model)")
            if name not in out:
                out.append(name)
    return out


def spacegroup_number(structure: Structure) -> int | None:
    """Space-group number at symprec 0.1, or None where spglib fails."""
    with quiet_third_party():
        try:
            return int(SpacegroupAnalyzer(structure, symprec=0.1).get_space_group_number())
        except Exception:  # noqa: BLE001 - spglib fails on some distorted cells
            return None


def primitive_cell(structure: Structure) -> Structure:
    """Reduced primitive cell (tolerance 0.1), or the cell as given where that fails."""
    with quiet_third_party():
        try:
            return structure.get_primitive_structure(tolerance=0.1).get_reduced_structure()
        except Exception:  # noqa: BLE001 - keep the cell as given
            return structure


def finalize(item: Candidate | Structure, method: str, request: GenerationRequest,
             context: GenerationContext) -> Candidate | Rejection:
    """Check one proposal against the request and wrap it as a candidate (or a rejection)."""
    if isinstance(item, Candidate):
        structure, provenance = item.get_structure(), dict(item.provenance)
    elif isinstance(item, Structure):
        structure, provenance = item, {"generator": method, "seed": request.seed}
    else:
        return Rejection(method=method, reason=f"generator yielded {type(item).__name__}, not a "
                                               "Candidate or Structure")
    formula = structure.composition.reduced_formula
    if not structure.is_ordered:
        return Rejection(method=method, reason="disordered structure", formula=formula)
    structure = primitive_cell(structure)
    if why := context.target.accepts(structure.composition):
        return Rejection(method=method, reason=why, formula=formula)
    if len(structure) > request.max_atoms:
        return Rejection(method=method, formula=formula,
                         reason=f"{len(structure)} atoms > max_atoms={request.max_atoms}")
    sg = spacegroup_number(structure)
    if context.target.spacegroups is not None and sg not in context.target.spacegroups:
        return Rejection(method=method, formula=formula,
                         reason=f"space group {sg} is not among "
                                f"{sorted(context.target.spacegroups)}")
    valid, notes = check_validity(structure)
    if not valid and not request.keep_invalid:
        return Rejection(method=method, formula=formula, reason="invalid: " + "; ".join(notes),
                         detail={"provenance": provenance})
    candidate = Candidate.from_structure(structure, method=method, provenance=provenance,
                                         spacegroup=sg)
    candidate.valid, candidate.validity_notes = valid, notes
    return candidate


def generate_report(request: GenerationRequest, *, store: Any = None, chat_model: Any = None,
                    few_shot_k: int = 6,
                    progress: Callable[[str, int, int], None] | None = None,
                    ) -> GenerationReport:
    """Run the request's generators and return candidates with what was discarded.

    Args:
        request: What to generate.
        store: ReferenceStore for substitution parents, few-shot examples and exclude_known
            (default: the built-in starter library only).
        chat_model: LangChain chat model for the llm method.
        few_shot_k: Known structures shown to the chat model.
        progress: Callback ``(stage, done, total)``, called as candidates are accepted.

    Raises:
        GenerationError: Bad request, or no candidate at all (with what was rejected).
    """
    start = time.perf_counter()
    target = resolve(request)
    methods = resolve_methods(request.methods, chat_model=chat_model)
    context = GenerationContext(target=target, store=store, chat_model=chat_model,
                                few_shot_k=few_shot_k, exclusions=exclusions_for(request))
    unique = UniqueIndex()
    known = NoveltyIndex(store, elements=target.allowed) if (
        request.exclude_known or request.novel_compositions_only) else None
    report = GenerationReport(request=request, candidates=[])
    iterators = {m: iter(_REGISTRY[m](request, context)) for m in methods}
    pulled = dict.fromkeys(methods, 0)
    seconds = dict.fromkeys(methods, 0.0)
    screened = request.prior_oversample > 1 and target.composition is None
    wanted = request.n * (request.prior_oversample if screened else 1)
    while iterators and len(report.candidates) < wanted:
        for method in list(iterators):
            t0 = time.perf_counter()
            accepted = _pull_one(method, iterators, pulled, request, context, unique, known,
                                 report)
            seconds[method] += time.perf_counter() - t0
            if accepted is not None:
                report.candidates.append(accepted)
                if progress is not None:
                    progress("generating", len(report.candidates), wanted)
            if len(report.candidates) >= wanted:
                break
    if screened and len(report.candidates) > request.n:
        report.candidates, note = prior_screen(report.candidates, request.n, store=store)
        report.notes.append(note)
    report.rejected = context.rejected
    report.per_method = {m: sum(c.method == m for c in report.candidates) for m in methods}
    report.method_seconds = {m: round(s, 3) for m, s in seconds.items()}
    if context.exclusions:
        report.notes.append(f"held out: {context.exclusions.summary()}")
    report.seconds = round(time.perf_counter() - start, 3)
    if not report.candidates:
        reasons = sorted({r.reason.split(":")[0] for r in context.rejected})[:5]
        raise GenerationError(
            f"no candidate for {target.label} with methods {', '.join(methods)}"
            + (f" (rejected: {'; '.join(reasons)})" if reasons else ""),
            hint="allow more space groups, raise max_atoms, add methods or relax the element "
                 "constraints")
    return report


#: Energy above the store's hull within which the prior screen counts a composition in reach.
PRIOR_THRESHOLD_EV_PER_ATOM = 0.1


def prior_screen(candidates: list[Candidate], keep: int, *, store: Any,
                 ) -> tuple[list[Candidate], str]:
    """Keep ``keep`` candidates, best first by the composition prior's probability that their
    composition lies within :data:`PRIOR_THRESHOLD_EV_PER_ATOM` of the store's hull; the k-th
    structure of a composition is worth half the (k-1)-th (breadth over repeats). Each kept
    candidate's provenance records the probability."""
    from matloop.generation.composition_prior import score_compositions
    from matloop.materials.references import ReferenceStore

    if store is None:
        store = ReferenceStore.from_settings()
    formulas = sorted({c.formula for c in candidates})
    try:
        scores = score_compositions(formulas, store=store,
                                    threshold_ev_per_atom=PRIOR_THRESHOLD_EV_PER_ATOM)
    except MatloopError as exc:
        return candidates[:keep], f"prior screen skipped ({exc})"
    prob = {f: s.probability_within_threshold for f, s in zip(formulas, scores, strict=True)}
    seen: dict[str, int] = {}
    worth = []
    for i, c in enumerate(candidates):
        k = seen.get(c.formula, 0)
        seen[c.formula] = k + 1
        worth.append((-prob[c.formula] * 0.5 ** k, i))
    kept = [candidates[i] for _, i in sorted(worth)[:keep]]
    for c in kept:
        c.provenance["prior_p_within_reach"] = round(prob[c.formula], 4)
    model = scores[0].provenance if scores else None
    return kept, (f"prior screen: kept {len(kept)} of {len(candidates)} candidates "
                  f"({len(formulas)} compositions) by P(within {PRIOR_THRESHOLD_EV_PER_ATOM:g} "
                  f"eV/atom of the hull)" + (f", {model.model_name} v{model.model_version}"
                                             if model else ""))


def _pull_one(method: str, iterators: dict[str, Any], pulled: dict[str, int],
              request: GenerationRequest, context: GenerationContext, unique: UniqueIndex,
              known: NoveltyIndex | None, report: GenerationReport) -> Candidate | None:
    """Pull proposals from one generator until one is accepted or it is exhausted."""
    while method in iterators:
        if pulled[method] >= MAX_PROPOSALS_PER_CANDIDATE * request.n:
            context.reject(method, "proposal limit reached")
            del iterators[method]
            return None
        try:
            item = next(iterators[method])
        except StopIteration:
            del iterators[method]
            return None
        except MatloopError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plug-in's bug must not end the run
            context.reject(method, f"generator failed: {type(exc).__name__}: {exc}"[:300])
            del iterators[method]
            return None
        pulled[method] += 1
        report.proposed += 1
        result = finalize(item, method, request, context)
        if isinstance(result, Rejection):
            context.rejected.append(result)
            continue
        structure = result.get_structure()
        if request.novel_compositions_only and known is not None and (
                result.formula in known.structures or result.formula in known.compositions):
            report.known += 1
            context.reject(method, "known composition", formula=result.formula)
            continue
        if request.exclude_known and known is not None and (
                match := known.structure_match(structure)):
            report.known += 1
            context.reject(method, f"known structure ({match})", formula=result.formula)
            continue
        if request.dedupe and not unique.add(structure):
            report.duplicates += 1
            continue
        return result
    return None


def generate(request: GenerationRequest, *, store: Any = None, chat_model: Any = None,
             few_shot_k: int = 6) -> list[Candidate]:
    """Candidates for a request (see :func:`generate_report` for arguments and errors)."""
    return generate_report(request, store=store, chat_model=chat_model,
                           few_shot_k=few_shot_k).candidates

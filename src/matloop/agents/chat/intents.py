"""Offline understanding of what a materials scientist asks the chat assistant.

:func:`understand` reads one message, with the :class:`ConversationContext` of the earlier
turns, into an :class:`Understanding`: the intent (stability, known phases, a property, a
comparison, synthesis, relaxing a structure, a new campaign, a question about an earlier
campaign, the literature, help), the entities it names (see
:mod:`matloop.agents.chat.chemistry` and :mod:`matloop.agents.chat.entities`), what is still
needed to answer, which entities came from earlier turns, and a one-line reading. The models
live in :mod:`matloop.agents.chat.models` and are re-exported here.

It is deterministic, needs no LLM and no tools, and takes well under a millisecond for a
typical question (pasted structures whose formula needs symmetry take longer; an 8000-character
message takes up to about 0.3 s). Intents are
scored from cue words; the entities then decide between close readings (a stability question
needs a compound, a known-phases question a system) and fill the gaps of elliptical follow-ups
("and its band gap?", "what about the Na analogue?") from the context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from matloop.agents.chat.chemistry import (
    ELEMENT_NAMES,
    SYMBOLS,
    Chemistry,
    chemsys,
    elements_of,
    normalise_formula_text,
    read_chemistry,
    substitute,
)
from matloop.agents.chat.cues import (
    CAMPAIGN_VERBS,
    FOLLOWUP,
    HELP,
    KNOWN_CLASS,
    MATERIALS_WORDS,
    PRONOUN,
    PROPERTY_LABELS,
    SWAP,
    cue_scores,
)
from matloop.agents.chat.entities import (
    PROPERTY_UNITS,
    Constraint,
    PastedStructure,
    constraints_in,
    find_structure,
    hypothesis_id_in,
    paths_in,
    properties_in,
    run_id_in,
    unsupported_properties,
)
from matloop.agents.chat.models import (
    INTENTS,
    ConversationContext,
    Entities,
    Intent,
    NumericConstraint,
    PropertyMention,
    StructureText,
    Understanding,
)

#: Intents whose answer is about one or more compounds.
_NEEDS_COMPOUND = ("stability", "property", "synthesis")
#: Intents a bare follow-up ("and GaP?") may continue.
_CONTINUABLE = ("stability", "known_phases", "property", "compare", "synthesis", "literature")


def _symbol(word: str) -> str | None:
    if word in SYMBOLS:
        return word
    if word.lower() in ELEMENT_NAMES:
        return ELEMENT_NAMES[word.lower()]
    fixed = word[:1].upper() + word[1:].lower()
    return fixed if len(word) <= 2 and fixed in SYMBOLS else None


@dataclass
class _Message:
    """One message as read, before the intent is chosen."""

    rest: str          # the message without a pasted structure
    body: str          # ... and without typed paths
    lowered: str
    chem: Chemistry
    ent: Entities
    props: list[str]
    constraints: list[Constraint]
    words: int
    followup: bool
    structure: PastedStructure | None = None
    systems: list[str] = field(default_factory=list)

    @property
    def has_compound(self) -> bool:
        return bool(self.ent.formulas) or self.structure is not None


def _read(text: str, uploaded: str | None, ctx: ConversationContext) -> _Message:
    """Entities of the message itself."""
    structure, rest = find_structure(text)
    if structure is None and uploaded:
        structure, _ = find_structure("\n" + uploaded)
    paths = paths_in(rest)
    body = rest
    for p in paths:
        body = body.replace(p, " ")
    body = normalise_formula_text(body)
    lowered = body.lower()
    chem = read_chemistry(body)
    ent = Entities(formulas=list(chem.formulas), elements=list(chem.elements),
                   polymorphs=list(chem.polymorphs), unknown_symbols=list(chem.unknown_symbols),
                   unresolved_names=list(chem.unresolved_names), paths=paths,
                   unsupported_properties=unsupported_properties(lowered))
    for glued in chem.glued_systems:  # "the LiFeO system" names a system, not a formula
        symbols = sorted(re.findall(r"[A-Z][a-z]?", glued))
        ent.formulas = [f for f in ent.formulas if elements_of(f) != symbols]
    if structure is not None:
        ent.structure = StructureText(
            format="cif" if structure.format == "cif" else "poscar", text=structure.text,
            formula=structure.formula, n_atoms=structure.n_atoms, problem=structure.problem)
        ent.unknown_symbols += [s for s in structure.unknown_symbols
                                if s not in ent.unknown_symbols]
    props = properties_in(chem.masked, chem.masked.lower())
    ent.run_id = run_id_in(body)
    ent.hypothesis_id = hypothesis_id_in(lowered, about_runs=ctx.last_intent in (
        "campaign", "run_question") or bool(ent.run_id))
    return _Message(rest=rest, body=body, lowered=lowered, chem=chem, ent=ent, props=props,
                    constraints=constraints_in(lowered, props),
                    words=len(re.findall(r"\w+", lowered)),
                    followup=bool(FOLLOWUP.search(lowered) or PRONOUN.search(lowered)),
                    structure=structure, systems=list(chem.systems))


def _score(msg: _Message, ctx: ConversationContext) -> dict[str, float]:
    """Cue scores, weighed against the entities; also settles the chemical systems."""
    scores = cue_scores(msg.lowered)
    ent, chem = msg.ent, msg.chem
    if "e_above_hull" in msg.props:
        scores["stability"] += 1
    property_words = [p for p in msg.props if p != "e_above_hull"]
    scores["property"] += 3 if property_words else 0
    if ent.unsupported_properties:
        scores["literature"] += 4
    if msg.structure is not None:
        scores["relax"] += 4
        if scores["stability"]:
            scores["stability"] += 3
        if property_words:
            scores["property"] += 3
    if ent.paths:
        scores["relax"] += 2
        if scores["stability"]:
            scores["stability"] += 3
    if ent.run_id or ent.hypothesis_id:
        scores["run_question"] += 5
    if msg.constraints and not msg.has_compound:
        scores["campaign"] += 2
    first = re.match(r"\s*(?:please\s+|pls\s+|can\s+you\s+|could\s+you\s+)?(\w+)", msg.lowered)
    if first and first.group(1) in CAMPAIGN_VERBS:
        scores["campaign"] += 2
    systems = msg.systems
    if scores["known_phases"] and not systems:  # "between Ba, Ti and O", "oxides of barium..."
        for group in chem.element_lists:
            systems.append(chemsys(group + chem.anion_words))
        named = [e for e in chem.elements if e not in chem.anion_words]
        if not systems and len(named) >= 2 and not ent.formulas:
            systems.append(chemsys(named + chem.anion_words))
    ent.chemical_systems = list(dict.fromkeys(s for s in systems if len(s.split("-")) >= 2))
    # A stability question about a system, not a compound, asks which phases are stable.
    if scores["stability"] and not msg.has_compound and ent.chemical_systems:
        scores["known_phases"] += scores["stability"]
        scores["stability"] = 0.0
    # Comparing systems, not compounds ("compare the hull of Li-Mn-O and Li-Fe-O"): their
    # known phases side by side.
    if scores["compare"] and not msg.has_compound and len(ent.chemical_systems) >= 2:
        scores["known_phases"] += scores["compare"]
        scores["compare"] = 0.0
    # What is known about a class of materials is a literature question, not a new search.
    if not msg.has_compound and not ent.chemical_systems and KNOWN_CLASS.search(msg.lowered):
        scores["literature"] += 4
    if msg.has_compound:
        for intent in _NEEDS_COMPOUND:
            if scores[intent]:
                scores[intent] += 1
        if scores["stability"] and scores["known_phases"]:
            scores["known_phases"] -= 2
    if ent.chemical_systems and scores["known_phases"]:
        scores["known_phases"] += 1
    n_subjects = len(ent.formulas) + (1 if msg.structure is not None else 0)
    if len(ent.polymorphs) >= 2:
        n_subjects = max(n_subjects, 2)
    context_pair = len(ctx.recent_formulas) >= 2 and ctx.last_intent is not None and (
        msg.followup or not ent.formulas)
    if scores["compare"] and (n_subjects >= 2 or context_pair or (
            n_subjects == 1 and ctx.recent_formulas and msg.followup)):
        scores["compare"] += 2
    if HELP.search(msg.lowered):
        scores["help"] = 6.0
    return scores


def _chemistry_signal(msg: _Message) -> bool:
    ent = msg.ent
    return bool(ent.formulas or ent.chemical_systems or ent.elements or msg.structure
                or ent.paths or ent.run_id or ent.hypothesis_id or ent.unknown_symbols
                or ent.polymorphs or ent.unresolved_names or msg.props
                or MATERIALS_WORDS.search(msg.lowered))


def _choose(msg: _Message, scores: dict[str, float], ctx: ConversationContext,
            resolved: list[str]) -> tuple[str, float, float]:
    """Pick the intent; return it with its score and the runner-up's."""
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    intent, top = ranked[0]
    second = ranked[1][1]
    signal = _chemistry_signal(msg)
    if top == 0 and ctx.last_intent in _CONTINUABLE and (msg.followup or signal) and (
            msg.words <= 8 or msg.followup):
        resolved.append("intent")  # elliptical follow-up: continue the previous intent
        return ctx.last_intent, 3.0, 0.0
    if top == 0 and msg.structure is not None:
        return "relax", top, second
    if top == 0 and msg.ent.chemical_systems and not msg.ent.formulas and msg.words <= 6:
        return "known_phases", 2.0, 0.0  # a bare system: what is in it
    if top == 0:
        return "unknown", top, second
    if not signal and ctx.last_intent is None and msg.words > 2 and intent not in (
            "help", "run_question"):
        return "unknown", 0.0, top  # cue words without any chemistry: not our question
    return intent, top, second


def _swap(msg: _Message, base: str) -> tuple[str, str] | None:
    """Find the (old, new) element swap a follow-up asks for on ``base``, if any."""
    for pattern in SWAP:
        m = pattern.search(msg.body)
        if m:
            old, new = _symbol(m.group("old")), _symbol(m.group("new"))
            if old and new:
                return old, new
    elements = [e for e in msg.chem.elements if e not in elements_of(base)]
    if len(elements) == 1:
        new = elements[0]
    elif len(msg.chem.anion_words) == 1 and not elements:
        new = msg.chem.anion_words[0]  # "and the sulfide?"
    else:
        return None
    result = substitute(base, new)
    if result is None:
        return None
    return next(s for s in elements_of(base) if s not in elements_of(result)), new


def _from_context(msg: _Message, intent: str, ctx: ConversationContext,
                  resolved: list[str]) -> None:
    """Fill what an elliptical message leaves out from the earlier turns."""
    ent, lowered = msg.ent, msg.lowered
    short = msg.followup or msg.words <= 8
    if ctx.last_formulas and not msg.has_compound and intent in (*_NEEDS_COMPOUND, "compare",
                                                                 "relax"):
        swap = _swap(msg, ctx.last_formulas[0])
        new_formula = substitute(ctx.last_formulas[0], swap[1], swap[0]) if swap else None
        if swap and new_formula:
            ent.formulas = [new_formula]
            ent.substitution = {swap[0]: swap[1]}
            resolved.append("formulas")
    if not ent.formulas and msg.structure is None and intent in _NEEDS_COMPOUND:
        if ctx.last_subject == "structure" and ctx.last_structure is not None:
            ent.structure = ctx.last_structure
            resolved.append("structure")
        elif ctx.last_formulas and short:
            ent.formulas = list(ctx.last_formulas[:1])
            resolved.append("formulas")
    if intent == "compare":
        if ent.formulas and ctx.last_formulas and re.search(r"\b(?:it|this|that)\b", lowered) \
                and ctx.last_formulas[0] not in ent.formulas:
            ent.formulas = [ctx.last_formulas[0], *ent.formulas]  # "compare it with X"
            resolved.append("formulas")
        count = _count_asked(lowered)
        if len(ent.formulas) < count and len(ent.polymorphs) < 2:
            pool = [f for f in ctx.last_formulas + ctx.recent_formulas if f not in ent.formulas]
            if pool and (msg.followup or not ent.formulas or msg.words <= 8):
                ent.formulas = list(dict.fromkeys(pool))[:count - len(ent.formulas)] + \
                    ent.formulas
                resolved.append("formulas")
    if intent == "known_phases" and not ent.chemical_systems:
        if ent.formulas:
            ent.chemical_systems = [chemsys(elements_of(ent.formulas[0]))]
        elif ctx.last_system and short:
            ent.chemical_systems = [ctx.last_system]
            resolved.append("chemical_systems")
    if intent == "run_question" and not ent.run_id and ctx.last_run_id:
        ent.run_id = ctx.last_run_id
        resolved.append("run_id")
    # An element named on its own is the compound ("band gap of Si").
    if intent in (*_NEEDS_COMPOUND, "compare") and not ent.formulas and ent.structure is None \
            and len(msg.chem.elements) == 1 and not ent.chemical_systems:
        ent.formulas = [msg.chem.elements[0]]
    # A stability question is about the hull; a continued property question keeps the
    # property of the turn before.
    props = msg.props
    if intent == "stability" or (intent == "compare" and re.search(r"stab", lowered)):
        props = ["e_above_hull", *[p for p in props if p != "e_above_hull"]]
    if intent in ("property", "compare") and not props and ctx.last_properties and \
            ctx.last_intent in ("property", "compare") and (short or "intent" in resolved):
        props = list(ctx.last_properties)
        resolved.append("properties")
    ent.properties = [PropertyMention(name=p, unit=PROPERTY_UNITS[p]) for p in props]
    ent.constraints = [NumericConstraint(property=c.property, unit=c.unit, min=c.min, max=c.max,
                                         text=c.text) for c in msg.constraints]


def _count_asked(lowered: str) -> int:
    """How many compounds a comparison asks for ("all three" -> 3; default 2)."""
    m = re.search(r"\b(?:all|the)\s+(two|three|four|five|[2-6])\b", lowered)
    if not m:
        return 2
    word = m.group(1)
    return int(word) if word.isdigit() else {"two": 2, "three": 3, "four": 4, "five": 5}[word]


def understand(text: str, *, context: ConversationContext | None = None,
               uploaded: str | None = None) -> Understanding:
    """Read one chat message into an :class:`Understanding`.

    Args:
        text: The message.
        context: Entities of the earlier turns (see :class:`ConversationContext`). It is not
            changed here: call ``context.update(result)`` once the turn is answered.
        uploaded: Text of a structure file uploaded with the message (CIF or POSCAR), if any.

    Returns:
        The intent, entities, confidence, what is missing, what came from earlier turns, and
        a one-line reading.

    """
    ctx = context or ConversationContext()
    msg = _read(text, uploaded, ctx)
    scores = _score(msg, ctx)
    resolved: list[str] = []
    intent, top, second = _choose(msg, scores, ctx, resolved)
    _from_context(msg, intent, ctx, resolved)
    signal = _chemistry_signal(msg) or any(r in resolved for r in (
        "formulas", "structure", "chemical_systems", "run_id"))
    missing = _missing(intent, msg.ent, ctx, followup=msg.followup and msg.words >= 2)
    if intent == "unknown" and msg.ent.formulas and not missing:
        missing.append(f"what to find out about {', '.join(msg.ent.formulas)} (stability, a "
                       f"property, synthesis, known phases...)")
    resolved = list(dict.fromkeys(resolved))
    return Understanding(
        intent=intent,  # one of INTENTS by construction
        entities=msg.ent, confidence=_confidence(intent, top, second, missing, signal, resolved),
        missing=missing, resolved_from_context=resolved,
        reading=_reading(intent, msg.ent, text=msg.rest, resolved=resolved))


def _not_elements(symbols: list[str]) -> str:
    quoted = ", ".join(f"'{s}'" for s in symbols)
    return f"{quoted} {'is not a chemical element' if len(symbols) == 1 else 'are not elements'}"


def _subject_missing(ent: Entities) -> list[str]:
    out = []
    if ent.unknown_symbols:
        out.append(f"a valid formula: {_not_elements(ent.unknown_symbols)}")
    for name in ent.unresolved_names:
        out.append(f"a formula for {name}: the name has no single formula offline")
    if ent.paths:
        out.append(_upload(ent.paths))
    if not out:
        out.append("a formula or a structure (e.g. 'Is LiFePO4 stable?')")
    return out


def _upload(paths: list[str]) -> str:
    return (f"an uploaded structure file: {', '.join(paths)} is a path typed in the message, "
            f"which the assistant cannot read (upload the file or paste its contents)")


def _missing(intent: str, ent: Entities, ctx: ConversationContext, *,
             followup: bool) -> list[str]:
    """List what is still needed to answer."""
    out: list[str] = []
    has_subject = bool(ent.formulas) or ent.structure is not None
    if ent.structure is not None and ent.structure.problem:
        out.append(f"a usable structure: {ent.structure.problem}")
    if intent in _NEEDS_COMPOUND and not has_subject:
        out += _subject_missing(ent)
    elif intent in _NEEDS_COMPOUND and ent.unknown_symbols:
        out += _subject_missing(ent)[:1]
    if intent == "property" and not ent.properties and not ent.unsupported_properties:
        out.append("which property: " + ", ".join(PROPERTY_LABELS[p] for p in PROPERTY_UNITS
                                                  if p != "e_above_hull"))
    if intent == "compare":
        if len(ent.formulas) == 1 and len(ent.polymorphs) >= 2:
            out.append(f"structures of the {' and '.join(ent.polymorphs)} polymorphs of "
                       f"{ent.formulas[0]}: polymorph names cannot be turned into structures "
                       f"offline (upload or paste them)")
        elif len(ent.formulas) + (ent.structure is not None) < 2:
            out.append("two or more compounds to compare")
    if intent == "known_phases" and not ent.chemical_systems:
        if ent.unknown_symbols:
            out.append(f"a valid chemical system: {_not_elements(ent.unknown_symbols)}")
        else:
            out.append("a chemical system (e.g. Li-Fe-O)")
    if intent == "relax" and ent.structure is None:
        out.append(_upload(ent.paths) if ent.paths else
                   "a structure: upload a CIF or POSCAR file or paste its contents")
    if intent == "unknown" and followup and not ctx.last_intent:
        out.append("what the question refers to (there is no earlier turn)")
    return list(dict.fromkeys(out))


def _confidence(intent: str, top: float, second: float, missing: list[str],
                chemistry_signal: bool, resolved: list[str]) -> float:
    if intent == "unknown":
        return 0.5 if second == 0 else 0.35
    margin = (top - second) / top if top else 0.0
    value = 0.35 + 0.35 * margin + 0.25 * min(1.0, top / 6)
    subject_missing = any(m.startswith(("a formula", "a valid", "two or more", "a chemical",
                                        "a structure", "an uploaded")) for m in missing)
    if subject_missing:
        value = min(value, 0.45)
    if not chemistry_signal and intent not in ("help", "run_question"):
        value = min(value, 0.3)
    if "intent" in resolved:
        value = min(value, 0.75)
    return round(max(0.05, min(0.97, value)), 2)


def _subject(ent: Entities) -> str:
    if ent.formulas:
        return ", ".join(ent.formulas)
    if ent.structure is not None:
        return f"the pasted {ent.structure.format.upper()}" + (
            f" ({ent.structure.formula})" if ent.structure.formula else "")
    return "(no compound given)"


def _reading(intent: str, ent: Entities, *, text: str, resolved: list[str]) -> str:
    props = ", ".join(f"{PROPERTY_LABELS[p.name]} ({p.unit})" for p in ent.properties)
    quoted = " ".join(text.split())[:120]
    if intent == "stability":
        line = (f"Stability of {_subject(ent)}: energy above the convex hull (eV/atom) and "
                f"decomposition")
    elif intent == "known_phases":
        line = (f"Known phases in the {', '.join(ent.chemical_systems) or '(no system given)'} "
                f"system, sub-systems included")
    elif intent == "property":
        line = f"{props or 'A property'} of {_subject(ent)}"
    elif intent == "compare":
        subjects = ent.formulas if len(ent.formulas) >= 2 else [
            f"{p} {ent.formulas[0]}" if ent.formulas else p for p in ent.polymorphs] or \
            ent.formulas
        line = f"Compare {' and '.join(subjects) or '(nothing given)'}" + (
            f" on {props}" if props else "")
    elif intent == "synthesis":
        line = f"Synthesis of {_subject(ent)}: routes, precursors and conditions, with DOIs"
    elif intent == "relax":
        if ent.structure is not None:
            atoms = f", {ent.structure.n_atoms} atoms" if ent.structure.n_atoms else ""
            line = (f"Relax the {ent.structure.format.upper()} structure "
                    f"({ent.structure.formula or 'formula unknown'}{atoms}) with the MLIP")
        else:
            line = "Relax a structure (none was given)"
    elif intent == "campaign":
        line = f"Start a discovery campaign for '{quoted}'"
    elif intent == "run_question":
        line = f"Question about campaign {ent.run_id or '(the most recent one)'}" + (
            f", hypothesis {ent.hypothesis_id}" if ent.hypothesis_id else "")
    elif intent == "literature":
        line = f"Literature search for '{quoted}'"
    elif intent == "help":
        line = "Greeting or request for help: say what the assistant can do"
    else:
        line = "Not read as a materials question"
    if ent.substitution:
        (old, new), = ent.substitution.items()
        line += f" ({new} in place of {old} in the earlier compound)"
    if resolved:
        line += f" [from earlier turns: {', '.join(dict.fromkeys(resolved))}]"
    return line + "."


__all__ = ["INTENTS", "ConversationContext", "Entities", "Intent", "NumericConstraint",
           "PropertyMention", "StructureText", "Understanding", "understand"]

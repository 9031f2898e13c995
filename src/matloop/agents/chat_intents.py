"""Offline understanding of what a materials scientist asks the chat assistant.

:func:`understand` reads one message, with the :class:`ConversationContext` of the earlier
turns, into an :class:`Understanding`: the intent (stability, known phases, a property, a
comparison, synthesis, relaxing a structure, a new campaign, a question about an earlier
campaign, the literature, help), the entities it names (see
:mod:`matloop.agents.chat_chemistry` and :mod:`matloop.agents.chat_entities`), what is still
needed to answer, which entities came from earlier turns, and a one-line reading.

It is deterministic, needs no LLM and no tools, and takes well under a millisecond for a
typical question (pasted structures whose formula needs symmetry take longer). Intents are
scored from cue words; the entities then decide between close readings (a stability question
needs a compound, a known-phases question a system) and fill the gaps of elliptical follow-ups
("and its band gap?", "what about the Na analogue?") from the context.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import BaseModel, Field

from matloop.agents.chat_chemistry import (
    ANION_WORDS,
    ELEMENT_NAMES,
    SYMBOLS,
    chemsys,
    elements_of,
    read_chemistry,
    substitute,
)
from matloop.agents.chat_entities import (
    PROPERTY_UNITS,
    constraints_in,
    find_structure,
    hypothesis_id_in,
    paths_in,
    properties_in,
    run_id_in,
    unsupported_properties,
)

Intent = Literal["stability", "known_phases", "property", "compare", "synthesis", "relax",
                 "campaign", "run_question", "literature", "help", "unknown"]
INTENTS: tuple[str, ...] = get_args(Intent)
#: Intents whose answer is about one or more compounds.
_NEEDS_COMPOUND = ("stability", "property", "synthesis")
#: Intents a bare follow-up ("and GaP?") may continue.
_CONTINUABLE = ("stability", "known_phases", "property", "compare", "synthesis", "literature")


class PropertyMention(BaseModel):
    """A property of the fixed vocabulary, with the unit answers use."""

    name: str = Field(description="Property name, e.g. band_gap.")
    unit: str = Field(description="Unit of the property, e.g. eV.")


class NumericConstraint(BaseModel):
    """A numeric bound the message puts on a property."""

    property: str = Field(description="Property name.")
    unit: str = Field(description="Unit of min and max.")
    min: float | None = Field(default=None, description="Lower bound, if any.")
    max: float | None = Field(default=None, description="Upper bound, if any.")
    text: str = Field(description="The words the bound was read from.")


class StructureText(BaseModel):
    """A crystal structure given as CIF or POSCAR text (pasted or uploaded)."""

    format: Literal["cif", "poscar"] = Field(description="Text format.")
    text: str = Field(description="The structure text itself.")
    formula: str | None = Field(default=None, description="Reduced formula, when readable.")
    n_atoms: int | None = Field(default=None, description="Atoms in the cell, when known.")
    problem: str | None = Field(default=None, description="Why it cannot be used, if so.")


class Entities(BaseModel):
    """What a message names."""

    formulas: list[str] = Field(default_factory=list, description="Reduced formulas.")
    chemical_systems: list[str] = Field(default_factory=list,
                                        description="Sorted '-'-joined systems, e.g. Fe-Li-O.")
    elements: list[str] = Field(default_factory=list, description="Element symbols named.")
    properties: list[PropertyMention] = Field(default_factory=list,
                                              description="Properties asked about.")
    constraints: list[NumericConstraint] = Field(default_factory=list,
                                                 description="Numeric bounds on properties.")
    structure: StructureText | None = Field(default=None, description="Pasted structure.")
    paths: list[str] = Field(default_factory=list,
                             description="File paths typed as text (not readable).")
    run_id: str | None = Field(default=None, description="Campaign (run) id.")
    hypothesis_id: str | None = Field(default=None, description="Hypothesis id, e.g. H2.")
    polymorphs: list[str] = Field(default_factory=list,
                                  description="Polymorph or structure-type names.")
    unknown_symbols: list[str] = Field(default_factory=list,
                                       description="Element-like symbols that are no element.")
    unsupported_properties: list[str] = Field(
        default_factory=list, description="Properties no tool computes (literature only).")
    unresolved_names: list[str] = Field(
        default_factory=list, description="Compound names without one formula offline.")
    substitution: dict[str, str] = Field(default_factory=dict,
                                         description="Element swap applied, old -> new.")


class Understanding(BaseModel):
    """How one chat message was read."""

    intent: Intent = Field(description="What the message asks for.")
    entities: Entities = Field(default_factory=Entities, description="What it names.")
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence in the intent, 0-1.")
    missing: list[str] = Field(default_factory=list,
                               description="What is still needed to answer.")
    resolved_from_context: list[str] = Field(
        default_factory=list, description="Entity kinds (and 'intent') taken from earlier turns.")
    reading: str = Field(description="One line: how the question was read.")

    def property_names(self) -> list[str]:
        """Names of the properties asked about."""
        return [p.name for p in self.entities.properties]


class ConversationContext(BaseModel):
    """Entities of the earlier turns of a conversation (JSON-serialisable)."""

    last_intent: Intent | None = None
    last_formulas: list[str] = Field(default_factory=list)
    recent_formulas: list[str] = Field(default_factory=list,
                                       description="Distinct formulas, most recent first.")
    last_system: str | None = None
    last_properties: list[str] = Field(default_factory=list)
    last_structure: StructureText | None = None
    last_subject: Literal["formulas", "structure"] | None = None
    last_run_id: str | None = None
    last_hypothesis_id: str | None = None
    turns: int = 0

    def update(self, understanding: Understanding) -> ConversationContext:
        """Remember the entities of a turn that was just answered; returns self."""
        ent = understanding.entities
        formulas = list(ent.formulas)
        if ent.structure is not None:
            self.last_structure = ent.structure
            if not ent.formulas:
                self.last_subject = "structure"
                formulas = [ent.structure.formula] if ent.structure.formula else []
        if ent.formulas:
            self.last_subject = "formulas"
        if formulas:
            self.last_formulas = formulas
            for f in reversed(formulas):
                self.recent_formulas = [f] + [r for r in self.recent_formulas if r != f]
            self.recent_formulas = self.recent_formulas[:6]
        if ent.chemical_systems:
            self.last_system = ent.chemical_systems[0]
        if ent.properties:
            self.last_properties = [p.name for p in ent.properties]
        if ent.run_id:
            self.last_run_id = ent.run_id
        if ent.hypothesis_id:
            self.last_hypothesis_id = ent.hypothesis_id
        if understanding.intent not in ("help", "unknown"):
            self.last_intent = understanding.intent
        self.turns += 1
        return self

    def remember_run(self, run_id: str) -> ConversationContext:
        """Record the id of a campaign the assistant started; returns self."""
        self.last_run_id = run_id
        return self


def _cues(*pairs: tuple[str, float]) -> list[tuple[re.Pattern[str], float]]:
    return [(re.compile(p), w) for p, w in pairs]


_CLASS_NOUNS = (r"oxides|nitrides|sulfides|sulphides|halides|borides|carbides|selenides|"
                r"fluorides|chalcogenides|perovskites|spinels|alloys|intermetallics|"
                r"cathodes?|anodes?|electrolytes?|thermoelectrics?|photocatalysts?|absorbers?|"
                r"coatings?|superconductors?|magnets?|catalysts?|dielectrics?|conductors?|"
                r"semiconductors|phosphors?|scintillators?|ferroelectrics?|materials|compounds|"
                r"candidates")
CUES: dict[str, list[tuple[re.Pattern[str], float]]] = {
    "stability": _cues(
        (r"\b(?:un|meta)?stab(?:le|ility|ili[sz]ed)\b", 3), (r"\bdecompos\w*|break\s+down|"
                                                            r"fall\s+apart", 3),
        (r"\bhull\b|\behull\b|\be_hull\b", 3), (r"\bthermodynamic\w*", 1),
        (r"\bexist\b", 1)),
    "known_phases": _cues(
        (r"\bphases?\b", 2), (r"phase\s+diagram", 2), (r"\bcompounds?\b", 1),
        (r"\b(?:known|know|exists?|form)\b", 1), (r"\bwhat(?:'s|\s+is)\s+(?:on|in)\s+the\b", 2),
        (r"\b(?:list|enumerate|show\s+me)\b", 1), (r"competing\s+phases", 3),
        (r"everything\s+known", 3), (r"\b(?:binary|ternary|quaternary)\b", 1),
        (r"reference\s+data", 1), (r"what\s+exists", 2)),
    "property": _cues(
        (r"\bhow\s+(?:hard|dense|stiff|magnetic|soft|compressible)\b", 2),
        (r"\bpredict\w*", 1), (r"\bvalue\s+of\b", 1)),
    "compare": _cues(
        (r"\bcompar\w*", 5), (r"\bvs\.?(?!\w)|\bversus\b", 5),
        (r"\bwhich\s+(?:one\s+|of\s+(?:them|the\s+two|these)\s+)?(?:is|has|are)\b", 2),
        (r"\bwhich\s+of\b", 2), (r"\bwhich\s+(?:one|of\s+them|of\s+the\s+two)\b", 3),
        (r"\b(?:harder|softer|denser|stiffer|heavier|lighter|larger|smaller|bigger|higher|lower|"
         r"wider|narrower|stronger|weaker|better|worse|more|less)\b", 1),
        (r"\b\w+er\s+than\b|\b(?:more|less)\s+\w+\s+than\b", 3),
        (r"difference\s+(?:in|between)", 4), (r"side\s+by\s+side", 5)),
    "synthesis": _cues(
        (r"\bsynthe\w*", 4), (r"\bprecursors?\b", 4), (r"\brecipes?\b", 3),
        (r"\b(?:make|made|making)\b", 2), (r"\bprepar\w*", 3), (r"\bfabricat\w*", 3),
        (r"\bgrow\b|\bgrown\b|\bgrowth\b", 3), (r"\bcalcin\w*|\bsinter\w*|\banneal\w*", 3),
        (r"sol-gel|solid[- ]state\s+(?:route|reaction|synthesis)|hydrothermal|ball[- ]mill", 3),
        (r"\broutes?\b", 2), (r"starting\s+materials", 4), (r"\bprocedure\b", 2),
        (r"what\s+temperature", 2)),
    "relax": _cues(
        (r"\brelax(?:ed|es|ing)?\b|\brelaxation\b", 5), (r"\boptimi[sz]\w*", 4),
        (r"\bgeometry\b", 2),
        (r"\b(?:this|my|the\s+attached|attached|uploaded)\s+(?:structure|cif|poscar|file|cell)",
         3), (r"\bevaluate\s+(?:this|my)\b", 3)),
    "campaign": _cues(
        (r"\bsuggest\w*", 4), (r"\bpropos\w*", 4), (r"\bdesign\w*", 4), (r"\bdiscover\w*", 4),
        (r"\bscreen\w*", 3), (r"\bexplore\b", 3), (r"\bcome\s+up\s+with\b", 4),
        (r"\b(?:find|search\s+for|look\s+for|looking\s+for)\b", 2), (r"\bnew\b", 2),
        (r"\bcandidates?\b", 1), (r"\bgenerate\b", 3),
        (r"\b(?:start|run|launch|begin)\s+an?\s+(?:\w+\s+)?campaign\b", 6),
        (r"\bany\s+ideas\b", 3), (r"\balternatives?\s+to\b", 3),
        (r"\breplace\s+\w+\s+in\b", 2), (r"\bi\s+need\s+an?\b", 2),
        (rf"\b(?:{_CLASS_NOUNS})\b", 2)),
    "run_question": _cues(
        (r"\b(?:the|my|last|latest|previous|this|that|our)\s+(?:campaign|run)\b", 4),
        (r"\bcampaign\b", 1), (r"\bhypothes[ie]s\b", 3),
        (r"\b(?:reject\w*|approved|accepted|confirmed|refuted)\b", 3), (r"\bcritic\b", 3),
        (r"\b(?:best|top)\s+candidates?\b", 3),
        (r"\bnext\s+steps?\b|\bwhat\s+should\s+(?:i|we)\s+(?:do|try)\s+next\b|"
         r"\bwhat\s+next\b|\btry\s+next\b", 4),
        (r"\bresults?\b", 1), (r"\branked\b", 2), (r"\bwent\s+wrong\b", 2),
        (r"\brelaxations\s+did\b", 2), (r"\bthe\s+report\b", 2)),
    "literature": _cues(
        (r"what\s+is\s+known|known\s+about|what\s+do\s+we\s+know", 5), (r"\bliterature\b", 5),
        (r"\bpapers?\b|\bpublications?\b|\barticles?\b", 5), (r"\breviews?\b", 3),
        (r"\bstud(?:y|ies)\b", 3), (r"\breferences?\b", 3),
        (r"\breported\b|\bhas\s+anyone\b", 3), (r"\btell\s+me\s+about\b", 4),
        (r"\bsummari[sz]e\b.*\b(?:work|research|progress|field)\b|\brecent\s+(?:work|progress|"
         r"research|advances)\b", 4),
        (r"\bwho\s+(?:first\s+)?(?:made|discovered|synthesi\w+|invented)\b", 5),
        (r"\bhistory\b", 3)),
}
_HELP = re.compile(
    r"^\s*(?:/?help|\?+|hi|hello|hey|hiya|good\s+(?:morning|afternoon|evening))(?:\s+there)?"
    r"[\s!.?]*$|what\s+can\s+you\s+do|how\s+(?:do|can)\s+i\s+use\s+(?:this|you|matloop|the)|"
    r"how\s+does\s+this\s+work|what\s+(?:commands|tools)\s+(?:do\s+you|are)|who\s+are\s+you")
_FOLLOWUP = re.compile(r"^\s*(?:and|also|so|what\s+about|how\s+about|same\s+for|now|then|ok(?:ay)?"
                       r"|with|replace|swap)\b")
_PRONOUN = re.compile(r"\b(?:it|its|it's|them|they|their|both|either|this\s+one|that\s+one|"
                      r"the\s+same|this\s+compound|that\s+compound|this\s+material|"
                      r"that\s+material)\b")
_ANALOGUE = re.compile(r"\b(?:analogue|analog|version|counterpart|equivalent|variant)s?\b")
_MATERIALS_WORDS = re.compile(
    r"\b(?:materials?|compounds?|crystals?|structures?|phases?|hull|band\s*gap|bandgap|lattice|"
    r"oxides?|nitrides?|cathodes?|anodes?|electrolytes?|perovskites?|alloys?|semiconductors?|"
    r"dft|mlip|chgnet|campaign|hypothes[ie]s|elements?|chemical|chemistry|formula|doping|"
    r"dopants?|polymorphs?|thermoelectrics?|photocatalysts?|superconductors?|synthesis|cif|"
    r"poscar|candidates?|mofs?|electrodes?|batteries|battery|solar|thin\s+films?)\b")
_PROPERTY_LABELS = {"band_gap": "band gap", "formation_energy": "formation energy",
                    "e_above_hull": "energy above the hull", "energy_per_atom": "energy",
                    "bulk_modulus": "bulk modulus", "shear_modulus": "shear modulus",
                    "hardness": "hardness", "density": "density",
                    "magnetic_moment": "magnetic moment", "lattice_parameter": "lattice parameter"}
_SWAP = [re.compile(p) for p in (
    r"\b(?:with|using)\s+(?P<new>\w+)\s+instead\s+of\s+(?P<old>\w+)",
    r"\b(?P<new>\w+)\s+instead\s+of\s+(?P<old>\w+)",
    r"\breplac\w*\s+(?P<old>\w+)\s+(?:with|by)\s+(?P<new>\w+)",
    r"\bswap\w*\s+(?P<old>\w+)\s+(?:for|with)\s+(?P<new>\w+)",
    r"\bsubstitut\w*\s+(?P<old>\w+)\s+(?:with|by)\s+(?P<new>\w+)")]


def _symbol(word: str) -> str | None:
    if word in SYMBOLS:
        return word
    if word.lower() in ELEMENT_NAMES:
        return ELEMENT_NAMES[word.lower()]
    fixed = word[:1].upper() + word[1:].lower()
    return fixed if len(word) <= 2 and fixed in SYMBOLS else None


def _scores(lowered: str) -> dict[str, float]:
    scores = {intent: 0.0 for intent in CUES}
    for intent, cues in CUES.items():
        for pattern, weight in cues:
            if pattern.search(lowered):
                scores[intent] += weight
    return scores


def _substitution(text: str, lowered: str, chem: object, base: str) -> tuple[str, str] | None:
    """The (old, new) element swap a follow-up asks for on ``base``, if any."""
    for pattern in _SWAP:
        m = pattern.search(text)
        if m:
            old, new = _symbol(m.group("old")), _symbol(m.group("new"))
            if old and new:
                return old, new
    elements = [e for e in getattr(chem, "elements", []) if e not in elements_of(base)]
    anions = getattr(chem, "anion_words", [])
    if len(elements) == 1:
        new = elements[0]
    elif len(anions) == 1 and not elements:
        new = anions[0]
    else:
        return None
    result = substitute(base, new)
    if result is None:
        return None
    old = next(s for s in elements_of(base) if s not in elements_of(result))
    return old, new


def understand(text: str, *, context: ConversationContext | None = None,
               uploaded: str | None = None) -> Understanding:
    """Read one chat message.

    Args:
        text: The message.
        context: Entities of the earlier turns (see :class:`ConversationContext`); not changed
            here: call ``context.update(result)`` once the turn is answered.
        uploaded: Text of a structure file uploaded with the message (CIF or POSCAR), if any.

    Returns:
        The :class:`Understanding`.
    """
    ctx = context or ConversationContext()
    structure, rest = find_structure(text)
    if structure is None and uploaded:
        structure, _ = find_structure("\n" + uploaded)
    paths = paths_in(rest)
    body = rest
    for p in paths:
        body = body.replace(p, " ")
    lowered = body.lower()
    chem = read_chemistry(body)
    ent = Entities(formulas=list(chem.formulas), elements=list(chem.elements),
                   polymorphs=list(chem.polymorphs), unknown_symbols=list(chem.unknown_symbols),
                   unresolved_names=list(chem.unresolved_names), paths=paths,
                   unsupported_properties=unsupported_properties(lowered))
    systems = list(chem.systems)
    for glued in chem.glued_systems:
        canon = [f for f in ent.formulas if sorted(elements_of(f)) == sorted(
            re.findall(r"[A-Z][a-z]?", glued))]
        ent.formulas = [f for f in ent.formulas if f not in canon]
    if structure is not None:
        ent.structure = StructureText(
            format=structure.format, text=structure.text, formula=structure.formula,
            n_atoms=structure.n_atoms, problem=structure.problem)
        ent.unknown_symbols += [s for s in structure.unknown_symbols
                                if s not in ent.unknown_symbols]
    props = properties_in(chem.masked, chem.masked.lower())
    ent.run_id = run_id_in(body)
    about_runs = ctx.last_intent in ("campaign", "run_question") or bool(ent.run_id)
    ent.hypothesis_id = hypothesis_id_in(lowered, about_runs=about_runs)

    scores = _scores(lowered)
    has_compound = bool(ent.formulas) or structure is not None
    if "e_above_hull" in props:
        scores["stability"] += 1
    property_words = [p for p in props if p != "e_above_hull"]
    scores["property"] += 3 if property_words else 0
    if ent.unsupported_properties:
        scores["literature"] += 4
    if structure is not None:
        scores["relax"] += 4
        if scores["stability"]:
            scores["stability"] += 3
        if property_words:
            scores["property"] += 3
    if paths:
        scores["relax"] += 2
    if ent.run_id or ent.hypothesis_id:
        scores["run_question"] += 5
    constraints = constraints_in(lowered, props)
    if constraints and not has_compound:
        scores["campaign"] += 2
    first_word = re.match(r"\s*(?:please\s+|pls\s+|can\s+you\s+|could\s+you\s+)?(\w+)", lowered)
    if first_word and first_word.group(1) in ("find", "suggest", "design", "discover", "propose",
                                              "screen", "explore", "generate", "search", "look"):
        scores["campaign"] += 2
    if scores["known_phases"] and not systems:
        for group in chem.element_lists:
            systems.append(chemsys(group + [a for a in chem.anion_words]))
        named = [e for e in chem.elements if e not in chem.anion_words]
        if not systems and len(named) >= 2 and not ent.formulas:
            systems.append(chemsys(named + chem.anion_words))
    ent.chemical_systems = list(dict.fromkeys(s for s in systems if len(s.split("-")) >= 2))

    # A stability question about a system, not a compound, asks which phases are stable.
    if scores["stability"] and not has_compound and ent.chemical_systems:
        scores["known_phases"] += scores["stability"]
        scores["stability"] = 0.0
    if has_compound:
        for intent in _NEEDS_COMPOUND:
            if scores[intent]:
                scores[intent] += 1
        if scores["stability"] and scores["known_phases"]:
            scores["known_phases"] -= 2
    if ent.chemical_systems and scores["known_phases"]:
        scores["known_phases"] += 1
    n_subjects = len(ent.formulas) + (1 if structure is not None else 0)
    if len(ent.polymorphs) >= 2:
        n_subjects = max(n_subjects, 2)
    followup = bool(_FOLLOWUP.search(lowered)) or bool(_PRONOUN.search(lowered))
    context_pair = len(ctx.recent_formulas) >= 2 and ctx.last_intent is not None and (
        followup or not ent.formulas)
    if scores["compare"] and (n_subjects >= 2 or context_pair or (
            n_subjects == 1 and ctx.recent_formulas and followup)):
        scores["compare"] += 2
    if _HELP.search(lowered):
        scores["help"] = 6.0

    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    intent, top = ranked[0]
    second = ranked[1][1]
    resolved: list[str] = []
    missing: list[str] = []
    chemistry_signal = bool(ent.formulas or ent.chemical_systems or ent.elements or structure
                            or paths or ent.run_id or ent.hypothesis_id or ent.unknown_symbols
                            or ent.polymorphs or ent.unresolved_names or props
                            or _MATERIALS_WORDS.search(lowered))
    words = len(re.findall(r"\w+", lowered))

    # Elliptical follow-up: no cue of its own, continue the previous intent.
    if top == 0 and ctx.last_intent in _CONTINUABLE and (
            followup or chemistry_signal) and (words <= 8 or followup):
        intent, top, second = ctx.last_intent, 3.0, 0.0
        resolved.append("intent")
    elif top == 0 and structure is not None:
        intent = "relax"
    elif top == 0:
        intent = "unknown"
    elif not chemistry_signal and not ctx.last_formulas and words > 2 and intent not in (
            "help", "run_question"):
        intent, top, second = "unknown", 0.0, top

    # Subjects from the context.
    if ctx.last_formulas and not has_compound and intent in (*_NEEDS_COMPOUND, "compare",
                                                             "relax"):
        swap = _substitution(body, lowered, chem, ctx.last_formulas[0])
        if swap:
            new_formula = substitute(ctx.last_formulas[0], swap[1], swap[0])
            if new_formula:
                ent.formulas = [new_formula]
                ent.substitution = {swap[0]: swap[1]}
                resolved.append("formulas")
    if not ent.formulas and structure is None and intent in _NEEDS_COMPOUND:
        if ctx.last_subject == "structure" and ctx.last_structure is not None:
            ent.structure = ctx.last_structure
            resolved.append("structure")
        elif ctx.last_formulas and (followup or words <= 8):
            ent.formulas = list(ctx.last_formulas[:1]) if intent != "compare" else []
            resolved.append("formulas")
    if intent == "compare" and len(ent.formulas) < 2 and len(ent.polymorphs) < 2:
        pool = [f for f in (ctx.last_formulas + ctx.recent_formulas) if f not in ent.formulas]
        need = 2 - len(ent.formulas)
        if pool and (followup or not ent.formulas or words <= 8):
            ent.formulas = list(dict.fromkeys(pool))[:need] + ent.formulas
            resolved.append("formulas")
    if intent == "known_phases" and not ent.chemical_systems:
        if ent.formulas:
            ent.chemical_systems = [chemsys(elements_of(ent.formulas[0]))]
        elif ctx.last_system and (followup or words <= 8):
            ent.chemical_systems = [ctx.last_system]
            resolved.append("chemical_systems")
    if intent == "run_question" and not ent.run_id and ctx.last_run_id:
        ent.run_id = ctx.last_run_id
        resolved.append("run_id")
    # An element named on its own is the compound ("band gap of Si").
    if intent in (*_NEEDS_COMPOUND, "compare") and not ent.formulas and ent.structure is None \
            and len(chem.elements) == 1 and not ent.chemical_systems:
        ent.formulas = [chem.elements[0]]

    # Properties: a stability question is about the hull; a continued property question keeps
    # the property of the turn before.
    if intent == "stability" or (intent == "compare" and re.search(r"stab", lowered)):
        props = ["e_above_hull", *[p for p in props if p != "e_above_hull"]]
    if intent in ("property", "compare") and not props and ctx.last_intent in (
            "property", "compare") and ctx.last_properties and (followup or "intent" in resolved
                                                                or words <= 8):
        props = list(ctx.last_properties)
        resolved.append("properties")
    ent.properties = [PropertyMention(name=p, unit=PROPERTY_UNITS[p]) for p in props]
    ent.constraints = [NumericConstraint(property=c.property, unit=c.unit, min=c.min, max=c.max,
                                         text=c.text) for c in constraints]
    missing += _missing(intent, ent, ctx, followup=followup)
    confidence = _confidence(intent, top, second, ent, missing, chemistry_signal, resolved)
    reading = _reading(intent, ent, text=rest, resolved=resolved)
    return Understanding(intent=intent, entities=ent, confidence=confidence, missing=missing,
                         resolved_from_context=list(dict.fromkeys(resolved)), reading=reading)


def _subject_missing(ent: Entities) -> list[str]:
    out = []
    if ent.unknown_symbols:
        bad = ", ".join(f"'{s}'" for s in ent.unknown_symbols)
        out.append(f"a valid formula: {bad} {'is not a chemical element' if len(ent.unknown_symbols) == 1 else 'are not chemical elements'}")
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
    out: list[str] = []
    has_subject = bool(ent.formulas) or ent.structure is not None
    if ent.structure is not None and ent.structure.problem:
        out.append(f"a usable structure: {ent.structure.problem}")
    if intent in _NEEDS_COMPOUND and not has_subject:
        out += _subject_missing(ent)
    elif intent in _NEEDS_COMPOUND and ent.unknown_symbols:
        out += _subject_missing(ent)[:1]
    if intent == "property" and not ent.properties and not ent.unsupported_properties:
        out.append("which property: " + ", ".join(_PROPERTY_LABELS[p] for p in PROPERTY_UNITS
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
            out.append(f"a valid chemical system: {', '.join(ent.unknown_symbols)} "
                       f"{'is not an element' if len(ent.unknown_symbols) == 1 else 'are not elements'}")
        else:
            out.append("a chemical system (e.g. Li-Fe-O)")
    if intent == "relax" and ent.structure is None:
        out.append(_upload(ent.paths) if ent.paths else
                   "a structure: upload a CIF or POSCAR file or paste its contents")
    if intent == "unknown" and followup and not ctx.last_intent:
        out.append("what the question refers to (there is no earlier turn)")
    return list(dict.fromkeys(out))


def _confidence(intent: str, top: float, second: float, ent: Entities, missing: list[str],
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
    props = ", ".join(f"{_PROPERTY_LABELS[p.name]} ({p.unit})" for p in ent.properties)
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

"""Cue words of the chat intents, with weights, and the other phrase patterns.

The offline chat reader (:mod:`matloop.agents.chat.intents`) scores a message with them.
A cue adds its weight to its intent when it occurs in the lower-cased message; the reader then
weighs the scores against the entities the message names.
"""

from __future__ import annotations

import re


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
        (r"difference\s+(?:in|between)", 4), (r"side\s+by\s+side", 5),
        (r"\bcontrast\w*|\bdiffer\b|\bdistinguish\w*", 4)),
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
         3), (r"\bevaluate\s+(?:this|my)\b", 3),
        (r"\b(?:my|this|the)\s+(?:contcar|vasp\s+file)", 3)),
    "campaign": _cues(
        (r"\bsuggest(?!ed)\w*", 4), (r"\bpropos(?:e|es|ing|als?)\b", 4),
        (r"\bdesign(?!ed)\w*", 4), (r"\bdiscover(?!ed)\w*", 4),
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
        (r"\brelaxations\s+did\b", 2), (r"\bthe\s+report\b", 2),
        (r"\bwhat\s+did\s+(?:it|you|we|the\s+\w+)\s+(?:find|learn|show|get)\b", 3)),
    "literature": _cues(
        (r"what\s+is\s+known|known\s+about|what\s+do\s+we\s+know", 5), (r"\bliterature\b", 5),
        (r"\bpapers?\b|\bpublications?\b|\barticles?\b", 5), (r"\breviews?\b", 3),
        (r"\bstud(?:y|ies)\b", 3), (r"\breferences?\b", 3),
        (r"\breported\b|\bhas\s+anyone\b", 3), (r"\btell\s+me\s+about\b", 4),
        (r"\bsummari[sz]e\b.*\b(?:work|research|progress|field)\b|\brecent\s+(?:work|progress|"
         r"research|advances)\b", 4),
        (r"\bwho\s+(?:first\s+)?(?:made|discovered|synthesi\w+|invented)\b", 5),
        (r"\bhistory\b", 3), (r"state[\s-]+of[\s-]+the[\s-]+art|\boverview\b|"
                                r"\b(?:progress|advances|developments)\s+in\b|"
                                r"current\s+understanding", 4)),
}
#: "which Na-ion cathodes are known", "what oxide thermoelectrics have been reported": a class of
#: materials asked about as what is already known (the literature), not as a search for new ones.
KNOWN_CLASS = re.compile(
    rf"\b(?:{_CLASS_NOUNS})\b.{{0,40}}\b(?:are|is|were|have\s+been|has\s+been)\s+"
    rf"(?:known|reported|used|studied|common|commercial\w*)\b|"
    rf"\b(?:{_CLASS_NOUNS})\s+(?:exist|are\s+there)\b|"
    rf"\b(?:known|reported|existing|common|commercial|typical)\s+(?:[\w-]+\s+){{0,2}}"
    rf"(?:{_CLASS_NOUNS})\b")
HELP = re.compile(
    r"^\s*(?:/?help|\?+|hi|hello|hey|hiya|good\s+(?:morning|afternoon|evening))(?:\s+there)?"
    r"[\s!.?]*$|what\s+can\s+you\s+do|how\s+(?:do|can)\s+i\s+use\s+(?:this|you|matloop|the)|"
    r"how\s+does\s+this\s+work|what\s+(?:commands|tools)\s+(?:do\s+you|are)|who\s+are\s+you|"
    r"what\s+are\s+you\s+able\s+to\s+do|what\s+do\s+you\s+do|(?:your|its)\s+capabilities|"
    r"what\s+(?:kind|sort)s?\s+of\s+(?:questions|things)\s+can")
FOLLOWUP = re.compile(r"^\s*(?:and|also|so|what\s+about|how\s+about|same\s+for|now|then|ok(?:ay)?"
                       r"|with|replace|swap)\b")
PRONOUN = re.compile(r"\b(?:it|its|it's|them|they|their|both|either|this\s+one|that\s+one|"
                      r"the\s+same|this\s+compound|that\s+compound|this\s+material|"
                      r"that\s+material)\b")
MATERIALS_WORDS = re.compile(
    r"\b(?:materials?|compounds?|crystals?|structures?|phases?|hull|band\s*gap|bandgap|lattice|"
    r"oxides?|nitrides?|cathodes?|anodes?|electrolytes?|perovskites?|alloys?|semiconductors?|"
    r"dft|mlip|chgnet|campaign|hypothes[ie]s|elements?|chemical|chemistry|formula|doping|"
    r"dopants?|polymorphs?|thermoelectrics?|photocatalysts?|superconductors?|synthesis|cif|"
    r"poscar|contcar|vasp|candidates?|mofs?|electrodes?|batteries|battery|solar|films?|"
    r"[pn]-type|tcos?|conductors?|dielectrics?|magnets?|catalysts?|coatings?|ceramics?|"
    r"glass(?:es)?|zeolites?|nanoparticles?|nanowires?|doped|alloys?|insulators?|"
    r"ferroelectrics?|piezoelectrics?|multiferroics?|superhard|elastic|photovoltaics?|"
    r"absorbers?|ionic|phonons?|stoichiometr\w*|intermetallics?|halides?|sulfides?|borides?|"
    r"carbides?|chalcogenides?|perovskites?|spinels?|garnets?|olivines?)\b")
PROPERTY_LABELS = {"band_gap": "band gap", "formation_energy": "formation energy",
                    "e_above_hull": "energy above the hull", "energy_per_atom": "energy",
                    "bulk_modulus": "bulk modulus", "shear_modulus": "shear modulus",
                    "hardness": "hardness", "density": "density",
                    "magnetic_moment": "magnetic moment", "lattice_parameter": "lattice parameter"}
SWAP = [re.compile(p) for p in (
    r"\b(?:with|using)\s+(?P<new>\w+)\s+instead\s+of\s+(?P<old>\w+)",
    r"\b(?P<new>\w+)\s+instead\s+of\s+(?P<old>\w+)",
    r"\breplac\w*\s+(?P<old>\w+)\s+(?:with|by)\s+(?P<new>\w+)",
    r"\bswap\w*\s+(?P<old>\w+)\s+(?:for|with)\s+(?P<new>\w+)",
    r"\bsubstitut\w*\s+(?P<old>\w+)\s+(?:with|by)\s+(?P<new>\w+)")]
#: First words that make a message an instruction to search ("find ...", "design ...").
CAMPAIGN_VERBS = frozenset({"find", "suggest", "design", "discover", "propose", "screen",
                            "explore", "generate", "search", "look"})


def cue_scores(lowered: str) -> dict[str, float]:
    """Sum of the weights of each intent's cues found in a lower-cased message."""
    return {intent: float(sum(w for pattern, w in cues if pattern.search(lowered)))
            for intent, cues in CUES.items()}

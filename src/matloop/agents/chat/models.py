"""Results of the offline chat reader, and the context it carries between turns.

:class:`Understanding` (with :class:`Entities`) is what one message was read as;
:class:`ConversationContext` carries entities from one turn to the next.

Both are pydantic models, so they validate, serialise to JSON (the context is stored with the
chat thread) and read back with ``model_validate_json``.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field

Intent = Literal["stability", "known_phases", "property", "compare", "synthesis", "relax",
                 "campaign", "run_question", "literature", "help", "unknown"]
INTENTS: tuple[str, ...] = get_args(Intent)


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
    name: str | None = Field(default=None, description="File name, when it was uploaded.")
    path: str | None = Field(default=None, description="Where the server stored the upload "
                                                       "(tools read it from there).")


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


# -- answers ------------------------------------------------------------------------------------

Cell = str | float | int | bool | None


class AnswerTable(BaseModel):
    """A table of an answer: column names (units in them) and rows of plain values."""

    title: str = Field(description="What the table shows.")
    columns: list[str] = Field(description="Column headers, units included.")
    rows: list[list[Cell]] = Field(default_factory=list, description="One list per row.")
    note: str = Field(default="", description="Where the numbers come from, caveats.")


class Source(BaseModel):
    """Where a number of an answer comes from."""

    kind: Literal["tool", "mp", "data", "model", "mlip", "doi", "evidence", "run"] = Field(
        description="tool call, Materials Project entry, data set, model, MLIP, paper, "
                    "retrieved passage or campaign.")
    label: str = Field(description="What to show, e.g. 'mp-19017' or 'lookup_known_phases("
                                   "chemsys=Fe-Li-O-P)'.")
    url: str | None = Field(default=None, description="Link, when there is one.")


class HullPoint(BaseModel):
    """One known phase placed on a hull plot."""

    formula: str = Field(description="Reduced formula.")
    x: float = Field(description="Horizontal position (composition coordinate, 0-1).")
    y: float = Field(description="Vertical position: formation energy (eV/atom) for a binary, "
                                 "height in the composition triangle for a ternary.")
    e_above_hull_ev_per_atom: float = Field(description="Distance to the hull, eV/atom.")
    formation_energy_ev_per_atom: float = Field(description="Formation energy, eV/atom.")
    mp_id: str | None = Field(default=None, description="Materials Project id, when known.")
    highlight: bool = Field(default=False, description="The compound the question is about.")


class HullPlot(BaseModel):
    """A small phase-diagram figure of a system's known phases (drawn by the client)."""

    system: str = Field(description="Chemical system, e.g. Fe-Li-O.")
    kind: Literal["binary", "ternary"] = Field(description="binary: formation energy against "
                                               "composition; ternary: composition triangle.")
    corners: list[str] = Field(description="End members: 2 (binary, left to right) or 3 "
                                           "(ternary: bottom left, bottom right, top).")
    points: list[HullPoint] = Field(default_factory=list, description="Phases drawn: on the "
                                    "hull and near it.")
    lines: list[list[float]] = Field(default_factory=list, description="Hull edges (binary) or "
                                     "tie lines (ternary) as [x1, y1, x2, y2].")
    caption: str = Field(default="", description="What the figure shows, with the data source.")


class StructureView(BaseModel):
    """A structure to show in the 3D viewer."""

    title: str = Field(description="What it is, e.g. 'NaCl relaxed with chgnet'.")
    formula: str | None = Field(default=None, description="Reduced formula.")
    cif: str = Field(description="The structure as CIF text.")
    source: str = Field(default="", description="Where it comes from (MLIP, file).")


class ChatAnswer(BaseModel):
    """One answer: its text and the structured parts a client can show (tables, hull plots,
    structures), the sources behind it, and a campaign it could turn into."""

    intent: str = Field(description="Intent the answer addresses.")
    text: str = Field(description="The answer as text, with its sources at the end.")
    tables: list[AnswerTable] = Field(default_factory=list, description="Tables.")
    plots: list[HullPlot] = Field(default_factory=list, description="Hull plots.")
    structures: list[StructureView] = Field(default_factory=list,
                                            description="Structures for the 3D viewer.")
    sources: list[Source] = Field(default_factory=list, description="Sources, in order.")
    campaign_query: str | None = Field(default=None, description="A campaign query the answer "
                                       "suggests (the client can offer it as a button).")
    grounded: bool = Field(default=True, description="False when the answer declines or asks "
                                                     "for input instead of answering.")
    origin: Literal["offline", "model", "offline_floor"] = Field(
        default="offline", description="Who wrote the text: the offline assistant, the "
        "language model, or the offline assistant standing in for the model.")


__all__ = ["INTENTS", "AnswerTable", "ChatAnswer", "ConversationContext", "Entities",
           "HullPlot", "HullPoint", "Intent", "NumericConstraint", "PropertyMention", "Source",
           "StructureText", "StructureView", "Understanding"]

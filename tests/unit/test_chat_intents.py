"""The offline chat reader: intents, entities, follow-ups, typos, unknown elements, pasted
structures, typed paths, and the held-out part of the chat-questions benchmark."""

from __future__ import annotations

import json
import statistics
import time

import pytest

from matloop.agents.chat.chemistry import read_chemistry, substitute
from matloop.agents.chat.intents import ConversationContext, Understanding, understand
from tests.conftest import DATA

RUTILE_CIF = """data_TiO2_rutile
_cell_length_a 4.5937
_cell_length_b 4.5937
_cell_length_c 2.9587
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 42/m n m'
_symmetry_Int_Tables_number 136
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Ti1 Ti 0.0 0.0 0.0
O1 O 0.3048 0.3048 0.0
"""


def _talk(*turns: str, run_after: dict[int, str] | None = None) -> list[Understanding]:
    """Read a conversation turn by turn, storing the context as JSON in between (as the chat
    thread does)."""
    stored = ConversationContext().model_dump_json()
    out = []
    for i, text in enumerate(turns):
        ctx = ConversationContext.model_validate_json(stored)
        u = understand(text, context=ctx)
        ctx.update(u)
        if run_after and i in run_after:
            ctx.remember_run(run_after[i])
        stored = ctx.model_dump_json()
        out.append(u)
    return out


# -- the questions the old offline router answered with the help text ---------------------------

def test_is_nacl_stable() -> None:
    u = understand("Is NaCl stable?")
    assert u.intent == "stability" and u.confidence >= 0.7
    assert u.entities.formulas == ["NaCl"]
    assert [(p.name, p.unit) for p in u.entities.properties] == [("e_above_hull", "eV/atom")]
    assert u.missing == []


def test_known_phases_in_li_fe_o() -> None:
    u = understand("Which phases are known in the Li-Fe-O system?")
    assert u.intent == "known_phases" and u.confidence >= 0.7
    assert u.entities.chemical_systems == ["Fe-Li-O"]
    assert u.entities.formulas == []


def test_band_gap_of_gan() -> None:
    u = understand("What is the band gap of GaN?")
    assert u.intent == "property" and u.confidence >= 0.7
    assert u.entities.formulas == ["GaN"]
    assert [(p.name, p.unit) for p in u.entities.properties] == [("band_gap", "eV")]


def test_terse_and_comparative_forms() -> None:
    assert understand("GaN gap?").property_names() == ["band_gap"]
    u = understand("compare GaN and AlN")
    assert u.intent == "compare" and u.entities.formulas == ["GaN", "AlN"]
    u = understand("which is more stable, anatase or rutile TiO2")
    assert u.intent == "compare" and u.entities.formulas == ["TiO2"]
    assert u.entities.polymorphs == ["anatase", "rutile"]
    assert any("polymorph" in m for m in u.missing), u.missing


# -- spelling of formulas and systems -----------------------------------------------------------

@pytest.mark.parametrize("text", ["Is LiFePO4 stable?", "is FeLiPO4 stable", "is lifepo4 stable",
                                  "IS LIFEPO4 STABLE", "Is lithium iron phosphate stable?",
                                  "is LFP stable?"])
def test_formula_spellings_give_one_reduced_formula(text: str) -> None:
    u = understand(text)
    assert (u.intent, u.entities.formulas) == ("stability", ["LiFePO4"])


@pytest.mark.parametrize("text", ["known phases Li-Fe-0", "known phases li-fe-o",
                                  "What's in the LiFeO system?", "phases in Li–Fe–O",
                                  "Li Fe O system phases", "phases of lithium-iron-oxygen",
                                  "what compounds form between lithium, iron and oxygen"])
def test_chemical_system_typos(text: str) -> None:
    u = understand(text)
    assert u.intent == "known_phases", u.reading
    assert u.entities.chemical_systems == ["Fe-Li-O"]
    assert u.entities.formulas == []


@pytest.mark.parametrize(("name", "formula"), [
    ("sodium chloride", "NaCl"), ("gallium nitride", "GaN"), ("lithium oxide", "Li2O"),
    ("aluminium oxide", "Al2O3"), ("titanium dioxide", "TiO2"), ("iron(III) oxide", "Fe2O3"),
    ("barium titanate", "BaTiO3"), ("lithium cobalt oxide", "LiCoO2"),
    ("cesium lead iodide", "CsPbI3")])
def test_compound_names(name: str, formula: str) -> None:
    assert read_chemistry(f"what is the density of {name}?").formulas == [formula]


def test_an_ambiguous_name_is_reported_not_guessed() -> None:
    u = understand("Is iron oxide stable?")
    assert u.entities.formulas == []
    assert u.entities.unresolved_names and "Fe2O3" in u.entities.unresolved_names[0]
    assert u.missing and u.confidence < 0.5


def test_words_that_look_like_formulas_are_not() -> None:
    chem = read_chemistry("Can you find the gap in the CIF? HOW is this DFT tin can done")
    assert chem.formulas == []


# -- unknown elements and off-topic messages ----------------------------------------------------

def test_unknown_element_in_a_formula() -> None:
    u = understand("Is Xq2O3 stable?")
    assert u.intent == "stability"
    assert u.entities.formulas == [] and u.entities.unknown_symbols == ["Xq"]
    assert any("'Xq'" in m for m in u.missing) and u.confidence < 0.5


def test_unknown_element_in_a_system() -> None:
    u = understand("Which phases are known in the Xq-Fe-O system?")
    assert u.entities.chemical_systems == [] and u.entities.unknown_symbols == ["Xq"]
    assert u.missing and u.confidence < 0.5


@pytest.mark.parametrize("text", ["What's the weather like in Paris?", "recipe for chocolate cake",
                                  "Is the economy stable?", "how do I make pancakes",
                                  "can you compare iPhone and Android", "write me a poem"])
def test_off_topic_is_never_a_confident_materials_intent(text: str) -> None:
    u = understand(text)
    assert u.intent == "unknown" or u.confidence < 0.5, (u.intent, u.confidence)


# -- pasted and uploaded structures, typed paths ------------------------------------------------

def test_pasted_poscar_is_detected_and_relaxed() -> None:
    poscar = (DATA / "POSCAR_NaCl").read_text()
    u = understand("relax this\n" + poscar)
    s = u.entities.structure
    assert u.intent == "relax" and s is not None
    assert (s.format, s.formula, s.n_atoms) == ("poscar", "NaCl", 8)
    assert u.missing == []


def test_pasted_cif_with_a_stability_question_and_text_after_it() -> None:
    cif = (DATA / "NaCl_rocksalt.cif").read_text()
    u = understand("Is this stable?\n" + cif + "\nthanks a lot")
    assert u.intent == "stability"
    assert (u.entities.structure.format, u.entities.structure.formula) == ("cif", "NaCl")
    assert "thanks" not in u.entities.structure.text and "_cell_length_a" in \
        u.entities.structure.text


def test_cif_whose_formula_needs_its_symmetry() -> None:
    # Rutile's asymmetric unit is Ti + O; the P4_2/mnm cell holds Ti2O4.
    u = understand(RUTILE_CIF)
    assert u.intent == "relax"
    assert (u.entities.structure.formula, u.entities.structure.n_atoms) == ("TiO2", 6)


def test_structure_with_an_unknown_element_says_what_is_wrong() -> None:
    u = understand("relax this\n" + (DATA / "unknown_element.cif").read_text())
    assert u.entities.structure.formula is None
    assert u.entities.unknown_symbols == ["Qz"]
    assert any("Qz" in m for m in u.missing)


def test_uploaded_file_text_is_the_structure() -> None:
    u = understand("relax it please", uploaded=(DATA / "POSCAR_NaCl").read_text())
    assert u.intent == "relax" and u.entities.structure.formula == "NaCl"


@pytest.mark.parametrize(("text", "path"), [
    ("relax /home/anna/LiCoO2.cif", "/home/anna/LiCoO2.cif"),
    ("Can you relax my structure? It's in ~/calcs/POSCAR", "~/calcs/POSCAR"),
    ("relax C:\\Users\\bob\\MgO.cif", "C:\\Users\\bob\\MgO.cif")])
def test_typed_paths_are_not_read_and_an_upload_is_asked_for(text: str, path: str) -> None:
    u = understand(text)
    assert u.intent == "relax" and u.entities.structure is None
    assert u.entities.paths == [path]
    assert u.entities.formulas == []  # the LiCoO2 in a file name is not a question about it
    assert any("upload" in m for m in u.missing)


# -- follow-ups -----------------------------------------------------------------------------------

def test_analogue_and_pronoun_follow_ups() -> None:
    first, na, gap, make = _talk("Is LiCoO2 stable?", "what about the Na analogue?",
                                 "and its band gap?", "how do I make it?")
    assert first.entities.formulas == ["LiCoO2"]
    assert (na.intent, na.entities.formulas, na.entities.substitution) == (
        "stability", ["NaCoO2"], {"Li": "Na"})
    assert set(na.resolved_from_context) == {"formulas", "intent"}
    assert (gap.intent, gap.entities.formulas, gap.property_names()) == (
        "property", ["NaCoO2"], ["band_gap"])
    assert gap.resolved_from_context == ["formulas"]
    assert (make.intent, make.entities.formulas) == ("synthesis", ["NaCoO2"])


@pytest.mark.parametrize(("turns", "formula"), [
    (("band gap of ZnO", "and the sulfide?"), "ZnS"),
    (("Is CsPbI3 stable?", "and the bromide?"), "CsPbBr3"),
    (("Is KCl stable?", "what about rubidium?"), "RbCl"),
    (("How is LiFePO4 synthesised?", "what about the Mn analogue?"), "LiMnPO4"),
    (("Is NaCoO2 stable?", "with Li instead of Na?"), "LiCoO2"),
    (("Is LiMn2O4 stable?", "replace Mn with Ni"), "LiNi2O4")])
def test_substitution_follow_ups(turns: tuple[str, str], formula: str) -> None:
    first, second = _talk(*turns)
    assert second.intent == first.intent
    assert second.entities.formulas == [substitute(first.entities.formulas[0],
                                                   *reversed(next(iter(
                                                       second.entities.substitution.items()))))]
    assert second.entities.formulas[0].replace("(NiO2)2", "Ni2O4") == formula


def test_substitute_picks_the_nearest_group_member() -> None:
    assert substitute("LiCoO2", "Na") == "NaCoO2"
    assert substitute("NaCl", "K") == "KCl"
    assert substitute("ZnO", "S") == "ZnS"
    assert substitute("LiFePO4", "Mn") == "LiMnPO4"   # no group-8 partner: the one TM swaps
    assert substitute("GaN", "Na") is None            # nothing for Na to replace
    assert substitute("LiCoO2", "Li") is None


def test_compare_with_context_and_carried_property() -> None:
    _, aln, both = _talk("What is the band gap of GaN?", "and AlN?", "compare them")
    assert (aln.intent, aln.entities.formulas, aln.property_names()) == (
        "property", ["AlN"], ["band_gap"])
    assert set(aln.resolved_from_context) == {"intent", "properties"}
    assert both.intent == "compare" and set(both.entities.formulas) == {"GaN", "AlN"}
    assert both.property_names() == ["band_gap"]
    _, it_with = _talk("Is BaTiO3 stable?", "compare it with SrTiO3")
    assert it_with.entities.formulas == ["BaTiO3", "SrTiO3"]


def test_known_phases_follow_up_keeps_the_intent() -> None:
    _, mn = _talk("known phases in Fe-O", "and Mn-O?")
    assert (mn.intent, mn.entities.chemical_systems, mn.resolved_from_context) == (
        "known_phases", ["Mn-O"], ["intent"])


def test_run_questions_use_the_campaign_started_earlier() -> None:
    _, why, best = _talk("find new Li-ion cathodes", "why was H2 rejected?",
                         "what's the best candidate?", run_after={0: "20261122-141500-1a2b3c"})
    assert (why.intent, why.entities.hypothesis_id, why.entities.run_id) == (
        "run_question", "H2", "20261122-141500-1a2b3c")
    assert best.intent == "run_question" and best.resolved_from_context == ["run_id"]


def test_h2_is_hydrogen_talk_without_run_words() -> None:
    u = understand("suggest new materials for H2 storage")
    assert u.intent == "campaign" and u.entities.hypothesis_id is None


def test_follow_up_without_context_says_so() -> None:
    u = understand("what about it?")
    assert u.intent == "unknown" and u.missing
    u = understand("is it stable?")
    assert u.intent in ("unknown", "stability") and u.entities.formulas == []
    assert u.missing and u.confidence < 0.5


def test_structure_follow_up_reuses_the_pasted_structure() -> None:
    _, stable = _talk("relax this\n" + (DATA / "POSCAR_NaCl").read_text(), "is it stable?")
    assert stable.intent == "stability" and stable.resolved_from_context == ["structure"]
    assert stable.entities.structure.formula == "NaCl"


def test_context_is_json() -> None:
    ctx = ConversationContext()
    ctx.update(understand("Is LiCoO2 stable?")).remember_run("20261122-141500-1a2b3c")
    raw = json.loads(ctx.model_dump_json())
    assert raw["last_formulas"] == ["LiCoO2"] and raw["last_intent"] == "stability"
    assert ConversationContext.model_validate(raw) == ctx


# -- constraints ----------------------------------------------------------------------------------

def test_numeric_constraints_with_units() -> None:
    u = understand("Look for nitrides with bulk modulus above 200 GPa")
    assert u.intent == "campaign"
    [c] = u.entities.constraints
    assert (c.property, c.unit, c.min, c.max) == ("bulk_modulus", "GPa", 200.0, None)
    u = understand("search for photocatalysts with a band gap between 2 and 3 eV")
    assert [(c.min, c.max) for c in u.entities.constraints] == [(2.0, 3.0)]
    u = understand("start a campaign on Li-Mn-O cathodes within 50 meV of the hull")
    [c] = u.entities.constraints
    assert (c.property, c.unit, c.max) == ("e_above_hull", "eV/atom", pytest.approx(0.05))


# -- the benchmark's held-out part ----------------------------------------------------------------

def test_heldout_benchmark_accuracy() -> None:
    from evals.chat_intents import evaluate

    result = evaluate("heldout")
    s = result["summary"]
    assert s["n"] >= 90
    # Measured at the commit of this test (evals/results/chat_intents.json): intent 0.989,
    # entities 0.979, missing 1.0, one confident wrong intent; a few points of margin.
    assert s["intent_accuracy"] >= 0.95, [r["id"] for r in result["records"]
                                          if not r["intent_ok"]]
    assert s["entity_accuracy"] >= 0.94
    assert s["missing_agreement"] >= 0.95
    assert s["confident_wrong"] <= 3
    negatives = [r for r in result["records"] if r["kind"] == "negative"]
    assert negatives and all(r["intent_ok"] or r["confidence"] < 0.5 for r in negatives)


def test_reading_is_fast() -> None:
    from evals.chat_intents import load

    texts = [i["text"] for i in load()["items"] if "\n" not in i["text"]][:80]
    for text in texts:
        understand(text)
    times = []
    for text in texts:
        t0 = time.perf_counter()
        understand(text)
        times.append((time.perf_counter() - t0) * 1000)
    assert statistics.median(times) < 10.0


@pytest.mark.parametrize(("text", "formula"), [("is LiFeP04 stable?", "LiFePO4"),
                                               ("band gap of Ti02", "TiO2"),
                                               ("is Zn0 a semiconductor", "ZnO")])
def test_a_zero_typed_for_the_letter_o(text: str, formula: str) -> None:
    """A count never starts with 0, so "P04" is PO4; decimals ("Li0.5") are kept."""
    assert understand(text).entities.formulas == [formula]
    assert read_chemistry("Li0.5CoO2 cathode").formulas[0].startswith("Li0.5Co")


@pytest.mark.parametrize("text", ["which Na-ion cathodes are known",
                                  "what Li-ion cathodes exist",
                                  "which oxide thermoelectrics have been reported?"])
def test_what_is_known_about_a_class_is_a_literature_question(text: str) -> None:
    """Asking what is known never starts a campaign; asking for new ones does."""
    assert understand(text).intent == "literature"
    assert understand("suggest new Na-ion cathodes").intent == "campaign"


def test_comparing_two_systems_lists_the_phases_of_both() -> None:
    u = understand("compare the hull of Li-Mn-O and Li-Fe-O")
    assert u.intent == "known_phases"
    assert u.entities.chemical_systems == ["Li-Mn-O", "Fe-Li-O"]
